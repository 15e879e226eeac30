"""The lab's WSMan/PSRP server driven by plain pypsrp (WSMan + RunspacePool + PowerShell).

No hvlm client code here: these tests prove the server speaks what a real pypsrp client expects,
over HTTPS + Basic (certificate validated against the lab CA) and HTTP + NTLM with message
encryption, and that faults and counters behave as documented in hvlm_lab/wsman.py.
"""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from psrpcore.types import ErrorCategory, PSNoteProperty, PSObject
from pypsrp.complex_objects import PSInvocationState
from pypsrp.exceptions import AuthenticationError, WSManFaultError
from pypsrp.powershell import PowerShell, RunspacePool
from pypsrp.shell import WinRS
from pypsrp.wsman import SelectorSet, WSMan

from hvlm_lab.cmdlets import ErrorInfo, Invocation, StatementResult
from hvlm_lab.hyperv.host import HyperVHost
from hvlm_lab.samba.dc import SambaDC
from hvlm_lab.wsman.auth import merge_keytabs
from hvlm_lab.wsman.control import LabControlClient
from hvlm_lab.wsman.server import (
    CmdletFault,
    Credentials,
    FaultSpec,
    LabEndpointConfig,
    LabServer,
    Transport,
)
from tests.lab.conftest import LAB_PASSWORD, LAB_USER, StartLab, hyperv_endpoint
from tests.lab.samba_fixtures import ADMIN_PASSWORD, OPERATOR, OPERATOR_PASSWORD

pytestmark = pytest.mark.lab

USER = LAB_USER
PASSWORD = LAB_PASSWORD
PS_URI = "http://schemas.microsoft.com/powershell/Microsoft.PowerShell"
HOSTILE = "10.0.0.0/24; Remove-Item C:\\ -Recurse"


def thing(name: str, value: Any) -> PSObject:
    obj = PSObject()
    obj.PSObject.type_names = ["Lab.Thing", "System.Object"]
    obj.PSObject.adapted_properties.append(PSNoteProperty("Name", name))
    obj.PSObject.adapted_properties.append(PSNoteProperty("Value", value))
    return obj


