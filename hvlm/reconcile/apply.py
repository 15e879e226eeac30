"""Apply a plan in its phases, then verify by reading again. Orchestration only.

Pipeline position: the second half of hvlm.reconcile. The CLI (`hvlm apply`) calls `apply_plan`
with the Fleet and the Observation of hvlm.reconcile.observe (the sessions opened for the read
write and verify, so a host costs one pool); the steps of a host come from the plan alone
(hvlm.planner.settings_from_plan -> hvlm.hosts.commands.host_commands): a saved plan is a
contract, the manifest is not read again.

Apply contract (Terraform's, plus our domain's safety):
- phases run in order: directory additions, host changes (hosts in parallel), directory pruning,
  ticket refresh; a host whose step fails has its later steps skipped, others go on;
- between the additions and the host changes, when the directory has more than one DC, apply
  waits until every DC the concerned hosts use (and every DC of the manifest) holds what was
  written (hvlm.reconcile.replication); on timeout a host whose DC lacks its delegation is not
  switched to Kerberos and its tickets are not purged (`delegation-not-replicated`, exit 1);
- a directory change records the server that took it; after a failover mid-run (a write, the
  wait or the verification read lands on another server) everything the lost server took in this
  run is re-applied on the server now in use (`_replay`: msDS-AllowedToDelegateTo is not a linked
  attribute, the newer copy wins whole, so a value left only on the lost DC would be dropped);
- no host is switched to Kerberos while its delegation is unknown (directory unread, no account);
- after writing, every touched host and the directory are read again; what still differs is a
  failure (drift);
- the report lists every change as applied / failed / skipped, with the reason, and what could
  not be read.
Only hvlm errors (a host or the directory failing) are recorded in the report; any other
exception is a bug in hvlm and propagates to the caller, from whatever worker thread it rose in.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import structlog

from hvlm.errors import DirectoryUnreachable, HvlmError, Severity
from hvlm.findings import Finding
from hvlm.hosts.commands import PURGE_SYSTEM_TICKETS, host_commands
from hvlm.model import DirectoryServer, HostSpec
from hvlm.plan import Change, Kind, Part, Phase, Plan, switches_to_kerberos
from hvlm.planner import build_plan, settings_from_plan
from hvlm.progress import replication_progress
from hvlm.reconcile.observe import Fleet, Observation, parallel
from hvlm.reconcile.replication import (
    DELEGATION_NOT_REPLICATED,
    blocked_hosts,
    dc_server,
    expected_after_add,
    wait_for_replication,
)
from hvlm.state import DelegationState, DirectoryState

log = structlog.get_logger("hvlm.reconcile")
# findings that mean part of the fleet was not read, so the plan is incomplete
UNREAD_CODES = frozenset({"host-unread", "directory-unread"})


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
    findings: tuple[Finding, ...] = ()  # e.g. delegation-not-replicated

    @property
    def ok(self) -> bool:
        return (
            not self.drift
            and not self.unread
            and not any(f.severity is Severity.ERROR for f in self.findings)
            and all(r.outcome is Outcome.APPLIED for r in self.results)
        )


@dataclass
class _Write:
    """One account's directory write, and the server that holds it (replayed after failover)."""

    changes: list[Change]
    account: DelegationState
    add: list[str]
    delete: list[str]
    transition: bool | None
    server: str | None


class _Run:
    """Bookkeeping of one apply: results per change, failed hosts."""

    def __init__(self) -> None:
        self.results: dict[str, ChangeResult] = {}
        self.failed_hosts: dict[str, str] = {}
        self.not_replicated: dict[str, str] = {}  # host -> why it must not switch yet
        self.findings: list[Finding] = []
        self.writes: list[_Write] = []  # directory writes in order, with the server that took them
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


