"""hvlm's host sessions against the lab: real pypsrp over real WSMan/PSRP on loopback.

One host is read with a HostSession; changes and fleets go through hvlm's one orchestrator,
hvlm.reconcile (observe, plan, apply_plan with verification), with the real host backend
(HostSession, kept by `Opener` for assertions about each step) and an in-memory directory whose
accounts already hold what the manifest wants (`ConvergedDirectory`), so plans change hosts only.

Every assertion about cost is made with the lab's counters (WSMan actions per host), every
assertion about effect with the simulated host's state, every assertion about errors on the one
line an operator would see.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import spnego
import structlog

from hvlm.errors import CmdletError, CredentialsMissing, HostAuthError, HostError, HostUnreachable
from hvlm.hosts.commands import (
    PURGE_SYSTEM_TICKETS,
    READ_STATEMENTS,
    HostCommand,
    add_network,
    host_commands,
)
from hvlm.hosts.session import Credentials, HostSession
from hvlm.hosts.write import ApplyResult, StepStatus, apply_host_changes
from hvlm.logs import configure as configure_logs
from hvlm.model import (
    UAC_TRUSTED_TO_AUTH_FOR_DELEGATION,
    AuthenticationType,
    ConnectionSpec,
    DelegationSettings,
    DirectoryServer,
    DirectorySpec,
    HostSpec,
    Manifest,
    MigrationSettings,
    PerformanceOption,
    Timeouts,
    Transport,
    WinRMAuth,
)
from hvlm.model import (
    MigrationNetwork as WantedNetwork,
)
from hvlm.plan import Plan
from hvlm.reconcile import ApplyReport, Outcome, apply_plan, open_fleet, plan_fleet
from hvlm.state import DelegationState, DirectoryState, HostState, ObservedNetwork
from hvlm_lab.hyperv.config import AuthenticationType as LabAuth
from hvlm_lab.hyperv.host import (
    HyperVHost,
    MigrationNetwork,
    MigrationState,
    server_2022,
    server_2025,
)
from hvlm_lab.pki import LabCA
from hvlm_lab.wsman.server import (
    CmdletFault,
    FaultSpec,
    LabEndpointConfig,
    LabServer,
)
from hvlm_lab.wsman.server import (
    Credentials as LabCredentials,
)
from hvlm_lab.wsman.server import (
    Transport as LabTransport,
)

pytestmark = pytest.mark.lab

USER, PASSWORD = "labadmin", "S3cret-Lab-Pass!"
CREDS = Credentials(USER, PASSWORD)
NET = ipaddress.ip_network("192.168.10.0/24")
OLD_NET = ipaddress.ip_network("10.99.0.0/16")
FAST = Timeouts(connect_seconds=5, read_seconds=5, operation_seconds=2)

WANTED = MigrationSettings(
    enabled=True,
    authentication=AuthenticationType.KERBEROS,
    performance=PerformanceOption.COMPRESSION,
    max_virtual_machine_migrations=2,
    max_storage_migrations=2,
    use_any_network=False,
    networks=(WantedNetwork(NET, 0),),
)


class Lab:
    """A started LabServer plus the HostSpecs that reach its hosts."""

    def __init__(self, server: LabServer, hosts: dict[str, HyperVHost]) -> None:
        self.server, self.hosts = server, hosts

    def spec(
        self,
        name: str,
        migration: MigrationSettings = WANTED,
        *,
        cert_validation: bool | str | None = None,
        timeouts: Timeouts = FAST,
        retries: int = 1,
    ) -> HostSpec:
        endpoint = self.server.endpoint(name)
        https = endpoint.scheme == "https"
        connection = ConnectionSpec(
            address=endpoint.host,
            port=endpoint.port,
            transport=Transport.HTTPS if https else Transport.HTTP,
            auth=WinRMAuth.BASIC if https else WinRMAuth.NTLM,
            cert_validation=str(self.server.ca_path)
            if cert_validation is None
            else cert_validation,
            timeouts=timeouts,
            retries=retries,
        )
        return HostSpec(
            name, f"{name.lower()}.lab.example", connection, migration, DelegationSettings()
        )

    def actions(self, name: str) -> list[str]:
        return list(self.server.stats(name)["actions"])

    def cmdlets(self, name: str) -> list[dict[str, Any]]:
        return list(self.server.stats(name)["cmdlets"])

    def writes(self, name: str) -> list[str]:
        return [c["command"] for c in self.cmdlets(name) if not c["command"].startswith("Get-")]

    def fault(self, name: str, spec: FaultSpec) -> None:
        self.server.set_fault(name, spec)


StartLab = Callable[..., Lab]


@pytest.fixture(scope="module")
def lab_ca(tmp_path_factory: pytest.TempPathFactory) -> LabCA:
    return LabCA.create(tmp_path_factory.mktemp("hosts-ca"))


@pytest.fixture
def start_lab(lab_ca: LabCA, tmp_path: Path) -> Iterator[StartLab]:
    servers: list[LabServer] = []

    def start(configs: Sequence[Any], transport: LabTransport = LabTransport.HTTPS_BASIC) -> Lab:
        hosts = {c.name: HyperVHost(c) for c in configs}
        endpoints = [
            LabEndpointConfig(name, host, LabCredentials(USER, PASSWORD), transport=transport)
            for name, host in hosts.items()
        ]
        server = LabServer(endpoints, lab_ca, tmp_path / f"lab{len(servers)}", control_port=None)
        server.start()
        servers.append(server)
        return Lab(server, hosts)

    yield start
    for server in servers:
        server.stop()


def fresh(name: str = "HV01", **kwargs: Any) -> Any:
    return server_2022(name, ["192.168.10.11/24", "10.0.0.11/16"], [("vm1", "9.0")], **kwargs)


FULL_CYCLE = ["Create", "Receive", "Command", "Receive", "Delete"]
WORKSTATION_TRUST_ACCOUNT = 0x1000


def read_host(spec: HostSpec, credentials: Credentials = CREDS) -> HostState:
    """Open, read once, close: one host's HostSession (5 WSMan requests with Basic)."""
    with HostSession(spec, credentials) as session:
        return session.read()


