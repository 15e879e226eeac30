"""PowerShell error records -> hvlm's CmdletError, and the known error codes. Pure.

Pipeline position: used by hvlm.hosts.parse (records of the read pipeline), hvlm.hosts.write and
hvlm.hosts.errors (which maps transport exceptions and re-exports these). No pypsrp import here, so
the pure modules (parse, commands) and everything above them load without the transport.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from hvlm.errors import CmdletError

USER_VARIABLE = "HVLM_WINRM_USER"
PASSWORD_VARIABLE = "HVLM_WINRM_PASSWORD"  # noqa: S105 (a variable name)

# DOMAIN.md's table of errors administrators meet: code -> (cause, fix).
KNOWN_CODES: dict[int, str] = {
    0x8009030E: "no credentials in the security package: CredSSP needs a sign-in on the source, or "
    "use Kerberos with delegation and 'use any authentication protocol'",
    0x8009030D: "no suitable credentials: constrained delegation is missing; use Kerberos on both "
    "hosts, delegation both ways, then klist purge -li 0x3e7",
    0x80090322: "the target principal name is incorrect: check the SPNs, DNS and the network order",
    0x8007274D: "connection refused: is TCP 6600 (migration) reachable through the firewall?",
    0x8007274C: "connection timed out: is TCP 6600 (migration) reachable through the firewall?",
}
_MIGRATION_LIMIT = re.compile(r"migration limit", re.IGNORECASE)

# WSMan fault codes worth a hint.
_WSMAN_HINTS: dict[int, str] = {
    0x80338029: "the operation timed out on the host: raise connection.timeouts.operation",
}


def explain(message: str) -> str:
    """A hint for the known error codes (hex or signed/unsigned decimal) found in `message`."""
    hints: list[str] = []
    for code, hint in KNOWN_CODES.items():
        forms = (f"0x{code:08x}", str(code), str(code - (1 << 32)))
        if any(form in message.lower() for form in forms):
            hints.append(f"0x{code:08X}: {hint}")
    if _MIGRATION_LIMIT.search(message):
        hints.append("concurrency limit reached: raise maxVirtualMachineMigrations")
    return "; ".join(hints)


# -- PowerShell error records -----------------------------------------------------------------


@dataclass(frozen=True)
class RecordInfo:
    """What hvlm takes from an ErrorRecord: the command it belongs to and its real message."""

    cmdlet: str  # "" when it cannot be attributed
    message: str
    error_id: str  # FullyQualifiedErrorId
    target: str  # TargetObject as text ("" if none)


def record_message(record: object) -> str:
    """The real text of an ErrorRecord (ErrorRecord.message is only the category text)."""
    details = getattr(record, "details_message", None)
    if details:
        return str(details)
    exception = getattr(record, "exception", None)
    for source in (exception, record):
        text = _message_of(source)
        if text:
            return text
    return str(getattr(record, "message", "") or "unknown error")


def _message_of(value: object) -> str:
    if value is None:
        return ""
    for bag in ("adapted_properties", "extended_properties"):
        props = getattr(value, bag, None)
        if isinstance(props, dict) and props.get("Message"):
            return str(props["Message"])
    try:
        text = str(value)
    except (KeyError, TypeError, ValueError):
        return ""
    return "" if text in ("None", "") else text


def describe_record(record: object, candidates: Iterable[str]) -> RecordInfo:
    """Attribute an ErrorRecord to one of `candidates` (cmdlet names) and extract its text."""
    message = record_message(record)
    error_id = str(getattr(record, "fq_error", "") or "")
    target = getattr(record, "target_object", None)
    target_text = _message_of(target) if target is not None else ""
    names = [
        str(getattr(record, "invocation_name", "") or ""),
        str(getattr(record, "command_name", "") or ""),
        _command_from_error_id(error_id),
        target_text,
    ]
    cmdlet = _match_cmdlet(names, message, tuple(candidates))
    return RecordInfo(cmdlet=cmdlet, message=message, error_id=error_id, target=target_text)


def _command_from_error_id(error_id: str) -> str:
    """'ObjectNotFound,Microsoft.HyperV.PowerShell.Commands.RemoveVMMigrationNetwork' -> class."""
    _, sep, origin = error_id.rpartition(",")
    if not sep:
        return ""
    name = origin.rsplit(".", 1)[-1]
    return name[: -len("Command")] if name.endswith("Command") else name


def _match_cmdlet(names: list[str], message: str, candidates: tuple[str, ...]) -> str:
    squashed = {c.replace("-", "").lower(): c for c in candidates}
    for name in names:
        key = name.replace("-", "").lower()
        if key in squashed:
            return squashed[key]
    lowered = message.lower()
    for candidate in candidates:
        if f"'{candidate.lower()}'" in lowered:
            return candidate
    return ""


def cmdlet_error(host: str, step: str, info: RecordInfo) -> CmdletError:
    return CmdletError(host, step, info.message, hint=explain(info.message))


# -- transport and protocol exceptions --------------------------------------------------------
