"""The simulated Hyper-V host, driven directly through `HyperVHost.invoke` (no wire).

Table-driven: each case is a statement (one or more Invocations) and what a real host would
answer: output, non-terminating errors (FullyQualifiedErrorId), warnings, terminating error.
"""

from __future__ import annotations

import inspect
import ipaddress
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import pytest
from psrpcore.types import ErrorCategory, PSCryptoProvider, PSObject, serialize_clixml

from hvlm_lab.cmdlets import CmdletHost, Invocation, StatementResult
from hvlm_lab.hyperv.config import (
    AuthenticationType,
    LabHostConfig,
    LabVM,
    MigrationNetwork,
    MigrationState,
    PerformanceOption,
    fleet,
    server_2022,
    server_2025,
)
from hvlm_lab.hyperv.host import HyperVHost
from hvlm_lab.hyperv.migration import parse_subnet

HV = "Microsoft.HyperV.PowerShell.Commands"


def inv(command: str, *args: Any, **params: Any) -> Invocation:
    """Invocation("Set-VMHost", MaximumVirtualMachineMigrations=4); a switch is `Name=None`."""
    return Invocation(command, tuple(params.items()), tuple(args))


def fresh(**kwargs: Any) -> HyperVHost:
    return HyperVHost(server_2022("HV01", ["10.0.10.11/24", "fd00:10::11/64"], **kwargs))


def run(host: HyperVHost, *statement: Invocation) -> StatementResult:
    return host.invoke(list(statement))


def prop(obj: PSObject, name: str) -> Any:
    return getattr(obj, name)


def error_ids(result: StatementResult) -> list[str]:
    return [e.error_id for e in result.errors]


def subnets(host: HyperVHost) -> list[tuple[str, int | None]]:
    return [(n.text, n.priority) for n in host.snapshot().networks]


@runtime_checkable
class RuntimeCmdletHost(CmdletHost, Protocol):
    """CmdletHost, checkable with isinstance (members present; signatures compared below)."""


def test_hyperv_host_is_a_cmdlet_host() -> None:
    host = fresh()
    assert isinstance(host, RuntimeCmdletHost)
    assert not isinstance(object(), RuntimeCmdletHost)  # control: the check can say no
    assert host.name == "HV01"
    wanted = inspect.signature(CmdletHost.invoke)
    assert list(inspect.signature(HyperVHost.invoke).parameters) == list(wanted.parameters)
    result = host.invoke([inv("Get-VMHost")])
    assert isinstance(result, StatementResult) and len(result.output) == 1


# --- defaults ----------------------------------------------------------------------------------


def test_fresh_host_defaults_match_domain_notes() -> None:
    result = run(fresh(), inv("Get-VMHost"))
    assert result.errors == [] and result.terminating is None
    (vmhost,) = result.output
    assert vmhost.PSTypeNames[0] == "Microsoft.HyperV.PowerShell.VMHost"
    expected = {
        "VirtualMachineMigrationEnabled": False,
        "MaximumVirtualMachineMigrations": 2,
        "MaximumStorageMigrations": 2,
        "UseAnyNetworkForMigration": False,
        "ComputerName": "HV01",
        "Name": "HV01",
        "FullyQualifiedDomainName": "lab.example",
    }
    for name, value in expected.items():
        assert prop(vmhost, name) == value, name
    assert str(prop(vmhost, "VirtualMachineMigrationAuthenticationType")) == "CredSSP"
    assert int(prop(vmhost, "VirtualMachineMigrationAuthenticationType")) == 0
    assert str(prop(vmhost, "VirtualMachineMigrationPerformanceOption")) == "Compression"
    assert int(prop(vmhost, "VirtualMachineMigrationPerformanceOption")) == 1
    assert run(fresh(), inv("Get-VMMigrationNetwork")).output == []
    assert fresh().snapshot() == MigrationState()


def test_brownfield_initial_state_is_served() -> None:
    state = MigrationState(enabled=True, authentication=AuthenticationType.Kerberos,
                           networks=(MigrationNetwork.parse("10.0.10.0/24", 5),))
    host = HyperVHost(server_2025("HV02", state=state))
    vmhost = run(host, inv("Get-VMHost")).output[0]
    assert prop(vmhost, "VirtualMachineMigrationEnabled") is True
    assert str(prop(vmhost, "VirtualMachineMigrationAuthenticationType")) == "Kerberos"
    (network,) = run(host, inv("Get-VMMigrationNetwork")).output
    assert (prop(network, "Subnet"), prop(network, "Priority")) == ("10.0.10.0/24", 5)


# --- Set-VMHost --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SetCase:
    params: dict[str, Any]
    expected: dict[str, Any]  # MigrationState fields
    warnings: int = 0


