"""End to end: a simulated Hyper-V host behind the lab's real WSMan/PSRP server, driven by plain
pypsrp (no hvlm client code), as an administrator's script would drive a Windows host.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pypsrp.complex_objects import PSInvocationState
from pypsrp.powershell import PowerShell, RunspacePool
from pypsrp.wsman import WSMan

from hvlm_lab.hyperv.config import (
    AuthenticationType,
    MigrationNetwork,
    MigrationState,
    server_2022,
)
from hvlm_lab.hyperv.host import HyperVHost
from hvlm_lab.wsman.server import Credentials, LabEndpointConfig, LabServer, Transport
from tests.lab.conftest import StartLab

pytestmark = pytest.mark.lab

USER = "labadmin"
PASSWORD = "Lab-Pass-1!"


def prop(obj: Any, name: str) -> Any:
    """A property of a deserialized object (.NET properties arrive as adapted ones)."""
    props = {**obj.adapted_properties, **obj.extended_properties}
    return props[name]


def open_pool(lab: LabServer, name: str, transport: Transport) -> RunspacePool:
    host, port, _ = lab.endpoint(name)
    if transport is Transport.HTTPS_BASIC:
        wsman = WSMan(host, port=port, ssl=True, auth="basic", username=USER, password=PASSWORD,
                      cert_validation=str(lab.ca_path))  # type: ignore[arg-type]  # a CA path
    else:
        wsman = WSMan(host, port=port, ssl=False, auth="ntlm", username=USER, password=PASSWORD,
                      encryption="always")
    return RunspacePool(wsman)


@pytest.fixture(params=[Transport.HTTPS_BASIC, Transport.HTTP_NEGOTIATE], ids=["https", "ntlm"])
def hyperv(request: pytest.FixtureRequest,
           start_lab: StartLab) -> Iterator[tuple[HyperVHost, RunspacePool]]:
    model = HyperVHost(server_2022("HV01", ["10.0.10.11/24"]))
    lab = start_lab([LabEndpointConfig("HV01", model, Credentials(USER, PASSWORD),
                                       transport=request.param)])
    with open_pool(lab, "HV01", request.param) as pool:
        yield model, pool


def test_read_change_and_read_back(hyperv: tuple[HyperVHost, RunspacePool]) -> None:
    model, pool = hyperv
    ps = PowerShell(pool)
    ps.add_cmdlet("Get-VMHost")
    (before,) = ps.invoke()
    # The wire carries the real type name (a PowerShell client would prefix "Deserialized.").
    assert before.types[0] == "Microsoft.HyperV.PowerShell.VMHost"
    assert str(prop(before, "VirtualMachineMigrationAuthenticationType")) == "CredSSP"
    assert prop(before, "MaximumVirtualMachineMigrations") == 2

    ps = PowerShell(pool)
    ps.add_cmdlet("Set-VMHost").add_parameters({
        "VirtualMachineMigrationAuthenticationType": "Kerberos",
        "VirtualMachineMigrationPerformanceOption": "SMB",
        "MaximumVirtualMachineMigrations": 4,
    })
    ps.add_statement()
    ps.add_cmdlet("Enable-VMMigration")
    ps.add_statement()
    ps.add_cmdlet("Add-VMMigrationNetwork").add_argument("10.0.10.0/24").add_argument(5)
    ps.add_statement()
    ps.add_cmdlet("Get-VMHost")
    ps.add_statement()
    ps.add_cmdlet("Get-VMMigrationNetwork")
    after, network = ps.invoke()
    assert not ps.had_errors and ps.streams.error == []

    auth = prop(after, "VirtualMachineMigrationAuthenticationType")
    perf = prop(after, "VirtualMachineMigrationPerformanceOption")
    assert (str(auth), str(perf)) == ("Kerberos", "SMB")
    assert auth.types[0] == "Microsoft.HyperV.PowerShell.MigrationAuthenticationType"
    assert perf.types[0] == "Microsoft.HyperV.PowerShell.VMMigrationPerformance"
    assert (auth.property_sets, perf.property_sets) == ([1], [2])  # the .NET integer values
    assert prop(after, "VirtualMachineMigrationEnabled") is True
    assert (prop(network, "Subnet"), prop(network, "Priority")) == ("10.0.10.0/24", 5)

    state = model.snapshot()
    assert state.authentication is AuthenticationType.Kerberos and state.enabled
    assert state.networks == (MigrationNetwork.parse("10.0.10.0/24", 5),)


def test_errors_and_warnings_reach_the_client(hyperv: tuple[HyperVHost, RunspacePool]) -> None:
    model, pool = hyperv
    ps = PowerShell(pool)
    ps.add_cmdlet("Remove-VMMigrationNetwork").add_parameter("Subnet", "10.9.0.0/16")
    ps.invoke()
    assert ps.state == PSInvocationState.COMPLETED and not ps.had_errors
    (record,) = ps.streams.error
    assert record.fq_error == (
        "ObjectNotFound,Microsoft.HyperV.PowerShell.Commands.RemoveVMMigrationNetwork")

    ps = PowerShell(pool)
    ps.add_cmdlet("Set-VMHost").add_parameter(
        "VirtualMachineMigrationPerformanceOption", "SMBTransport")
    ps.invoke()
    assert ps.had_errors
    assert any("CannotConvertArgumentNoMessage" in str(r.fq_error) for r in ps.streams.error)

    model.set_state(MigrationState(authentication=AuthenticationType.Kerberos))
    ps = PowerShell(pool)
    ps.add_cmdlet("Set-VMHost").add_parameter(
        "VirtualMachineMigrationAuthenticationType", "CredSSP")
    ps.invoke()
    assert not ps.had_errors and not ps.streams.error
    assert ps.streams.warning == []  # SetVMHost only traces Warning_CredSSP (FIDELITY.md)
    assert model.snapshot().authentication is AuthenticationType.CredSSP


def test_preflight_in_one_pipeline(hyperv: tuple[HyperVHost, RunspacePool]) -> None:
    model, pool = hyperv
    ps = PowerShell(pool)
    ps.add_cmdlet("Get-CimInstance").add_parameter("ClassName", "Win32_ComputerSystem")
    ps.add_statement()
    ps.add_cmdlet("Get-CimInstance").add_parameter("ClassName", "Win32_OperatingSystem")
    ps.add_statement()
    ps.add_cmdlet("Get-WindowsFeature").add_parameter("Name", "Hyper-V")
    ps.add_statement()
    ps.add_cmdlet("Get-NetIPAddress").add_parameter("AddressFamily", "IPv4")
    ps.add_statement()
    ps.add_cmdlet("Get-VMHostSupportedVersion").add_parameter("Default")
    ps.add_statement()
    ps.add_cmdlet("klist").add_argument("purge").add_argument("-li").add_argument("0x3e7")
    output = ps.invoke()
    assert not ps.had_errors and ps.streams.error == []
    system, os_info, feature, address, loopback, version, *klist_lines = output
    assert system.types[0].endswith("#root/cimv2/Win32_ComputerSystem")
    assert (prop(system, "PartOfDomain"), prop(system, "Domain")) == (True, "lab.example")
    assert prop(os_info, "BuildNumber") == "20348"
    assert str(prop(feature, "InstallState")) == "Installed"
    assert (prop(address, "IPAddress"), prop(address, "PrefixLength")) == ("10.0.10.11", 24)
    assert str(prop(address, "AddressFamily")) == "IPv4"
    assert prop(loopback, "IPAddress") == "127.0.0.1"
    assert str(prop(version, "Version")) == "10.0" and prop(version, "IsDefault") is True
    assert "Targeted LogonId is 0:0x3e7" in klist_lines
    assert model.purge_count() == 1
