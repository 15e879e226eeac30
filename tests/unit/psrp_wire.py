"""A host on the other end of hvlm's own PSRP client, without a network: the transport seam.

Where it sits: tests only. `hvlm.hosts.transport.PsrpClient` sends every WSMan envelope through
`wsman.transport.send(bytes)` (pypsrp's HTTP transport in production). `FakeTransport` takes that
place: it records every envelope hvlm sends and answers with envelopes built HERE, by hand, from
MS-PSRP (not with hvlm's or pypsrp's code), so that a unit test drives the production path

    envelope bytes -> hvlm.hosts.envelopes (XML, Defragmenter) -> hvlm.hosts.clixml.deserialize
    -> PsrpClient.run's PipelineOutput -> HostSession.read -> hvlm.hosts.parse.parse_host_state

exactly as a live read does, and can decode what hvlm put on the wire (`sent_pipelines`).

Framing written from the spec:
- MS-PSRP 2.2.4 Packet Fragment: ObjectId (8 bytes, big-endian), FragmentId (8, big-endian),
  flags (1 byte: 0x1 start, 0x2 end), BlobLength (4, big-endian), Blob;
- MS-PSRP 2.2.1 PowerShell Remoting Protocol Message: Destination (4, little-endian: 0x1 client,
  0x2 server), MessageType (4, little-endian), RPID and PID (16 each, GUID byte order), Data;
- message types of MS-PSRP 2.2.1: PIPELINE_OUTPUT 0x00041004, ERROR_RECORD 0x00041005,
  PIPELINE_STATE 0x00041006, WARNING_RECORD 0x00041009, CREATE_PIPELINE 0x00021006;
- PIPELINE_STATE (2.2.2.21): <I32 N="PipelineState"> (2.2.3.5: 4 Completed, 5 Failed) and, when
  failed, ExceptionAsErrorRecord.
"""

from __future__ import annotations

import base64
import struct
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from hvlm.hosts.session import Credentials, HostSession
from hvlm.hosts.transport import PsrpClient
from hvlm.model import ConnectionSpec, DelegationSettings, HostSpec, MigrationSettings

PIPELINE_OUTPUT = 0x00041004
ERROR_RECORD = 0x00041005
PIPELINE_STATE = 0x00041006
WARNING_RECORD = 0x00041009
CREATE_PIPELINE = 0x00021006
COMPLETED, FAILED = 4, 5

S = "http://www.w3.org/2003/05/soap-envelope"
WSA = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
RSP = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
COMMAND_ACTION = RSP + "/Command"
RECEIVE_ACTION = RSP + "/Receive"
DELETE_ACTION = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete"
DONE = RSP + "/CommandState/Done"
ENDPOINT = "https://hv01.corp.example.com:5986/wsman"


def fragments(object_id: int, message: bytes, size: int | None = None) -> list[bytes]:
    """A message as fragments of at most `size` bytes (MS-PSRP 2.2.4: FragmentId counts from 0,
    flag 0x1 on the first, 0x2 on the last); one fragment when `size` is None."""
    size = size or max(1, len(message))
    pieces = [message[i:i + size] for i in range(0, len(message), size)] or [b""]
    return [struct.pack(">QQBI", object_id, index,
                        (1 if index == 0 else 0) | (2 if index == len(pieces) - 1 else 0),
                        len(piece)) + piece
            for index, piece in enumerate(pieces)]


def psrp_message(kind: int, data: bytes, pid: uuid.UUID) -> bytes:
    """MS-PSRP 2.2.1: to the client (destination 1), this pool and pipeline."""
    return struct.pack("<II", 1, kind) + bytes(16) + pid.bytes_le + data


def pipeline_state(state: int, error_record: bytes = b"") -> bytes:
    reason = error_record.replace(b"<Obj ", b'<Obj N="ExceptionAsErrorRecord" ', 1)
    return (b'<Obj RefId="0"><MS><I32 N="PipelineState">%d</I32>%s</MS></Obj>'
            % (state, reason))


@dataclass(frozen=True)
class Answer:
    """What the host answers to one pipeline: its messages in order, then its state."""

    output: Sequence[bytes] = ()
    errors: Sequence[bytes] = ()
    warnings: Sequence[bytes] = ()
    state: int = COMPLETED
    terminating: bytes = b""  # the ErrorRecord of a failed pipeline
    fragment_size: int | None = None  # split each message into fragments of this size
    receives: int = 1  # spread the fragments over this many Receive answers

    def messages(self) -> list[tuple[int, bytes]]:
        return ([(PIPELINE_OUTPUT, o) for o in self.output]
                + [(ERROR_RECORD, e) for e in self.errors]
                + [(WARNING_RECORD, w) for w in self.warnings]
                + [(PIPELINE_STATE, pipeline_state(self.state, self.terminating))])


