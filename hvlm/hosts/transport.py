"""PSRP over WSMan for one host, built for cost: hvlm's message layer on pypsrp's HTTP transport.

Pipeline position: hvlm.hosts.session opens one `PsrpClient` per host (one thread) and calls
open_pool / run / close. pypsrp stays the transport and authentication layer: its
`_TransportHTTP` (requests) sends every envelope, so Basic, NTLM, Negotiate/Kerberos, CredSSP,
message encryption and certificate validation are pypsrp's. What hvlm does itself, because it is
the same for every host of a run and pypsrp redoes it per message (issue 16):

- the WSMan envelopes are string templates (no ElementTree build + serialise per request);
- the CLIXML of a pipeline is serialised once per distinct statement list (`pipeline_xml`, cached,
  derived at run time from the HostCommands it is given: hvlm.hosts.commands.READ_STATEMENTS);
  per host only the 40-byte PSRP message header and the fragment header differ;
- answers are defragmented and deserialised straight into light objects (`PSObj`, `Record`)
  that carry what hvlm.hosts.parse / records read (types, adapted_properties,
  extended_properties, to_string, property_sets; the ErrorRecord fields);
- one TLS context per run and CA bundle (`tls_context`), proxies decided once, not per request.

A host that lies cannot hurt the client (issue 13, item 7): every HTTP answer passes
`BoundedAdapter` (size cap, total deadline per answer: a trickle cannot keep a host alive), and
every XML text from a host passes `parse_xml` (strict UTF-8, no DTD so no entity expansion,
malformed XML refused). A refused answer is a `BadAnswer` (hvlm.hosts.errors maps it to one line).
"""

from __future__ import annotations

import base64
import re
import ssl
import struct
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from xml.sax.saxutils import escape

import requests
import urllib3.exceptions
from pypsrp.exceptions import WinRMError, WinRMTransportError
from pypsrp.wsman import WSMan

from hvlm.hosts.commands import HostCommand
from hvlm.hosts.errors import BadAnswer

# -- limits on what a host may send --------------------------------------------------------------

MAX_ENVELOPE = 512_000  # what hvlm asks for (WinRM's default MaxEnvelopeSizekb 500)
MAX_ANSWER_BYTES = 4 * 1024 * 1024  # an envelope + message-encryption framing stays far below
MAX_MESSAGE_BYTES = 16 * 1024 * 1024  # one defragmented PSRP message (several envelopes)


@dataclass(frozen=True)
class Limits:
    max_bytes: int = MAX_ANSWER_BYTES
    total_seconds: float = 30.0  # one whole answer: headers and body
    read_seconds: float = 30.0  # one socket read