SET_CASES = {
    "kerberos by name": SetCase({"VirtualMachineMigrationAuthenticationType": "Kerberos"},
                                {"authentication": AuthenticationType.Kerberos}),
    "kerberos by int": SetCase({"VirtualMachineMigrationAuthenticationType": 1},
                               {"authentication": AuthenticationType.Kerberos}),
    "name is case-insensitive": SetCase({"virtualmachinemigrationauthenticationtype": "kerberos"},
                                        {"authentication": AuthenticationType.Kerberos}),
    "numeric string": SetCase({"VirtualMachineMigrationPerformanceOption": "2"},
                              {"performance": PerformanceOption.SMB}),
    "SMB": SetCase({"VirtualMachineMigrationPerformanceOption": "SMB"},
                   {"performance": PerformanceOption.SMB}),
    "TCPIP": SetCase({"VirtualMachineMigrationPerformanceOption": "tcpip"},
                     {"performance": PerformanceOption.TCPIP}),
    "limits": SetCase({"MaximumVirtualMachineMigrations": 4, "MaximumStorageMigrations": "3"},
                      {"max_vm_migrations": 4, "max_storage_migrations": 3}),
    "any network on": SetCase({"UseAnyNetworkForMigration": True}, {"use_any_network": True}),
    "prefix of a parameter": SetCase({"MaximumV": 7}, {"max_vm_migrations": 7}),
    "CredSSP again: no change, no warning": SetCase(
        {"VirtualMachineMigrationAuthenticationType": "CredSSP"}, {}),
    "only a non-migration setting": SetCase({"NumaSpanningEnabled": False}, {}),
}


@pytest.mark.parametrize("case", SET_CASES.values(), ids=SET_CASES.keys())
def test_set_vmhost(case: SetCase) -> None:
    host = fresh()
    result = run(host, inv("Set-VMHost", **case.params))
    assert result.terminating is None and result.errors == []
    assert len(result.warnings) == case.warnings
    fields = dict(case.expected)
    any_network = fields.pop("use_any_network", False)
    expected = MigrationState(**fields).with_any_network(any_network)
    assert host.snapshot() == expected
    vmhost = run(host, inv("Get-VMHost")).output[0]
    assert prop(vmhost, "MaximumVirtualMachineMigrations") == expected.max_vm_migrations
    assert prop(vmhost, "UseAnyNetworkForMigration") is expected.use_any_network


def test_choosing_credssp_writes_no_warning_record() -> None:
    """SetVMHost.cs passes Warning_CredSSP to VMTrace.TraceWarning (a trace file, off by
    default), never to WriteWarning: the pipeline gets no warning (FIDELITY.md)."""
    host = fresh(state=MigrationState(authentication=AuthenticationType.Kerberos))
    result = run(host, inv("Set-VMHost", VirtualMachineMigrationAuthenticationType="CredSSP"))
    assert result.warnings == [] and result.errors == []
    assert host.snapshot().authentication is AuthenticationType.CredSSP


def test_set_vmhost_without_parameters_is_a_non_terminating_error() -> None:
    host = fresh()
    for statement in ([inv("Set-VMHost")], [inv("Set-VMHost", Passthru=None)]):
        result = host.invoke(statement)
        assert result.terminating is None and result.output == []
        assert error_ids(result) == [f"InvalidOperation,{HV}.SetVMHost"]
        assert result.errors[0].category == ErrorCategory.InvalidOperation
    assert host.snapshot() == MigrationState()


def test_set_vmhost_passthru_and_whatif() -> None:
    host = fresh()
    result = run(host, inv("Set-VMHost", MaximumVirtualMachineMigrations=5, Passthru=None))
    assert prop(result.output[0], "MaximumVirtualMachineMigrations") == 5
    run(host, inv("Set-VMHost", MaximumVirtualMachineMigrations=9, WhatIf=None))
    assert host.snapshot().max_vm_migrations == 5


def test_enable_and_disable_migration() -> None:
    host = fresh()
    assert run(host, inv("Enable-VMMigration")).output == []
    assert host.snapshot().enabled is True
    result = run(host, inv("Disable-VMMigration", Passthru=None))
    assert prop(result.output[0], "VirtualMachineMigrationEnabled") is False
    assert host.snapshot().enabled is False


# --- parameter binding errors (terminating) ----------------------------------------------------


@dataclass(frozen=True)
class BindCase:
    statement: Invocation
    error_id: str
    message_part: str