@dataclass
class Opener:
    """hvlm's real host backend (an opened HostSession) with the tests' credentials, keeping every
    session (its last read and last write) and every failed open's HostError for assertions."""

    credentials: Credentials = CREDS
    sessions: dict[str, HostSession] = field(default_factory=dict)
    errors: dict[str, HostError] = field(default_factory=dict)

    def __call__(self, spec: HostSpec) -> HostSession:
        session = HostSession(spec, self.credentials)
        try:
            session.open()
        except HostError as error:
            self.errors[spec.key] = error
            raise
        self.sessions[spec.key] = session
        return session


class ConvergedDirectory:
    """In-memory directory: every host has its computer account, as the manifest wants it."""

    def __init__(self, spec: DirectorySpec) -> None:
        self.spec = spec

    def read(self, hosts: Sequence[HostSpec]) -> DirectoryState:
        uac = WORKSTATION_TRUST_ACCOUNT | UAC_TRUSTED_TO_AUTH_FOR_DELEGATION
        return DirectoryState(tuple(
            DelegationState(h.name, f"CN={h.name},CN=Computers,DC=lab,DC=example", f"{h.name}$",
                            h.fqdn, (f"HOST/{h.name}",), uac, ())
            for h in hosts
        ), (), "dc1.lab.example")

    def modify(self, account: DelegationState, add: Sequence[str], delete: Sequence[str],
               protocol_transition: bool | None) -> None:
        raise AssertionError(f"no directory change expected: {account.name} +{add} -{delete}")

    def close(self) -> None:
        pass


def manifest_of(specs: Sequence[HostSpec]) -> Manifest:
    server = DirectoryServer("ldaps://dc1.lab.example", "dc1.lab.example", 636, True)
    return Manifest("hosts", tuple(specs), directory=DirectorySpec("lab.example", (server,)))