def _envelope(relates_to: str, body: str) -> bytes:
    return (f'<s:Envelope xmlns:s="{S}" xmlns:wsa="{WSA}" xmlns:rsp="{RSP}"><s:Header>'
            f"<wsa:RelatesTo>{relates_to}</wsa:RelatesTo></s:Header>"
            f"<s:Body>{body}</s:Body></s:Envelope>").encode()


@dataclass
class FakeTransport:
    """pypsrp's transport as PsrpClient uses it: `endpoint`, `send(bytes, timeout)`, `close()`."""

    answers: list[Answer]
    endpoint: str = ENDPOINT
    sent: list[bytes] = field(default_factory=list)
    _object_id: int = 0
    _groups: list[list[bytes]] = field(default_factory=list)
    _command: str = ""

    def send(self, data: bytes, timeout: float | None = None) -> bytes:
        self.sent.append(data)
        root = ET.fromstring(data)
        mid = root.findtext(f"{{{S}}}Header/{{{WSA}}}MessageID") or ""
        action = root.findtext(f"{{{S}}}Header/{{{WSA}}}Action") or ""
        if action == COMMAND_ACTION:
            command = root.find(f".//{{{RSP}}}CommandLine")
            assert command is not None
            self._command = command.get("CommandId", "")
            return _envelope(mid, f"<rsp:CommandResponse><rsp:CommandId>{self._command}"
                                  "</rsp:CommandId></rsp:CommandResponse>")
        if action == DELETE_ACTION:  # the pool closed
            return _envelope(mid, "")
        assert action == RECEIVE_ACTION, action
        if not self._groups:
            self._groups = self._answer_groups(self.answers.pop(0))
        group = self._groups.pop(0)
        streams = "".join(f'<rsp:Stream Name="stdout" CommandId="{self._command}">'
                          f"{base64.b64encode(f).decode()}</rsp:Stream>" for f in group)
        state = "" if self._groups else (f'<rsp:CommandState CommandId="{self._command}" '
                                         f'State="{DONE}" />')
        return _envelope(mid, f"<rsp:ReceiveResponse>{streams}{state}</rsp:ReceiveResponse>")

    def _answer_groups(self, answer: Answer) -> list[list[bytes]]:
        """The answer's fragments, in order, spread over `answer.receives` Receive answers."""
        pid = uuid.UUID(self._command)
        pieces: list[bytes] = []
        for kind, payload in answer.messages():
            self._object_id += 1
            pieces += fragments(self._object_id, psrp_message(kind, payload, pid),
                                answer.fragment_size)
        per = -(-len(pieces) // answer.receives)
        return [pieces[i:i + per] for i in range(0, len(pieces), per)]

    def close(self) -> None:
        pass

    def sent_pipelines(self) -> list[ET.Element]:
        """The CREATE_PIPELINE CLIXML of every Command hvlm sent, decoded from the envelope."""
        pipelines = []
        for data in self.sent:
            root = ET.fromstring(data)
            arguments = root.findtext(f".//{{{RSP}}}Arguments")
            if arguments is None:
                continue
            for kind, payload in _unframe(base64.b64decode(arguments)):
                assert kind == CREATE_PIPELINE, hex(kind)
                pipelines.append(ET.fromstring(payload))
        return pipelines


def _unframe(blob: bytes) -> Iterable[tuple[int, bytes]]:
    """Fragments (MS-PSRP 2.2.4) -> messages (2.2.1): (message type, data)."""
    offset, pending = 0, b""
    while offset < len(blob):
        _, _, flags, length = struct.unpack_from(">QQBI", blob, offset)
        offset += 21
        pending = (b"" if flags & 1 else pending) + blob[offset:offset + length]
        offset += length
        if flags & 2:
            destination, kind = struct.unpack_from("<II", pending)
            assert destination == 2  # client -> server
            yield kind, pending[40:]


def client(*answers: Answer) -> tuple[PsrpClient, FakeTransport]:
    transport = FakeTransport(list(answers))
    wsman: Any = SimpleNamespace(transport=transport)
    return PsrpClient(wsman, 20), transport


def session(name: str, *answers: Answer) -> tuple[HostSession, FakeTransport]:
    """A HostSession whose pool is open on the fake host (what HostSession.open leaves)."""
    spec = HostSpec(name, f"{name.lower()}.corp.example.com",
                    ConnectionSpec(f"{name.lower()}.corp.example.com", 5986, retries=0),
                    MigrationSettings(), DelegationSettings())
    host = HostSession(spec, Credentials("user", "pass"))
    pool, transport = client(*answers)
    host._pool = pool
    return host, transport


def objs(path: Any) -> list[bytes]:
    """The <Obj> children of a fixture file, one message payload each (as the host sends them)."""
    root = ET.parse(path).getroot()
    return [ET.tostring(e, encoding="unicode").strip().encode() for e in root if e.tag == "Obj"]
