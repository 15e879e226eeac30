"""The lab's WinRM server: simulated hosts that speak WSMan + PSRP on loopback, one port each.

Part of the lab (not the reconcile pipeline). Tests, the demo, the benchmarks and `hvlm lab up`
start one `LabServer`; hvlm's real pypsrp client code talks to it exactly as to Windows hosts.
All hosts are served by ONE asyncio event loop in a background thread (asyncio streams, no web
framework: NTLM state and message encryption live on the TCP connection). Cmdlets are executed by
each host's `CmdletHost` (`cmdlets.py`; the Hyper-V model is `hyperv/host.py`).

Python API
----------
    ca = LabCA.create(workdir / "ca")
    hosts = [LabEndpointConfig("HV01", HyperVHost(...), Credentials("admin", "Passw0rd!"))]
    with LabServer(hosts, ca, workdir) as lab:          # start() returns when every port listens
        host, port, scheme = lab.endpoint("HV01")       # ("127.0.0.1", 40123, "https")
        ...pypsrp WSMan(host, port=port, ssl=True, cert_validation=str(lab.ca_path), auth="basic")
        lab.stats("HV01")       # JSON-able counters (below); lab.stats() = {name: counters}
        lab.reset_stats()       # all hosts (or reset_stats("HV01"))
        lab.set_fault("HV01", FaultSpec(latency_ms=20))  # takes effect for the next request
    # stop() (or leaving the with-block): nothing left listening

`LabEndpointConfig(name, host, credentials, transport=Transport.HTTPS_BASIC, fqdn="", faults=
FaultSpec(), port=0, kerberos=False)`:
- Transport.HTTPS_BASIC: TLS with a certificate issued by the lab CA (SAN: fqdn and 127.0.0.1),
  Basic authentication.
- Transport.HTTP_NEGOTIATE: plain HTTP, Negotiate with message encryption (multipart/encrypted):
  NTLM (the lab registers the host's user in a process-wide NTLM_USER_FILE and sets that env
  variable; NTLM users must be unique across the process or share their password), and Kerberos
  when kerberos=True: the acceptor reads the process-wide keytab KRB5_KTNAME (with KRB5_CONFIG),
  so a lab of several Kerberos hosts merges their exported keytabs (wsman_auth.merge_keytabs;
  `samba-tool domain exportkeytab --principal=HV01$` works for host/ and HTTP/ tickets). Clients
  connect to 127.0.0.1 and name the host for the SPN (pypsrp negotiate_hostname_override).
  Only the host's own user is accepted, whatever the protocol proved.
- fqdn defaults to name.lower() + ".lab.example"; port 0 = any free port.
- Wrong credentials -> 401, as on a real host (pypsrp raises AuthenticationError).

Counters per host (`stats(name)`): http_requests, http_status {"200": n, "401": n, ...},
auth_failures, dropped, hung, wsman_requests, actions (ordered, e.g. ["Create", "Receive",
"Command", "Receive", "Delete"]), action_counts, and cmdlets (ordered): {"pipeline", "statement",
"command", "parameters": [[name, value], ...], "parameter_types": [[name, .NET type as received
(System.String, System.Int32, System.Boolean, null)], ...], "arguments": [...], "is_script",
"outcome"} with
outcome one of ok | error | terminated | skipped | refused | http500 (see
hvlm_lab.wsman.faults.Outcome). Parameter values arrive exactly as sent: a value is never parsed
as PowerShell.

Faults (`FaultSpec`, wsman/faults.py): latency_ms, drop_after_requests (+ drop_once), http_500_on_
cmdlet, cmdlet_faults (CmdletFault: cmdlet, message, terminating, error_id, category), hang,
refuse_auth. A script (AddScript) always fails the pipeline with a clear terminating error.

Each host's `CmdletHost.invoke()` runs on the lab's event-loop thread: it must be quick and must
not block (the Hyper-V model is). Measured on this 2-core machine: one read (open, one pipeline of
three statements, close) costs the server about 15-25 ms of CPU (psrpcore deserialising HostInfo
and TLS/NTLM dominate), so one lab process serves roughly 40-60 reads per second.

Control channel (another process): `lab.control_url` serves GET /stats, POST /reset,
POST /faults/<host> ... (wsman/control.py; `LabControlClient` is the client).

Pins: psrpcore==0.3.1 (a private state change fails a pipeline), pypsrp==0.9.1 (what the server
implements is what that client sends). No aiohttp: asyncio streams only.
"""

from __future__ import annotations

import asyncio
import enum
import ssl
import threading
from collections.abc import Coroutine, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from hvlm_lab.cmdlets import CmdletHost
from hvlm_lab.pki import LabCA
from hvlm_lab.wsman.auth import (
    Authenticator,
    BasicAuthenticator,
    Credentials,
    NegotiateAuthenticator,
    NtlmUserFile,
)
from hvlm_lab.wsman.control import ControlServer
from hvlm_lab.wsman.endpoint import HostEndpoint
from hvlm_lab.wsman.faults import CmdletFault, FaultSpec

__all__ = [
    "CmdletFault",
    "Credentials",
    "Endpoint",
    "FaultSpec",
    "LabEndpointConfig",
    "LabServer",
    "Transport",
]

LOOPBACK = "127.0.0.1"
DEFAULT_FRAGMENT_SIZE = 32 * 1024
_T = TypeVar("_T")


class Transport(enum.Enum):
    HTTPS_BASIC = "https-basic"
    HTTP_NEGOTIATE = "http-negotiate"