@dataclass
class Applied:
    """One `hvlm apply` through the reconciler: the plan, the report, the hosts' sessions."""

    plan: Plan
    report: ApplyReport
    opener: Opener

    def result(self, name: str) -> ApplyResult:
        """What each step of the host's write did (HostSession.last_apply)."""
        result = self.opener.sessions[name].last_apply
        assert result is not None, f"{name} was not written"
        return result

    def details(self, name: str) -> list[str]:
        return [r.detail for r in self.report.results if r.change.host.upper() == name]

    def outcomes(self, name: str) -> set[Outcome]:
        return {r.outcome for r in self.report.results if r.change.host.upper() == name}

    def after(self, name: str) -> HostState:
        """The session's latest read: verification after a write, the safety net's after a
        failed one."""
        state = self.opener.sessions[name].last_read
        assert state is not None
        return state

    def remaining(self, spec: HostSpec) -> list[str]:
        """What still differs from the manifest on the host's latest read, as steps."""
        return [str(c) for c in host_commands(spec.migration, self.after(spec.key).migration)]


def apply_hosts(*specs: HostSpec, parallelism: int = 1, opener: Opener | None = None) -> Applied:
    """Observe, plan and apply (with verification) as `hvlm apply --auto-approve` does."""
    opener = opener or Opener()
    with open_fleet(manifest_of(specs), parallelism, progress=False, open_host=opener,
                    open_directory=ConvergedDirectory) as fleet:
        observation = fleet.observe()
        plan = plan_fleet(fleet, observation)
        report = apply_plan(fleet, plan, observation)
    return Applied(plan, report, opener)


# -- read -------------------------------------------------------------------------------------


def test_read_is_one_pipeline_and_five_requests(start_lab: StartLab) -> None:
    lab = start_lab([fresh()])
    state = read_host(lab.spec("HV01"))

    assert lab.actions("HV01") == FULL_CYCLE  # open 2 + one pipeline 2 + close 1
    assert {c["pipeline"] for c in lab.cmdlets("HV01")} == {lab.cmdlets("HV01")[0]["pipeline"]}
    # the statement count comes from the product's read list (issues 14 and 15 add statements)
    assert [c["statement"] for c in lab.cmdlets("HV01")] == list(range(len(READ_STATEMENTS)))
    assert lab.server.stats("HV01")["wsman_requests"] == 5
    m = state.migration
    assert (m.enabled, m.authentication, m.performance, m.use_any_network, m.networks) == (
        False,
        AuthenticationType.CREDSSP,
        PerformanceOption.COMPRESSION,
        False,
        (),
    )
    facts = state.facts
    assert (facts.computer_name, facts.part_of_domain, facts.domain) == (
        "HV01",
        True,
        "lab.example",
    )
    assert facts.hyperv_installed is True and not facts.is_server_2025_or_later
    assert ipaddress.ip_interface("192.168.10.11/24") in facts.addresses
    assert [(vm.name, vm.version) for vm in facts.vms] == [("vm1", "9.0")]
    assert "10.0" in facts.supported_versions
    assert state.read_warnings == ()


def test_read_a_2025_host_outside_the_domain_without_hyperv_role(start_lab: StartLab) -> None:
    lab = start_lab(
        [server_2025("HV25", part_of_domain=False), fresh("HV02", hyperv_installed=False)]
    )
    state = read_host(lab.spec("HV25"))
    assert state.facts.is_server_2025_or_later and state.facts.part_of_domain is False

    with pytest.raises(CmdletError) as caught:
        read_host(lab.spec("HV02"))
    assert str(caught.value).startswith("HV02: read (Get-VMHost): The term 'Get-VMHost' is not")
    assert lab.actions("HV02") == FULL_CYCLE  # the pool is still closed cleanly


def test_read_over_http_with_ntlm_and_message_encryption(start_lab: StartLab) -> None:
    lab = start_lab([fresh()], transport=LabTransport.HTTP_NEGOTIATE)
    spec = lab.spec("HV01")
    assert spec.connection.transport is Transport.HTTP
    state = read_host(spec)
    assert state.migration.max_virtual_machine_migrations == 2
    assert [a for a in lab.actions("HV01")] == FULL_CYCLE


# -- write ------------------------------------------------------------------------------------


