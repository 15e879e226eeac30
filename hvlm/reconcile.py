"""The reconciler: observe the fleet, plan, apply a plan in its phases, verify. Orchestration only.

Pipeline position: called by the CLI (hvlm.cli: `plan`, `apply`, `check`, `export`); calls the host
sessions (hvlm.hosts) and the directory session (hvlm.directory) through the two small protocols
below, and the pure planner (hvlm.planner). Every host session stays open from the first read to
the verification read, so a host with changes costs one pool: open, read, write, verify, close.

Apply contract (Terraform's, plus our domain's safety):
- phases run in order: directory additions, host changes (hosts in parallel), directory pruning,
  ticket refresh; a host whose step fails has its later steps skipped, others go on;
- after writing, every touched host and the directory are read again; what still differs is a
  failure;
- the report lists every change as applied / failed / skipped, with the reason.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol, TypeVar

import structlog

from hvlm.errors import DirectoryUnreachable, HvlmError
from hvlm.hosts.commands import PURGE_SYSTEM_TICKETS, HostCommand, host_commands
from hvlm.model import DirectorySpec, HostSpec, Manifest
from hvlm.plan import Change, Finding, Phase, Plan
from hvlm.planner import build_plan, settings_from_plan
from hvlm.progress import host_progress
from hvlm.state import DelegationState, DirectoryState, HostState

log = structlog.get_logger("hvlm.reconcile")
T = TypeVar("T")


class HostSessionLike(Protocol):
    def read(self) -> HostState: ...
    def run(self, commands: Sequence[HostCommand]) -> None: ...
    def close(self) -> None: ...


class DirectoryLike(Protocol):
    def read(self, hosts: Sequence[HostSpec]) -> DirectoryState: ...
    def modify(
        self,
        account: DelegationState,
        add: Sequence[str],
        delete: Sequence[str],
        protocol_transition: bool | None,
    ) -> None: ...
    def close(self) -> None: ...


HostOpener = Callable[[HostSpec], HostSessionLike]
DirectoryOpener = Callable[[DirectorySpec], DirectoryLike]


class Outcome(str, Enum):
    APPLIED = "applied"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class ChangeResult:
    change: Change
    outcome: Outcome
    detail: str = ""


@dataclass(frozen=True)
class ApplyReport:
    results: tuple[ChangeResult, ...]
    drift: tuple[str, ...] = ()  # what verification still found different, one line each
    unread: tuple[str, ...] = ()  # what could not be read, so was neither planned nor applied

    @property
    def ok(self) -> bool:
        return (
            not self.drift
            and not self.unread
            and all(r.outcome is Outcome.APPLIED for r in self.results)
        )


@dataclass
class Observation:
    hosts: dict[str, HostState] = field(default_factory=dict)  # by upper-cased name
    host_errors: dict[str, str] = field(default_factory=dict)
    directory: DirectoryState | None = None
    directory_error: str | None = None


def parallel(fn: Callable[[T], None], items: Sequence[T], workers: int) -> None:
    """Run fn over items on a thread pool. Ctrl-C cancels what has not started and waits for
    what has (a host's pipeline is never cut in half by hvlm), then re-raises."""
    pool = ThreadPoolExecutor(max(1, min(workers, len(items) or 1)))
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

    def close(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        self._map(lambda s: s.close(), sessions)
        if self._directory is not None:
            self._directory.close()
            self._directory = None

    def _map(self, fn: Callable[[HostSessionLike], None], items: list[HostSessionLike]) -> None:
        def safe(item: HostSessionLike) -> None:
            try:
                fn(item)
            except Exception as exc:  # closing must never hide the real result
                log.debug("close failed", error=str(exc))

        parallel(safe, items, self.parallelism)

    def _drop(self, spec: HostSpec) -> None:
        with self._lock:
            session = self._sessions.pop(spec.key, None)
        if session is not None:
            try:
                session.close()
            except Exception as exc:
                log.debug("close failed", host=spec.name, error=str(exc))

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


@contextmanager
def open_fleet(
    manifest: Manifest,
    parallelism: int = 16,
    progress: bool | None = None,
    open_host: HostOpener | None = None,
    open_directory: DirectoryOpener | None = None,
) -> Iterator[Fleet]:
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
    return build_plan(
        fleet.manifest,
        observation.hosts,
        observation.directory,
        selection=[s.upper() for s in selection] or None,
        refresh_tickets=refresh_tickets,
        host_errors=observation.host_errors,
        directory_error=observation.directory_error,
        findings=findings,
    )


# --- apply --------------------------------------------------------------------------------------


class _Run:
    """Bookkeeping of one apply: results per change, failed hosts."""

    def __init__(self) -> None:
        self.results: dict[str, ChangeResult] = {}
        self.failed_hosts: dict[str, str] = {}
        self.lock = threading.Lock()

    def record(self, changes: Sequence[Change], outcome: Outcome, detail: str = "") -> None:
        with self.lock:
            for change in changes:
                self.results[change.address] = ChangeResult(change, outcome, detail)

    def fail_host(self, host: str, reason: str) -> None:
        with self.lock:
            self.failed_hosts.setdefault(host.upper(), reason)

    def skip_reason(self, host: str) -> str | None:
        with self.lock:
            reason = self.failed_hosts.get(host.upper())
        return f"skipped: an earlier step of {host} failed ({reason})" if reason else None


def apply_plan(fleet: Fleet, plan: Plan, observation: Observation) -> ApplyReport:
    """Execute exactly `plan`, phase by phase, then verify by reading again."""
    run = _Run()
    for host in plan.unread_hosts:
        run.fail_host(host, "it could not be read")
    _directory_phase(fleet, plan.in_phase(Phase.DIRECTORY_ADD), observation, run)
    _host_phase(fleet, plan.in_phase(Phase.HOST), observation, run)
    _directory_phase(fleet, plan.in_phase(Phase.DIRECTORY_PRUNE), observation, run)
    _ticket_phase(fleet, plan.in_phase(Phase.TICKETS), run)
    drift = _verify(fleet, plan, run)
    ordered = tuple(run.results[c.address] for c in plan.changes if c.address in run.results)
    unread = tuple(f"{f.subject}: {f.message}" for f in plan.findings if f.code in UNREAD_CODES)
    return ApplyReport(ordered, drift, unread)


# findings that mean part of the fleet was not read, so the plan is incomplete
UNREAD_CODES = frozenset({"host-unread", "directory-unread"})


def _by_host(changes: Sequence[Change]) -> dict[str, list[Change]]:
    grouped: dict[str, list[Change]] = {}
    for change in changes:
        grouped.setdefault(change.host.upper(), []).append(change)
    return grouped


def _directory_phase(
    fleet: Fleet, changes: Sequence[Change], observation: Observation, run: _Run
) -> None:
    unreachable = ""
    for host, host_changes in _by_host(changes).items():
        skip = run.skip_reason(host) if host_changes[0].phase is Phase.DIRECTORY_PRUNE else None
        account = observation.directory.account(host) if observation.directory else None
        if unreachable:  # one timeout is enough: do not pay it again for every account
            skip = f"skipped: the directory did not answer ({unreachable})"
            run.fail_host(host, "directory unreachable")
        if skip or account is None:
            run.record(host_changes, Outcome.SKIPPED, skip or "skipped: computer account not read")
            continue
        add = [v for c in host_changes for v in c.add]
        delete = [v for c in host_changes for v in c.delete]
        transition = _transition_after(host_changes)
        try:
            fleet.directory().modify(account, add, delete, transition)
        except HvlmError as exc:
            run.record(host_changes, Outcome.FAILED, str(exc))
            run.fail_host(host, f"directory: {exc}")
            if isinstance(exc, DirectoryUnreachable):
                unreachable = exc.detail
            continue
        run.record(host_changes, Outcome.APPLIED)


def _transition_after(changes: Sequence[Change]) -> bool | None:
    for change in changes:
        if change.address.endswith("/protocolTransition") and change.after is not None:
            value = change.after.get("protocolTransition")
            return bool(value) if value is not None else None
    return None


def _host_phase(
    fleet: Fleet, changes: Sequence[Change], observation: Observation, run: _Run
) -> None:
    grouped = _by_host(changes)

    def one(host: str) -> None:
        host_changes = grouped[host]
        skip = run.skip_reason(host) or _kerberos_blocked(host, host_changes, observation)
        state = observation.hosts.get(host)
        if skip or state is None:
            run.record(host_changes, Outcome.SKIPPED, skip or "skipped: host was not read")
            return
        spec = fleet.manifest.host(host)
        try:
            # exactly the plan's changes (not the manifest again): a saved plan is a contract
            steps = host_commands(
                settings_from_plan(host_changes, state.migration), state.migration
            )
            fleet.session(spec).run(steps)
        except HvlmError as exc:
            run.record(host_changes, Outcome.FAILED, str(exc))
            run.fail_host(host, str(exc))
            return
        run.record(host_changes, Outcome.APPLIED)

    parallel(one, list(grouped), fleet.parallelism)


def _kerberos_blocked(host: str, changes: Sequence[Change], observation: Observation) -> str:
    """A host is not switched to Kerberos while its delegation is unknown: its outgoing
    migrations would fail (0x8009030D) where CredSSP still worked."""
    to_kerberos = any((c.after or {}).get("authentication") == "Kerberos" for c in changes)
    if not to_kerberos:
        return ""
    if observation.directory is None:
        return "skipped: switching to Kerberos needs its delegation, and the directory was not read"
    if observation.directory.account(host) is None:
        return "skipped: switching to Kerberos needs its delegation, and it has no computer account"
    return ""


def _ticket_phase(fleet: Fleet, changes: Sequence[Change], run: _Run) -> None:
    def one(change: Change) -> None:
        skip = run.skip_reason(change.host)
        if skip:
            run.record([change], Outcome.SKIPPED, skip)
            return
        try:
            fleet.session(fleet.manifest.host(change.host)).run([PURGE_SYSTEM_TICKETS])
        except HvlmError as exc:
            run.record([change], Outcome.FAILED, str(exc))
            return
        run.record([change], Outcome.APPLIED)

    parallel(one, list(changes), fleet.parallelism)


def _verify(fleet: Fleet, plan: Plan, run: _Run) -> tuple[str, ...]:
    """Read again what was written; whatever a new plan would still change there is drift."""
    applied = [r.change for r in run.results.values() if r.outcome is Outcome.APPLIED]
    hosts = sorted({c.host.upper() for c in applied if c.phase is Phase.HOST})
    specs = [fleet.manifest.host(h) for h in hosts]
    drift: list[str] = []
    if specs:
        states, errors = fleet.read_hosts(specs)
        drift += [f"{host}: verification read failed: {err}" for host, err in errors.items()]
        again = build_plan(fleet.manifest, states, None, selection=hosts)
        drift += [_drift_line(c) for c in again.in_phase(Phase.HOST) if c.host.upper() in states]
    accounts = sorted({c.host.upper() for c in applied if c.target.startswith("directory/")})
    if accounts:
        directory, error = fleet.read_directory(fleet.manifest.hosts)
        if directory is None:
            drift.append(f"directory: verification read failed: {error}")
        else:
            # the plan's own --host selection: other accounts only gained values toward it
            again = build_plan(fleet.manifest, {}, directory, selection=plan.selection)
            drift += [
                _drift_line(c)
                for c in again.changes
                if c.target.startswith("directory/") and c.host.upper() in accounts
            ]
    return tuple(drift)


def _drift_line(change: Change) -> str:
    return f"{change.address}: still differs after apply ({change.reason})"
