"""PSRP over WSMan for one host, built for cost: the exchange, its bounds and the run's TLS context.

Where it sits: the hosts backend (hvlm.hosts), below hvlm.reconcile and hvlm.backends.
hvlm.hosts.session opens one `PsrpClient` per host (one thread) and calls open_pool / run / close;
every failure raised here (BadAnswer, pypsrp's and requests' exceptions) is mapped by the one
function hvlm.hosts.errors.map_exception. pypsrp stays the transport and authentication layer: its
`_TransportHTTP` (requests) sends every envelope, so Basic, NTLM, Negotiate/Kerberos, CredSSP,
message encryption and certificate validation are pypsrp's. hvlm does itself what is the same for
every host of a run, which pypsrp redoes per message (issue 16):

- the WSMan envelopes are string templates (hvlm.hosts.envelopes);
- the CLIXML of a pipeline is serialised once per distinct statement list and answers are
  deserialised straight into light objects (hvlm.hosts.clixml); the read, the writes and the
  verification read all take that one path (`PsrpClient.run`);
- one TLS context per run and CA bundle (`tls_context`), proxies decided once, not per request.

A host that lies cannot hurt the client (issue 13, item 7): every HTTP answer passes
`BoundedAdapter` (size cap; a total deadline on the BODY: a trickled body cannot keep a host
alive; headers are bounded by the per-read timeout and requests' header limits only), every
pipeline has a byte budget and a deadline (`PsrpClient.run`), and
every XML text from a host passes hvlm.hosts.envelopes.parse_xml (strict UTF-8, no DTD so no
entity expansion, malformed XML refused). A refused answer is a `BadAnswer`.
"""

from __future__ import annotations

import base64
import os
import ssl
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from xml.sax.saxutils import escape

import requests
import urllib3.exceptions
from pypsrp.exceptions import WinRMError, WinRMTransportError
from pypsrp.wsman import WSMan

from hvlm.hosts.clixml import (
    CAPABILITY_XML,
    INIT_XML,
    PSObj,
    Record,
    as_obj,
    deserialize,
    int_property,
    pipeline_xml,
)
from hvlm.hosts.commands import HostCommand
from hvlm.hosts.envelopes import (
    COMMAND,
    CREATE,
    CREATE_PIPELINE,
    DELETE,
    DONE,
    ENVELOPE,
    ERROR_RECORD,
    HOST_CALLS,
    INIT_RUNSPACEPOOL,
    KEEPALIVE,
    MAX_ENVELOPE,
    NS_RSP,
    NS_S,
    NS_WSA,
    OPENED,
    PIPELINE_ENDS,
    PIPELINE_OUTPUT,
    PIPELINE_STATE,
    POOL_ENDS,
    RECEIVE,
    RECEIVE_TIMEOUT,
    RUNSPACEPOOL_STATE,
    SESSION_CAPABILITY,
    SHELL_SELECTOR,
    WARNING_RECORD,
    Defragmenter,
    Fragmenter,
    message,
    parse_xml,
)
from hvlm.hosts.errors import BadAnswer

# -- limits on what a host may send --------------------------------------------------------------