def test_change_reads_writes_and_verifies_in_nine_requests(start_lab: StartLab) -> None:
    lab = start_lab([fresh()])
    applied = apply_hosts(lab.spec("HV01"))

    assert applied.report.ok and applied.report.drift == ()
    assert [s.status for s in applied.result("HV01").steps] == [StepStatus.APPLIED] * 3
    assert len(lab.actions("HV01")) <= 9
    assert lab.actions("HV01") == ["Create", "Receive"] + ["Command", "Receive"] * 3 + ["Delete"]
    # safe order: the network exists before migration is enabled
    assert lab.writes("HV01") == ["Add-VMMigrationNetwork", "Enable-VMMigration", "Set-VMHost"]
    live = lab.hosts["HV01"].snapshot()
    assert live.enabled and live.authentication is LabAuth.Kerberos
    assert [str(n.subnet) for n in live.networks] == ["192.168.10.0/24"]
    assert applied.after("HV01").migration.enabled  # the verification read

    lab.server.reset_stats()
    again = apply_hosts(lab.spec("HV01"))
    assert again.report.ok and not again.plan.changes and not again.report.results
    assert again.opener.sessions["HV01"].last_apply is None  # nothing written
    assert lab.actions("HV01") == FULL_CYCLE and lab.writes("HV01") == []


def test_replacing_a_network_never_passes_through_no_network(start_lab: StartLab) -> None:
    start = MigrationState(enabled=True, networks=(MigrationNetwork.parse("10.99.0.0/16", 0),))
    lab = start_lab([fresh(state=start)])
    applied = apply_hosts(lab.spec("HV01"))

    assert applied.report.ok
    assert lab.writes("HV01") == [
        "Add-VMMigrationNetwork",
        "Set-VMHost",
        "Remove-VMMigrationNetwork",
    ]
    assert len(lab.actions("HV01")) == 9
    live = lab.hosts["HV01"].snapshot()
    assert [str(n.subnet) for n in live.networks] == ["192.168.10.0/24"] and live.enabled


def test_a_failing_add_stops_before_anything_could_strand_the_host(start_lab: StartLab) -> None:
    start = MigrationState(enabled=True, networks=(MigrationNetwork.parse("10.99.0.0/16", 0),))
    lab = start_lab([fresh(state=start)])
    # APIPA is refused by Hyper-V's own validation: a non-terminating error turned into a stop
    apipa = ipaddress.ip_network("169.254.7.0/24")
    spec = lab.spec("HV01", replace(WANTED, networks=(WantedNetwork(apipa, 0),)))
    applied = apply_hosts(spec)

    statuses = [(s.command.cmdlet, s.status) for s in applied.result("HV01").steps]
    assert statuses == [
        ("Add-VMMigrationNetwork", StepStatus.FAILED),
        ("Set-VMHost", StepStatus.SKIPPED),
        ("Remove-VMMigrationNetwork", StepStatus.SKIPPED),
    ]
    error = applied.result("HV01").failures[0]
    assert str(error).startswith("HV01: Add-VMMigrationNetwork -Subnet 169.254.7.0/24 -Priority 0:")
    assert applied.outcomes("HV01") == {Outcome.FAILED}
    assert set(applied.details("HV01")) == {str(error)}  # the report names the failed step
    live = lab.hosts["HV01"].snapshot()
    assert live.enabled and [str(n.subnet) for n in live.networks] == ["10.99.0.0/16"]
    # the read after the failure says what still differs
    assert not applied.report.ok and applied.remaining(spec)


def test_already_exists_and_not_found_count_as_done(start_lab: StartLab) -> None:
    start = MigrationState(enabled=True, networks=(MigrationNetwork.parse("192.168.10.0/24", 0),))
    lab = start_lab([fresh(state=start)])
    stale = (
        add_network(WantedNetwork(NET, 0)),  # exists already (a decision from an old read)
        HostCommand("Set-VMHost", (("MaximumStorageMigrations", 3),)),
        HostCommand("Remove-VMMigrationNetwork", (("Subnet", "10.99.0.0/16"),)),  # absent
    )
    with HostSession(lab.spec("HV01"), CREDS) as session:
        result = apply_host_changes(session, stale)
        after = session.read()

    assert [s.status for s in result.steps] == [
        StepStatus.ALREADY_DONE,
        StepStatus.APPLIED,
        StepStatus.ALREADY_DONE,
    ]
    assert result.ok and after.migration.max_storage_migrations == 3
    # the add stopped the first pipeline; the rest ran in a second one, same pool
    assert lab.actions("HV01").count("Create") == 1
    assert lab.actions("HV01").count("Command") == 3


