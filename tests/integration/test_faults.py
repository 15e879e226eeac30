"""Issue 8's fault suite: every lab fault in every phase of `hvlm apply`, invariants after each.

Faults: a dropped connection, HTTP 500, a cmdlet error, a hung host, a host refusing
authentication (401), and the directory down / hung / refusing. Phases: the read, the write, the
verification read, and the directory write. A fault is switched on from the start, or from a given
request of the host onwards (`fault_after`: a host with changes receives open 2, read 2, write 2,
verify 2, close 1), or by an LDAP proxy that fails on the first modify or on the first search
after one (`LdapFaultProxy`).

After every case, whatever happened:
- no host is left with migration enabled and no migration network (the lab's host state);
- migration was not disabled on a host where it was enabled (the manifest never asks for that);
- no unrelated delegation value was lost (MSSQLSvc/... seeded on every account);
- the run exited 1 and its output names the host (or the directory server) and the step;
- the next apply, fault cleared, exits 0 and the fleet is converged.

Two hosts are faulted at once: FS01 is a fresh host (migration disabled, no network) and FS02
migrates on an old network that the manifest replaces; FS03 stays healthy and must converge in
spite of them. The CLI runs in-process (hvlm.cli.main); the concurrency case uses two processes.
Run inside a private network namespace (Samba's ports are fixed):
    tests/isolated.sh .venv/bin/python -m pytest tests/integration/test_faults.py -q
"""

from __future__ import annotations

import enum
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import pytest

from hvlm.hosts.commands import HostCommand
from hvlm_lab.hyperv.config import AuthenticationType, MigrationState
from hvlm_lab.samba.dc import SambaDC
from hvlm_lab.wsman.server import CmdletFault, FaultSpec
from tests.integration.helpers import (
    BEFORE_VERIFY,
    BEFORE_WRITE,
    ENABLED_OLD,
    FRESH,
    REPO,
    UNRELATED,
    WANTED,
    CliResult,
    LabFleet,
    ManifestOptions,
    fault_after,
    lab_fleet,
    lower,
    values_toward,
)
from tests.integration.ldap_fault_proxy import LdapFault, LdapFaultProxy
from tests.lab.samba_fixtures import OPERATOR, OPERATOR_PASSWORD

pytestmark = [pytest.mark.lab, pytest.mark.samba]
NAMES = ("FS01", "FS02", "FS03")
FAULTED = ("FS01", "FS02")
HEALTHY = "FS03"
START = {"FS01": FRESH, "FS02": ENABLED_OLD, "FS03": FRESH}
KERBEROS = AuthenticationType.Kerberos
INJECTED = "injected by the lab: device not ready"
FAST = ManifestOptions(retries=0, timeouts=(1, 2, 1), ldap_timeout=2)


class Fault(enum.Enum):
    DROP = "drop"
    HTTP_500 = "http500"
    ERROR = "error"
    HANG = "hang"
    AUTH = "401"


class Phase(enum.Enum):
    READ = "read"
    WRITE = "write"
    VERIFY = "verify"


# The step hvlm names in its one-line error ("HOST: step: message"), by phase: a write names the
# cmdlet that failed when it knows it.
WRITE_STEPS = ("apply", "Add-VMMigrationNetwork", "Enable-VMMigration", "Set-VMHost",
               "Remove-VMMigrationNetwork")
STEPS = {Phase.READ: ("connect", "read"), Phase.WRITE: WRITE_STEPS, Phase.VERIFY: ("read",)}
# Which request of a host (counted from 1) the fault starts after; None: from the first.
AFTER = {Phase.READ: None, Phase.WRITE: BEFORE_WRITE, Phase.VERIFY: BEFORE_VERIFY}
# The cmdlet that carries a cmdlet-scoped fault (500, error) in each phase.
CMDLET = {
    Phase.READ: "Get-VMHost",
    Phase.WRITE: "Add-VMMigrationNetwork",
    Phase.VERIFY: "Get-VMMigrationNetwork",
}


def fault_spec(fault: Fault, phase: Phase) -> FaultSpec:
    cmdlet = CMDLET[phase]
    return {
        Fault.DROP: FaultSpec(drop_after_requests=0),
        Fault.HTTP_500: FaultSpec(http_500_on_cmdlet=cmdlet),
        Fault.ERROR: FaultSpec(cmdlet_faults=(CmdletFault(cmdlet, INJECTED),)),
        Fault.HANG: FaultSpec(hang=True),
        Fault.AUTH: FaultSpec(refuse_auth=True),
    }[fault]