BIND_CASES = {
    "SMBTransport is not a value": BindCase(
        inv("Set-VMHost", VirtualMachineMigrationPerformanceOption="SMBTransport"),
        f"CannotConvertArgumentNoMessage,{HV}.SetVMHost",
        "Unable to match the identifier name SMBTransport to a valid enumerator name"),
    "unknown enum name": BindCase(
        inv("Set-VMHost", VirtualMachineMigrationAuthenticationType="NTLM"),
        f"CannotConvertArgumentNoMessage,{HV}.SetVMHost", "CredSSP, Kerberos"),
    "enum integer out of range": BindCase(
        inv("Set-VMHost", VirtualMachineMigrationPerformanceOption=7),
        f"CannotConvertArgumentNoMessage,{HV}.SetVMHost",
        "due to enumeration values that are not valid"),
    "unknown parameter": BindCase(
        inv("Set-VMHost", MaxMigrations=3), f"NamedParameterNotFound,{HV}.SetVMHost",
        "A parameter cannot be found that matches parameter name 'MaxMigrations'."),
    "ambiguous prefix": BindCase(
        inv("Set-VMHost", Virtual="x"), f"AmbiguousParameter,{HV}.SetVMHost",
        "-VirtualMachineMigrationAuthenticationType -VirtualMachineMigrationPerformanceOption"),
    "negative UInt32": BindCase(
        inv("Set-VMHost", MaximumVirtualMachineMigrations=-1),
        f"CannotConvertArgumentNoMessage,{HV}.SetVMHost", "too large or too small for a UInt32"),
    "text for UInt32": BindCase(
        inv("Add-VMMigrationNetwork", "10.0.0.0/24", Priority="high"),
        f"CannotConvertArgumentNoMessage,{HV}.AddVMMigrationNetwork",
        "Input string was not in a correct format."),
    "string for a Boolean": BindCase(
        inv("Set-VMHost", UseAnyNetworkForMigration="true"),
        f"ParameterArgumentTransformationError,{HV}.SetVMHost",
        "Boolean parameters accept only Boolean values and numbers"),
    "missing mandatory subnet": BindCase(
        inv("Add-VMMigrationNetwork"), f"MissingMandatoryParameter,{HV}.AddVMMigrationNetwork",
        "missing mandatory parameters: Subnet."),
    "too many positional arguments": BindCase(
        inv("Remove-VMMigrationNetwork", "10.0.0.0/24", "extra"),
        f"PositionalParameterNotFound,{HV}.RemoveVMMigrationNetwork",
        "A positional parameter cannot be found that accepts argument 'extra'."),
    "parameter given twice": BindCase(
        Invocation("Set-VMHost", (("MaximumStorageMigrations", 1), ("maximumstoragemigrations", 2))),
        f"ParameterAlreadyBound,{HV}.SetVMHost", "is specified more than once"),
    "empty subnet": BindCase(
        inv("Add-VMMigrationNetwork", Subnet=""),
        f"ParameterArgumentValidationError,{HV}.AddVMMigrationNetwork", "null or empty"),
    "switch syntax for a valued parameter": BindCase(
        inv("Add-VMMigrationNetwork", Subnet=None),
        f"MissingArgument,{HV}.AddVMMigrationNetwork", "Missing an argument for parameter"),
    "bad ErrorAction": BindCase(
        inv("Get-VMHost", ErrorAction="Explode"),
        f"CannotConvertArgumentNoMessage,{HV}.GetVMHost", "SilentlyContinue, Stop, Continue"),
    "unknown parameter on CIM": BindCase(
        inv("Get-CimInstance", "Win32_OperatingSystem", Bogus=1),
        "NamedParameterNotFound,Microsoft.Management.Infrastructure.CimCmdlets."
        "GetCimInstanceCommand", "'Bogus'"),
}


@pytest.mark.parametrize("case", BIND_CASES.values(), ids=BIND_CASES.keys())
def test_binding_errors_are_terminating(case: BindCase) -> None:
    host = fresh()
    result = run(host, case.statement)
    assert result.terminating is not None
    assert result.terminating.error_id == case.error_id
    assert case.message_part in result.terminating.message
    assert result.terminating.exception_type.endswith("ParameterBindingException")
    assert result.output == [] and host.snapshot() == MigrationState()


def test_a_binding_error_stops_the_whole_statement_before_anything_runs() -> None:
    host = fresh()
    result = run(host, inv("Enable-VMMigration"), inv("Get-VMHost", Nope=1))
    assert result.terminating is not None and host.snapshot().enabled is False


def test_unknown_command_is_command_not_found() -> None:
    result = run(fresh(), inv("Get-VMHostt"))
    assert result.terminating is not None
    assert result.terminating.error_id == "CommandNotFoundException"
    assert result.terminating.category == ErrorCategory.ObjectNotFound
    assert result.terminating.message.startswith(
        "The term 'Get-VMHostt' is not recognized as the name of a cmdlet")