def apply_plan(fleet: Fleet, plan: Plan, observation: Observation,
               replication_timeout: float | None = None) -> ApplyReport:
    """Execute exactly `plan`, phase by phase, then verify by reading again.

    `replication_timeout`: seconds to wait for replication (None: the manifest's
    directory.replicationTimeoutSeconds)."""
    run = _Run()
    for host in plan.unread_hosts:
        run.fail_host(host, "it could not be read")
    _directory_phase(fleet, plan.in_phase(Phase.DIRECTORY_ADD), observation, run)
    await_replication(fleet, plan, observation, run, replication_timeout)
    _host_phase(fleet, plan.in_phase(Phase.HOST), observation, run)
    _directory_phase(fleet, plan.in_phase(Phase.DIRECTORY_PRUNE), observation, run)
    _ticket_phase(fleet, plan.in_phase(Phase.TICKETS), run)
    drift = _verify(fleet, plan, run)
    ordered = tuple(run.results[c.address] for c in plan.changes if c.address in run.results)
    unread = tuple(f"{f.subject}: {f.message}" for f in plan.findings if f.code in UNREAD_CODES)
    return ApplyReport(ordered, drift, unread, tuple(run.findings))


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
            server = fleet.directory().modify(account, add, delete, transition)
        except HvlmError as exc:
            run.record(host_changes, Outcome.FAILED, str(exc))
            run.fail_host(host, f"directory: {exc}")
            if isinstance(exc, DirectoryUnreachable):
                unreachable = exc.detail
            continue
        run.record(host_changes, Outcome.APPLIED, f"written on {server}" if server else "")
        earlier = {w.server for w in run.writes if w.server != server}
        run.writes.append(_Write(host_changes, account, add, delete, transition, server))
        if server is not None and earlier - {None}:  # the session failed over to `server`
            _replay(fleet, run, earlier)


def _replay(fleet: Fleet, run: _Run, gone: set[str | None]) -> None:
    """After a failover: write again, on the server now in use, what the servers in `gone` took.

    msDS-AllowedToDelegateTo is not a linked attribute: it replicates as a whole, and the copy
    with the higher version (then the later write) wins. A value written only on a DC that went
    away would be lost for good the moment the account is written on another DC (a prune, the
    next apply), and until then that DC's KDC lacks it. Writing it again where hvlm now writes
    (single-value adds and deletes, an account already right is not modified) makes that DC hold
    everything this run wrote, and its copy the newer one when the old DC comes back.
    """
    for write in run.writes:
        if write.server not in gone:
            continue
        try:
            server = fleet.directory().modify(write.account, write.add, write.delete,
                                              write.transition)
        except HvlmError as exc:
            run.record(write.changes, Outcome.FAILED,
                       f"written on {write.server}, which went away; writing it again on the "
                       f"next server failed: {exc}")
            run.fail_host(write.changes[0].host, f"directory: {exc}")
            continue
        log.warning("directory failover: written again on the server now in use",
                    account=write.account.name, first=write.server, now=server)
        run.record(write.changes, Outcome.APPLIED,
                   f"written on {write.server}; it went away: re-applied on {server}")
        write.server = server


def await_replication(fleet: Fleet, plan: Plan, observation: Observation, run: _Run,
                      timeout: float | None) -> None:
    """Before any host is switched to Kerberos or has its tickets purged: wait until every DC
    the concerned hosts use, and every DC of the manifest, holds what was written (or the
    delegation they already needed). One DC: nothing to wait for, nothing read."""
    spec = fleet.manifest.directory
    if spec is None or observation.directory is None:
        return
    concerned = _concerned_hosts(plan, run, observation)
    servers = {s.url: s for s in spec.servers}
    dc_of: dict[str, str | None] = {}
    for host in concerned:
        state = observation.hosts.get(host)
        own = dc_server(spec, state.facts.domain_controller) if state else None
        dc_of[host] = own.url if own else None
        if own is not None:
            servers.setdefault(own.url, own)
    if not concerned or len(servers) < 2:
        return
    specs = [fleet.manifest.host(h) for h in sorted(concerned)]
    readers = {url: functools.partial(_read_at, fleet, server, specs)
               for url, server in servers.items()}
    expected = expected_after_add(*_written(concerned, observation, run))
    limit = spec.replication_timeout_seconds if timeout is None else timeout
    writers = {w.server for w in run.writes}

    def gone(server: str) -> None:  # a DC that took writes went away: they go to the next one
        if server in writers:
            _replay(fleet, run, {server})

    with replication_progress(len(readers), fleet.progress) as progress:
        result = wait_for_replication(expected, readers, limit, progress=progress,
                                      on_unreachable=gone)
    log.info("replication checked", agreed=result.agreed, rounds=result.rounds,
             seconds=round(result.seconds, 2), unreachable=sorted(result.unreachable))
    blocked = blocked_hosts(result, dc_of)
    for lag in result.lags:
        effect = (": it is not switched to Kerberos and its tickets are not purged"
                  if lag.host in blocked else "")
        run.findings.append(DELEGATION_NOT_REPLICATED.make(
            f"directory/{lag.host}", name=lag.host, server=lag.server, seconds=f"{limit:g}",
            missing=", ".join(lag.missing), effect=effect))
    for host, lags in blocked.items():
        where = ", ".join(lag.server for lag in lags)
        run.not_replicated[host] = (f"skipped: its delegation has not replicated to {where} "
                                    "(delegation-not-replicated)")