@pytest.fixture(scope="module")
def fault_lab(lab_dc: SambaDC,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LabFleet, LdapFaultProxy]]:
    """FS01..FS03 on the session's DC (tests/conftest.py), and an LDAP fault proxy to it."""
    workdir = tmp_path_factory.mktemp("faults")
    with lab_fleet(lab_dc, workdir, NAMES) as fleet, \
            LdapFaultProxy(lab_dc, workdir / "proxy") as proxy:
        yield fleet, proxy


@pytest.fixture
def fleet(fault_lab: tuple[LabFleet, LdapFaultProxy]) -> LabFleet:
    fleet, proxy = fault_lab
    proxy.fault = LdapFault.NONE
    fleet.reset(START)
    fleet.ldap_user, fleet.ldap_password = "Administrator@LAB.EXAMPLE", fleet.dc.config.admin_password
    fleet.write_manifest(FAST)
    fleet.in_process = True
    return fleet


@pytest.fixture
def proxy(fault_lab: tuple[LabFleet, LdapFaultProxy], fleet: LabFleet) -> LdapFaultProxy:
    """The fleet's manifest now reaches the DC through the fault proxy."""
    _, proxy = fault_lab
    fleet.write_manifest(ManifestOptions(retries=0, timeouts=FAST.timeouts, ldap_timeout=2,
                                         ldap_port=proxy.port, ldap_ca=proxy.ca_bundle))
    return proxy


# --- invariants ------------------------------------------------------------------------------------


def stranded(state: MigrationState) -> bool:
    return state.enabled and not state.use_any_network and not state.networks


def kerberos_without_delegation(fleet: LabFleet, before: dict[str, MigrationState]) -> list[str]:
    """Hosts switched to Kerberos by this run whose account lacks delegation toward a peer:
    their outgoing live migrations now fail (0x8009030D, DOMAIN.md) until delegation exists."""
    group = list(fleet.options.group or fleet.names)
    broken = []
    for name, state in fleet.states().items():
        if state.authentication is not KERBEROS or before[name].authentication is KERBEROS:
            continue
        peers = [p for p in group if p != name] if name in group else []
        wanted = lower(set().union(*(values_toward(p) for p in peers)))
        if not wanted <= lower(fleet.account(name).values):
            broken.append(name)
    return broken


def check_invariants(fleet: LabFleet, before: dict[str, MigrationState],
                     delegation_first: bool = True) -> None:
    for name, state in fleet.states().items():
        assert not stranded(state), f"{name} migrates on no network: {state}"
        assert state.enabled or not before[name].enabled, f"{name}: migration was disabled"
        assert UNRELATED in fleet.account(name).values, f"{name}: unrelated value lost"
    if delegation_first:
        assert kerberos_without_delegation(fleet, before) == []


def check_failure_named(result: CliResult, names: tuple[str, ...], steps: tuple[str, ...]) -> None:
    assert result.code == 1, result
    assert "Traceback" not in result.output, result
    named = re.compile(rf"({'|'.join(names)}): ({'|'.join(map(re.escape, steps))})\b")
    assert {m.group(1) for m in named.finditer(result.output)} == set(names), (steps, result)


def check_next_apply_converges(fleet: LabFleet) -> None:
    fleet.clear_faults()
    again = fleet.apply()
    assert again.code == 0, again
    assert fleet.converged()