@dataclass(frozen=True)
class LabEndpointConfig:
    """One simulated host: its cmdlet model, how it is reached, and how it misbehaves."""

    name: str
    host: CmdletHost
    credentials: Credentials
    transport: Transport = Transport.HTTPS_BASIC
    fqdn: str = ""
    faults: FaultSpec = field(default_factory=FaultSpec)
    port: int = 0
    kerberos: bool = False

    @property
    def resolved_fqdn(self) -> str:
        return self.fqdn or f"{self.name.lower()}.lab.example"


class Endpoint(NamedTuple):
    host: str
    port: int
    scheme: str


class LabServer:
    """Every simulated host of a lab, served from one event loop in a background thread."""

    def __init__(
        self,
        hosts: Sequence[LabEndpointConfig],
        ca: LabCA,
        workdir: Path,
        *,
        control_port: int | None = 0,
        fragment_size: int = DEFAULT_FRAGMENT_SIZE,
    ) -> None:
        names = [h.name for h in hosts]
        duplicates = {n for n in names if names.count(n) > 1}
        if duplicates:
            raise ValueError(f"duplicate lab host names: {sorted(duplicates)}")
        self._configs = {h.name: h for h in hosts}
        self._ca = ca
        self._workdir = workdir
        self._control_port = control_port
        self._fragment_size = fragment_size
        self._endpoints: dict[str, HostEndpoint] = {}
        self._control: ControlServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> LabServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def ca_path(self) -> Path:
        return self._ca.cert_path

    def start(self, timeout: float = 120.0) -> None:
        """Listen on every host's port (and the control port); returns when all listen."""
        if self._loop is not None:
            raise RuntimeError("lab already started")
        self._endpoints = {name: self._build(c) for name, c in self._configs.items()}
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="hvlm-lab-wsman", daemon=True)
        self._thread.start()
        try:
            self._call(self._start_all(), timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = 30.0) -> None:
        """Close every listener and connection; nothing is left listening afterwards."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            self._call(self._stop_all(), timeout)
        finally:
            for config in self._configs.values():
                if config.transport is not Transport.HTTPS_BASIC:
                    NtlmUserFile.remove(config.credentials)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)
            loop.close()
            self._loop = self._thread = None

    async def _start_all(self) -> None:
        await asyncio.gather(
            *(e.start(LOOPBACK, self._configs[n].port) for n, e in self._endpoints.items())
        )
        if self._control_port is not None:
            self._control = ControlServer(self)
            await self._control.start(LOOPBACK, self._control_port)

    async def _stop_all(self) -> None:
        if self._control is not None:
            await self._control.stop()
            self._control = None
        await asyncio.gather(*(e.stop() for e in self._endpoints.values()))

    def _call(self, coro: Coroutine[Any, Any, _T], timeout: float) -> _T:
        if self._loop is None:
            coro.close()
            raise RuntimeError("lab not started")
        future: Future[_T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout)

    def _build(self, config: LabEndpointConfig) -> HostEndpoint:
        authenticator: Authenticator
        context: ssl.SSLContext | None = None
        if config.transport is Transport.HTTPS_BASIC:
            context = self._tls_context(config)
            authenticator = BasicAuthenticator(config.credentials)
        else:
            NtlmUserFile.add(config.credentials)
            authenticator = NegotiateAuthenticator(config.credentials, config.kerberos)
        return HostEndpoint(
            config.name,
            config.resolved_fqdn,
            config.host,
            authenticator,
            context,
            config.faults,
            self._fragment_size,
        )

    def _tls_context(self, config: LabEndpointConfig) -> ssl.SSLContext:
        cert = self._ca.issue(
            self._workdir / "certs", config.name.lower(), [config.resolved_fqdn], [LOOPBACK]
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(cert.cert_path, cert.key_path)
        return context

    # --- inspection and faults ----------------------------------------------------------------

    def _endpoint(self, name: str) -> HostEndpoint:
        try:
            return self._endpoints[name]
        except KeyError:
            raise KeyError(f"no lab host named {name!r}") from None

    def host_names(self) -> list[str]:
        return list(self._configs)

    def endpoint(self, name: str) -> Endpoint:
        endpoint = self._endpoint(name)
        return Endpoint(LOOPBACK, endpoint.port, endpoint.scheme)

    def endpoints(self) -> dict[str, Endpoint]:
        return {name: self.endpoint(name) for name in self._endpoints}

    def endpoints_json(self) -> dict[str, dict[str, Any]]:
        return {name: e._asdict() for name, e in self.endpoints().items()}

    @property
    def control_url(self) -> str | None:
        return f"http://{LOOPBACK}:{self._control.port}" if self._control else None

    def stats(self, name: str | None = None) -> dict[str, Any]:
        if name is not None:
            return self._endpoint(name).stats.snapshot()
        return {n: e.stats.snapshot() for n, e in self._endpoints.items()}

    def reset_stats(self, name: str | None = None) -> None:
        targets = [self._endpoint(name)] if name else list(self._endpoints.values())
        for endpoint in targets:
            endpoint.stats.reset()

    def fault(self, name: str) -> FaultSpec:
        return self._endpoint(name).faults

    def set_fault(self, name: str, spec: FaultSpec) -> None:
        """Replace a host's faults; in force for every request that starts after this returns."""
        self._call(self.apply_fault(name, spec), 30.0)

    async def apply_fault(self, name: str, spec: FaultSpec) -> None:
        self._endpoint(name).set_fault(spec)
