"""One simulated host's WSMan endpoint: its listening socket, connections, faults and shells.

Part of the lab. `LabServer` (`wsman/server.py`) creates one `HostEndpoint` per configured host on
its event loop. A connection runs requests in order (HTTP/1.1 keep-alive, per-connection auth
state); each request is counted, delayed, dropped or hung according to the host's current
`FaultSpec`, authenticated, decrypted, dispatched by WSMan action to the host's `PsrpShell`s, and
answered (encrypted again when Negotiate is in use).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextvars
import enum
import ssl
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable

from hvlm_lab.cmdlets import CmdletHost
from hvlm_lab.wsman.auth import Authenticator, ConnectionAuth, unauthorized
from hvlm_lab.wsman.faults import HUGE_BODY_BYTES, FaultSpec, HostStats, hostile_body, streamed
from hvlm_lab.wsman.httpserver import (
    BadRequest,
    Request,
    Response,
    encode_response,
    read_request,
    text_response,
)
from hvlm_lab.wsman.psrp import CommandNotFound, ProtocolError, PsrpShell
from hvlm_lab.wsman.soap import (
    NS,
    POWERSHELL_URI_PREFIX,
    SIGNAL_TERMINATE,
    Action,
    Envelope,
    Fault,
    MalformedEnvelope,
    action_not_supported,
    bad_request,
    command_not_found,
    command_response,
    create_response,
    empty_response,
    internal_error,
    invalid_resource,
    operation_timeout,
    parse_envelope,
    receive_response,
    shell_not_found,
)

_SOAP = (("Content-Type", "application/soap+xml;charset=UTF-8"),)
# Set by _receive when this connection's current answer must be streamed as a hostile one.
_HOSTILE_STREAM: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "hostile_stream", default=None
)


class _Disposition(enum.Enum):
    DROP = "drop"
    HANG = "hang"


class _ShellNotFound(Exception):
    pass


def _decode(text: str | None) -> bytes:
    try:
        return base64.b64decode((text or "").strip(), validate=True)
    except binascii.Error as exc:
        raise ProtocolError("invalid base64 data") from exc


class HostEndpoint:
    """A simulated host's WinRM listener (one port) and its state."""

    def __init__(
        self,
        name: str,
        fqdn: str,
        host: CmdletHost,
        authenticator: Authenticator,
        ssl_context: ssl.SSLContext | None,
        faults: FaultSpec,
        fragment_size: int,
    ) -> None:
        self.name = name
        self.fqdn = fqdn
        self.stats = HostStats()
        self.faults = faults
        self._host = host
        self._auth = authenticator
        self._ssl = ssl_context
        self._fragment_size = fragment_size
        self._requests_since_fault = 0
        self._dropped_once = False
        self._pipeline_receives = 0
        self._shells: dict[str, PsrpShell] = {}
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def scheme(self) -> str:
        return "https" if self._ssl is not None else "http"

    async def start(self, bind: str, port: int) -> None:
        self._server = await asyncio.start_server(
            self._connection, bind, port, ssl=self._ssl, backlog=128
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        self._shells.clear()

    def set_fault(self, spec: FaultSpec) -> None:
        """Called on the loop thread: the drop counter restarts with the new spec."""
        self.faults = spec
        self._requests_since_fault = 0
        self._dropped_once = False
        self._pipeline_receives = 0

    # --- connections --------------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        auth = self._auth.for_connection()
        peer = writer.get_extra_info("peername")
        client_ip = str(peer[0]) if peer else ""
        graceful = False
        try:
            graceful = await self._requests(reader, writer, auth, client_ip)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, asyncio.CancelledError):
            pass
        finally:
            self._connections.discard(task)
            if graceful:
                writer.close()
            else:
                writer.transport.abort()

    async def _requests(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        auth: ConnectionAuth,
        client_ip: str,
    ) -> bool:
        """Serve requests in order; False when the connection must be aborted (dropped)."""
        while True:
            try:
                request = await read_request(reader)
            except BadRequest as exc:
                writer.write(encode_response(text_response(400, str(exc), close=True), False))
                await writer.drain()
                return True
            if request is None:
                return True
            _HOSTILE_STREAM.set(None)
            answer = await self._serve(request, auth, client_ip)
            hostile = _HOSTILE_STREAM.get()
            if hostile is not None and isinstance(answer, Response):
                await _stream_hostile(writer, hostile, answer)
                return False
            if answer is _Disposition.HANG:
                while await reader.read(65536):
                    pass
                return False
            if not isinstance(answer, Response):
                return False
            writer.write(encode_response(answer, request.keep_alive))
            await writer.drain()
            if answer.close or not request.keep_alive:
                return True

    async def _serve(
        self, request: Request, auth: ConnectionAuth, client_ip: str
    ) -> Response | _Disposition:
        self.stats.http_request()
        faults = self.faults
        self._requests_since_fault += 1
        if faults.latency_ms > 0:
            await asyncio.sleep(faults.latency_ms / 1000)
        if self._should_drop(faults):
            self.stats.dropped()
            return _Disposition.DROP
        if faults.hang:
            self.stats.hung()
            return _Disposition.HANG
        response = await self._answer(request, auth, client_ip, faults)
        self.stats.http_status(response.status)
        return response

    def _should_drop(self, faults: FaultSpec) -> bool:
        limit = faults.drop_after_requests
        if limit is None or self._requests_since_fault <= limit:
            return False
        if faults.drop_once:
            if self._dropped_once:
                return False
            self._dropped_once = True
        return True

    async def _answer(
        self, request: Request, auth: ConnectionAuth, client_ip: str, faults: FaultSpec
    ) -> Response:
        if request.path.split("?", 1)[0].rstrip("/").lower() != "/wsman":
            return text_response(404)
        if request.method != "POST":
            return text_response(405)
        if faults.refuse_auth:
            self.stats.auth_failure()
            return unauthorized(*self._auth.challenge)
        step = auth.authenticate(request)
        if step.challenge is not None:
            if step.refused:
                self.stats.auth_failure()
            return step.challenge
        response = Response(200)
        if step.body:
            response = await self._wsman(step.body, step.principal, client_ip)
        return auth.wrap(response.with_headers(*step.extra_headers))

    # --- WSMan dispatch -----------------------------------------------------------------------

    def _fault(self, fault: Fault, relates_to: str) -> Response:
        return Response(500, fault.render(relates_to, self.fqdn), _SOAP)

    async def _wsman(self, body: bytes, principal: str, client_ip: str) -> Response:
        try:
            env = parse_envelope(body)
        except MalformedEnvelope as exc:
            return self._fault(bad_request(str(exc)), "")
        try:
            action = Action(env.action)
        except ValueError:
            self.stats.action(env.action.rsplit("/", 1)[-1] or "Unknown")
            return self._fault(action_not_supported(env.action), env.message_id)
        self.stats.action(action.name.title())
        if not env.resource_uri.startswith(POWERSHELL_URI_PREFIX):
            return self._fault(invalid_resource(env.resource_uri), env.message_id)
        handlers: dict[Action, Callable[[Envelope], Awaitable[bytes | Fault]]] = {
            Action.CREATE: lambda e: self._create(e, principal, client_ip),
            Action.RECEIVE: self._receive,
            Action.COMMAND: self._command,
            Action.SEND: self._send,
            Action.SIGNAL: self._signal,
            Action.DELETE: self._delete,
        }
        try:
            result = await handlers[action](env)
        except _ShellNotFound as exc:
            result = shell_not_found(str(exc))
        except CommandNotFound as exc:
            result = command_not_found(str(exc))
        except ProtocolError as exc:
            result = bad_request(str(exc))
        if isinstance(result, Fault):
            return self._fault(result, env.message_id)
        return Response(200, result, _SOAP)

    def _shell(self, env: Envelope) -> PsrpShell:
        shell_id = (env.selector("ShellId") or "").upper()
        shell = self._shells.get(shell_id)
        if shell is None:
            raise _ShellNotFound(env.selector("ShellId") or "")
        return shell

    def _find(self, env: Envelope, path: str) -> ET.Element:
        element = env.body.find(path, NS)
        if element is None:
            raise ProtocolError(f"missing {path}")
        return element

    async def _create(self, env: Envelope, principal: str, client_ip: str) -> bytes | Fault:
        shell_xml = self._find(env, "rsp:Shell")
        shell_id = (shell_xml.get("ShellId") or str(uuid.uuid4())).upper()
        creation = _decode(self._find(env, "rsp:Shell/pwsh:creationXml").text)
        shell = PsrpShell(
            shell_id, self._host, self.stats, lambda: self.faults, self._fragment_size
        )
        await shell.open(creation)
        self._shells[shell_id] = shell
        address = f"{self.scheme}://{self.fqdn}:{self.port}/wsman"
        return create_response(env, address, shell_id, principal, client_ip)

    async def _receive(self, env: Envelope) -> bytes | Fault:
        shell = self._shell(env)
        command_id = self._find(env, "rsp:Receive/rsp:DesiredStream").get("CommandId")
        budget = max(4096, (env.max_envelope_size - 4096) * 3 // 4)
        got = await shell.receive(command_id, budget, env.operation_timeout)
        if got is None:
            return operation_timeout()
        chunks, done = got
        body = receive_response(env, command_id, chunks, done)
        hostile = self.faults.hostile_answer
        if command_id is None or hostile is None:
            return body
        self._pipeline_receives += 1
        if self._pipeline_receives < self.faults.hostile_from_pipeline:
            return body
        if streamed(hostile):
            _HOSTILE_STREAM.set(hostile)
            return body
        return hostile_body(hostile, body)

    async def _command(self, env: Envelope) -> bytes | Fault:
        shell = self._shell(env)
        line = self._find(env, "rsp:CommandLine")
        command_id = (line.get("CommandId") or str(uuid.uuid4())).upper()
        arguments = line.find("rsp:Arguments", NS)
        first = _decode(arguments.text if arguments is not None else "")
        report = await shell.command(command_id, first)
        if report.http_500:
            return internal_error("The lab injected an HTTP 500 for a cmdlet of this pipeline.")
        return command_response(env, command_id)

    async def _send(self, env: Envelope) -> bytes | Fault:
        shell = self._shell(env)
        for stream in env.body.findall("rsp:Send/rsp:Stream", NS):
            report = await shell.send(stream.get("CommandId"), _decode(stream.text))
            if report.http_500:
                return internal_error("The lab injected an HTTP 500 for a cmdlet of this pipeline.")
        return empty_response(env, Action.SEND)

    async def _signal(self, env: Envelope) -> bytes | Fault:
        shell = self._shell(env)
        signal = self._find(env, "rsp:Signal")
        code = (signal.findtext("rsp:Code", "", NS) or "").strip()
        await shell.signal(signal.get("CommandId") or "", code.lower() == SIGNAL_TERMINATE.lower())
        return empty_response(env, Action.SIGNAL)

    async def _delete(self, env: Envelope) -> bytes | Fault:
        shell = self._shell(env)
        del self._shells[shell.shell_id]
        await shell.close()
        return empty_response(env, Action.DELETE)


async def _stream_hostile(writer: asyncio.StreamWriter, kind: str, answer: Response) -> None:
    """huge-body: 200 MB, chunked (no length to refuse up front); trickle: the real answer, one
    byte a second. Both end when the client gives up (the connection is then aborted)."""
    head = [f"HTTP/1.1 {answer.status} OK", "Server: Microsoft-HTTPAPI/2.0"]
    head += [f"{k}: {v}" for k, v in answer.headers]
    if kind == "huge-body":
        head.append("Transfer-Encoding: chunked")
    else:
        head.append(f"Content-Length: {len(answer.body)}")
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
    await writer.drain()
    if kind == "huge-body":
        chunk = b"<rsp:Stream>" + b"A" * (1024 * 1024 - 12)
        for _ in range(HUGE_BODY_BYTES // len(chunk)):
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return
    for index in range(len(answer.body)):
        writer.write(answer.body[index : index + 1])
        await writer.drain()
        await asyncio.sleep(1.0)