# --- hosts -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("phase", list(Phase), ids=lambda p: p.value)
@pytest.mark.parametrize("fault", list(Fault), ids=lambda f: f.value)
def test_host_fault(fleet: LabFleet, fault: Fault, phase: Phase) -> None:
    before = fleet.states()
    spec, after = fault_spec(fault, phase), AFTER[phase]
    if fault is Fault.DROP and after is not None:  # exact: the server counts requests itself
        spec, after = FaultSpec(drop_after_requests=after), None
    elif fault in (Fault.HTTP_500, Fault.ERROR) and phase is not Phase.VERIFY:
        after = None  # the cmdlet only runs in that phase
    if fault is Fault.DROP and phase is Phase.READ:
        spec = FaultSpec(drop_after_requests=2)  # the pool opens; the read pipeline is cut
    arming: AbstractContextManager[None] = nullcontext()
    if after is None:
        fleet.fault(spec, *FAULTED)
    else:
        arming = fault_after(fleet, FAULTED, after, spec)
    with arming:
        result = fleet.apply()

    check_invariants(fleet, before)
    if phase is Phase.VERIFY:  # written, then not verified: the host is right, the run is not
        assert result.code == 1, result
        assert all(f"{n}: verification read failed" in result.output for n in FAULTED), result
    check_failure_named(result, FAULTED, STEPS[phase])
    if fault is Fault.ERROR:  # the host's own message, and which cmdlet said it
        assert INJECTED in result.output and CMDLET[phase] in result.output, result
    assert fleet.state(HEALTHY) == WANTED
    if phase is Phase.READ:  # an unread host is never written
        assert fleet.states()["FS01"] == FRESH and fleet.states()["FS02"] == ENABLED_OLD
    check_next_apply_converges(fleet)


def test_the_report_of_an_apply_that_could_not_read_a_host_says_it_failed(
    fleet: LabFleet,
) -> None:
    fleet.fault(FaultSpec(refuse_auth=True), "FS01")
    result = fleet.apply("--format", "json")
    assert result.code == 1, result
    assert json.loads(result.stdout)["ok"] is False


@pytest.mark.parametrize("phase", [Phase.READ, Phase.WRITE], ids=lambda p: p.value)
def test_a_bug_inside_a_host_session_is_an_internal_error_not_a_host_failure(
    fleet: LabFleet, monkeypatch: pytest.MonkeyPatch, phase: Phase
) -> None:
    """A TypeError inside the real HostSession (where pypsrp is called), as a bug in hvlm would
    raise it: `hvlm apply` says "internal error" once and exits 1; it is never reported as the
    host unread or failed, and no host is written after it."""
    from hvlm.hosts import session

    real_add = session._add

    def add(ps: object, command: HostCommand) -> None:
        if phase is Phase.READ or not command.cmdlet.startswith("Get-"):
            raise TypeError("can only concatenate str (not \"int\") to str")
        real_add(ps, command)  # type: ignore[arg-type]

    before = fleet.states()
    monkeypatch.setattr(session, "_add", add)
    result = fleet.apply()

    assert result.code == 1, result
    internal = [line for line in result.stderr.splitlines() if "internal error" in line]
    assert len(internal) == 1 and internal[0].startswith("internal error: TypeError: can only")
    assert "host-unread" not in result.output and "failed  host/" not in result.output
    assert "Traceback" not in result.output
    assert fleet.writes() == [] and fleet.states() == before
    monkeypatch.undo()
    check_next_apply_converges(fleet)


# --- the directory -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DirectoryCase:
    name: str
    proxy_fault: LdapFault = LdapFault.NONE
    operator: bool = False  # bind as a user without SeEnableDelegationPrivilege
    wrong_password: bool = False
    words: tuple[str, ...] = ()  # what the output must say


READ_FAILED = ("the directory was not read", "ldaps://dc1.lab.example")
WRITE_FAILED = ("failed  directory/FS01/allowedToDelegateTo", "modify CN=FS01,CN=Computers")
DIRECTORY_CASES = [
    DirectoryCase("read-down", LdapFault.DOWN, words=(*READ_FAILED, "connect")),
    DirectoryCase("read-401", wrong_password=True,
                  words=(*READ_FAILED, "bind as Administrator@LAB.EXAMPLE", "invalidCredentials")),
    DirectoryCase("write-drop", LdapFault.DROP_ON_MODIFY, words=WRITE_FAILED),
    DirectoryCase("write-hang", LdapFault.HANG_ON_MODIFY, words=(*WRITE_FAILED, "timed out")),
    DirectoryCase("write-error", operator=True,
                  words=(*WRITE_FAILED, "insufficientAccessRights", "SeEnableDelegationPrivilege")),
    DirectoryCase("verify-drop", LdapFault.DROP_ON_VERIFY,
                  words=("directory: verification read failed", "search computer accounts")),
]


