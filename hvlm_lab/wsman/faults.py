"""Fault injection and counters for the lab's simulated hosts (used by `wsman/server.py`).

Part of the lab. A `FaultSpec` is an immutable value: the server reads the current one on every
request, so `LabServer.set_fault()` (or `POST /faults/<host>` on the control channel) changes a
host's behaviour at runtime without a restart. `HostStats` records, per host and in order, every
HTTP request, every WSMan action and every cmdlet with its parameters; `snapshot()` is JSON-able.
"""

from __future__ import annotations

import base64
import enum
import re
import struct
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from psrpcore.types import ErrorCategory, PSObject


@dataclass(frozen=True)
class CmdletFault:
    """Make a cmdlet fail: the statement holding it does not run on the host."""

    cmdlet: str  # case-insensitive, e.g. "Set-VMHost"
    message: str
    terminating: bool = True
    error_id: str = "LabInjectedFault"
    category: str = ErrorCategory.InvalidOperation.name
    # True: stay non-terminating even under -ErrorAction Stop (a misbehaving cmdlet), so that
    # hvlm's safety net for a half-run pipeline can be exercised
    ignore_error_action: bool = False

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CmdletFault:
        return cls(**_known(cls, data))


HOSTILE_ANSWERS = (
    "huge-body",
    "malformed-xml",
    "entity-expansion",
    "wrong-type",
    "unknown-enum",
    "missing-property",
    "invalid-utf8",
    "trickle",
)


@dataclass(frozen=True)
class FaultSpec:
    """What goes wrong on one host. The default value is a healthy host.

    latency_ms: added before answering every HTTP request (asyncio.sleep, never blocking).
    drop_after_requests: after this many HTTP requests (counted from when the spec was set),
        the connection of each further request is dropped without an answer; with drop_once only
        the first such request is dropped (a transient fault).
    http_500_on_cmdlet: a pipeline holding this cmdlet gets HTTP 500 (a WSMan InternalError
        fault) instead of running.
    cmdlet_faults: cmdlets that fail with a given message (terminating or not).
    hang: every request is read and never answered (client timeouts).
    refuse_auth: every request gets 401, whatever the credentials.
    hostile_answer: the answer to a pipeline's Receive (the host's read, after the pool opened)
        is one of HOSTILE_ANSWERS: "huge-body" (200 MB, chunked, no length), "malformed-xml",
        "entity-expansion" (a billion-laughs DTD), "wrong-type" (a string where Get-VMHost has
        UInt32), "unknown-enum" (an enum value that does not exist), "missing-property"
        (MaximumStorageMigrations left out), "invalid-utf8" (in a CLIXML string), "trickle"
        (the real answer, one byte a second).
    """

    latency_ms: float = 0.0
    drop_after_requests: int | None = None
    drop_once: bool = False
    http_500_on_cmdlet: str | None = None
    cmdlet_faults: tuple[CmdletFault, ...] = ()
    hang: bool = False
    refuse_auth: bool = False
    hostile_answer: str | None = None
    hostile_from_pipeline: int = 1  # 1: the read on; 2: the write on; 3: the verification read

    def __post_init__(self) -> None:
        if self.hostile_answer is not None and self.hostile_answer not in HOSTILE_ANSWERS:
            known = ", ".join(HOSTILE_ANSWERS)
            raise ValueError(f"unknown hostile_answer {self.hostile_answer!r}; one of {known}")

    def cmdlet_fault(self, cmdlet: str) -> CmdletFault | None:
        wanted = cmdlet.lower()
        return next((f for f in self.cmdlet_faults if f.cmdlet.lower() == wanted), None)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FaultSpec:
        values = _known(cls, data)
        values["cmdlet_faults"] = tuple(
            CmdletFault.from_json(f) for f in data.get("cmdlet_faults", ())
        )
        return cls(**values)