def test_a_terminating_cmdlet_fault_names_host_step_and_message(start_lab: StartLab) -> None:
    lab = start_lab([fresh()])
    lab.fault(
        "HV01",
        FaultSpec(
            cmdlet_faults=(
                CmdletFault(
                    "Set-VMHost",
                    "Failed to modify service settings (0x80090322).",
                    error_id="OperationFailed,Microsoft.HyperV.PowerShell.Commands.SetVMHost",
                ),
            )
        ),
    )
    spec = lab.spec("HV01")
    applied = apply_hosts(spec)

    assert [s.status for s in applied.result("HV01").steps] == [
        StepStatus.APPLIED,
        StepStatus.APPLIED,
        StepStatus.FAILED,
    ]
    error = applied.result("HV01").failures[0]
    assert error.target == "HV01"
    assert error.step == "Set-VMHost -VirtualMachineMigrationAuthenticationType Kerberos"
    assert "Failed to modify service settings" in error.detail
    assert "target principal name is incorrect" in error.hint
    assert set(applied.details("HV01")) == {str(error)} and not applied.report.ok
    assert applied.remaining(spec) == [
        "Set-VMHost -VirtualMachineMigrationAuthenticationType Kerberos"
    ]


def test_session_run_raises_the_first_failure(start_lab: StartLab) -> None:
    lab = start_lab([fresh()])
    lab.fault("HV01", FaultSpec(cmdlet_faults=(CmdletFault("Enable-VMMigration", "boom"),)))
    with HostSession(lab.spec("HV01"), CREDS) as session, pytest.raises(CmdletError) as caught:
        session.run(host_commands(WANTED, session.read().migration))
    # the lab's error id names the cmdlet, as real ones do: hvlm names the failing step
    assert str(caught.value).startswith("HV01: Enable-VMMigration: boom")


def test_http_500_on_a_cmdlet_is_a_host_error(start_lab: StartLab) -> None:
    lab = start_lab([fresh()])
    lab.fault("HV01", FaultSpec(http_500_on_cmdlet="Set-VMHost"))
    applied = apply_hosts(lab.spec("HV01"))
    assert applied.outcomes("HV01") == {Outcome.FAILED} and not applied.report.ok
    assert all(d.startswith("HV01: apply: WSMan fault") for d in applied.details("HV01"))
    assert lab.hosts["HV01"].snapshot().networks == ()  # the pipeline never ran


# -- hostile values ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "10.0.0.0/8; Disable-VMMigration",
        "$(Disable-VMMigration)",
        "192.168.10.0/24' ; Remove-VMMigrationNetwork -Subnet * #",
        "`n& Disable-VMMigration | Out-Null",
    ],
)
def test_metacharacters_reach_the_host_as_parameter_values(start_lab: StartLab, value: str) -> None:
    start = MigrationState(enabled=True, networks=(MigrationNetwork.parse("192.168.10.0/24", 0),))
    lab = start_lab([fresh(state=start)])
    steps = (
        HostCommand("Add-VMMigrationNetwork", (("Subnet", value),)),
        HostCommand("Remove-VMMigrationNetwork", (("Subnet", value),)),
    )
    with HostSession(lab.spec("HV01"), CREDS) as session:
        result = apply_host_changes(session, steps)
        read_back = session.read()

    sent = [
        c
        for c in lab.cmdlets("HV01")
        if c["command"].endswith("VMMigrationNetwork") and not c["command"].startswith("Get-")
    ]
    assert sent[0]["parameters"][0] == ["Subnet", value]
    assert all(not c["is_script"] for c in lab.cmdlets("HV01"))
    assert result.steps[0].status is StepStatus.FAILED  # bound, then refused as a subnet
    # nothing the value "says" happened
    assert read_back.migration.enabled
    assert read_back.migration.networks == (ObservedNetwork(NET, 0),)


# -- transport faults: one clear line naming the host -------------------------------------------


def test_wrong_password_is_one_line_with_a_credentials_hint(start_lab: StartLab) -> None:
    lab = start_lab([fresh()])
    with pytest.raises(HostAuthError) as caught:
        read_host(lab.spec("HV01"), Credentials(USER, "wrong-password"))
    line = str(caught.value)
    assert line.startswith("HV01: connect: authentication failed (HTTP 401, basic)")
    assert "HVLM_WINRM_USER" in line and "\n" not in line
    assert "wrong-password" not in line


