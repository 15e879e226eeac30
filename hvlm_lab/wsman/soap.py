"""WSMan SOAP envelopes for the lab server: parse what pypsrp sends, build what WinRM answers.

Part of the lab (`wsman/server.py` dispatches; `wsman/psrp.py` holds the shells). Responses are
built from small templates rather than ElementTree so that the process-wide namespace prefixes that
pypsrp registers (ET.register_namespace) are never touched. Fault codes and texts are those of a
real WinRM service where they are known (an unknown ShellId: s:Sender / w:InvalidSelectors /
2150858843; a Receive with nothing to return: s:Receiver / w:TimedOut / 2150858793, which pypsrp
retries while polling a pipeline). UNCONFIRMED, kept harmless: the numeric codes of the other
faults (unsupported action, unknown resource URI, bad envelope) and 2147500037 (E_FAIL) for the
injected HTTP 500 -- clients should key on the HTTP status and subcode, not on those numbers.
"""

from __future__ import annotations

import enum
import re
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "x": "http://schemas.xmlsoap.org/ws/2004/09/transfer",
    "w": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "p": "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
    "f": "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault",
    "pwsh": "http://schemas.microsoft.com/powershell",
}
_XMLNS = " ".join(f"xmlns:{k}={quoteattr(v)}" for k, v in NS.items())
_ANONYMOUS = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
_TRANSFER = "http://schemas.xmlsoap.org/ws/2004/09/transfer/"
_SHELL = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/"
POWERSHELL_URI_PREFIX = "http://schemas.microsoft.com/powershell/"
COMMAND_DONE = _SHELL + "CommandState/Done"
COMMAND_RUNNING = _SHELL + "CommandState/Running"
SIGNAL_TERMINATE = _SHELL + "signal/Terminate"
SIGNAL_PS_CTRL_C = "powershell/signal/ctrl_c"


class Action(enum.Enum):
    CREATE = _TRANSFER + "Create"
    DELETE = _TRANSFER + "Delete"
    RECEIVE = _SHELL + "Receive"
    COMMAND = _SHELL + "Command"
    SEND = _SHELL + "Send"
    SIGNAL = _SHELL + "Signal"

    @property
    def response_action(self) -> str:
        return self.value + "Response"


class MalformedEnvelope(Exception):
    """The body is not a SOAP envelope a WinRM service would accept."""


@dataclass(frozen=True)
class Envelope:
    action: str
    message_id: str
    resource_uri: str
    selectors: tuple[tuple[str, str], ...]
    options: tuple[tuple[str, str], ...]
    operation_timeout: float
    max_envelope_size: int
    body: ET.Element

    def selector(self, name: str) -> str | None:
        return next((v for k, v in self.selectors if k == name), None)


_DURATION = re.compile(r"^PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?$")


def parse_duration(text: str | None, default: float) -> float:
    match = _DURATION.match((text or "").strip())
    if not match or not any(match.groups()):
        return default
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def _text(root: ET.Element, path: str) -> str:
    element = root.find(path, NS)
    return (element.text or "").strip() if element is not None else ""


def parse_envelope(data: bytes) -> Envelope:
    if b"<!DOCTYPE" in data[:2048].upper():
        raise MalformedEnvelope("DTDs are not allowed")
    try:
        # Loopback lab input; no DTD (checked above); expat >= 2.4.1 bounds entity expansion.
        root = ET.fromstring(data)  # noqa: S314
    except ET.ParseError as exc:
        raise MalformedEnvelope(str(exc)) from exc
    body = root.find("s:Body", NS)
    if root.tag != f"{{{NS['s']}}}Envelope" or body is None:
        raise MalformedEnvelope("not a SOAP 1.2 envelope")
    header = "s:Header/"
    selectors = tuple(
        (e.get("Name", ""), (e.text or "").strip())
        for e in root.findall(header + "w:SelectorSet/w:Selector", NS)
    )
    options = tuple(
        (e.get("Name", ""), (e.text or "").strip())
        for e in root.findall(header + "w:OptionSet/w:Option", NS)
    )
    size = _text(root, header + "w:MaxEnvelopeSize")
    return Envelope(
        action=_text(root, header + "a:Action"),
        message_id=_text(root, header + "a:MessageID"),
        resource_uri=_text(root, header + "w:ResourceURI"),
        selectors=selectors,
        options=options,
        operation_timeout=parse_duration(_text(root, header + "w:OperationTimeout"), 60.0),
        max_envelope_size=int(size) if size.isdigit() else 153600,
        body=body,
    )