MAX_ANSWER_BYTES = 4 * 1024 * 1024  # an envelope + message-encryption framing stays far below
MAX_PIPELINE_BYTES = 64 * 1024 * 1024  # all the messages of one pipeline (a read is ~100 KB)


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
    if cert_validation is True:  # what requests does for verify=True, read once per run
        import certifi

        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        return ssl.create_default_context(cafile=bundle or certifi.where())
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
        self._fragmenter = Fragmenter(100_000)
        self._defragmenter = Defragmenter()

    # -- requests

    def _send(self, action: str, body: str, extra: str = "") -> ET.Element:
        mid = str(uuid.uuid4()).upper()
        envelope = ENVELOPE.format(action=action, envelope=self._envelope, mid=mid,
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
        return options + SHELL_SELECTOR.format(self._shell)

    def _receive(self, command: str | None) -> tuple[list[tuple[int, bytes]], bool]:
        attr = f' CommandId="{command}"' if command else ""
        body = f"<rsp:Receive><rsp:DesiredStream{attr}>stdout</rsp:DesiredStream></rsp:Receive>"
        try:
            answer = self._send(RECEIVE, body, self._selector(KEEPALIVE))
        except WinRMError as err:
            if command and getattr(err, "code", None) == RECEIVE_TIMEOUT:
                return [], False
            raise
        messages: list[tuple[int, bytes]] = []
        for stream in answer.iter(f"{{{NS_RSP}}}Stream"):
            if stream.text:
                messages.extend(self._defragmenter.messages(stream.text))
        done = any(s.get("State") == DONE for s in answer.iter(f"{{{NS_RSP}}}CommandState"))
        return messages, done

    # -- the pool and its pipelines

    def open_pool(self) -> None:
        creation = self._fragmenter.fragments(
            message(SESSION_CAPABILITY, self._rpid, None, CAPABILITY_XML.encode())
        ) + self._fragmenter.fragments(
            message(INIT_RUNSPACEPOOL, self._rpid, None, INIT_XML.encode())
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
                    state = int_property(deserialize(data, "the pool state"), "RunspaceState")
                    if state == OPENED:
                        self._envelope = MAX_ENVELOPE
                        return
                    if state in POOL_ENDS:
                        raise WinRMError(f"the runspace pool is {POOL_ENDS[state]}")
        raise BadAnswer("the runspace pool never opened")

    def run(self, statements: Sequence[HostCommand]) -> PipelineOutput:
        """The statements as ONE pipeline (Command + Receive until the pipeline ends)."""
        pid = uuid.uuid4()
        command = str(pid).upper()
        payload = self._fragmenter.fragments(
            message(CREATE_PIPELINE, self._rpid, pid, pipeline_xml(tuple(statements)))
        )
        body = (f'<rsp:CommandLine CommandId="{command}"><rsp:Command />'
                f"<rsp:Arguments>{base64.b64encode(payload).decode()}</rsp:Arguments>"
                "</rsp:CommandLine>")
        options = ('<wsman:OptionSet s:mustUnderstand="true"><wsman:Option '
                   'Name="WINRS_SKIP_CMD_SHELL">False</wsman:Option></wsman:OptionSet>')
        self._send(COMMAND, body, self._selector(options))
        result = PipelineOutput([], [], [], False)
        ended = done = False
        # One pipeline is bounded too, not only each answer: a host that keeps answering (empty
        # long polls, endless output) is refused once it passes the byte budget or the deadline.
        deadline = time.monotonic() + max(60.0, 4.0 * (self._timeout + 2))
        received = 0
        while not (ended and done):
            if time.monotonic() > deadline:
                raise BadAnswer("the pipeline did not complete within its deadline "
                                f"({max(60.0, 4.0 * (self._timeout + 2)):g}s)")
            messages, done = self._receive(command)
            received += sum(len(data) for _, data in messages)
            if received > MAX_PIPELINE_BYTES:
                raise BadAnswer(f"a pipeline answered over {MAX_PIPELINE_BYTES} bytes")
            for kind, data in messages:
                ended = self._take(kind, data, result) or ended
            done = done or (ended and not messages)
        return result

    def _take(self, kind: int, data: bytes, result: PipelineOutput) -> bool:
        if kind == PIPELINE_OUTPUT:
            result.output.append(deserialize(data, "an output object"))
        elif kind == ERROR_RECORD:
            result.errors.append(Record(as_obj(deserialize(data, "an error record"))))
        elif kind == WARNING_RECORD:
            result.warnings.append(Record(as_obj(deserialize(data, "a warning"))))
        elif kind in HOST_CALLS:
            raise WinRMError("the host asked for an interactive host call")
        elif kind == PIPELINE_STATE:
            state_obj = as_obj(deserialize(data, "the pipeline state"))
            state = int_property(state_obj, "PipelineState")
            if state in PIPELINE_ENDS:
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


__all__ = ["BadAnswer", "BoundedAdapter", "Limits", "PSObj", "PipelineOutput", "PsrpClient",
           "Record", "harden", "parse_xml", "pipeline_xml", "tls_context"]
