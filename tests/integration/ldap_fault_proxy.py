"""A TLS-terminating LDAP proxy that fails on chosen operations: the fault suite's directory faults.

Where it sits: tests only (tests/integration/test_faults.py). It stands between hvlm and the lab's
Samba DC, with a certificate of its own CA (`ca_bundle` holds that CA and the DC's, for the
manifest's certValidation), so hvlm validates it as it would the DC. It decodes just enough BER to
see each LDAP operation and can drop the connection or hang on the first modify, drop it on the
first search after a modify (the verification read), or cut every connection (a DC that is down).
The DC's own modifies are visible as uSNChanged; the proxy adds what the DC cannot show: faults
at an exact operation.
"""

from __future__ import annotations

import asyncio
import enum
import ssl
import threading
from pathlib import Path

from hvlm_lab.pki import LabCA
from hvlm_lab.samba.dc import SambaDC

DOMAIN = "lab.example"


class LdapFault(enum.Enum):
    NONE = "none"
    DOWN = "down"  # every connection is cut at once (a DC that does not answer)
    DROP_ON_MODIFY = "drop-on-modify"  # the connection dies when a modify is sent
    HANG_ON_MODIFY = "hang-on-modify"  # a modify is never answered
    DROP_ON_VERIFY = "drop-on-verify"  # modifies pass; the first search after one kills the link


MODIFY_REQUEST, SEARCH_REQUEST = 0x66, 0x63


def _message_length(buffer: bytes) -> int | None:
    """Total length of the BER LDAPMessage at the start of `buffer`, None while incomplete."""
    if len(buffer) < 2:
        return None
    first = buffer[1]
    if first < 0x80:
        return 2 + first if len(buffer) >= 2 + first else None
    size = first & 0x7F
    if len(buffer) < 2 + size:
        return None
    total = 2 + size + int.from_bytes(buffer[2:2 + size], "big")
    return total if len(buffer) >= total else None


def _operation(message: bytes) -> int:
    """The protocolOp tag: after the SEQUENCE header and the messageID INTEGER."""
    first = message[1]
    offset = 2 + (first & 0x7F if first >= 0x80 else 0)
    return message[offset + 2 + message[offset + 1]]


class LdapFaultProxy:
    """`with LdapFaultProxy(dc, workdir) as proxy: ...proxy.port...; proxy.fault = ...`.

    Its certificate comes from a CA of its own; `ca_bundle` (that CA + the DC's) is what a
    manifest reaching the DC through the proxy validates against.
    """

    def __init__(self, dc: SambaDC, workdir: Path) -> None:
        ca = LabCA.create(workdir / "ca", "hvlm test LDAP proxy CA")
        cert = ca.issue(workdir, "ldap-proxy", [f"dc1.{DOMAIN}"], ["127.0.0.1"])
        self.ca_bundle = workdir / "ca-bundle.pem"
        self.ca_bundle.write_bytes(dc.ca_path.read_bytes() + ca.cert_path.read_bytes())
        self._server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._server_tls.load_cert_chain(cert.cert_path, cert.key_path)
        self._client_tls = ssl.create_default_context(cafile=str(dc.ca_path))
        self._fault = LdapFault.NONE
        self.operations: list[int] = []  # protocolOp tags seen since the fault was set
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def __enter__(self) -> LdapFaultProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    @property
    def fault(self) -> LdapFault:
        return self._fault

    @fault.setter
    def fault(self, fault: LdapFault) -> None:
        self._fault = fault
        self.operations = []

    @property
    def modifies(self) -> int:
        return self.operations.count(MODIFY_REQUEST)

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0,
                                                  ssl=self._server_tls)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        upstream: asyncio.StreamWriter | None = None
        try:
            if self.fault is LdapFault.DOWN:
                return
            up_reader, upstream = await asyncio.open_connection(
                "127.0.0.1", 636, ssl=self._client_tls, server_hostname=f"dc1.{DOMAIN}")
            back = asyncio.ensure_future(_pump(up_reader, writer))
            try:
                await self._forward(reader, upstream)
            finally:
                back.cancel()
        except (OSError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            writer.transport.abort()
            if upstream is not None:
                upstream.transport.abort()

    async def _forward(self, reader: asyncio.StreamReader, upstream: asyncio.StreamWriter) -> None:
        buffer = b""
        while data := await reader.read(65536):
            buffer += data
            while (length := _message_length(buffer)) is not None:
                message, buffer = buffer[:length], buffer[length:]
                operation = _operation(message)
                verdict = self._verdict(operation)
                self.operations.append(operation)
                if verdict == "drop":
                    return
                if verdict == "hang":
                    while await reader.read(65536):
                        pass
                    return
                upstream.write(message)
                await upstream.drain()

    def _verdict(self, operation: int) -> str:
        fault, modified = self.fault, MODIFY_REQUEST in self.operations
        if operation == MODIFY_REQUEST and fault is LdapFault.DROP_ON_MODIFY:
            return "drop"
        if operation == MODIFY_REQUEST and fault is LdapFault.HANG_ON_MODIFY:
            return "hang"
        if operation == SEARCH_REQUEST and fault is LdapFault.DROP_ON_VERIFY and modified:
            return "drop"
        return "pass"


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.transport.abort()