def _read_at(fleet: Fleet, server: DirectoryServer, specs: Sequence[HostSpec]) -> DirectoryState:
    return fleet.directory_at(server).read(specs)


def _concerned_hosts(plan: Plan, run: _Run, observation: Observation) -> set[str]:
    """Hosts whose account was written now, that switch to Kerberos, or get tickets purged."""
    written = {r.change.host.upper() for r in run.results.values()
               if r.outcome is Outcome.APPLIED and r.change.phase is Phase.DIRECTORY_ADD}
    switching = {h for h, cs in _by_host(plan.in_phase(Phase.HOST)).items()
                 if switches_to_kerberos(cs)}
    tickets = {c.host.upper() for c in plan.in_phase(Phase.TICKETS)}
    directory = observation.directory
    assert directory is not None
    return {h for h in written | switching | tickets
            if directory.account(h) is not None and h not in run.failed_hosts}


def _written(concerned: set[str], observation: Observation, run: _Run
             ) -> tuple[dict[str, DelegationState], dict[str, list[str]], dict[str, bool | None]]:
    directory = observation.directory
    assert directory is not None
    observed = {h: a for h in concerned if (a := directory.account(h)) is not None}
    added: dict[str, list[str]] = {}
    transitions: dict[str, bool | None] = {}
    for result in run.results.values():
        change = result.change
        if result.outcome is Outcome.APPLIED and change.phase is Phase.DIRECTORY_ADD:
            added.setdefault(change.host.upper(), []).extend(change.add)
            if change.where.part is Part.PROTOCOL_TRANSITION:
                transitions[change.host.upper()] = _transition_after([change])
    return observed, added, transitions


def _transition_after(changes: Sequence[Change]) -> bool | None:
    for change in changes:
        if change.where.part is Part.PROTOCOL_TRANSITION and change.after is not None:
            value = change.after.get("protocolTransition")
            return bool(value) if value is not None else None
    return None


def _host_phase(
    fleet: Fleet, changes: Sequence[Change], observation: Observation, run: _Run
) -> None:
    grouped = _by_host(changes)

    def one(host: str) -> None:
        host_changes = grouped[host]
        skip = (run.skip_reason(host) or _kerberos_blocked(host, host_changes, observation)
                or _not_replicated(host, host_changes, run))
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
    if not switches_to_kerberos(changes):
        return ""
    if observation.directory is None:
        return "skipped: switching to Kerberos needs its delegation, and the directory was not read"
    if observation.directory.account(host) is None:
        return "skipped: switching to Kerberos needs its delegation, and it has no computer account"
    return ""


def _not_replicated(host: str, changes: Sequence[Change], run: _Run) -> str:
    reason = run.not_replicated.get(host.upper(), "")
    return reason if reason and switches_to_kerberos(changes) else ""


def _ticket_phase(fleet: Fleet, changes: Sequence[Change], run: _Run) -> None:
    def one(change: Change) -> None:
        skip = run.skip_reason(change.host) or run.not_replicated.get(change.host.upper())
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
    accounts = sorted({c.host.upper() for c in applied if c.where.kind is Kind.DIRECTORY})
    if accounts:
        directory, error = fleet.read_directory(fleet.manifest.hosts)
        now = directory.server if directory is not None else ""
        gone: set[str | None] = {w.server for w in run.writes if w.server and now
                                 and w.server != now}
        if gone:  # the read failed over: the server now in use may lack this run's writes
            _replay(fleet, run, gone)
            directory, error = fleet.read_directory(fleet.manifest.hosts)
        if directory is None:
            drift.append(f"directory: verification read failed: {error}")
        else:
            # the plan's own --host selection: other accounts only gained values toward it
            again = build_plan(fleet.manifest, {}, directory, selection=plan.selection)
            drift += [
                _drift_line(c)
                for c in again.changes
                if c.where.kind is Kind.DIRECTORY and c.host.upper() in accounts
            ]
    return tuple(drift)


def _drift_line(change: Change) -> str:
    return f"{change.address}: still differs after apply ({change.reason})"