@pytest.mark.parametrize("case", DIRECTORY_CASES, ids=lambda c: c.name)
def test_directory_fault(fleet: LabFleet, proxy: LdapFaultProxy, case: DirectoryCase) -> None:
    before = fleet.states()
    proxy.fault = case.proxy_fault
    if case.operator:
        fleet.ldap_user, fleet.ldap_password = f"{OPERATOR}@LAB.EXAMPLE", OPERATOR_PASSWORD
    if case.wrong_password:
        fleet.ldap_password = "not-the-password"
    result = fleet.apply()

    # delegation first in every phase: with the directory unread, no host is switched to Kerberos
    check_invariants(fleet, before, delegation_first=True)
    assert result.code == 1, result
    assert "Traceback" not in result.output, result
    for word in case.words:
        assert word in result.output, (word, result)
    if case.name.startswith("write"):
        # delegation first: a host whose delegation could not be written is not switched over
        assert fleet.states() == START, result
        assert "Apply FAILED" in result.output
    proxy.fault = LdapFault.NONE
    fleet.ldap_user, fleet.ldap_password = "Administrator@LAB.EXAMPLE", fleet.dc.config.admin_password
    check_next_apply_converges(fleet)


def test_a_host_is_not_switched_to_kerberos_while_the_directory_is_unread(
    fleet: LabFleet, proxy: LdapFaultProxy
) -> None:
    before = fleet.states()
    proxy.fault = LdapFault.DOWN
    assert fleet.apply().code == 1
    assert kerberos_without_delegation(fleet, before) == []


def test_directory_dropped_while_pruning_loses_nothing_and_prunes_next_time(
    fleet: LabFleet, proxy: LdapFaultProxy
) -> None:
    assert fleet.apply().code == 0  # every host a peer of every other
    pruning = ManifestOptions(group=["FS01", "FS02"], prune=True, retries=0,
                              timeouts=FAST.timeouts, ldap_timeout=2, ldap_port=proxy.port,
                              ldap_ca=proxy.ca_bundle)
    fleet.write_manifest(pruning)  # FS03 leaves the group: values toward it become stale
    before, accounts = fleet.states(), fleet.accounts()
    proxy.fault = LdapFault.DROP_ON_MODIFY
    result = fleet.apply()

    check_invariants(fleet, before)
    assert result.code == 1, result
    assert "failed  directory/FS01/allowedToDelegateTo" in result.output, result
    assert fleet.accounts() == accounts  # nothing written, nothing lost
    proxy.fault = LdapFault.NONE
    assert fleet.apply().code == 0
    assert lower(fleet.account("FS01").values) == lower({UNRELATED} | values_toward("FS02"))
    assert lower(fleet.account("FS03").values) == {UNRELATED.lower()}


def test_a_transient_drop_is_retried_and_the_apply_succeeds(fleet: LabFleet) -> None:
    fleet.write_manifest(ManifestOptions(retries=1, timeouts=FAST.timeouts, ldap_timeout=2))
    fleet.fault(FaultSpec(drop_after_requests=BEFORE_WRITE, drop_once=True), *FAULTED)
    result = fleet.apply()
    assert result.code == 0, result
    assert all(fleet.server.stats(n)["dropped"] == 1 for n in FAULTED)
    assert fleet.converged()


# --- two applies at once -----------------------------------------------------------------------------


def test_two_applies_at_the_same_time_both_converge_and_lose_nothing(fleet: LabFleet) -> None:
    """Two processes plan the same changes (both read before either writes) and both write them.

    What makes both succeed, as observed: the hosts take the second copy of each step as a
    no-op (an existing network is "already exists": done; the rest of that pipeline runs again);
    the later process's modify of an account (value additions plus the guarded userAccountControl
    delete-old/add-new) fails as a whole with attributeOrValueExists or noSuchAttribute, and hvlm
    re-reads the account and finds nothing left to do. So both exit 0, and a third run plans
    nothing and writes nothing.
    """
    before = fleet.states()
    command = [sys.executable, "-m", "hvlm", "--log-format", "json", "apply",
               str(fleet.manifest), "--auto-approve"]
    procs = [subprocess.Popen(command, env=fleet.env(), cwd=REPO, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        results.append(CliResult(proc.returncode, out, err))

    check_invariants(fleet, before)
    assert [r.code for r in results] == [0, 0], results
    assert fleet.converged()
    fleet.server.reset_stats()
    third = fleet.plan()
    assert third.code == 0, third
    assert fleet.writes() == []