def test_command_names_are_case_insensitive_and_may_be_module_qualified() -> None:
    host = fresh()
    for name in ("get-vmhost", "GET-VMHOST", "Hyper-V\\Get-VMHost"):
        assert len(run(host, inv(name)).output) == 1, name


def test_hyperv_cmdlets_are_unknown_without_the_role() -> None:
    host = fresh(hyperv_installed=False)
    for name in ("Get-VMHost", "Set-VMHost", "Get-VMMigrationNetwork", "Get-VM",
                 "Get-VMHostSupportedVersion", "Enable-VMMigration"):
        result = run(host, inv(name))
        assert result.terminating is not None, name
        assert result.terminating.error_id == "CommandNotFoundException"
    (feature,) = run(host, inv("Get-WindowsFeature", Name="Hyper-V")).output
    assert str(prop(feature, "InstallState")) == "Available"
    assert prop(feature, "Installed") is False


def test_scripts_are_refused() -> None:
    host = fresh()
    result = host.invoke([Invocation("Set-VMHost -MaximumVirtualMachineMigrations 9",
                                     is_script=True)])
    assert result.terminating is not None
    assert result.terminating.error_id == "ScriptsNotAllowed"
    assert host.snapshot() == MigrationState()


# --- migration networks ------------------------------------------------------------------------


@dataclass(frozen=True)
class AddCase:
    args: tuple[Any, ...]
    params: dict[str, Any] = field(default_factory=dict)
    stored: tuple[tuple[str, int | None], ...] = ()
    error_id: str | None = None
    message: str = ""


ADD = f"{HV}.AddVMMigrationNetwork"
ADD_CASES = {
    # Without -Priority no Metric is stored (the lab's reading of an UNCONFIRMED fact).
    "cidr": AddCase(("10.0.10.0/24",), stored=(("10.0.10.0/24", None),)),
    "bare IPv4 is /32": AddCase(("192.168.10.1",), stored=(("192.168.10.1/32", None),)),
    "bare IPv6 is /128": AddCase(("fd00:10::11",), stored=(("fd00:10::11/128", None),)),
    "priority zero": AddCase(("10.0.10.0/24", 0), stored=(("10.0.10.0/24", 0),)),
    "IPv6 subnet, priority": AddCase(("2001:836c:6456:1c99::/64", 8),
                                     stored=(("2001:836c:6456:1c99::/64", 8),)),
    "named parameters": AddCase((), {"Subnet": " 10.1.0.0/16 ", "Priority": 3},
                                stored=(("10.1.0.0/16", 3),)),
    "host bits set": AddCase(("192.168.10.1/24",), error_id=f"Unspecified,{ADD}",
                             message="One of the identified items was in an invalid format."),
    "IPv6 host bits set": AddCase(("fd00:10::11/64",), error_id=f"Unspecified,{ADD}"),
    "prefix too long": AddCase(("10.0.0.0/33",), error_id=f"Unspecified,{ADD}"),
    "not an address": AddCase(("ten.0.0.0/8",), error_id=f"Unspecified,{ADD}",
                              message="An invalid IP address was specified."),
    "prefix not a number": AddCase(("10.0.0.0/x",), error_id=f"Unspecified,{ADD}",
                                   message="Input string was not in a correct format."),
    "loopback": AddCase(("127.0.0.0/8",), error_id=f"InvalidParameter,{ADD}"),
    "link-local": AddCase(("169.254.0.0/16",), error_id=f"InvalidParameter,{ADD}"),
}


@pytest.mark.parametrize("case", ADD_CASES.values(), ids=ADD_CASES.keys())
def test_add_migration_network(case: AddCase) -> None:
    host = fresh()
    result = run(host, inv("Add-VMMigrationNetwork", *case.args, **case.params))
    assert result.terminating is None
    assert tuple(subnets(host)) == case.stored
    assert error_ids(result) == ([case.error_id] if case.error_id else [])
    if case.message:
        assert result.errors[0].message == case.message


def test_adding_an_existing_subnet_is_a_non_terminating_error() -> None:
    host = fresh()
    run(host, inv("Add-VMMigrationNetwork", "10.0.10.0/24", 1))
    for again in ("10.0.10.0/24", "10.0.10.0/24 "):
        result = run(host, inv("Add-VMMigrationNetwork", again, 5, Passthru=None))
        assert error_ids(result) == [f"OperationFailed,{ADD}"]
        assert result.output == [] and result.terminating is None
    assert subnets(host) == [("10.0.10.0/24", 1)]