def _known(cls: type, data: Mapping[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s): {', '.join(sorted(unknown))}")
    return dict(data)


class Outcome(enum.Enum):
    """What happened to a cmdlet that reached the host."""

    OK = "ok"  # ran; no error
    ERROR = "error"  # ran with non-terminating errors
    TERMINATED = "terminated"  # terminating error: the pipeline failed
    SKIPPED = "skipped"  # a previous statement failed the pipeline
    REFUSED = "refused"  # a script (AddScript): refused
    HTTP_500 = "http500"  # fault injection answered HTTP 500


def clr_type(value: Any) -> str:
    """The .NET type a deserialised PSRP parameter value had on the wire, as the host's parameter
    binder receives it: "System.String" (<S>), "System.Int32" (<I32>), "System.Boolean" (<B>)...;
    "null" for <Nil/> (a switch). psrpcore gives bools as Python bools, the rest as PS types."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "System.Boolean"
    names = getattr(getattr(value, "PSObject", None), "type_names", None)
    return str(names[0]) if names else type(value).__name__


def jsonable(value: Any) -> Any:
    """Deserialised PSRP values (PSString, PSInt32, lists, PSObjects) as plain JSON values."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, PSObject):
        return str(value)
    return repr(value)


@dataclass
class _Counters:
    http_requests: int = 0
    http_status: dict[str, int] = field(default_factory=dict)
    auth_failures: int = 0
    dropped: int = 0
    hung: int = 0
    actions: list[str] = field(default_factory=list)
    cmdlets: list[dict[str, Any]] = field(default_factory=list)


class HostStats:
    """Counters of one host; written on the server's loop thread, read from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._c = _Counters()

    def http_request(self) -> None:
        with self._lock:
            self._c.http_requests += 1

    def http_status(self, status: int) -> None:
        with self._lock:
            key = str(status)
            self._c.http_status[key] = self._c.http_status.get(key, 0) + 1

    def auth_failure(self) -> None:
        """Credentials rejected (or refused by a fault); handshake challenges do not count."""
        with self._lock:
            self._c.auth_failures += 1

    def dropped(self) -> None:
        with self._lock:
            self._c.dropped += 1

    def hung(self) -> None:
        with self._lock:
            self._c.hung += 1

    def action(self, name: str) -> None:
        with self._lock:
            self._c.actions.append(name)

    def cmdlet(self, record: dict[str, Any]) -> None:
        with self._lock:
            self._c.cmdlets.append(record)

    def reset(self) -> None:
        with self._lock:
            self._c = _Counters()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            c = self._c
            counts: dict[str, int] = {}
            for name in c.actions:
                counts[name] = counts.get(name, 0) + 1
            return {
                "http_requests": c.http_requests,
                "http_status": dict(c.http_status),
                "auth_failures": c.auth_failures,
                "dropped": c.dropped,
                "hung": c.hung,
                "wsman_requests": len(c.actions),
                "actions": list(c.actions),
                "action_counts": counts,
                "cmdlets": [dict(r) for r in c.cmdlets],
            }


# -- hostile answers (issue 13, item 7): what a broken or compromised host could send ---------

HUGE_BODY_BYTES = 200 * 1024 * 1024
_STREAMED = ("huge-body", "trickle")  # written by the endpoint itself, not as a body


def streamed(kind: str | None) -> bool:
    return kind in _STREAMED


def billion_laughs() -> bytes:
    """An envelope whose DTD expands one entity to 10**9 'lol's (about 3 GB)."""
    entities = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">' for i in range(1, 10)
    ]
    return (
        '<?xml version="1.0"?><!DOCTYPE s:Envelope [' + "".join(entities) + "]>"
        '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Header/>'
        "<s:Body>&lol9;</s:Body></s:Envelope>"
    ).encode()


_CLIXML_EDITS: dict[str, tuple[bytes, bytes]] = {
    "wrong-type": (
        rb'<U32 N="MaximumVirtualMachineMigrations">\d+</U32>',
        b'<S N="MaximumVirtualMachineMigrations">lots</S>',
    ),
    "unknown-enum": (
        rb'(N="VirtualMachineMigrationPerformanceOption"><I32>)\d+(</I32>.*?<ToString>)[^<]*',
        rb"\g<1>42\g<2>Teleport",
    ),
    "missing-property": (rb'<U32 N="MaximumStorageMigrations">\d+</U32>', b""),
    "invalid-utf8": (rb'(<S N="ComputerName">)', b"\\g<1>\xff\xfe\xc3\x28"),
}


def hostile_body(kind: str, body: bytes) -> bytes:
    """The real Receive answer `body` made hostile (kinds answered as a body, not streamed)."""
    if kind == "malformed-xml":
        return body[: len(body) // 2] + b"<rsp:Stream Name='stdout'>&bogus;<</s:Envelope"
    if kind == "entity-expansion":
        return billion_laughs()
    pattern, replacement = _CLIXML_EDITS[kind]
    return re.sub(
        rb"(<rsp:Stream[^>]*>)([A-Za-z0-9+/=]+)(</rsp:Stream>)",
        lambda m: m.group(1) + _edit_fragments(m.group(2), pattern, replacement) + m.group(3),
        body,
    )


def _edit_fragments(text: bytes, pattern: bytes, replacement: bytes) -> bytes:
    """Edit the CLIXML of every whole PSRP message (one fragment) in one base64 stream."""
    data = base64.b64decode(text)
    out, offset = [], 0
    while offset < len(data):
        object_id, fragment_id, flags, length = struct.unpack_from(">QQBI", data, offset)
        blob = data[offset + 21 : offset + 21 + length]
        offset += 21 + length
        if flags == 3:
            blob = blob[:40] + re.sub(pattern, replacement, blob[40:], flags=re.DOTALL)
        out.append(struct.pack(">QQBI", object_id, fragment_id, flags, len(blob)) + blob)
    return base64.b64encode(b"".join(out))