def test_tls_with_another_ca_is_a_certvalidation_hint(start_lab: StartLab, tmp_path: Path) -> None:
    lab = start_lab([fresh()])
    other = LabCA.create(tmp_path / "other-ca")
    with pytest.raises(HostUnreachable) as caught:
        read_host(lab.spec("HV01", cert_validation=str(other.cert_path)))
    line = str(caught.value)
    assert line.startswith("HV01: connect: TLS handshake with https://127.0.0.1:")
    assert "certificate verify failed" in line and "connection.certValidation" in line
    assert "\n" not in line
    assert lab.server.stats("HV01")["wsman_requests"] == 0


def test_dropped_connection_is_retried_then_reported(start_lab: StartLab) -> None:
    lab = start_lab([fresh(), fresh("HV02")])
    # transient: the pipeline's Command is dropped once, the retry succeeds
    lab.fault("HV01", FaultSpec(drop_after_requests=2, drop_once=True))
    assert read_host(lab.spec("HV01")).name == "HV01"
    assert lab.server.stats("HV01")["dropped"] == 1

    # persistent: every request after the open is dropped
    lab.fault("HV02", FaultSpec(drop_after_requests=2))
    with pytest.raises(HostUnreachable) as caught:
        read_host(lab.spec("HV02", retries=2))
    line = str(caught.value)
    assert line.startswith("HV02: read: connection to https://127.0.0.1:")
    assert "dropped by the host" in line and "\n" not in line
    assert lab.server.stats("HV02")["dropped"] == 3  # first try + 2 bounded retries


def test_refused_connection_is_unreachable(start_lab: StartLab) -> None:
    lab = start_lab([fresh()])
    spec = lab.spec("HV01", retries=0)
    lab.server.stop()
    with pytest.raises(
        HostUnreachable, match=r"^HV01: connect: connection refused by 127\.0\.0\.1:"
    ):
        read_host(spec)


def test_basic_over_plain_http_is_refused_before_connecting() -> None:
    connection = ConnectionSpec("127.0.0.1", 9, Transport.HTTP, WinRMAuth.BASIC)
    spec = HostSpec("HV09", "hv09.lab.example", connection, WANTED, DelegationSettings())
    with pytest.raises(
        HostAuthError, match=r"^HV09: connect: Basic authentication over plain HTTP"
    ):
        read_host(spec)


def test_credentials_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HVLM_WINRM_USER", raising=False)
    monkeypatch.delenv("HVLM_WINRM_PASSWORD", raising=False)
    with pytest.raises(CredentialsMissing, match="HVLM_WINRM_USER and HVLM_WINRM_PASSWORD"):
        Credentials.from_env(WinRMAuth.BASIC)
    assert Credentials.from_env(WinRMAuth.KERBEROS) == Credentials()  # the ticket cache
    assert Credentials.from_env(WinRMAuth.NEGOTIATE) == Credentials()
    monkeypatch.setenv("HVLM_WINRM_USER", USER)
    monkeypatch.setenv("HVLM_WINRM_PASSWORD", PASSWORD)
    creds = Credentials.from_env(WinRMAuth.NTLM)
    assert (creds.username, creds.password) == (USER, PASSWORD)
    assert PASSWORD not in repr(creds)


# -- fleet ------------------------------------------------------------------------------------


def test_fleet_read_a_hung_and_a_refusing_host_do_not_stall_the_others(
    start_lab: StartLab,
) -> None:
    lab = start_lab([fresh(f"HV0{i}") for i in range(1, 6)])
    lab.fault("HV02", FaultSpec(hang=True))
    lab.fault("HV04", FaultSpec(refuse_auth=True))
    specs = [lab.spec(f"HV0{i}") for i in range(1, 6)]
    opener = Opener()
    with open_fleet(manifest_of(specs), 2, progress=False, open_host=opener,
                    open_directory=ConvergedDirectory) as fleet:
        states, errors = fleet.read_hosts(specs)

    assert sorted([*states, *errors]) == ["HV01", "HV02", "HV03", "HV04", "HV05"]
    hung, refused = opener.errors["HV02"], opener.errors["HV04"]
    assert isinstance(hung, HostUnreachable)
    assert str(hung).startswith("HV02: connect: no answer within 5s (read timeout)")
    assert isinstance(refused, HostAuthError) and str(refused).startswith("HV04: connect:")
    assert errors == {"HV02": str(hung), "HV04": str(refused)}  # each host's own line
    for name in ("HV01", "HV03", "HV05"):
        assert states[name].name == name and name not in errors
        assert lab.actions(name) == FULL_CYCLE
    assert lab.server.stats("HV02")["hung"] == 1  # a read timeout is never retried


