"""The wire format under hvlm's PSRP client: WSMan envelopes, PSRP framing, XML from a host.

Where it sits: the hosts backend (hvlm.hosts), below hvlm.reconcile and hvlm.backends;
hvlm.hosts.transport (the per-host exchange) builds its requests from the templates here and
reads every answer through `parse_xml`; hvlm.hosts.clixml reads its CLIXML through it too. Pure
bytes and strings: no I/O, no pypsrp. What is the same for every host of a run is a template
(issue 16): per request only the message id, the shell and the body change.

A host that lies cannot hurt the client (issue 13, item 7): `parse_xml` takes strict UTF-8, refuses
a DTD (so no entity expansion) and malformed XML; `Defragmenter` refuses truncated fragments and
messages over MAX_MESSAGE_BYTES. Each refusal is a `BadAnswer`, which hvlm.hosts.errors'
map_exception (the one place where failures become hvlm errors) turns into one line.
"""

from __future__ import annotations

import base64
import re
import struct
import uuid
import xml.etree.ElementTree as ET

from hvlm.hosts.errors import BadAnswer

MAX_ENVELOPE = 512_000  # what hvlm asks for (WinRM's default MaxEnvelopeSizekb 500)
MAX_MESSAGE_BYTES = 16 * 1024 * 1024  # one defragmented PSRP message (several envelopes)

# -- XML from a host -----------------------------------------------------------------------------

_DTD = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


def decode_text(data: bytes, what: str) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadAnswer(f"{what} is not valid UTF-8 (byte {exc.start})") from exc
    return text[1:] if text.startswith("\ufeff") else text


def parse_xml(data: bytes | str, what: str) -> ET.Element:
    """Strict UTF-8, no DTD (hence no entity declaration to expand), well-formed, or BadAnswer."""
    text = decode_text(data, what) if isinstance(data, bytes) else data
    if _DTD.search(text):
        raise BadAnswer(f"{what} carries a DTD (entity declarations are refused)")
    try:
        return ET.fromstring(text)  # noqa: S314 (no DTD: checked above; sizes capped)
    except ET.ParseError as exc:
        raise BadAnswer(f"{what} is malformed XML ({exc})") from exc


# -- WSMan envelopes -----------------------------------------------------------------------------

NS_S = "http://www.w3.org/2003/05/soap-envelope"
NS_RSP = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
NS_WSA = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
RESOURCE = "http://schemas.microsoft.com/powershell/Microsoft.PowerShell"
_TRANSFER = "http://schemas.xmlsoap.org/ws/2004/09/transfer/"
CREATE, DELETE = _TRANSFER + "Create", _TRANSFER + "Delete"
COMMAND, RECEIVE = NS_RSP + "/Command", NS_RSP + "/Receive"
DONE = NS_RSP + "/CommandState/Done"
RECEIVE_TIMEOUT = 2150858793  # 0x80338029: no output within the operation timeout; poll again

ENVELOPE = (
    '<s:Envelope xmlns:rsp="' + NS_RSP + '" xmlns:s="' + NS_S + '" xmlns:wsa="' + NS_WSA + '" '
    'xmlns:wsman="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" '
    'xmlns:wsmv="http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd"><s:Header>'
    '<wsa:Action s:mustUnderstand="true">{action}</wsa:Action>'
    '<wsmv:DataLocale s:mustUnderstand="false" xml:lang="en-US" />'
    '<wsman:Locale s:mustUnderstand="false" xml:lang="en-US" />'
    '<wsman:MaxEnvelopeSize s:mustUnderstand="true">{envelope}</wsman:MaxEnvelopeSize>'
    "<wsa:MessageID>uuid:{mid}</wsa:MessageID>"
    "<wsman:OperationTimeout>PT{timeout}S</wsman:OperationTimeout>"
    '<wsa:ReplyTo><wsa:Address s:mustUnderstand="true">'
    "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</wsa:Address></wsa:ReplyTo>"
    '<wsman:ResourceURI s:mustUnderstand="true">' + RESOURCE + "</wsman:ResourceURI>"
    '<wsmv:SessionId s:mustUnderstand="false">uuid:{session}</wsmv:SessionId>'
    "<wsa:To>{to}</wsa:To>{extra}</s:Header><s:Body>{body}</s:Body></s:Envelope>"
)
SHELL_SELECTOR = (
    '<wsman:SelectorSet><wsman:Selector Name="ShellId">{}</wsman:Selector></wsman:SelectorSet>'
)
KEEPALIVE = (
    '<wsman:OptionSet s:mustUnderstand="true"><wsman:Option Name="WSMAN_CMDSHELL_OPTION_KEEPALIVE">'
    "True</wsman:Option></wsman:OptionSet>"
)


