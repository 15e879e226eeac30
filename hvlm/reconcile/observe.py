"""Observe the fleet: the host and directory sessions a run keeps open, the reads, the plan.

Pipeline position: the first half of hvlm.reconcile. The CLI (hvlm.cli: `plan`, `apply`,
`check`, `export`) opens a `Fleet` with `open_fleet`, calls `Fleet.observe` and `plan_fleet`
(the pure planner, hvlm.planner); hvlm.reconcile.apply writes and verifies through the same
sessions. Hosts and the directory are reached only through the two small protocols below
(hvlm.backends wires pypsrp and ldap3 behind them; tests hand in fakes), so this module imports no
backend library. Every host session stays open from the first read to the verification read: a
host with changes costs one pool (open, read, write, verify, close).

Failures: a host or the directory that fails raises an hvlm error (hvlm.errors), which becomes
that host's read error (or the directory's) and the run goes on. Any other exception is a bug in
hvlm: it is never recorded as a host error, and it reaches the caller from the worker thread.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import structlog

from hvlm.errors import HvlmError
from hvlm.hosts.commands import HostCommand
from hvlm.model import DirectoryServer, DirectorySpec, HostSpec, Manifest
from hvlm.plan import Finding, Plan
from hvlm.planner import build_plan
from hvlm.progress import host_progress
from hvlm.state import DelegationState, DirectoryState, HostState

log = structlog.get_logger("hvlm.reconcile")
T = TypeVar("T")


class HostSessionLike(Protocol):
    """One opened host (hvlm.hosts.session.HostSession). Failures raise hvlm.errors.HostError."""

    def read(self) -> HostState: ...
    def run(self, commands: Sequence[HostCommand]) -> None: ...
    def close(self) -> None: ...


class DirectoryLike(Protocol):
    """The opened directory (hvlm.backends.Directory). Failures raise hvlm.errors.DirectoryError."""

    def read(self, hosts: Sequence[HostSpec]) -> DirectoryState: ...
    def modify(
        self,
        account: DelegationState,
        add: Sequence[str],
        delete: Sequence[str],
        protocol_transition: bool | None,
    ) -> str | None: ...  # the URL of the server that took the write (None: not known)
    def close(self) -> None: ...


HostOpener = Callable[[HostSpec], HostSessionLike]
DirectoryOpener = Callable[[DirectorySpec], DirectoryLike]


@dataclass
class Observation:
    hosts: dict[str, HostState] = field(default_factory=dict)  # by upper-cased name
    host_errors: dict[str, str] = field(default_factory=dict)
    directory: DirectoryState | None = None
    directory_error: str | None = None


def parallel(fn: Callable[[T], None], items: Sequence[T], workers: int) -> None:
    """Run fn over items on a thread pool; the first exception of a worker is raised here.

    fn records the failures it expects (hvlm errors) itself: what escapes it is a bug or Ctrl-C.
    Then what has not started is cancelled and what has is waited for (a host's pipeline is
    never cut in half by hvlm), and the exception is re-raised in the calling thread.
    """
    pool = ThreadPoolExecutor(max(1, min(workers, len(items) or 1)), thread_name_prefix="hvlm")
    try:
        for future in [pool.submit(fn, item) for item in items]:
            future.result()
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


class Fleet:
    """Open host sessions (one per host, reused across phases) and the directory session."""

    def __init__(
        self,
        manifest: Manifest,
        open_host: HostOpener,
        open_directory: DirectoryOpener,
        parallelism: int = 16,
        progress: bool | None = None,
    ) -> None:
        self.manifest = manifest
        self._open_host, self._open_directory = open_host, open_directory
        self.parallelism = max(1, parallelism)
        self._sessions: dict[str, HostSessionLike] = {}
        self._directory: DirectoryLike | None = None
        self._at: dict[str, DirectoryLike] = {}  # one session per DC, for replication reads
        self._lock = threading.Lock()
        self.progress = progress  # None: a bar when stderr is a TTY, log lines otherwise

    # --- sessions --------------------------------------------------------------------------------
    def session(self, spec: HostSpec) -> HostSessionLike:
        with self._lock:
            existing = self._sessions.get(spec.key)
        if existing is not None:
            return existing
        opened = self._open_host(spec)
        with self._lock:
            self._sessions[spec.key] = opened
        return opened

    def directory(self) -> DirectoryLike:
        if self._directory is None:
            assert self.manifest.directory is not None
            self._directory = self._open_directory(self.manifest.directory)
        return self._directory

    def directory_at(self, server: DirectoryServer) -> DirectoryLike:
        """A session to this one DC (no failover: replication is read per DC), kept open."""
        assert self.manifest.directory is not None
        if server.url not in self._at:
            spec = dataclasses.replace(self.manifest.directory, servers=(server,))
            self._at[server.url] = self._open_directory(spec)
        return self._at[server.url]

    def close(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        parallel(_close, sessions, self.parallelism)
        directory, self._directory = self._directory, None
        if directory is not None:
            _close(directory)
        at, self._at = list(self._at.values()), {}
        for session in at:
            _close(session)

    def _drop(self, spec: HostSpec) -> None:
        with self._lock:
            session = self._sessions.pop(spec.key, None)
        if session is not None:
            _close(session)

    # --- observe ---------------------------------------------------------------------------------
    def read_hosts(self, specs: Sequence[HostSpec]) -> tuple[dict[str, HostState], dict[str, str]]:
        states: dict[str, HostState] = {}
        errors: dict[str, str] = {}

        with host_progress("read", len(specs), self.progress) as tick:

            def one(spec: HostSpec) -> None:
                try:
                    states[spec.key] = self.session(spec).read()
                except HvlmError as exc:
                    errors[spec.key] = str(exc)
                    log.warning("host read failed", host=spec.name, error=str(exc))
                    self._drop(spec)
                tick(spec.name, spec.key in states)

            parallel(one, specs, self.parallelism)
        return states, errors

    def read_directory(self, specs: Sequence[HostSpec]) -> tuple[DirectoryState | None, str | None]:
        if self.manifest.directory is None:
            return None, None
        try:
            return self.directory().read(specs), None
        except HvlmError as exc:
            log.warning("directory read failed", error=str(exc))
            return None, str(exc)

    def observe(self, selection: Sequence[str] = ()) -> Observation:
        specs = self.selected(selection)
        hosts, errors = self.read_hosts(specs)
        directory, directory_error = self.read_directory(self.manifest.hosts)
        return Observation(hosts, errors, directory, directory_error)

    def selected(self, selection: Sequence[str]) -> list[HostSpec]:
        if not selection:
            return list(self.manifest.hosts)
        wanted = {name.upper() for name in selection}
        unknown = wanted - {spec.key for spec in self.manifest.hosts}
        if unknown:
            raise HvlmError(
                f"--host names a host that is not in the manifest: {sorted(unknown)[0]}"
            )
        return [spec for spec in self.manifest.hosts if spec.key in wanted]


def _close(session: HostSessionLike | DirectoryLike) -> None:
    """Closing must never hide the result already obtained: a failed close is only logged."""
    try:
        session.close()
    except HvlmError as exc:
        log.debug("close failed", error=str(exc))


@contextmanager
def open_fleet(
    manifest: Manifest,
    parallelism: int = 16,
    progress: bool | None = None,
    open_host: HostOpener | None = None,
    open_directory: DirectoryOpener | None = None,
) -> Iterator[Fleet]:
    """A Fleet whose sessions are closed on exit; the real backends unless openers are given."""
    if open_host is None or open_directory is None:
        from hvlm.backends import default_directory_opener, default_host_opener

        open_host = open_host or default_host_opener
        open_directory = open_directory or default_directory_opener
    fleet = Fleet(manifest, open_host, open_directory, parallelism, progress)
    try:
        yield fleet
    finally:
        fleet.close()


def plan_fleet(
    fleet: Fleet,
    observation: Observation,
    *,
    selection: Sequence[str] = (),
    refresh_tickets: bool = False,
    findings: Sequence[Finding] = (),
) -> Plan:
    plan = build_plan(
        fleet.manifest,
        observation.hosts,
        observation.directory,
        selection=[s.upper() for s in selection] or None,
        refresh_tickets=refresh_tickets,
        host_errors=observation.host_errors,
        directory_error=observation.directory_error,
        findings=findings,
    )
    return dataclasses.replace(
        plan, domain_controllers=domain_controllers(fleet.manifest, observation))


def domain_controllers(manifest: Manifest, observation: Observation) -> tuple[tuple[str, str], ...]:
    """Each read host's DC (Win32_NTDomain), for the plan's note: only when there is more than
    one DC to tell apart (the manifest lists several, or the hosts name several); else ()."""
    dcs = {name: state.facts.domain_controller for name, state in observation.hosts.items()}
    servers = manifest.directory.servers if manifest.directory else ()
    if len(servers) < 2 and len({dc.lower() for dc in dcs.values() if dc}) < 2:
        return ()
    return tuple(sorted(dcs.items()))
