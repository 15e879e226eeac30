"""Apply, table-driven, against in-memory hosts and directory: no lab, no network.

Where it sits: unit tests of hvlm.reconcile (Fleet.observe, plan_fleet, apply_plan) through the
two protocols it takes (HostSessionLike: read/run/close, DirectoryLike: read/modify/close). A
`FakeHost` keeps a MigrationState and changes it by a hand-written table of effects (`EFFECTS`:
what each step these tests send does on a real host, written from DOMAIN.md, not hvlm's own
`simulate`; a step outside the table fails the test); a `FakeDirectory` keeps the computer
accounts. Each case:
observed state + plan (hvlm.planner, from a small manifest) -> the steps every host received, the
LDAP modifies, the report (outcome per change, drift, unread). The lab tests
(tests/integration/test_reconcile.py, test_faults.py) show the same over real WSMan and LDAP.

The last tests show honest failures: an exception that is not an hvlm error (a bug) raised in a
host or directory session is never recorded as "host unread" or "failed": it reaches the caller,
from the worker thread it rose in, and the CLI reports it as an internal error.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from hvlm.errors import CmdletError, DirectoryAccessDenied, DirectoryUnreachable, HostUnreachable
from hvlm.hosts.commands import HostCommand
from hvlm.model import (
    UAC_TRUSTED_TO_AUTH_FOR_DELEGATION,
    AuthenticationType,
    ConnectionSpec,
    DelegationSettings,
    DirectoryServer,
    DirectorySpec,
    HostSpec,
    Manifest,
    MigrationNetwork,
    MigrationSettings,
    PerformanceOption,
)
from hvlm.plan import Phase, Plan
from hvlm.reconcile import ApplyReport, apply_plan, open_fleet, plan_fleet
from hvlm.state import (
    DelegationState,
    DirectoryState,
    HostFacts,
    HostState,
    MigrationState,
    ObservedNetwork,
)

ROOT = Path(__file__).resolve().parents[2]
DOMAIN = "corp.example.com"
DC = "ldaps://dc1.corp.example.com"
SUBNET = "192.168.10.0/24"
WORKSTATION = 0x1000
MIGRATION = "Microsoft Virtual System Migration Service"

WANTED = MigrationSettings(
    enabled=True,
    authentication=AuthenticationType.KERBEROS,
    performance=PerformanceOption.SMB,
    use_any_network=False,
    networks=(MigrationNetwork(ipaddress.ip_network(SUBNET), 0),),
)
FRESH = MigrationState(
    enabled=False,
    authentication=AuthenticationType.CREDSSP,
    performance=PerformanceOption.COMPRESSION,
    max_virtual_machine_migrations=2,
    max_storage_migrations=2,
    use_any_network=False,
    networks=(),
)
# what a fresh host receives to reach WANTED, in hvlm's safe order
ADD = f"Add-VMMigrationNetwork -Subnet {SUBNET} -Priority 0"
ENABLE = "Enable-VMMigration"
SET = (
    "Set-VMHost -VirtualMachineMigrationAuthenticationType Kerberos "
    "-VirtualMachineMigrationPerformanceOption SMB"
)
PURGE = "klist purge -li 0x3e7"
CONVERGE = [ADD, ENABLE, SET]
# FRESH once CONVERGE ran, by hand: what Get-VMHost / Get-VMMigrationNetwork then show
CONVERGED = MigrationState(
    enabled=True,
    authentication=AuthenticationType.KERBEROS,
    performance=PerformanceOption.SMB,
    max_virtual_machine_migrations=2,
    max_storage_migrations=2,
    use_any_network=False,
    networks=(ObservedNetwork(ipaddress.ip_network(SUBNET), 0),),
)
# The effect of each step these tests send (as str(step)), written by hand; the host keeps
# everything else. Steps sent with -ErrorAction Stop are the same steps.
EFFECTS: dict[str, dict[str, object]] = {
    ADD: {"networks": (ObservedNetwork(ipaddress.ip_network(SUBNET), 0),)},
    ENABLE: {"enabled": True},
    SET: {"authentication": AuthenticationType.KERBEROS, "performance": PerformanceOption.SMB},
    PURGE: {},
}


def toward(peer: str) -> tuple[str, ...]:
    fqdn = f"{peer.lower()}.{DOMAIN}"
    return (f"{MIGRATION}/{peer}", f"{MIGRATION}/{fqdn}", f"cifs/{peer}", f"cifs/{fqdn}")


# --- the in-memory backends ----------------------------------------------------------------------


@dataclass
class FakeHost:
    """One host as HostSessionLike: its migration state, the steps it received, its faults."""

    name: str
    state: MigrationState = FRESH
    fail_at: str | None = None  # this cmdlet fails (CmdletError); the later steps are not run
    ignores: str | None = None  # this cmdlet "succeeds" without effect (a GPO puts it back)
    unreachable: bool = False  # every open fails (HostUnreachable)
    bug: type[Exception] | None = None  # read raises this: a bug below hvlm's errors
    sent: list[str] = field(default_factory=list)
    closed: bool = False

    def read(self) -> HostState:
        if self.bug is not None:
            raise self.bug("unsupported operand type(s) for +: 'int' and 'str'")
        return HostState(self.name, self.state, facts=HostFacts(part_of_domain=True))

    def run(self, commands: Sequence[HostCommand]) -> None:
        for command in commands:
            self.sent.append(str(command))
            if command.cmdlet == self.fail_at:
                raise CmdletError(self.name, str(command), "injected failure")
            if command.cmdlet != self.ignores:
                assert str(command) in EFFECTS, f"the fake does not know {command}"
                self.state = replace(self.state, **EFFECTS[str(command)])  # type: ignore[arg-type]

    def close(self) -> None:
        self.closed = True


def account(name: str, values: Sequence[str] = (), uac: int = WORKSTATION) -> DelegationState:
    return DelegationState(name, f"CN={name},CN=Computers,DC=corp,DC=example,DC=com", f"{name}$",
                           f"{name.lower()}.{DOMAIN}", (f"HOST/{name}",), uac, tuple(values))


@dataclass
class FakeDirectory:
    """The directory as DirectoryLike: computer accounts by name, every modify recorded."""

    accounts: dict[str, DelegationState]
    read_fails: bool = False  # the DC does not answer the search (directory unread)
    denied: str | None = None  # modifying this host's account is refused
    down_after_modifies: int | None = None  # the DC stops answering after this many modifies
    modifies: list[tuple[str, tuple[str, ...], tuple[str, ...], bool | None]] = field(
        default_factory=list)
    closed: bool = False

    def read(self, hosts: Sequence[HostSpec]) -> DirectoryState:
        if self.read_fails:
            raise DirectoryUnreachable(DC, "connect", "no directory server answered")
        found = tuple(self.accounts[h.key] for h in hosts if h.key in self.accounts)
        missing = tuple(h.name for h in hosts if h.key not in self.accounts)
        return DirectoryState(found, missing, "dc1")

    def modify(self, account: DelegationState, add: Sequence[str], delete: Sequence[str],
               protocol_transition: bool | None) -> None:
        if self.down_after_modifies is not None and len(self.modifies) >= self.down_after_modifies:
            raise DirectoryUnreachable(DC, f"modify {account.dn}", "timed out")
        self.modifies.append((account.name, tuple(add), tuple(delete), protocol_transition))
        if account.name == self.denied:
            raise DirectoryAccessDenied(DC, f"modify {account.dn}", "insufficientAccessRights")
        current = self.accounts[account.name.upper()]
        values = [v for v in current.allowed_to_delegate_to if v not in delete]
        values += [v for v in add if v not in values]
        uac = current.user_account_control
        if protocol_transition is not None:
            bit = UAC_TRUSTED_TO_AUTH_FOR_DELEGATION
            uac = uac | bit if protocol_transition else uac & ~bit
        self.accounts[current.name.upper()] = replace(
            current, allowed_to_delegate_to=tuple(values), user_account_control=uac)

    def close(self) -> None:
        self.closed = True


def manifest(names: Sequence[str] = ("HV01", "HV02")) -> Manifest:
    """Every host wants WANTED and migrates to every other (one group)."""
    hosts = tuple(
        HostSpec(name, f"{name.lower()}.{DOMAIN}",
                 ConnectionSpec(f"{name.lower()}.{DOMAIN}", 5986), WANTED, DelegationSettings(),
                 peers=tuple(p for p in names if p != name))
        for name in names
    )
    server = DirectoryServer(DC, f"dc1.{DOMAIN}", 636, True)
    return Manifest("apply-tests", hosts, directory=DirectorySpec(DOMAIN, (server,)))


@dataclass
class Run:
    plan: Plan
    report: ApplyReport
    hosts: dict[str, FakeHost]
    directory: FakeDirectory

    def outcomes(self) -> dict[str, str]:
        return {r.change.address: r.outcome.value for r in self.report.results}

    def details(self) -> dict[str, str]:
        return {r.change.address: r.detail for r in self.report.results if r.detail}


def apply(hosts: Mapping[str, FakeHost], directory: FakeDirectory, *,
          refresh_tickets: bool = False, selection: Sequence[str] = ()) -> Run:
    """What `hvlm apply --auto-approve` does, with the fakes as backends."""

    def open_host(spec: HostSpec) -> FakeHost:
        host = hosts[spec.key]
        if host.unreachable:
            raise HostUnreachable(spec.name, "connect", "connection refused")
        return host

    with open_fleet(manifest(list(hosts)), parallelism=4, progress=False, open_host=open_host,
                    open_directory=lambda spec: directory) as fleet:
        observation = fleet.observe(selection)
        plan = plan_fleet(fleet, observation, selection=selection,
                          refresh_tickets=refresh_tickets)
        report = apply_plan(fleet, plan, observation)
    return Run(plan, report, dict(hosts), directory)


# --- the table -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """Observed state and faults -> what was sent, what the report says."""

    hosts: tuple[FakeHost, ...]
    accounts: tuple[DelegationState, ...]
    sent: dict[str, list[str]]  # steps each host received (reads are not listed)
    modifies: list[tuple[str, tuple[str, ...], tuple[str, ...], bool | None]]
    outcomes: dict[str, str]  # change address -> applied / failed / skipped
    details: dict[str, str] = field(default_factory=dict)  # address -> start of the reason
    drift: tuple[str, ...] = ()  # starts of the drift lines
    unread: tuple[str, ...] = ()  # starts of the unread lines
    directory: dict[str, object] = field(default_factory=dict)  # FakeDirectory faults
    refresh_tickets: bool = False


def _dir(host: str) -> dict[str, str]:
    return {f"directory/{host}/allowedToDelegateTo": "applied",
            f"directory/{host}/protocolTransition": "applied"}


def _host(host: str, outcome: str = "applied") -> dict[str, str]:
    return {f"host/{host}/migration": outcome, f"host/{host}/network/{SUBNET}": outcome}


FRESH_ACCOUNTS = (account("HV01"), account("HV02"))
CASES: dict[str, Case] = {
    "two fresh hosts converge: delegation first, then the hosts, then their tickets": Case(
        hosts=(FakeHost("HV01"), FakeHost("HV02")),
        accounts=FRESH_ACCOUNTS,
        refresh_tickets=True,
        sent={"HV01": [*CONVERGE, PURGE], "HV02": [*CONVERGE, PURGE]},
        modifies=[("HV01", toward("HV02"), (), True), ("HV02", toward("HV01"), (), True)],
        outcomes={**_dir("HV01"), **_dir("HV02"), **_host("HV01"), **_host("HV02"),
                  "host/HV01/tickets": "applied", "host/HV02/tickets": "applied"},
    ),
    "a host write failing mid-way: its later steps are skipped, the other host goes on": Case(
        hosts=(FakeHost("HV01", fail_at="Enable-VMMigration"), FakeHost("HV02")),
        accounts=FRESH_ACCOUNTS,
        refresh_tickets=True,
        sent={"HV01": [ADD, ENABLE], "HV02": [*CONVERGE, PURGE]},
        modifies=[("HV01", toward("HV02"), (), True), ("HV02", toward("HV01"), (), True)],
        outcomes={**_dir("HV01"), **_dir("HV02"), **_host("HV01", "failed"), **_host("HV02"),
                  "host/HV01/tickets": "skipped", "host/HV02/tickets": "applied"},
        details={f"host/HV01/network/{SUBNET}": "HV01: Enable-VMMigration: injected failure",
                 "host/HV01/tickets": "skipped: an earlier step of HV01 failed (HV01: Enable"},
    ),
    "a refused directory modify: that host's changes are skipped, nothing is half-done": Case(
        hosts=(FakeHost("HV01"), FakeHost("HV02")),
        accounts=FRESH_ACCOUNTS,
        directory={"denied": "HV01"},
        sent={"HV01": [], "HV02": CONVERGE},
        modifies=[("HV01", toward("HV02"), (), True), ("HV02", toward("HV01"), (), True)],
        outcomes={"directory/HV01/allowedToDelegateTo": "failed",
                  "directory/HV01/protocolTransition": "failed", **_dir("HV02"),
                  **_host("HV01", "skipped"), **_host("HV02")},
        details={"directory/HV01/allowedToDelegateTo": f"{DC}: modify CN=HV01,",
                 "host/HV01/migration": "skipped: an earlier step of HV01 failed (directory: "},
    ),
    "a directory that stops answering is not waited for once per account": Case(
        hosts=(FakeHost("HV01"), FakeHost("HV02")),
        accounts=FRESH_ACCOUNTS,
        directory={"down_after_modifies": 0},
        sent={"HV01": [], "HV02": []},
        modifies=[],
        outcomes={"directory/HV01/allowedToDelegateTo": "failed",
                  "directory/HV01/protocolTransition": "failed",
                  "directory/HV02/allowedToDelegateTo": "skipped",
                  "directory/HV02/protocolTransition": "skipped",
                  **_host("HV01", "skipped"), **_host("HV02", "skipped")},
        details={"directory/HV02/allowedToDelegateTo":
                 "skipped: the directory did not answer (timed out)"},
    ),
    "verification reads again: a setting that did not stick is drift": Case(
        hosts=(FakeHost("HV01", ignores="Set-VMHost"), FakeHost("HV02")),
        accounts=FRESH_ACCOUNTS,
        sent={"HV01": CONVERGE, "HV02": CONVERGE},
        modifies=[("HV01", toward("HV02"), (), True), ("HV02", toward("HV01"), (), True)],
        outcomes={**_dir("HV01"), **_dir("HV02"), **_host("HV01"), **_host("HV02")},
        drift=("host/HV01/migration: still differs after apply",),
    ),
    "an unread host gets nothing; its peers and its account still converge": Case(
        hosts=(FakeHost("HV01"), FakeHost("HV02", unreachable=True)),
        accounts=FRESH_ACCOUNTS,
        refresh_tickets=True,
        sent={"HV01": [*CONVERGE, PURGE], "HV02": []},
        modifies=[("HV01", toward("HV02"), (), True), ("HV02", toward("HV01"), (), True)],
        outcomes={**_dir("HV01"), **_dir("HV02"), **_host("HV01"),
                  "host/HV01/tickets": "applied"},
        unread=("host/HV02: ",),
    ),
    "no host is switched to Kerberos while the directory is unread": Case(
        hosts=(FakeHost("HV01"), FakeHost("HV02")),
        accounts=FRESH_ACCOUNTS,
        directory={"read_fails": True},
        sent={"HV01": [], "HV02": []},
        modifies=[],
        outcomes={**_host("HV01", "skipped"), **_host("HV02", "skipped")},
        details={"host/HV01/migration": "skipped: switching to Kerberos needs its delegation, "
                                        "and the directory was not read"},
        unread=("directory: the directory was not read: ",),
    ),
    "nor a host without a computer account; the other converges": Case(
        hosts=(FakeHost("HV01"), FakeHost("HV02")),
        accounts=(account("HV02"),),
        sent={"HV01": [], "HV02": CONVERGE},
        modifies=[("HV02", toward("HV01"), (), True)],
        outcomes={**_dir("HV02"), **_host("HV01", "skipped"), **_host("HV02")},
        details={"host/HV01/migration": "skipped: switching to Kerberos needs its delegation, "
                                        "and it has no computer account"},
    ),
    "a converged fleet: nothing is sent, nothing is modified": Case(
        hosts=(FakeHost("HV01", CONVERGED),),
        accounts=(account("HV01", uac=WORKSTATION | UAC_TRUSTED_TO_AUTH_FOR_DELEGATION),),
        sent={"HV01": []},
        modifies=[],
        outcomes={},
    ),
}


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_apply(case: Case) -> None:
    hosts = {h.name: replace(h, sent=[]) for h in case.hosts}
    directory = FakeDirectory({a.name: a for a in case.accounts}, **case.directory)  # type: ignore[arg-type]
    run = apply(hosts, directory, refresh_tickets=case.refresh_tickets)

    assert {name: host.sent for name, host in run.hosts.items()} == case.sent
    assert directory.modifies == case.modifies
    assert run.outcomes() == case.outcomes
    details = run.details()
    for address, start in case.details.items():
        assert details[address].startswith(start), (address, details[address])
    assert len(run.report.drift) == len(case.drift)
    for line, start in zip(run.report.drift, case.drift, strict=True):
        assert line.startswith(start), line
    assert len(run.report.unread) == len(case.unread)
    for line, start in zip(run.report.unread, case.unread, strict=True):
        assert line.startswith(start), line
    expected_ok = not case.drift and not case.unread and set(case.outcomes.values()) <= {"applied"}
    assert run.report.ok is expected_ok
    # every session opened was closed, whatever happened
    assert all(h.closed for h in run.hosts.values() if not h.unreachable)
    assert directory.closed


def test_the_report_follows_the_plan_order_and_applies_nothing_outside_it() -> None:
    hosts = {"HV01": FakeHost("HV01"), "HV02": FakeHost("HV02")}
    run = apply(hosts, FakeDirectory({a.name: a for a in FRESH_ACCOUNTS}), selection=["HV02"])

    assert [r.change.address for r in run.report.results] == [c.address for c in run.plan.changes]
    assert hosts["HV01"].sent == [] and hosts["HV02"].sent == CONVERGE
    assert run.report.ok


# --- honest failures: a bug is not a host error ------------------------------------------------


def test_a_bug_in_a_host_read_reaches_the_caller_not_the_report() -> None:
    hosts = {"HV01": FakeHost("HV01"), "HV02": FakeHost("HV02", bug=TypeError)}
    directory = FakeDirectory({a.name: a for a in FRESH_ACCOUNTS})
    with pytest.raises(TypeError, match="unsupported operand"):
        apply(hosts, directory)  # raised in a worker thread, re-raised here
    assert hosts["HV01"].closed and hosts["HV02"].closed  # the fleet still closes its sessions
    assert directory.modifies == [] and hosts["HV01"].sent == []


class WriteReached(Exception):
    """A sentinel: raised by the host write itself, so that nothing else can raise it."""


def test_a_bug_in_a_host_write_stops_apply_instead_of_failing_the_host() -> None:
    class Broken(FakeHost):
        def run(self, commands: Sequence[HostCommand]) -> None:
            self.sent.extend(str(c) for c in commands)
            raise WriteReached(self.name)

    hosts: dict[str, FakeHost] = {"HV01": Broken("HV01"), "HV02": FakeHost("HV02")}
    directory = FakeDirectory({a.name: a for a in FRESH_ACCOUNTS})
    with pytest.raises(WriteReached, match=r"^HV01$"):
        apply(hosts, directory)
    assert hosts["HV01"].sent == CONVERGE  # the write was reached, with the planned steps
    assert len(directory.modifies) == 2  # after the directory phase, as planned


def test_a_bug_in_the_directory_is_not_directory_unread() -> None:
    class Broken(FakeDirectory):
        def read(self, hosts: Sequence[HostSpec]) -> DirectoryState:
            raise KeyError("sAMAccountName")

    with pytest.raises(KeyError, match="sAMAccountName"):
        apply({"HV01": FakeHost("HV01")}, Broken({}))


def test_a_bug_in_a_host_session_is_an_internal_error_for_the_cli(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`hvlm plan` with a host backend raising TypeError: one line "internal error", exit 1,
    never "host-unread"; with --log-level debug, the traceback."""
    from tests.integration.helpers import hvlm_in_process

    def open_host(spec: HostSpec) -> FakeHost:
        return FakeHost(spec.name, bug=TypeError)

    def open_directory(spec: DirectorySpec) -> FakeDirectory:
        return FakeDirectory({})

    monkeypatch.setattr("hvlm.backends.default_host_opener", open_host)
    monkeypatch.setattr("hvlm.backends.default_directory_opener", open_directory)
    manifest_path = str(ROOT / "examples" / "prod-east.yaml")
    result = hvlm_in_process({}, "plan", manifest_path, "--no-color")

    assert result.code == 1, result
    lines = [line for line in result.stderr.splitlines() if "internal error" in line]
    assert len(lines) == 1 and lines[0].startswith("internal error: TypeError: unsupported")
    assert "host-unread" not in result.output and "Traceback" not in result.stderr
    debug = hvlm_in_process({}, "--log-level", "debug", "plan", manifest_path, "--no-color",
                            traceback_expected=True)
    assert debug.code == 1 and "Traceback (most recent call last)" in debug.stderr