# -- PSRP messages ---------------------------------------------------------------------------------

SESSION_CAPABILITY = 0x00010002
INIT_RUNSPACEPOOL = 0x00010004
RUNSPACEPOOL_STATE = 0x00021005
CREATE_PIPELINE = 0x00021006
PIPELINE_OUTPUT = 0x00041004
ERROR_RECORD = 0x00041005
PIPELINE_STATE = 0x00041006
WARNING_RECORD = 0x00041009
HOST_CALLS = (0x00021100, 0x00041100)
OPENED, POOL_ENDS = 2, {3: "Closed", 4: "Closing", 5: "Broken"}
PIPELINE_ENDS = {3: "Stopped", 4: "Completed", 5: "Failed"}

FRAGMENT = struct.Struct(">QQBI")
HEADER = struct.Struct("<II")


def message(kind: int, rpid: uuid.UUID, pid: uuid.UUID | None, data: bytes) -> bytes:
    return HEADER.pack(2, kind) + rpid.bytes_le + (pid.bytes_le if pid else bytes(16)) + data


class Fragmenter:
    """Splits outgoing PSRP messages into fragments (one object id per message)."""

    def __init__(self, max_fragment: int) -> None:
        self.object_id = 0
        self.max = max_fragment

    def fragments(self, message: bytes) -> bytes:
        self.object_id += 1
        out: list[bytes] = []
        pieces = [message[i : i + self.max] for i in range(0, len(message), self.max)] or [b""]
        for index, piece in enumerate(pieces):
            flags = (1 if index == 0 else 0) | (2 if index == len(pieces) - 1 else 0)
            out.append(FRAGMENT.pack(self.object_id, index, flags, len(piece)) + piece)
        return b"".join(out)



class Defragmenter:
    """Joins the fragments of a host's answers into PSRP messages: (message type, data)."""

    def __init__(self) -> None:
        self._pending: dict[int, bytes] = {}

    def messages(self, text: str) -> list[tuple[int, bytes]]:
        """The complete messages in one base64 stream of an answer (the rest is kept)."""
        try:
            data = base64.b64decode(text, validate=True)
        except ValueError as exc:
            raise BadAnswer("a PSRP stream is not base64") from exc
        out: list[tuple[int, bytes]] = []
        offset = 0
        while offset < len(data):
            if len(data) - offset < FRAGMENT.size:
                raise BadAnswer("a truncated PSRP fragment")
            object_id, _, flags, length = FRAGMENT.unpack_from(data, offset)
            offset += FRAGMENT.size
            blob = data[offset : offset + length]
            offset += length
            if len(blob) != length:
                raise BadAnswer("a truncated PSRP fragment")
            whole = self._pending.pop(object_id, b"") + blob if not flags & 1 else blob
            if len(whole) > MAX_MESSAGE_BYTES:
                raise BadAnswer(f"a PSRP message over {MAX_MESSAGE_BYTES} bytes")
            if flags & 2:
                if len(whole) < 40:
                    raise BadAnswer("a PSRP message shorter than its header")
                out.append((HEADER.unpack_from(whole)[1], whole[40:]))
            else:
                self._pending[object_id] = whole
                if sum(len(v) for v in self._pending.values()) > MAX_MESSAGE_BYTES:
                    raise BadAnswer(f"unfinished PSRP messages over {MAX_MESSAGE_BYTES} bytes")
        return out