def test_a_network_added_without_priority_shows_a_null_int32_priority() -> None:
    """The module's VMMigrationNetwork.Priority is Nullable<Int32>: <Nil/> when no Metric was
    stored, an Int32 (not the WMI Metric's UInt32) otherwise."""
    host = fresh()
    run(host, inv("Add-VMMigrationNetwork", "10.0.10.0/24"))
    run(host, inv("Add-VMMigrationNetwork", "10.0.20.0/24", 3))
    unset, set_ = run(host, inv("Get-VMMigrationNetwork")).output
    assert prop(unset, "Priority") is None
    xml = serialize_clixml(set_, PSCryptoProvider())
    assert '<I32 N="Priority">3</I32>' in xml and "U32" not in xml
    assert '<Nil N="Priority" />' in serialize_clixml(unset, PSCryptoProvider())


def test_use_any_network_is_two_hidden_entries() -> None:
    """UseAnyNetworkForMigration is true only when both hidden entries (0.0.0.0/0 and ::/0,
    tagged Microsoft:UserManagedAllNetworks) exist; turning it on keeps the listed networks,
    turning it off removes both hidden entries and nothing else."""
    host = fresh(state=MigrationState(networks=(MigrationNetwork.parse("10.0.10.0/24", 1),)))
    run(host, inv("Set-VMHost", UseAnyNetworkForMigration=True))
    state = host.snapshot()
    assert {(str(n.subnet), n.tag) for n in state.hidden} == {
        ("0.0.0.0/0", "Microsoft:UserManagedAllNetworks"),
        ("::/0", "Microsoft:UserManagedAllNetworks")}
    assert state.use_any_network and subnets(host) == [("10.0.10.0/24", 1)]
    assert [prop(o, "Subnet") for o in run(host, inv("Get-VMMigrationNetwork")).output] == [
        "10.0.10.0/24"]
    one_left = MigrationState(hidden=state.hidden[:1])
    assert not one_left.use_any_network  # both entries, or it is off
    run(host, inv("Set-VMHost", UseAnyNetworkForMigration=False))
    assert host.snapshot().hidden == () and subnets(host) == [("10.0.10.0/24", 1)]
    assert prop(run(host, inv("Get-VMHost")).output[0], "UseAnyNetworkForMigration") is False


def test_add_passthru_and_get_filters() -> None:
    host = fresh()
    result = run(host, inv("Add-VMMigrationNetwork", "10.0.10.0/24", 2, Passthru=None))
    (added,) = result.output
    assert added.PSTypeNames[0] == "Microsoft.HyperV.PowerShell.VMMigrationNetwork"
    assert (prop(added, "Subnet"), prop(added, "Priority")) == ("10.0.10.0/24", 2)
    run(host, inv("Add-VMMigrationNetwork", "10.0.20.0/24", 4))
    run(host, inv("Set-VMHost", UseAnyNetworkForMigration=True))
    listed = [prop(o, "Subnet") for o in run(host, inv("Get-VMMigrationNetwork")).output]
    assert listed == ["10.0.10.0/24", "10.0.20.0/24"]  # no 0.0.0.0/0 nor ::/0
    by_priority = run(host, inv("Get-VMMigrationNetwork", Priority=[4]))
    assert [prop(o, "Subnet") for o in by_priority.output] == ["10.0.20.0/24"]
    by_subnet = run(host, inv("Get-VMMigrationNetwork", "10.0.10.0/24"))
    assert [prop(o, "Subnet") for o in by_subnet.output] == ["10.0.10.0/24"]
    assert run(host, inv("Get-VMMigrationNetwork", "10.9.*")).output == []


@dataclass(frozen=True)
class RemoveCase:
    subnet: str
    left: tuple[str, ...]
    error_id: str | None = None


REMOVE = f"{HV}.RemoveVMMigrationNetwork"
REMOVE_CASES = {
    "exact": RemoveCase("10.0.10.0/24", ("10.0.20.0/24", "fd00:10::/64")),
    "parsed, not string": RemoveCase("10.0.20.0/24 ", ("10.0.10.0/24", "fd00:10::/64")),
    "wildcard": RemoveCase("10.0.*", ("fd00:10::/64",)),
    "wildcard, case-insensitive": RemoveCase("FD00:*", ("10.0.10.0/24", "10.0.20.0/24")),
    "wildcard ?": RemoveCase("10.0.?0.0/24", ("fd00:10::/64",)),
    "missing": RemoveCase("10.9.0.0/16", ("10.0.10.0/24", "10.0.20.0/24", "fd00:10::/64"),
                          f"ObjectNotFound,{REMOVE}"),
    "wildcard matching nothing": RemoveCase(
        "192.*", ("10.0.10.0/24", "10.0.20.0/24", "fd00:10::/64"), f"ObjectNotFound,{REMOVE}"),
    "unparsable": RemoveCase("nonsense", ("10.0.10.0/24", "10.0.20.0/24", "fd00:10::/64"),
                             f"Unspecified,{REMOVE}"),
}