def test_host_and_directory_sessions_map_their_backends_failures_and_nothing_else() -> None:
    """The boundary itself (no network): a backend library's exception becomes an hvlm error
    naming the target and the step; a TypeError leaves the session as it is."""
    import requests
    from ldap3.core.exceptions import LDAPOperationResult

    from hvlm.directory.session import DirectorySession, SimpleCredentials
    from hvlm.errors import HostError
    from hvlm.hosts.session import Credentials, HostSession

    spec = replace(manifest(["HV01"]).hosts[0],
                   connection=ConnectionSpec("hv01.corp.example.com", 5986, retries=0))
    host = HostSession(spec, Credentials("user", "pass"))

    def refused() -> None:
        raise requests.exceptions.ConnectionError("[Errno 111] Connection refused")

    def bug() -> None:
        raise TypeError("can only concatenate str (not 'int') to str")

    with pytest.raises(HostUnreachable, match=r"^HV01: read: connection refused by hv01\."):
        host._call("read", refused)
    with pytest.raises(TypeError):
        host._call("read", bug)
    assert not isinstance(TypeError(), HostError)

    directory_spec = manifest(["HV01"]).directory
    assert directory_spec is not None
    directory = DirectorySession(directory_spec, SimpleCredentials("user", "pass"))
    directory._conn = object()  # type: ignore[assignment]  # never used: the operations fail

    def denied(conn: object) -> None:
        raise LDAPOperationResult(result=50, description="insufficientAccessRights")

    def broken(conn: object) -> None:
        raise KeyError("sAMAccountName")

    with pytest.raises(DirectoryAccessDenied, match=rf"^{DC}: modify: insufficientAccessRights"):
        directory._call("modify", denied)
    with pytest.raises(KeyError):
        directory._call("modify", broken)