def _envelope(action: str, relates_to: str, body: str) -> bytes:
    header = (
        f"<s:Header><a:Action>{escape(action)}</a:Action>"
        f"<a:MessageID>uuid:{str(uuid.uuid4()).upper()}</a:MessageID>"
        f"<a:To>{_ANONYMOUS}</a:To><a:RelatesTo>{escape(relates_to)}</a:RelatesTo></s:Header>"
    )
    text = f'<s:Envelope xml:lang="en-US" {_XMLNS}>{header}<s:Body>{body}</s:Body></s:Envelope>'
    return text.encode("utf-8")


def create_response(
    env: Envelope, endpoint: str, shell_id: str, owner: str, client_ip: str
) -> bytes:
    selector = (
        f'<w:SelectorSet><w:Selector Name="ShellId">{escape(shell_id)}</w:Selector></w:SelectorSet>'
    )
    body = (
        f"<x:ResourceCreated><a:Address>{escape(endpoint)}</a:Address><a:ReferenceParameters>"
        f"<w:ResourceURI>{escape(env.resource_uri)}</w:ResourceURI>{selector}"
        "</a:ReferenceParameters></x:ResourceCreated>"
        f"<rsp:Shell><rsp:ShellId>{escape(shell_id)}</rsp:ShellId><rsp:Name>Runspace1</rsp:Name>"
        f"<rsp:ResourceUri>{escape(env.resource_uri)}</rsp:ResourceUri>"
        f"<rsp:Owner>{escape(owner)}</rsp:Owner><rsp:ClientIP>{escape(client_ip)}</rsp:ClientIP>"
        "<rsp:IdleTimeOut>PT7200.000S</rsp:IdleTimeOut>"
        "<rsp:InputStreams>stdin pr</rsp:InputStreams><rsp:OutputStreams>stdout</rsp:OutputStreams>"
        "<rsp:ShellRunTime>P0DT0H0M0S</rsp:ShellRunTime>"
        "<rsp:ShellInactivity>P0DT0H0M0S</rsp:ShellInactivity></rsp:Shell>"
    )
    return _envelope(Action.CREATE.response_action, env.message_id, body)


def empty_response(env: Envelope, action: Action) -> bytes:
    bodies = {Action.SEND: "<rsp:SendResponse/>", Action.SIGNAL: "<rsp:SignalResponse/>"}
    return _envelope(action.response_action, env.message_id, bodies.get(action, ""))


def command_response(env: Envelope, command_id: str) -> bytes:
    body = (
        f"<rsp:CommandResponse><rsp:CommandId>{escape(command_id)}</rsp:CommandId>"
        "</rsp:CommandResponse>"
    )
    return _envelope(Action.COMMAND.response_action, env.message_id, body)


def receive_response(env: Envelope, command_id: str | None, chunks: list[str], done: bool) -> bytes:
    """chunks: base64 text of PSRP fragments, one rsp:Stream element each."""
    cmd = f" CommandId={quoteattr(command_id)}" if command_id else ""
    streams = "".join(f'<rsp:Stream Name="stdout"{cmd}>{c}</rsp:Stream>' for c in chunks)
    state = ""
    if command_id:
        value = COMMAND_DONE if done else COMMAND_RUNNING
        exit_code = "<rsp:ExitCode>0</rsp:ExitCode>" if done else ""
        state = f"<rsp:CommandState{cmd} State={quoteattr(value)}>{exit_code}</rsp:CommandState>"
    body = f"<rsp:ReceiveResponse>{streams}{state}</rsp:ReceiveResponse>"
    return _envelope(Action.RECEIVE.response_action, env.message_id, body)