def test_fleet_apply_isolates_a_failing_host(start_lab: StartLab) -> None:
    lab = start_lab([fresh(f"HV0{i}") for i in range(1, 4)])
    lab.fault("HV02", FaultSpec(cmdlet_faults=(CmdletFault("Set-VMHost", "access denied"),)))
    specs = [lab.spec(f"HV0{i}") for i in range(1, 4)]
    applied = apply_hosts(*specs, parallelism=3)

    ok = [n for n in ("HV01", "HV02", "HV03") if applied.outcomes(n) == {Outcome.APPLIED}]
    assert sorted(ok) == ["HV01", "HV03"] and applied.report.drift == ()
    assert applied.outcomes("HV02") == {Outcome.FAILED} and not applied.report.ok
    assert not applied.result("HV02").ok
    assert str(applied.result("HV02").failures[0]).startswith("HV02: ")
    assert all(d.startswith("HV02: ") for d in applied.details("HV02"))
    for name in ("HV01", "HV03"):
        assert len(lab.actions(name)) <= 9


def test_ticket_purge_runs_klist_with_arguments(start_lab: StartLab) -> None:
    lab = start_lab([fresh()])
    with HostSession(lab.spec("HV01"), CREDS) as session:
        session.run([PURGE_SYSTEM_TICKETS])
    assert lab.hosts["HV01"].purge_count() == 1
    (sent,) = lab.cmdlets("HV01")
    assert (sent["command"], sent["arguments"], sent["outcome"]) == (
        "klist",
        ["purge", "-li", "0x3e7"],
        "ok",
    )


def test_change_over_http_with_ntlm_and_message_encryption(start_lab: StartLab) -> None:
    lab = start_lab([fresh()], transport=LabTransport.HTTP_NEGOTIATE)
    applied = apply_hosts(lab.spec("HV01"))
    assert applied.report.ok and lab.hosts["HV01"].snapshot().enabled
    actions = lab.actions("HV01")
    assert actions == ["Create", "Receive"] + ["Command", "Receive"] * 3 + ["Delete"]


def test_fleet_progress_bar_renders_without_breaking_results(
    start_lab: StartLab, capsys: pytest.CaptureFixture[str]
) -> None:
    lab = start_lab([fresh("HV01"), fresh("HV02")])
    configure_logs("debug", "json")  # as the CLI does: logs to stderr
    specs = [lab.spec("HV01"), lab.spec("HV02")]
    try:
        with open_fleet(manifest_of(specs), 2, progress=True, open_host=Opener(),
                        open_directory=ConvergedDirectory) as fleet:
            states, errors = fleet.read_hosts(specs)
    finally:
        structlog.reset_defaults()
    assert sorted(states) == ["HV01", "HV02"] and errors == {}
    captured = capsys.readouterr()
    assert captured.out == ""  # stdout carries only results: progress and logs go to stderr
    assert '"host": "HV01"' in captured.err
    assert PASSWORD not in captured.err


def test_an_error_in_the_read_that_names_no_cmdlet_fails_the_read(start_lab: StartLab) -> None:
    lab = start_lab([fresh()])
    lab.fault(
        "HV01",
        FaultSpec(
            cmdlet_faults=(
                CmdletFault("Get-VMMigrationNetwork", "WMI is sad", False, "Mystery,hvlm_lab"),
            )
        ),
    )
    with pytest.raises(CmdletError, match=r"^HV01: read: WMI is sad"):
        read_host(lab.spec("HV01"))
    assert lab.actions("HV01") == FULL_CYCLE


# -- the safety net: a lab fault that ignores -ErrorAction Stop --------------------------------