@pytest.mark.parametrize("case", REMOVE_CASES.values(), ids=REMOVE_CASES.keys())
def test_remove_migration_network(case: RemoveCase) -> None:
    host = fresh(state=MigrationState(networks=tuple(
        MigrationNetwork.parse(s) for s in ("10.0.10.0/24", "10.0.20.0/24", "fd00:10::/64"))))
    result = run(host, inv("Remove-VMMigrationNetwork", case.subnet))
    assert result.terminating is None  # missing networks are NOT terminating
    assert error_ids(result) == ([case.error_id] if case.error_id else [])
    assert tuple(text for text, _ in subnets(host)) == case.left


def test_error_action_stop_makes_a_missing_network_terminating() -> None:
    result = run(fresh(), inv("Remove-VMMigrationNetwork", "10.9.0.0/16", ErrorAction="Stop"))
    assert result.terminating is not None
    assert result.terminating.error_id == f"ObjectNotFound,{REMOVE}"
    assert result.errors == []
    quiet = run(fresh(), inv("Remove-VMMigrationNetwork", "10.9.0.0/16", ea="SilentlyContinue"))
    assert quiet.terminating is None and quiet.errors == []


@dataclass(frozen=True)
class SetNetCase:
    args: tuple[Any, ...]
    params: dict[str, Any]
    after: tuple[tuple[str, int | None], ...]
    error_id: str | None = None


SETNET = f"{HV}.SetVMMigrationNetwork"
SETNET_CASES = {
    "new priority": SetNetCase(("10.0.10.0/24",), {"NewPriority": 9},
                               (("10.0.10.0/24", 9), ("10.0.20.0/24", 2))),
    "new subnet keeps position, default priority": SetNetCase(
        ("10.0.10.0/24", "10.0.30.0/24"), {}, (("10.0.30.0/24", None), ("10.0.20.0/24", 2))),
    "new subnet and priority": SetNetCase(
        ("10.0.10.0/24",), {"NewSubnet": "10.0.30.0/24", "NewPriority": 4},
        (("10.0.30.0/24", 4), ("10.0.20.0/24", 2))),
    "by wildcard": SetNetCase(("10.0.2*",), {"NewPriority": 7},
                              (("10.0.10.0/24", 1), ("10.0.20.0/24", 7))),
    "does not add a missing one": SetNetCase(
        ("192.168.10.1",), {"NewPriority": 1}, (("10.0.10.0/24", 1), ("10.0.20.0/24", 2)),
        f"ObjectNotFound,{SETNET}"),
    "wildcard matching two": SetNetCase(
        ("10.0.*",), {"NewPriority": 1}, (("10.0.10.0/24", 1), ("10.0.20.0/24", 2)),
        f"OperationFailed,{SETNET}"),
    "new subnet already present": SetNetCase(
        ("10.0.10.0/24", "10.0.20.0/24"), {}, (("10.0.10.0/24", 1), ("10.0.20.0/24", 2)),
        f"OperationFailed,{SETNET}"),
    "nothing to change": SetNetCase(
        ("10.0.10.0/24",), {}, (("10.0.10.0/24", 1), ("10.0.20.0/24", 2)),
        f"InvalidParameter,{SETNET}"),
    "new subnet with host bits": SetNetCase(
        ("10.0.10.0/24", "10.0.30.1/24"), {}, (("10.0.10.0/24", 1), ("10.0.20.0/24", 2)),
        f"Unspecified,{SETNET}"),
}


@pytest.mark.parametrize("case", SETNET_CASES.values(), ids=SETNET_CASES.keys())
def test_set_migration_network(case: SetNetCase) -> None:
    host = fresh(state=MigrationState(networks=(
        MigrationNetwork.parse("10.0.10.0/24", 1), MigrationNetwork.parse("10.0.20.0/24", 2))))
    result = run(host, inv("Set-VMMigrationNetwork", *case.args, **case.params))
    assert result.terminating is None
    assert error_ids(result) == ([case.error_id] if case.error_id else [])
    assert tuple(subnets(host)) == case.after


def test_pipeline_get_into_remove() -> None:
    host = fresh(state=MigrationState(networks=(MigrationNetwork.parse("10.0.10.0/24"),)))
    result = run(host, inv("Get-VMMigrationNetwork"), inv("Remove-VMMigrationNetwork"))
    assert result.terminating is None and result.errors == []
    assert subnets(host) == []
    # Nothing flows in: the downstream command does not run at all (no "not found" error).
    assert run(host, inv("Get-VMMigrationNetwork"), inv("Remove-VMMigrationNetwork")).errors == []