@dataclass(frozen=True)
class Fault:
    """A WSMan fault as WinRM sends it (HTTP 500 with a SOAP Fault body)."""

    code: str  # s:Sender | s:Receiver
    subcode: str  # e.g. w:InvalidSelectors
    reason: str
    wsman_code: int
    message: str
    action: str = "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault"

    def render(self, relates_to: str, machine: str) -> bytes:
        body = (
            f"<s:Fault><s:Code><s:Value>{self.code}</s:Value><s:Subcode><s:Value>{self.subcode}"
            f'</s:Value></s:Subcode></s:Code><s:Reason><s:Text xml:lang="en-US">'
            f"{escape(self.reason)}</s:Text></s:Reason><s:Detail>"
            f"<f:WSManFault Code={quoteattr(str(self.wsman_code))} Machine={quoteattr(machine)}>"
            f"<f:Message>{escape(self.message)}</f:Message></f:WSManFault></s:Detail></s:Fault>"
        )
        return _envelope(self.action, relates_to, body)


def shell_not_found(shell_id: str) -> Fault:
    return Fault(
        "s:Sender",
        "w:InvalidSelectors",
        "The WS-Management service cannot process the request because the request contained "
        "invalid selectors for the resource. ",
        2150858843,
        f"The request for the Windows Remote Shell with ShellId {shell_id} failed because the "
        "shell was not found on the server. Possible causes are: the specified ShellId is "
        "incorrect or the shell no longer exists on the server. Provide the correct ShellId or "
        "create a new shell and retry the operation. ",
    )


def command_not_found(command_id: str) -> Fault:
    return Fault(
        "s:Sender",
        "w:InvalidSelectors",
        "The WS-Management service cannot process the request because the request contained "
        "invalid selectors for the resource. ",
        2150858843,
        f"The request for the Windows Remote Shell command with CommandId {command_id} failed "
        "because the command was not found on the server. ",
    )


def operation_timeout() -> Fault:
    return Fault(
        "s:Receiver",
        "w:TimedOut",
        "The WS-Management service cannot complete the operation within the time specified in "
        "OperationTimeout.  ",
        2150858793,
        "The WS-Management service cannot complete the operation within the time specified in "
        "OperationTimeout.  ",
    )


def action_not_supported(action: str) -> Fault:
    return Fault(
        "s:Sender",
        "a:ActionNotSupported",
        "The action is not supported by the service. ",
        2150858797,
        f"The WS-Management service cannot process the request. The action {action!r} is not "
        "supported by the lab's PowerShell plugin. ",
        action="http://schemas.xmlsoap.org/ws/2004/08/addressing/fault",
    )


def invalid_resource(resource_uri: str) -> Fault:
    return Fault(
        "s:Sender",
        "w:DestinationUnreachable",
        "The WS-Management service cannot process the request because the resource URI is "
        "not valid. ",
        2150858770,
        f"The WS-Management service cannot process the request. The resource URI "
        f"({resource_uri}) was not found in the WS-Management catalog. ",
    )


def bad_request(detail: str) -> Fault:
    return Fault(
        "s:Sender",
        "w:SchemaValidationError",
        "The SOAP XML in the message does not match the corresponding XML schema definition. ",
        2150858817,
        f"The WS-Management service cannot process the request: {detail} ",
    )


def internal_error(detail: str) -> Fault:
    return Fault(
        "s:Receiver",
        "w:InternalError",
        "The WS-Management service encountered an internal error. ",
        2147500037,
        detail,
    )