STUBBORN_ADD_FAULT = CmdletFault(
    "Add-VMMigrationNetwork", "nope", terminating=False, ignore_error_action=True
)


def test_a_fresh_host_stranded_by_a_failed_add_is_turned_off_again(start_lab: StartLab) -> None:
    lab = start_lab([fresh()])
    # an injected error that stays non-terminating despite -ErrorAction Stop: Enable runs
    lab.fault("HV01", FaultSpec(cmdlet_faults=(STUBBORN_ADD_FAULT,)))
    applied = apply_hosts(lab.spec("HV01"))

    assert not applied.report.ok and applied.outcomes("HV01") == {Outcome.FAILED}
    assert [str(s.command) for s in applied.result("HV01").restored] == ["Disable-VMMigration"]
    live = lab.hosts["HV01"].snapshot()
    assert not live.enabled  # back as it was: never left on with no network
    assert not read_host(lab.spec("HV01")).migration.enabled  # what the host now says


def test_an_enabled_host_stranded_by_a_failed_add_gets_its_network_back_attempted(
    start_lab: StartLab,
) -> None:
    start = MigrationState(enabled=True, networks=(MigrationNetwork.parse("10.99.0.0/16", 4),))
    lab = start_lab([fresh(state=start)])
    lab.fault("HV01", FaultSpec(cmdlet_faults=(STUBBORN_ADD_FAULT,)))
    applied = apply_hosts(lab.spec("HV01"))

    # the old network is re-added (the lab's fault still fails every add, so hvlm says so)
    assert [(str(s.command), s.status) for s in applied.result("HV01").restored] == [
        ("Add-VMMigrationNetwork -Subnet 10.99.0.0/16 -Priority 4", StepStatus.FAILED)
    ]
    assert lab.writes("HV01")[-1] == "Add-VMMigrationNetwork"
    assert "Disable-VMMigration" not in lab.writes("HV01")  # an enabled host is never turned off
    assert not applied.report.ok


def test_negotiate_over_http_names_the_host_by_its_fqdn_and_falls_back_to_ntlm(
    start_lab: StartLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """hvlm dials 127.0.0.1 but names the host by its FQDN: the lab's acceptor sees that name
    as the NTLM target (MsvAvTargetName, the SPN a Kerberos ticket would be asked for) in the
    tokens it receives, and the exchange completes as NTLM (the lab host has no Kerberos keys)."""
    tokens: list[bytes] = []
    make_server = spnego.server

    def recording_server(*args: Any, **kwargs: Any) -> Any:
        context = make_server(*args, **kwargs)
        step = context.step

        def recorded(*args: Any, **kwargs: Any) -> Any:
            token = args[0] if args else kwargs.get("in_token")
            tokens.append(token or b"")
            return step(*args, **kwargs)

        context.step = recorded
        return context

    monkeypatch.setattr(spnego, "server", recording_server)
    lab = start_lab([fresh()], transport=LabTransport.HTTP_NEGOTIATE)
    spec = lab.spec("HV01")
    spec = replace(spec, connection=replace(spec.connection, auth=WinRMAuth.NEGOTIATE))
    fqdn = "hv01.lab.example"
    assert spec.connection.address == "127.0.0.1" and spec.fqdn == fqdn
    assert read_host(spec, CREDS).migration.max_storage_migrations == 2
    assert lab.actions("HV01") == FULL_CYCLE

    seen = b"".join(tokens).lower()
    assert b"NTLMSSP\0".lower() in seen  # NTLM inside SPNEGO: the fallback
    assert f"/{fqdn}".encode("utf-16-le") in seen, "the FQDN never reached the host"
    assert "/127.0.0.1".encode("utf-16-le") not in seen


def test_wrong_password_over_ntlm_is_the_same_clear_line(start_lab: StartLab) -> None:
    lab = start_lab([fresh()], transport=LabTransport.HTTP_NEGOTIATE)
    with pytest.raises(HostAuthError) as caught:
        read_host(lab.spec("HV01"), Credentials(USER, "wrong-password"))
    line = str(caught.value)
    assert line.startswith("HV01: connect: authentication failed (HTTP 401, ntlm)")
    assert "wrong-password" not in line and "\n" not in line