def _read_capped(response: requests.Response, deadline: float, limits: Limits) -> bytes:
    """The body, refused when larger than the cap or not complete by the deadline."""
    length = response.headers.get("Content-Length")
    if length is not None and length.isdigit() and int(length) > limits.max_bytes:
        raise BadAnswer(f"an answer of {int(length)} bytes (limit {limits.max_bytes})")
    raw = response.raw
    sock = getattr(getattr(raw, "connection", None), "sock", None)
    chunks: list[bytes] = []
    size = 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BadAnswer(
                f"the answer was not complete within {limits.total_seconds:g}s "
                f"({size} bytes received)"
            )
        if sock is not None:
            sock.settimeout(min(remaining, limits.read_seconds))
        try:
            chunk = raw.read1(65536)
        except urllib3.exceptions.ReadTimeoutError as exc:
            if time.monotonic() >= deadline:
                continue  # reported by the deadline check above
            raise requests.exceptions.ReadTimeout(str(exc)) from exc
        if not chunk:
            break
        size += len(chunk)
        if size > limits.max_bytes:
            raise BadAnswer(f"an answer over {limits.max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class BoundedAdapter:
    """Wraps a requests adapter's send: every answer (auth handshakes included) is read here."""

    def __init__(self, inner: Callable[..., requests.Response], limits: Limits) -> None:
        self._inner = inner
        self._limits = limits

    def __call__(self, request: requests.PreparedRequest, stream: bool = False,
                 timeout: Any = None, verify: Any = True, cert: Any = None,
                 proxies: Any = None) -> requests.Response:
        deadline = time.monotonic() + self._limits.total_seconds
        response = self._inner(request, stream=True, timeout=timeout, verify=verify, cert=cert,
                               proxies=proxies)
        try:
            content = _read_capped(response, deadline, self._limits)
        except BaseException:
            response.close()  # never hand a half-read connection back to the pool
            raise
        response._content = content
        response._content_consumed = True
        response.raw.release_conn()
        return response


@lru_cache(maxsize=8)
def tls_context(cert_validation: bool | str) -> ssl.SSLContext:
    """ONE TLS context per run and CA bundle: the bundle is loaded once, not per connection."""
    if cert_validation is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if cert_validation is True:
        import certifi  # what requests would use for verify=True

        return ssl.create_default_context(cafile=certifi.where())
    return ssl.create_default_context(cafile=cert_validation)


def harden(wsman: WSMan, cert_validation: bool | str, limits: Limits) -> None:
    """Build pypsrp's requests.Session now (this thread) and bound every answer on it.

    Proxies were decided by pypsrp from no_proxy; the environment is not read again per request
    (trust_env off). Certificates are checked with the run's shared TLS context (the session's
    `verify` only says whether to check: the CA bundle is in the context).
    """
    transport = wsman.transport
    session = transport.session = transport._build_session()
    session.trust_env = False
    context = tls_context(cert_validation)
    for adapter in session.adapters.values():
        adapter.poolmanager.connection_pool_kw["ssl_context"] = context  # type: ignore[attr-defined]
        adapter.send = BoundedAdapter(adapter.send, limits)  # type: ignore[method-assign]
        adapter.cert_verify = _trust_in_context(adapter.cert_verify)  # type: ignore[attr-defined]
    session.verify = cert_validation is not False


def _trust_in_context(inner: Callable[..., None]) -> Callable[..., None]:
    """requests would set the CA bundle on every connection (and urllib3 reload it into the
    context per TLS handshake: 50 ms for certifi's bundle); the run's context already holds it."""

    def cert_verify(conn: Any, url: str, verify: Any, cert: Any) -> None:
        inner(conn, url, verify, cert)
        conn.ca_certs = None
        conn.ca_cert_dir = None

    return cert_verify


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
_DONE = NS_RSP + "/CommandState/Done"
_RECEIVE_TIMEOUT = 2150858793  # 0x80338029: no output within the operation timeout; poll again

_ENVELOPE = (
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
_SHELL_SELECTOR = (
    '<wsman:SelectorSet><wsman:Selector Name="ShellId">{}</wsman:Selector></wsman:SelectorSet>'
)
_KEEPALIVE = (
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
_OPENED, _POOL_ENDS = 2, {3: "Closed", 4: "Closing", 5: "Broken"}
_PIPELINE_ENDS = {3: "Stopped", 4: "Completed", 5: "Failed"}

_CAPABILITY_XML = (
    '<Obj RefId="0"><MS><Version N="protocolversion">2.3</Version><Version N="PSVersion">2.0'
    '</Version><Version N="SerializationVersion">1.1.0.1</Version></MS></Obj>'
)
_ENUM_TN = "<TN RefId=\"{ref}\"><T>{name}</T><T>System.Enum</T><T>System.ValueType</T>" \
           "<T>System.Object</T></TN>"
_HOST_INFO = (
    '<Obj RefId="{ref}" N="HostInfo"><MS><B N="_isHostNull">true</B><B N="_isHostUINull">true</B>'
    '<B N="_isHostRawUINull">true</B><B N="_useRunspaceHost">true</B></MS></Obj>'
)
_RUNSPACES = "System.Management.Automation.Runspaces."
_INIT_XML = (
    '<Obj RefId="0"><MS><I32 N="MinRunspaces">1</I32><I32 N="MaxRunspaces">1</I32>'
    '<Obj RefId="1" N="PSThreadOptions">'
    + _ENUM_TN.format(ref=0, name=_RUNSPACES + "PSThreadOptions")
    + '<ToString>Default</ToString><I32>0</I32></Obj><Obj RefId="2" N="ApartmentState">'
    + _ENUM_TN.format(ref=1, name=_RUNSPACES + "ApartmentState")
    + "<ToString>UNKNOWN</ToString><I32>2</I32></Obj>"
    + _HOST_INFO.format(ref=3)
    + '<Nil N="ApplicationArguments" /></MS></Obj>'
)


def _clixml_string(text: str) -> str:
    """CLIXML string escaping (_xHHHH_ for '_x' and characters XML cannot carry) + XML escaping."""
    if "_x" in text or any(ord(c) < 0x20 or 0xD800 <= ord(c) <= 0xDFFF for c in text):
        text = "".join(
            f"_x{ord(c):04X}_" if ord(c) < 0x20 or 0xD800 <= ord(c) <= 0xDFFF else c
            for c in text.replace("_x", "_x005F_x")
        )
    return escape(text)


def _value_xml(name: str, value: object) -> str:
    if value is None:
        return f'<Nil N="{name}" />'
    if isinstance(value, bool):
        return f'<B N="{name}">{"true" if value else "false"}</B>'
    if isinstance(value, int):
        tag = "I32" if -(2**31) <= value < 2**31 else "I64"
        return f'<{tag} N="{name}">{value}</{tag}>'
    return f'<S N="{name}">{_clixml_string(str(value))}</S>'


class _Refs:
    def __init__(self) -> None:
        self.next = 0
        self.types: dict[str, int] = {}

    def obj(self) -> int:
        self.next += 1
        return self.next - 1

    def tn(self, key: str, body: str) -> str:
        if key in self.types:
            return f'<TNRef RefId="{self.types[key]}" />'
        self.types[key] = len(self.types)
        return body.format(ref=self.types[key])


_LIST = ("<TN RefId=\"{ref}\"><T>System.Collections.Generic.List`1[[System.Management.Automation."
         "PSObject, System.Management.Automation, Version=1.0.0.0, Culture=neutral, PublicKeyToken="
         "31bf3856ad364e35]]</T><T>System.Object</T></TN>")
_MERGES = ("MergeMyResult", "MergeToResult", "MergePreviousResults", "Args", "MergeError",
           "MergeWarning", "MergeVerbose", "MergeDebug", "MergeInformation")


def _command_xml(command: HostCommand, refs: _Refs) -> str:
    parts = [f'<Obj RefId="{refs.obj()}"><MS><S N="Cmd">{_clixml_string(command.cmdlet)}</S>'
             '<B N="IsScript">false</B><Nil N="UseLocalScope" />']
    for merge in _MERGES:
        if merge == "Args":
            args = [_value_xml("N", name) + _value_xml("V", value)
                    for name, value in command.parameters]
            args += ['<Nil N="N" />' + _value_xml("V", a) for a in command.arguments]
            ref = refs.obj()
            tn = refs.tn("list", _LIST)
            items = "".join(f'<Obj RefId="{refs.obj()}"><MS>{a}</MS></Obj>' for a in args)
            lst = f"<LST>{items}</LST>" if items else "<LST />"
            parts.append(f'<Obj RefId="{ref}" N="Args">{tn}{lst}</Obj>')
            continue
        tn = refs.tn("merge", _ENUM_TN.format(ref="{ref}", name=_RUNSPACES + "PipelineResultTypes"))
        parts.append(f'<Obj RefId="{refs.obj()}" N="{merge}">{tn}<ToString>None</ToString>'
                     "<I32>0</I32></Obj>")
    parts.append("</MS></Obj>")
    return "".join(parts)


def _statement_xml(commands: Iterable[HostCommand], refs: _Refs, name: str) -> str:
    ref = refs.obj()
    tn = refs.tn("list", _LIST)  # before the children: a TNRef may only follow its TN
    body = "".join(_command_xml(c, refs) for c in commands)
    return f'<Obj RefId="{ref}" N="{name}">{tn}<LST>{body}</LST></Obj>'


@lru_cache(maxsize=256)
def pipeline_xml(statements: tuple[HostCommand, ...]) -> bytes:
    """The CREATE_PIPELINE CLIXML of `statements` (one command each), serialised once per run."""
    refs = _Refs()
    top = refs.obj()
    head = (f'<Obj RefId="{top}"><MS><B N="NoInput">true</B>'
            f'<Obj RefId="{refs.obj()}" N="ApartmentState">'
            + refs.tn("apartment", _ENUM_TN.format(ref="{ref}", name=_RUNSPACES + "ApartmentState"))
            + f'<ToString>UNKNOWN</ToString><I32>2</I32></Obj><Obj RefId="{refs.obj()}" '
            'N="RemoteStreamOptions">'
            + refs.tn("stream", _ENUM_TN.format(ref="{ref}",
                                                name=_RUNSPACES + "RemoteStreamOptions"))
            + '<ToString>AddInvocationInfo</ToString><I32>15</I32></Obj>'
            '<B N="AddToHistory">false</B>' + _HOST_INFO.format(ref=refs.obj()))
    ps_ref = refs.obj()
    extra_ref = refs.obj()
    extra_tn = refs.tn("list", _LIST)
    items = "".join(
        f'<Obj RefId="{refs.obj()}"><MS>{_statement_xml((s,), refs, "Cmds")}</MS></Obj>'
        for s in statements
    )
    extra = (f'<Obj RefId="{extra_ref}" N="ExtraCmds">{extra_tn}<LST>{items}</LST>'
             "</Obj>")
    first = _statement_xml(statements[:1], refs, "Cmds")
    return (head + f'<Obj RefId="{ps_ref}" N="PowerShell"><MS><B N="IsNested">false</B>'
            + extra + first + '<Nil N="History" /><B N="RedirectShellErrorOutputPipe">false</B>'
            '</MS></Obj><B N="IsNested">false</B></MS></Obj>').encode()


_FRAGMENT = struct.Struct(">QQBI")
_HEADER = struct.Struct("<II")


def _message(kind: int, rpid: uuid.UUID, pid: uuid.UUID | None, data: bytes) -> bytes:
    return _HEADER.pack(2, kind) + rpid.bytes_le + (pid.bytes_le if pid else bytes(16)) + data


class _Fragmenter:
    def __init__(self, max_fragment: int) -> None:
        self.object_id = 0
        self.max = max_fragment

    def fragments(self, message: bytes) -> bytes:
        self.object_id += 1
        out: list[bytes] = []
        pieces = [message[i : i + self.max] for i in range(0, len(message), self.max)] or [b""]
        for index, piece in enumerate(pieces):
            flags = (1 if index == 0 else 0) | (2 if index == len(pieces) - 1 else 0)
            out.append(_FRAGMENT.pack(self.object_id, index, flags, len(piece)) + piece)
        return b"".join(out)


# -- deserialised objects ----------------------------------------------------------------------


class PSObj:
    """A deserialised object: what hvlm.hosts.parse reads of pypsrp's GenericComplexObject."""

    __slots__ = (
        "adapted_properties",
        "extended_properties",
        "property_sets",
        "to_string",
        "types",
    )

    def __init__(self) -> None:
        self.types: list[str] = []
        self.adapted_properties: dict[str, Any] = {}
        self.extended_properties: dict[str, Any] = {}
        self.to_string: str | None = None
        self.property_sets: list[Any] = []

    def __str__(self) -> str:
        return self.to_string if self.to_string is not None else ""

    def __repr__(self) -> str:
        return f"PSObj({self.types[:1]}, {self.to_string!r})"


class Record:
    """An ErrorRecord or a warning: the fields hvlm.hosts.records reads (pypsrp's names)."""

    def __init__(self, obj: PSObj) -> None:
        props = {**obj.adapted_properties, **obj.extended_properties}
        self.obj = obj
        self.message = props.get("ErrorCategory_Message") or props.get(
            "InformationalRecord_Message")
        self.details_message = props.get("ErrorDetails_Message")
        self.fq_error = props.get("FullyQualifiedErrorId")
        self.exception = props.get("Exception")
        self.target_object = props.get("TargetObject")
        self.invocation_name = props.get("InvocationInfo_InvocationName")
        self.command_name = props.get("CommandInfo_Name")

    def __str__(self) -> str:
        return str(self.obj) or str(self.message or "")


_INTS = frozenset(("I32", "I16", "I64", "U16", "U32", "U64", "By", "SB"))
_TEXTS = frozenset(("DT", "G", "URI", "Version", "XD", "SBK", "TS", "SS"))
_ESCAPED = re.compile(r"_x([0-9A-Fa-f]{4})_")


def _unescape(text: str | None) -> str:
    if not text:
        return ""
    return _ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), text) if "_x" in text else text


class _Reader:
    def __init__(self) -> None:
        self.refs: dict[str | None, Any] = {}
        self.types: dict[str | None, list[str]] = {}

    def value(self, el: ET.Element) -> Any:
        tag = el.tag
        if tag == "S":
            return _unescape(el.text)
        if tag in _INTS:
            return int(el.text or "")
        if tag == "B":
            return (el.text or "").strip().lower() == "true"
        if tag == "Nil":
            return None
        if tag == "Obj":
            return self.obj(el)
        if tag == "Ref":
            return self.refs.get(el.get("RefId"))
        if tag in _TEXTS:
            return _unescape(el.text)
        if tag in ("Db", "Sg", "D"):
            return float(el.text or "")
        if tag == "C":
            return chr(int(el.text or ""))
        if tag == "BA":
            return base64.b64decode(el.text or "")
        raise ValueError(f"unknown CLIXML element <{tag}>")

    def obj(self, el: ET.Element) -> Any:
        obj = PSObj()
        result: Any = obj
        for child in el:
            tag = child.tag
            if tag == "TN":
                obj.types = [t.text or "" for t in child]
                self.types[child.get("RefId")] = obj.types
            elif tag == "TNRef":
                obj.types = self.types.get(child.get("RefId"), [])
            elif tag == "ToString":
                obj.to_string = _unescape(child.text)
            elif tag == "Props":
                obj.adapted_properties = self.props(child)
            elif tag == "MS":
                obj.extended_properties = self.props(child)
            elif tag in ("LST", "IE", "QUE", "STK"):
                result = [self.value(item) for item in child]
            elif tag == "DCT":
                result = {self.value(en[0]): self.value(en[1]) for en in child if len(en) == 2}
            else:
                obj.property_sets.append(self.value(child))
        self.refs[el.get("RefId")] = result
        return result

    def props(self, el: ET.Element) -> dict[str, Any]:
        return {_unescape(p.get("N")): self.value(p) for p in el}


def deserialize(data: bytes, what: str) -> Any:
    root = parse_xml(data, what)
    try:
        return _Reader().value(root)
    except (ValueError, TypeError, IndexError, OverflowError) as exc:
        raise BadAnswer(f"{what} holds invalid CLIXML ({exc})") from exc


# -- one host's pool ---------------------------------------------------------------------------


@dataclass
class PipelineOutput:
    output: list[Any]
    errors: list[Record]
    warnings: list[Record]
    failed: bool


class PsrpClient:
    """One RunspacePool on one host, driven over pypsrp's HTTP transport (one thread)."""

    def __init__(self, wsman: WSMan, operation_timeout: int | float) -> None:
        self._transport = wsman.transport
        self._to = escape(self._transport.endpoint)
        self._timeout = int(operation_timeout)
        self._session = str(uuid.uuid4()).upper()
        self._rpid = uuid.uuid4()
        self._shell = str(self._rpid).upper()
        self._envelope = 153_600  # raised once the pool is open, as pypsrp does
        self._fragmenter = _Fragmenter(100_000)
        self._pending: dict[int, bytes] = {}

    # -- requests

    def _send(self, action: str, body: str, extra: str = "") -> ET.Element:
        mid = str(uuid.uuid4()).upper()
        envelope = _ENVELOPE.format(action=action, envelope=self._envelope, mid=mid,
                                    timeout=self._timeout, session=self._session, to=self._to,
                                    extra=extra, body=body)
        try:
            answer = self._transport.send(envelope.encode(), timeout=self._timeout + 2)
        except WinRMTransportError as err:
            raise self._fault(err) from err
        root = parse_xml(answer, "the WSMan answer")
        relates = root.findtext(f"{{{NS_S}}}Header/{{{NS_WSA}}}RelatesTo")
        if relates is None or relates.strip().upper() != f"UUID:{mid}":
            raise BadAnswer("the WSMan answer does not relate to the request")
        body_el = root.find(f"{{{NS_S}}}Body")
        if body_el is None:
            raise BadAnswer("the WSMan answer has no Body")
        return body_el

    @staticmethod
    def _fault(err: WinRMTransportError) -> Exception:
        text = err.response_text or ""
        if not text.strip().startswith("<"):
            return err
        parse_xml(text, "the WSMan fault")  # DTD / malformed answers are refused first
        try:
            return WSMan._parse_wsman_fault(text)
        except ET.ParseError:
            return err

    def _selector(self, options: str = "") -> str:
        return options + _SHELL_SELECTOR.format(self._shell)

    def _receive(self, command: str | None) -> tuple[list[tuple[int, bytes]], bool]:
        attr = f' CommandId="{command}"' if command else ""
        body = f"<rsp:Receive><rsp:DesiredStream{attr}>stdout</rsp:DesiredStream></rsp:Receive>"
        try:
            answer = self._send(RECEIVE, body, self._selector(_KEEPALIVE))
        except WinRMError as err:
            if command and getattr(err, "code", None) == _RECEIVE_TIMEOUT:
                return [], False
            raise
        messages: list[tuple[int, bytes]] = []
        for stream in answer.iter(f"{{{NS_RSP}}}Stream"):
            if stream.text:
                messages.extend(self._defragment(stream.text))
        done = any(s.get("State") == _DONE for s in answer.iter(f"{{{NS_RSP}}}CommandState"))
        return messages, done

    def _defragment(self, text: str) -> list[tuple[int, bytes]]:
        try:
            data = base64.b64decode(text, validate=True)
        except ValueError as exc:
            raise BadAnswer("a PSRP stream is not base64") from exc
        out: list[tuple[int, bytes]] = []
        offset = 0
        while offset < len(data):
            if len(data) - offset < _FRAGMENT.size:
                raise BadAnswer("a truncated PSRP fragment")
            object_id, _, flags, length = _FRAGMENT.unpack_from(data, offset)
            offset += _FRAGMENT.size
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
                out.append((_HEADER.unpack_from(whole)[1], whole[40:]))
            else:
                self._pending[object_id] = whole
        return out

    # -- the pool and its pipelines

    def open_pool(self) -> None:
        creation = self._fragmenter.fragments(
            _message(SESSION_CAPABILITY, self._rpid, None, _CAPABILITY_XML.encode())
        ) + self._fragmenter.fragments(
            _message(INIT_RUNSPACEPOOL, self._rpid, None, _INIT_XML.encode())
        )
        body = (f'<rsp:Shell ShellId="{self._shell}"><rsp:InputStreams>stdin pr</rsp:InputStreams>'
                "<rsp:OutputStreams>stdout</rsp:OutputStreams>"
                '<creationXml xmlns="http://schemas.microsoft.com/powershell">'
                f"{base64.b64encode(creation).decode()}</creationXml></rsp:Shell>")
        options = ('<wsman:OptionSet s:mustUnderstand="true"><wsman:Option MustComply="true" '
                   'Name="protocolversion">2.3</wsman:Option></wsman:OptionSet>')
        self._send(CREATE, body, options)
        for _ in range(100):
            messages, _ = self._receive(None)
            for kind, data in messages:
                if kind in HOST_CALLS:
                    raise WinRMError("the host asked for an interactive host call")
                if kind == RUNSPACEPOOL_STATE:
                    state = _int_property(deserialize(data, "the pool state"), "RunspaceState")
                    if state == _OPENED:
                        self._envelope = MAX_ENVELOPE
                        return
                    if state in _POOL_ENDS:
                        raise WinRMError(f"the runspace pool is {_POOL_ENDS[state]}")
        raise BadAnswer("the runspace pool never opened")

    def run(self, statements: Sequence[HostCommand]) -> PipelineOutput:
        """The statements as ONE pipeline (Command + Receive until the pipeline ends)."""
        pid = uuid.uuid4()
        command = str(pid).upper()
        payload = self._fragmenter.fragments(
            _message(CREATE_PIPELINE, self._rpid, pid, pipeline_xml(tuple(statements)))
        )
        body = (f'<rsp:CommandLine CommandId="{command}"><rsp:Command />'
                f"<rsp:Arguments>{base64.b64encode(payload).decode()}</rsp:Arguments>"
                "</rsp:CommandLine>")
        options = ('<wsman:OptionSet s:mustUnderstand="true"><wsman:Option '
                   'Name="WINRS_SKIP_CMD_SHELL">False</wsman:Option></wsman:OptionSet>')
        self._send(COMMAND, body, self._selector(options))
        result = PipelineOutput([], [], [], False)
        ended = done = False
        while not (ended and done):
            messages, done = self._receive(command)
            for kind, data in messages:
                ended = self._take(kind, data, result) or ended
            done = done or (ended and not messages)
        return result

    def _take(self, kind: int, data: bytes, result: PipelineOutput) -> bool:
        if kind == PIPELINE_OUTPUT:
            result.output.append(deserialize(data, "an output object"))
        elif kind == ERROR_RECORD:
            result.errors.append(Record(_as_obj(deserialize(data, "an error record"))))
        elif kind == WARNING_RECORD:
            result.warnings.append(Record(_as_obj(deserialize(data, "a warning"))))
        elif kind in HOST_CALLS:
            raise WinRMError("the host asked for an interactive host call")
        elif kind == PIPELINE_STATE:
            state_obj = _as_obj(deserialize(data, "the pipeline state"))
            state = _int_property(state_obj, "PipelineState")
            if state in _PIPELINE_ENDS:
                record = state_obj.extended_properties.get("ExceptionAsErrorRecord")
                if isinstance(record, PSObj):
                    result.errors.append(Record(record))
                result.failed = state == 5
                return True
        return False

    def close(self) -> None:
        self._send(DELETE, "", self._selector())

    def release(self) -> None:
        self._transport.close()


def _as_obj(value: Any) -> PSObj:
    if not isinstance(value, PSObj):
        raise BadAnswer("a PSRP message that is not an object")
    return value


def _int_property(value: Any, name: str) -> int:
    obj = _as_obj(value)
    number = obj.extended_properties.get(name, obj.adapted_properties.get(name))
    if not isinstance(number, int) or isinstance(number, bool):
        raise BadAnswer(f"a PSRP message without a valid {name}")
    return number


__all__ = ["BadAnswer", "BoundedAdapter", "Limits", "PSObj", "PsrpClient", "Record", "harden",
           "parse_xml", "pipeline_xml", "tls_context"]