def test_pipeline_into_a_command_without_pipeline_input() -> None:
    result = run(fresh(), inv("Get-VMHost"), inv("Get-VMHostSupportedVersion"))
    assert error_ids(result) == [
        f"InputObjectNotBound,{HV}.GetVMHostSupportedVersion"]


@pytest.mark.parametrize(("text", "expected"), [
    ("10.0.0.0/8", "10.0.0.0/8"),
    ("10.0.0.1", "10.0.0.1/32"),
    ("0.0.0.0/0", "0.0.0.0/0"),
    ("2001:DB8::/32", "2001:db8::/32"),
    (" 192.168.1.0/24 ", "192.168.1.0/24"),
])
def test_subnet_normalisation(text: str, expected: str) -> None:
    assert parse_subnet(text) == ipaddress.ip_network(expected)


# --- -ComputerName -----------------------------------------------------------------------------


def test_computer_name_must_designate_this_host() -> None:
    host = fresh()
    for name in ("HV01", "hv01.lab.example", "localhost", ".", "10.0.10.11"):
        assert len(run(host, inv("Get-VMHost", ComputerName=[name])).output) == 1, name
    result = run(host, inv("Set-VMHost", "HV02", MaximumVirtualMachineMigrations=8))
    assert error_ids(result) == [f"ObjectNotFound,{HV}.SetVMHost"]
    assert host.snapshot().max_vm_migrations == 2


# --- preflight ---------------------------------------------------------------------------------


def test_cim_computer_system_in_and_out_of_domain() -> None:
    (joined,) = run(fresh(), inv("Get-CimInstance", ClassName="Win32_ComputerSystem")).output
    assert joined.PSTypeNames[0] == (
        "Microsoft.Management.Infrastructure.CimInstance#root/cimv2/Win32_ComputerSystem")
    assert (prop(joined, "PartOfDomain"), prop(joined, "Domain"), prop(joined, "Name")) == (
        True, "lab.example", "HV01")
    loner = fresh(part_of_domain=False)
    (alone,) = run(loner, inv("Get-CimInstance", "win32_computersystem")).output
    assert (prop(alone, "PartOfDomain"), prop(alone, "Domain")) == (False, "WORKGROUP")
    assert prop(run(loner, inv("Get-VMHost")).output[0], "FullyQualifiedDomainName") == (
        "WORKGROUP")


@pytest.mark.parametrize(("config", "caption", "version", "build"), [
    (server_2022("HV01"), "Microsoft Windows Server 2022 Datacenter", "10.0.20348", "20348"),
    (server_2025("HV02"), "Microsoft Windows Server 2025 Datacenter", "10.0.26100", "26100"),
])
def test_cim_operating_system(config: LabHostConfig, caption: str, version: str,
                              build: str) -> None:
    result = run(HyperVHost(config), inv("Get-CimInstance", ClassName="Win32_OperatingSystem"))
    (os_obj,) = result.output
    assert (prop(os_obj, "Caption"), prop(os_obj, "Version"), prop(os_obj, "BuildNumber")) == (
        caption, version, build)
    by_query = run(HyperVHost(config), inv("Get-CimInstance",
                                           Query="SELECT * FROM Win32_OperatingSystem"))
    assert prop(by_query.output[0], "BuildNumber") == build


def test_cim_unknown_class_is_a_non_terminating_cim_error() -> None:
    result = run(fresh(), inv("Get-CimInstance", "Win32_Nope"))
    assert result.terminating is None
    assert error_ids(result) == [
        "HRESULT 0x80041010,Microsoft.Management.Infrastructure.CimCmdlets.GetCimInstanceCommand"]


def test_windows_feature() -> None:
    (feature,) = run(fresh(), inv("Get-WindowsFeature", Name="Hyper-V")).output
    assert feature.PSTypeNames[0] == "Microsoft.Windows.ServerManager.Commands.Feature"
    assert str(prop(feature, "InstallState")) == "Installed" and prop(feature, "Installed")
    assert len(run(fresh(), inv("Get-WindowsFeature", "Hyper-V*")).output) == 2
    assert run(fresh(), inv("Get-WindowsFeature", "Nope")).output == []


def test_net_ip_address() -> None:
    host = fresh()
    everything = run(host, inv("Get-NetIPAddress")).output
    assert {prop(a, "IPAddress") for a in everything} >= {"10.0.10.11", "fd00:10::11"}
    (v4,) = run(host, inv("Get-NetIPAddress", AddressFamily="IPv4",
                          InterfaceAlias="Ethernet")).output
    assert (prop(v4, "IPAddress"), prop(v4, "PrefixLength")) == ("10.0.10.11", 24)
    assert (str(prop(v4, "AddressFamily")), int(prop(v4, "AddressFamily"))) == ("IPv4", 2)
    assert prop(v4, "InterfaceAlias") == "Ethernet"
    missing = run(host, inv("Get-NetIPAddress", IPAddress="10.9.9.9"))
    assert error_ids(missing) == ["CmdletizationQuery_NotFound_IPAddress,Get-NetIPAddress"]