@dataclass
class FailingOver(FakeDirectory):
    """Two DCs behind one session: dc1 takes the first `on_dc1` modifies, then the session fails
    over to dc2, which holds the accounts as they were before (dc1's writes never replicated)."""

    on_dc1: int = 1
    dc2: dict[str, DelegationState] = field(default_factory=dict)
    servers: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.dc2 = dict(self.accounts)

    def modify(self, account: DelegationState, add: Sequence[str], delete: Sequence[str],
               protocol_transition: bool | None) -> str:
        if len(self.modifies) == self.on_dc1:  # dc1 goes away: from now on dc2 is the directory
            self.accounts = self.dc2
        super().modify(account, add, delete, protocol_transition)
        server = "ldaps://dc1" if len(self.modifies) <= self.on_dc1 else "ldaps://dc2"
        self.servers.append(server)
        return server

    def read(self, hosts: Sequence[HostSpec]) -> DirectoryState:
        state = super().read(hosts)
        server = "ldaps://dc2" if self.accounts is self.dc2 else "ldaps://dc1"
        return replace(state, server=server)


def test_a_failover_in_the_add_phase_re_applies_on_the_next_dc_what_the_lost_one_took() -> None:
    """HV01 is written on dc1, which then goes away: HV02 lands on dc2, and HV01's write is
    re-applied there (not linked: a value left only on dc1 would lose to dc2's copy)."""
    accounts = (account("HV01"), account("HV02"))
    directory = FailingOver({a.name: a for a in accounts}, on_dc1=1)
    run = apply({n: FakeHost(n) for n in ("HV01", "HV02")}, directory)
    assert [m[0] for m in directory.modifies] == ["HV01", "HV02", "HV01"]
    assert directory.servers == ["ldaps://dc1", "ldaps://dc2", "ldaps://dc2"]
    assert run.details()["directory/HV01/allowedToDelegateTo"] == (
        "written on ldaps://dc1; it went away: re-applied on ldaps://dc2")
    assert run.details()["directory/HV02/allowedToDelegateTo"] == "written on ldaps://dc2"
    assert set(toward("HV02")) <= set(directory.dc2["HV01"].allowed_to_delegate_to)
    assert run.report.ok, run.report