class ToyHost:
    """A small CmdletHost: enough commands to exercise every stream and error kind."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls: list[list[Invocation]] = []
        self._lock = threading.Lock()

    def invoke(self, statement: Sequence[Invocation]) -> StatementResult:
        with self._lock:
            self.calls.append(list(statement))
        inv = statement[-1]
        params = dict(inv.parameters)
        if inv.command == "Get-Thing":
            return StatementResult(output=[thing(str(params.get("Name", self.name)), 1)])
        if inv.command == "Big-Output":
            size, count = int(params["Size"]), int(params["Count"])
            return StatementResult(output=[f"{i:04d}" + "x" * size for i in range(count)])
        if inv.command == "Write-Soft":
            error = ErrorInfo(
                "Soft failure for " + str(params.get("Name")),
                "SoftFailure,Lab.Commands.WriteSoft",
                ErrorCategory.ObjectNotFound,
            )
            return StatementResult(output=[thing("partial", 2)], errors=[error])
        if inv.command == "Warn-Me":
            return StatementResult(warnings=["Mind the gap."])
        if inv.command == "Throw-Hard":
            return StatementResult(
                terminating=ErrorInfo(
                    "Hard failure: cannot continue.",
                    "HardFailure,Lab.Commands.ThrowHard",
                    ErrorCategory.InvalidOperation,
                )
            )
        return StatementResult(
            terminating=ErrorInfo(
                f"The term '{inv.command}' is not recognized as the name of a cmdlet.",
                "CommandNotFoundException",
                ErrorCategory.ObjectNotFound,
            )
        )


def config(
    name: str = "HV01",
    transport: Transport = Transport.HTTPS_BASIC,
    faults: FaultSpec | None = None,
    user: str = USER,
) -> LabEndpointConfig:
    return LabEndpointConfig(
        name,
        ToyHost(name),
        Credentials(user, PASSWORD),
        transport=transport,
        faults=faults or FaultSpec(),
    )


def client(lab: LabServer, name: str, password: str = PASSWORD, **kwargs: Any) -> WSMan:
    host, port, scheme = lab.endpoint(name)
    if scheme == "https":
        return WSMan(
            host,
            port=port,
            ssl=True,
            auth="basic",
            username=USER,
            password=password,
            cert_validation=str(lab.ca_path),  # type: ignore[arg-type]  # pypsrp accepts a CA path
            **kwargs,
        )
    return WSMan(
        host,
        port=port,
        ssl=False,
        auth="ntlm",
        username=f"LAB\\{USER}",
        password=password,
        **kwargs,
    )


def run(wsman: WSMan, *statements: tuple[str, dict[str, Any]]) -> PowerShell:
    """Open a pool, run the statements as ONE pipeline, close the pool."""
    with RunspacePool(wsman) as pool:
        ps = PowerShell(pool)
        for i, (command, params) in enumerate(statements):
            if i:
                ps.add_statement()
            ps.add_cmdlet(command)
            for key, value in params.items():
                ps.add_parameter(key, value)
        ps.invoke()
    return ps


def props(obj: Any) -> dict[str, Any]:
    return dict(obj.adapted_properties)


# --- the acceptance path ----------------------------------------------------------------------


@pytest.mark.parametrize("transport", [Transport.HTTPS_BASIC, Transport.HTTP_NEGOTIATE])
def test_pool_runs_statements_and_reads_results(start_lab: StartLab, transport: Transport) -> None:
    lab = start_lab([config(transport=transport)])
    ps = run(client(lab, "HV01"), ("Get-Thing", {"Name": "alpha"}), ("Get-Thing", {"Name": "b"}))
    assert ps.state == PSInvocationState.COMPLETED and not ps.had_errors
    assert [props(o)["Name"] for o in ps.output] == ["alpha", "b"]
    assert ps.output[0].types[0] == "Lab.Thing"
    assert lab.stats("HV01")["actions"] == ["Create", "Receive", "Command", "Receive", "Delete"]


def test_basic_read_costs_exactly_five_http_requests(start_lab: StartLab) -> None:
    lab = start_lab([config()])
    run(client(lab, "HV01"), ("Get-Thing", {}))
    stats = lab.stats("HV01")
    assert stats["http_requests"] == 5
    assert stats["wsman_requests"] == 5
    assert stats["http_status"] == {"200": 5}
    assert stats["action_counts"] == {"Create": 1, "Receive": 2, "Command": 1, "Delete": 1}


def test_ntlm_adds_the_handshake_and_encrypts(start_lab: StartLab) -> None:
    lab = start_lab([config(transport=Transport.HTTP_NEGOTIATE)])
    run(client(lab, "HV01"), ("Get-Thing", {}))
    stats = lab.stats("HV01")
    # blank POST -> 401, NTLM negotiate -> 401 challenge, authenticate -> 200; then 5 WSMan.
    assert stats["http_requests"] == 8
    assert stats["http_status"] == {"401": 2, "200": 6}
    assert stats["auth_failures"] == 0
    assert stats["wsman_requests"] == 5


def test_http_without_message_encryption_is_refused(start_lab: StartLab) -> None:
    lab = start_lab([config(transport=Transport.HTTP_NEGOTIATE)])
    with pytest.raises(AuthenticationError):
        RunspacePool(client(lab, "HV01", encryption="never")).open()


def test_https_certificate_is_validated_against_the_lab_ca(start_lab: StartLab) -> None:
    lab = start_lab([config()])
    host, port, _ = lab.endpoint("HV01")
    wsman = WSMan(host, port=port, auth="basic", username=USER, password=PASSWORD)
    with pytest.raises(requests.exceptions.SSLError):
        RunspacePool(wsman).open()  # system trust store: the lab CA is unknown


@pytest.mark.parametrize("transport", [Transport.HTTPS_BASIC, Transport.HTTP_NEGOTIATE])
def test_wrong_password_is_401(start_lab: StartLab, transport: Transport) -> None:
    lab = start_lab([config(transport=transport)])
    with pytest.raises(AuthenticationError):
        RunspacePool(client(lab, "HV01", password="wrong")).open()
    stats = lab.stats("HV01")
    assert stats["auth_failures"] == 1
    assert stats["wsman_requests"] == 0


def test_a_user_of_another_host_is_refused(start_lab: StartLab) -> None:
    lab = start_lab(
        [
            config("HV01", Transport.HTTP_NEGOTIATE),
            config("HV02", Transport.HTTP_NEGOTIATE, user="someoneelse"),
        ]
    )
    with pytest.raises(AuthenticationError):
        RunspacePool(client(lab, "HV02")).open()  # labadmin is HV01's user, not HV02's
    run(client(lab, "HV01"), ("Get-Thing", {}))


def test_parameter_with_metacharacters_arrives_as_a_value(start_lab: StartLab) -> None:
    lab = start_lab([config()])
    run(client(lab, "HV01"), ("Get-Thing", {"Name": HOSTILE, "Flag": None}))
    [record] = lab.stats("HV01")["cmdlets"]
    assert record["command"] == "Get-Thing"
    assert record["parameters"] == [["Name", HOSTILE], ["Flag", None]]
    assert record["outcome"] == "ok"


def test_positional_arguments_are_kept_apart(start_lab: StartLab) -> None:
    lab = start_lab([config()])
    with RunspacePool(client(lab, "HV01")) as pool:
        PowerShell(pool).add_cmdlet("Get-Thing").add_argument("192.168.10.0/24").invoke()
    [record] = lab.stats("HV01")["cmdlets"]
    assert record["arguments"] == ["192.168.10.0/24"] and record["parameters"] == []


# --- the simulated Hyper-V host through the server (issue 3 acceptance) ---------------------


def hyperv_config(transport: Transport) -> LabEndpointConfig:
    return hyperv_endpoint("HV01", transport)


def read_host(pool: RunspacePool) -> tuple[dict[str, str], list[str]]:
    ps = PowerShell(pool)
    ps.add_cmdlet("Get-VMHost").add_statement().add_cmdlet("Get-VMMigrationNetwork")
    ps.invoke()
    assert not ps.streams.error
    vmhost = {k: str(v) for k, v in props(ps.output[0]).items()}
    assert ps.output[0].types[0] == "Microsoft.HyperV.PowerShell.VMHost"
    return vmhost, [str(props(o)["Subnet"]) for o in ps.output[1:]]


@pytest.mark.parametrize("transport", [Transport.HTTPS_BASIC, Transport.HTTP_NEGOTIATE])
def test_hyperv_host_read_change_read_back(start_lab: StartLab, transport: Transport) -> None:
    cfg = hyperv_config(transport)
    lab = start_lab([cfg])
    with RunspacePool(client(lab, "HV01")) as pool:
        before, networks = read_host(pool)
        assert before["VirtualMachineMigrationEnabled"] == "False"
        assert before["VirtualMachineMigrationAuthenticationType"] == "CredSSP"
        assert networks == []
        ps = PowerShell(pool)
        ps.add_cmdlet("Enable-VMMigration").add_statement()
        ps.add_cmdlet("Set-VMHost")
        ps.add_parameter("VirtualMachineMigrationAuthenticationType", "Kerberos")
        ps.add_parameter("MaximumVirtualMachineMigrations", 4).add_statement()
        ps.add_cmdlet("Add-VMMigrationNetwork").add_parameter("Subnet", "192.168.10.0/24")
        ps.invoke()
        assert ps.state == PSInvocationState.COMPLETED and not ps.streams.error
        after, networks = read_host(pool)
    assert after["VirtualMachineMigrationEnabled"] == "True"
    assert after["VirtualMachineMigrationAuthenticationType"] == "Kerberos"
    assert after["MaximumVirtualMachineMigrations"] == "4"
    assert networks == ["192.168.10.0/24"]
    assert lab.stats("HV01")["action_counts"]["Command"] == 3


def test_hyperv_non_terminating_error_over_the_wire(start_lab: StartLab) -> None:
    lab = start_lab([hyperv_config(Transport.HTTPS_BASIC)])
    ps = run(client(lab, "HV01"), ("Remove-VMMigrationNetwork", {"Subnet": "10.9.9.0/24"}))
    assert ps.state == PSInvocationState.COMPLETED and not ps.had_errors
    [error] = ps.streams.error
    assert str(error.fq_error).endswith(
        "Microsoft.HyperV.PowerShell.Commands.RemoveVMMigrationNetwork"
    )
    assert "10.9.9.0/24" in str(error) or "No migration networks" in str(error)


def test_hyperv_hostile_subnet_stays_a_value(start_lab: StartLab) -> None:
    cfg = hyperv_config(Transport.HTTP_NEGOTIATE)
    lab = start_lab([cfg])
    ps = run(client(lab, "HV01"), ("Add-VMMigrationNetwork", {"Subnet": HOSTILE}))
    assert ps.streams.error  # rejected as a subnet, never run as code
    [record] = lab.stats("HV01")["cmdlets"]
    assert record["parameters"] == [["Subnet", HOSTILE]]
    assert isinstance(cfg.host, HyperVHost) and cfg.host.snapshot().networks == ()


# --- Kerberos acceptance (needs the lab's Samba DC: run inside `unshare --net`) ---------------


def kerberos_client(lab: LabServer, name: str, user: str, password: str) -> WSMan:
    host, port, _ = lab.endpoint(name)
    return WSMan(
        host,
        port=port,
        ssl=False,
        auth="kerberos",
        username=f"{user}@LAB.EXAMPLE",
        password=password,
        negotiate_hostname_override=f"{name.lower()}.lab.example",
    )


@pytest.mark.samba
def test_kerberos_with_message_encryption(
    start_lab: StartLab,
    samba_dc: SambaDC,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
) -> None:
    keytab = merge_keytabs(
        [samba_dc.export_keytab("HV01$"), samba_dc.export_keytab("HV02$")], tmp_path / "hosts.kt"
    )
    for key, value in samba_dc.krb5_env(tmp_path / "ccache").items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("KRB5_KTNAME", f"FILE:{keytab}")
    hosts = [
        LabEndpointConfig(
            name,
            ToyHost(name),
            Credentials(OPERATOR, OPERATOR_PASSWORD),
            transport=Transport.HTTP_NEGOTIATE,
            kerberos=True,
        )
        for name in ("HV01", "HV02")
    ]
    lab = start_lab(hosts)
    for name in ("HV01", "HV02"):
        ps = run(kerberos_client(lab, name, OPERATOR, OPERATOR_PASSWORD), ("Get-Thing", {}))
        assert props(ps.output[0])["Name"] == name
        assert lab.stats(name)["http_status"] == {"401": 1, "200": 6}  # one round trip
    with pytest.raises(AuthenticationError):  # a valid ticket, but not the host's user
        RunspacePool(kerberos_client(lab, "HV01", "Administrator", ADMIN_PASSWORD)).open()
    assert lab.stats("HV01")["auth_failures"] == 1


# --- streams and errors -----------------------------------------------------------------------


def test_non_terminating_error_reaches_streams_error(start_lab: StartLab) -> None:
    lab = start_lab([config()])
    ps = run(client(lab, "HV01"), ("Write-Soft", {"Name": "x"}), ("Get-Thing", {"Name": "after"}))
    assert ps.state == PSInvocationState.COMPLETED and not ps.had_errors
    [error] = ps.streams.error
    assert str(error) == "Soft failure for x"
    assert error.fq_error == "SoftFailure,Lab.Commands.WriteSoft"
    assert error.category == ErrorCategory.ObjectNotFound.value
    assert [props(o)["Name"] for o in ps.output] == ["partial", "after"]
    outcomes = [c["outcome"] for c in lab.stats("HV01")["cmdlets"]]
    assert outcomes == ["error", "ok"]


def test_terminating_error_fails_the_pipeline_and_stops_later_statements(
    start_lab: StartLab,
) -> None:
    cfg = config()
    lab = start_lab([cfg])
    ps = run(
        client(lab, "HV01"),
        ("Get-Thing", {"Name": "first"}),
        ("Throw-Hard", {}),
        ("Get-Thing", {"Name": "never"}),
    )
    assert ps.state == PSInvocationState.FAILED and ps.had_errors
    assert [str(e) for e in ps.streams.error] == ["Hard failure: cannot continue."]
    assert ps.streams.error[0].fq_error == "HardFailure,Lab.Commands.ThrowHard"
    assert [props(o)["Name"] for o in ps.output] == ["first"]
    assert isinstance(cfg.host, ToyHost)
    assert [s[0].command for s in cfg.host.calls] == ["Get-Thing", "Throw-Hard"]
    outcomes = [c["outcome"] for c in lab.stats("HV01")["cmdlets"]]
    assert outcomes == ["ok", "terminated", "skipped"]


def test_warnings_reach_streams_warning(start_lab: StartLab) -> None:
    lab = start_lab([config()])
    ps = run(client(lab, "HV01"), ("Warn-Me", {}))
    assert [w.message for w in ps.streams.warning] == ["Mind the gap."]


def test_a_script_is_refused_with_a_clear_error(start_lab: StartLab) -> None:
    cfg = config()
    lab = start_lab([cfg])
    with RunspacePool(client(lab, "HV01")) as pool:
        ps = PowerShell(pool)
        ps.add_script("Get-VMHost; Remove-Item C:\\ -Recurse")
        ps.invoke()
    assert ps.state == PSInvocationState.FAILED
    assert "scripts (AddScript) are refused" in str(ps.streams.error[0])
    assert isinstance(cfg.host, ToyHost) and cfg.host.calls == []
    [record] = lab.stats("HV01")["cmdlets"]
    assert record["is_script"] and record["outcome"] == "refused"


# --- PSRP mechanics ---------------------------------------------------------------------------


def test_large_pipeline_and_output_are_fragmented_both_ways(start_lab: StartLab) -> None:
    lab = start_lab([config()], fragment_size=4096)
    # pypsrp raises its envelope to 500 KiB after the handshake: 1 MB = Command + 2 Sends.
    big = "v" * 1_000_000
    ps = run(client(lab, "HV01"), ("Big-Output", {"Size": 100_000, "Count": 8, "Pad": big}))
    assert [len(s) for s in ps.output] == [100_004] * 8
    assert [s[:4] for s in ps.output] == [f"{i:04d}" for i in range(8)]
    stats = lab.stats("HV01")
    assert stats["action_counts"]["Send"] == 2
    assert stats["action_counts"]["Receive"] >= 4  # 800 kB output > 2 Receive envelopes
    [record] = stats["cmdlets"]
    assert dict(record["parameters"])["Pad"] == big


def test_concurrent_pipelines_get_their_own_data(start_lab: StartLab) -> None:
    lab = start_lab([config()])
    with RunspacePool(client(lab, "HV01"), max_runspaces=2) as pool:
        first, second = PowerShell(pool), PowerShell(pool)
        first.add_cmdlet("Get-Thing").add_parameter("Name", "one")
        second.add_cmdlet("Get-Thing").add_parameter("Name", "two")
        first.begin_invoke()
        second.begin_invoke()
        assert [props(o)["Name"] for o in second.end_invoke()] == ["two"]
        assert [props(o)["Name"] for o in first.end_invoke()] == ["one"]
        first.close()
    assert "Signal" in lab.stats("HV01")["actions"]


def test_unknown_shell_is_the_real_wsman_fault(start_lab: StartLab) -> None:
    lab = start_lab([config()])
    shell = WinRS(client(lab, "HV01"), resource_uri=PS_URI)
    shell._selector_set = SelectorSet()
    shell._selector_set.add_option("ShellId", str(uuid.uuid4()).upper())
    with pytest.raises(WSManFaultError) as caught:
        shell.receive("stdout")
    assert caught.value.code == 2150858843
    assert "shell was not found on the server" in str(caught.value.reason)


def test_a_cmd_shell_is_not_offered(start_lab: StartLab) -> None:
    lab = start_lab([config()])
    with pytest.raises(WSManFaultError) as caught:
        WinRS(client(lab, "HV01")).open()  # the WinRS cmd shell: PowerShell only here
    assert "was not found in the WS-Management catalog" in str(caught.value.reason)
    assert lab.stats("HV01")["actions"] == ["Create"]


def test_receive_on_a_closed_pool_faults(start_lab: StartLab) -> None:
    lab = start_lab([config()])
    wsman = client(lab, "HV01")
    pool = RunspacePool(wsman)
    pool.open()
    pool.shell.close()
    with pytest.raises(WSManFaultError) as caught:
        pool.shell.opened = True
        pool.shell.receive("stdout")
    assert caught.value.code == 2150858843


def test_plain_http_errors_for_non_wsman_requests(start_lab: StartLab) -> None:
    lab = start_lab([config(transport=Transport.HTTP_NEGOTIATE)])
    host, port, _ = lab.endpoint("HV01")
    assert requests.get(f"http://{host}:{port}/wsman", timeout=5).status_code == 405
    assert requests.post(f"http://{host}:{port}/other", timeout=5).status_code == 404


# --- faults -----------------------------------------------------------------------------------


def test_latency_is_added_per_request(start_lab: StartLab) -> None:
    lab = start_lab([config(faults=FaultSpec(latency_ms=3000)), config("HV02")])
    with pytest.raises(requests.exceptions.ReadTimeout):
        RunspacePool(client(lab, "HV01", read_timeout=0.5)).open()
    run(client(lab, "HV02", read_timeout=2), ("Get-Thing", {}))  # the loop is not blocked
    lab.set_fault("HV01", FaultSpec())
    run(client(lab, "HV01", read_timeout=2), ("Get-Thing", {}))


def test_connection_dropped_after_n_requests(start_lab: StartLab) -> None:
    lab = start_lab([config(faults=FaultSpec(drop_after_requests=2))])
    pool = RunspacePool(client(lab, "HV01"))
    pool.open()  # Create + Receive
    with pytest.raises(requests.exceptions.ConnectionError):
        PowerShell(pool).add_cmdlet("Get-Thing").invoke()
    with pytest.raises(requests.exceptions.ConnectionError):
        RunspacePool(client(lab, "HV01")).open()  # and every request after
    stats = lab.stats("HV01")
    assert stats["dropped"] == 2 and stats["cmdlets"] == []


def test_drop_once_is_transient(start_lab: StartLab) -> None:
    lab = start_lab([config(faults=FaultSpec(drop_after_requests=0, drop_once=True))])
    with pytest.raises(requests.exceptions.ConnectionError):
        RunspacePool(client(lab, "HV01")).open()
    run(client(lab, "HV01"), ("Get-Thing", {}))
    assert lab.stats("HV01")["dropped"] == 1


def test_http_500_on_a_given_cmdlet(start_lab: StartLab) -> None:
    cfg = config(faults=FaultSpec(http_500_on_cmdlet="throw-hard"))
    lab = start_lab([cfg])
    with RunspacePool(client(lab, "HV01")) as pool:
        assert PowerShell(pool).add_cmdlet("Get-Thing").invoke()
        ps = PowerShell(pool).add_cmdlet("Get-Thing").add_statement().add_cmdlet("Throw-Hard")
        with pytest.raises(WSManFaultError) as caught:
            ps.invoke()
    assert caught.value.code == 2147500037
    stats = lab.stats("HV01")
    assert stats["http_status"]["500"] == 1
    assert [c["outcome"] for c in stats["cmdlets"]] == ["ok", "http500", "http500"]
    assert isinstance(cfg.host, ToyHost) and len(cfg.host.calls) == 1


@pytest.mark.parametrize("terminating", [True, False])
def test_injected_cmdlet_error(start_lab: StartLab, terminating: bool) -> None:
    fault = CmdletFault("Get-Thing", "Injected: access denied.", terminating, "Denied,Lab")
    lab = start_lab([config(faults=FaultSpec(cmdlet_faults=(fault,)))])
    ps = run(client(lab, "HV01"), ("Get-Thing", {}), ("Warn-Me", {}))
    assert [str(e) for e in ps.streams.error] == ["Injected: access denied."]
    assert ps.streams.error[0].fq_error == "Denied,Lab"
    assert ps.had_errors is terminating
    assert ps.output == []
    expected = ["terminated", "skipped"] if terminating else ["error", "ok"]
    assert [c["outcome"] for c in lab.stats("HV01")["cmdlets"]] == expected


def test_hanging_host_times_out_the_client(start_lab: StartLab) -> None:
    lab = start_lab([config(faults=FaultSpec(hang=True)), config("HV02")])
    with pytest.raises(requests.exceptions.ReadTimeout):
        RunspacePool(client(lab, "HV01", read_timeout=1)).open()
    run(client(lab, "HV02"), ("Get-Thing", {}))
    assert lab.stats("HV01")["hung"] == 1


@pytest.mark.parametrize("transport", [Transport.HTTPS_BASIC, Transport.HTTP_NEGOTIATE])
def test_refuse_auth_even_with_the_right_password(
    start_lab: StartLab, transport: Transport
) -> None:
    lab = start_lab([config(transport=transport, faults=FaultSpec(refuse_auth=True))])
    with pytest.raises(AuthenticationError):
        RunspacePool(client(lab, "HV01")).open()
    assert lab.stats("HV01")["auth_failures"] >= 1


# --- API, control channel, scale --------------------------------------------------------------


def test_reset_stats(start_lab: StartLab) -> None:
    lab = start_lab([config(), config("HV02")])
    run(client(lab, "HV01"), ("Get-Thing", {}))
    run(client(lab, "HV02"), ("Get-Thing", {}))
    lab.reset_stats("HV01")
    assert lab.stats("HV01")["http_requests"] == 0
    assert lab.stats("HV02")["http_requests"] == 5
    lab.reset_stats()
    assert all(s["http_requests"] == 0 for s in lab.stats().values())


def test_control_channel_from_another_client(start_lab: StartLab) -> None:
    lab = start_lab([config(), config("HV02")])
    assert lab.control_url is not None
    control = LabControlClient(lab.control_url)
    assert control.endpoints()["HV02"]["port"] == lab.endpoint("HV02").port
    run(client(lab, "HV01"), ("Get-Thing", {"Name": HOSTILE}))
    assert control.stats("HV01")["cmdlets"][0]["parameters"] == [["Name", HOSTILE]]
    assert control.stats()["HV02"]["http_requests"] == 0
    spec = FaultSpec(cmdlet_faults=(CmdletFault("Get-Thing", "via control", False),))
    assert control.set_fault("HV01", spec) == spec
    assert lab.fault("HV01") == spec
    assert str(run(client(lab, "HV01"), ("Get-Thing", {})).streams.error[0]) == "via control"
    control.reset()
    assert control.stats("HV01")["http_requests"] == 0
    with pytest.raises(RuntimeError, match="404"):
        control.stats("NOPE")
    with pytest.raises(RuntimeError, match="400"):
        control._call("POST", "/faults/HV01", {"hang_forever": True})


def test_stop_leaves_nothing_listening(start_lab: StartLab) -> None:
    lab = start_lab([config(), config("HV02", Transport.HTTP_NEGOTIATE)])
    pool = RunspacePool(client(lab, "HV01"))
    pool.open()  # a live keep-alive connection must not keep the lab up
    ports = [e.port for e in lab.endpoints().values()]
    assert lab.control_url is not None
    ports.append(int(lab.control_url.rsplit(":", 1)[1]))
    lab.stop()
    for port in ports:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_two_hundred_hosts_start_and_serve(start_lab: StartLab) -> None:
    hosts = [
        config(f"HV{i:03d}", Transport.HTTPS_BASIC if i % 2 else Transport.HTTP_NEGOTIATE)
        for i in range(200)
    ]
    lab = start_lab(hosts, control_port=None)
    assert lab.control_url is None

    def read(name: str) -> str:
        ps = run(client(lab, name), ("Get-Thing", {"Name": name}))
        return str(props(ps.output[0])["Name"])

    with ThreadPoolExecutor(max_workers=20) as pool:
        names = [h.name for h in hosts]
        assert list(pool.map(read, names)) == names
    assert all(s["wsman_requests"] == 5 for s in lab.stats().values())


def test_config_errors(lab_ca: Any, tmp_path: Any) -> None:
    with pytest.raises(ValueError, match="duplicate"):
        LabServer([config(), config()], lab_ca, tmp_path)
    with pytest.raises(KeyError, match="NOPE"):
        LabServer([config()], lab_ca, tmp_path).endpoint("NOPE")
    with pytest.raises(ValueError, match="unknown FaultSpec field"):
        FaultSpec.from_json({"latency": 1})