def test_vms_and_supported_versions() -> None:
    config = server_2022("HV01", vms=[LabVM("app1", "9.0"), ("db1", "10.0")])
    host = HyperVHost(config)
    vms = run(host, inv("Get-VM")).output
    assert [(prop(v, "Name"), prop(v, "Version")) for v in vms] == [("app1", "9.0"),
                                                                    ("db1", "10.0")]
    assert [prop(v, "Name") for v in run(host, inv("Get-VM", "db*")).output] == ["db1"]
    assert error_ids(run(host, inv("Get-VM", "nope"))) == [f"InvalidParameter,{HV}.GetVM"]
    versions = run(host, inv("Get-VMHostSupportedVersion")).output
    assert [str(prop(v, "Version")) for v in versions] == [
        "8.0", "8.1", "8.2", "8.3", "9.0", "9.1", "9.2", "9.3", "10.0"]
    assert str(prop(versions[-1], "Version")) == "10.0" and prop(versions[-1], "IsDefault")
    (default,) = run(HyperVHost(server_2025("HV02")),
                     inv("Get-VMHostSupportedVersion", Default=None)).output
    assert str(prop(default, "Version")) == "12.0"


@pytest.mark.parametrize("statement", [
    inv("klist", "purge", "-li", "0x3e7"),
    inv("klist", "-li", "0x3E7", "purge"),
    inv("klist.exe", "purge", li="0x3e7"),
])
def test_klist_purge_of_the_system_logon_session(statement: Invocation) -> None:
    host = fresh()
    result = run(host, statement)
    assert result.terminating is None
    assert "Targeted LogonId is 0:0x3e7" in result.output
    assert "\tTicket(s) purged!" in result.output
    assert host.purge_count() == 1 and host.purge_count("0x5c3a1f") == 0
    listing = run(host, inv("klist", "-li", "0x3e7"))
    assert "Cached Tickets: (0)" in listing.output


def test_klist_with_odd_arguments_prints_usage_and_purges_nothing() -> None:
    host = fresh()
    result = run(host, inv("klist", "purge", "-li"))
    assert any(line.startswith("Usage: klist") for line in result.output)
    assert host.purge_count() == 0


# --- serialisation and threads -----------------------------------------------------------------


def test_vmhost_serialises_with_enum_type_names_and_values() -> None:
    host = fresh(state=MigrationState(authentication=AuthenticationType.Kerberos,
                                      performance=PerformanceOption.SMB))
    clixml = serialize_clixml(run(host, inv("Get-VMHost")).output[0], PSCryptoProvider())
    assert "<T>Microsoft.HyperV.PowerShell.VMHost</T>" in clixml
    assert "<T>Microsoft.HyperV.PowerShell.MigrationAuthenticationType</T>" in clixml
    assert "<T>Microsoft.HyperV.PowerShell.VMMigrationPerformance</T>" in clixml
    assert "<ToString>Kerberos</ToString>" in clixml and "<ToString>SMB</ToString>" in clixml
    assert '<I32>1</I32>' in clixml and '<I32>2</I32>' in clixml
    assert '<U32 N="MaximumVirtualMachineMigrations">2</U32>' in clixml


def test_supported_version_serialises_as_system_version() -> None:
    version = run(fresh(), inv("Get-VMHostSupportedVersion", Default=None)).output[0]
    clixml = serialize_clixml(version, PSCryptoProvider())
    assert '<Version N="Version">10.0</Version>' in clixml


def test_concurrent_adds_are_all_kept() -> None:
    host = fresh()

    def add(i: int) -> None:
        run(host, inv("Add-VMMigrationNetwork", f"10.{i}.0.0/16"))

    threads = [threading.Thread(target=add, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(host.snapshot().networks) == 20
    assert len(host.history()) == 20


def test_fleet_hosts_each_own_an_address_in_the_migration_subnet() -> None:
    hosts = fleet(3, migration_subnet="10.20.0.0/24", windows_2025=[3])
    assert [h.name for h in hosts] == ["HV01", "HV02", "HV03"]
    subnet = ipaddress.ip_network("10.20.0.0/24")
    assert all(a.interface.ip in subnet for h in hosts for a in h.addresses)
    assert len({a.interface.ip for h in hosts for a in h.addresses}) == 3
    assert hosts[2].os.build == "26100" and hosts[0].os.build == "20348"
    assert fleet(200)[-1].name == "HV200"
    with pytest.raises(ValueError, match="too small"):
        fleet(300, migration_subnet="10.20.0.0/24")