def test_a_saved_plan_switching_to_kerberos_reads_the_directory_and_applies() -> None:
    """`apply PLANFILE` when the delegation is already in place: the plan changes no account, yet
    it switches hosts to Kerberos, so their accounts are targets (the switch depends on their
    delegation), the directory is read again (the Kerberos guard needs it) and the hosts are
    switched: the GitOps retry after delegation-not-replicated converges instead of skipping
    forever."""
    from hvlm.cli.plan import observe_for_saved_plan
    from hvlm.plan import Address, Kind

    hosts = {n: FakeHost(n) for n in ("HV01", "HV02")}
    bits = WORKSTATION | UAC_TRUSTED_TO_AUTH_FOR_DELEGATION
    accounts = {"HV01": account("HV01", toward("HV02"), bits),
                "HV02": account("HV02", toward("HV01"), bits)}
    directory = FakeDirectory(accounts)
    with open_fleet(manifest(list(hosts)), parallelism=2, progress=False,
                    open_host=lambda s: hosts[s.key], open_directory=lambda s: directory) as fleet:
        plan = plan_fleet(fleet, fleet.observe())
        assert not plan.in_phase(Phase.DIRECTORY_ADD)
        assert {t.address for t in plan.targets
                if Address.parse(t.address).kind is Kind.DIRECTORY} == {
            "directory/HV01", "directory/HV02"}
        observation = observe_for_saved_plan(fleet, plan)
        assert observation.directory is not None
        report = apply_plan(fleet, plan, observation)
    assert report.ok, [(r.change.address, r.outcome.value, r.detail) for r in report.results]
    assert all(h.state.authentication is AuthenticationType.KERBEROS for h in hosts.values())
