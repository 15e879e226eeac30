"""The Hyper-V module's migration cmdlets, simulated: Get/Set-VMHost, Enable/Disable-VMMigration,
Get/Add/Set/Remove-VMMigrationNetwork.

Part of the lab: `hyperv/host.py` registers `COMMANDS` and runs them under the host's lock.
Behaviour follows ../shared/notes/DOMAIN.md and the module's own logic: errors found while running
are NON-terminating VirtualizationException records ("<Id>,Microsoft.HyperV.PowerShell.Commands.X"),
as the real cmdlets write them; subnets are parsed as Hyper-V's NetworkUtilities does (a bare IP
is /32 or /128, host bits set are refused) and compared as parsed networks, or as
case-insensitive strings when the filter has wildcards.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace

from psrpcore.types import ErrorCategory

from hvlm_lab.hyperv.binding import Bound, CmdletSpec, Kind, Param
from hvlm_lab.hyperv.config import (
    DEFAULT_NETWORK_PRIORITY,
    IPNetwork,
    MigrationNetwork,
    MigrationState,
)
from hvlm_lab.hyperv.objects import (
    MigrationAuthenticationType,
    VMMigrationPerformance,
    auth_from_ps,
    migration_network,
    perf_from_ps,
    vm_host,
)
from hvlm_lab.hyperv.runtime import (
    Command,
    Emitter,
    HostView,
    has_wildcards,
    targets_this_host,
    wildcard_match,
)

COMMANDS_NS = "Microsoft.HyperV.PowerShell.Commands"

# Messages of .NET exceptions that Hyper-V's subnet parser lets through.
FORMAT_GENERIC = "One of the identified items was in an invalid format."
FORMAT_ADDRESS = "An invalid IP address was specified."
FORMAT_NUMBER = "Input string was not in a correct format."
OVERFLOW_BYTE = "Value was either too large or too small for an unsigned byte."
# Lab wording (the real resource strings are not public).
NO_NETWORKS = "No migration networks were found matching the specified criteria."
NO_PARAMETER = ("Set-VMHost requires at least one parameter that changes a setting of the host; "
                "none was specified.")
LOOPBACK = "A loopback address cannot be used as a migration network."
LINK_LOCAL = "A link-local (APIPA) address cannot be used as a migration network."
MULTIPLE = "The subnet matches more than one migration network: only one can be changed at a time."


class SubnetError(ValueError):
    """Hyper-V's parser refused a subnet: the message is the .NET exception's."""


def parse_subnet(text: str) -> IPNetwork:
    """NetworkUtilities.ParseSubnetString: "a.b.c.d[/n]" -> network, refusing host bits."""
    text = text.strip()
    address, slash, prefix_text = text.partition("/")
    prefix: int | None = None
    if slash:
        if not prefix_text.strip().lstrip("+-").isdigit():
            raise SubnetError(FORMAT_NUMBER)
        prefix = int(prefix_text)
        if not 0 <= prefix <= 255:
            raise SubnetError(OVERFLOW_BYTE)
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise SubnetError(FORMAT_ADDRESS) from None
    prefix = ip.max_prefixlen if prefix is None else prefix
    if prefix > ip.max_prefixlen:
        raise SubnetError(FORMAT_GENERIC)
    try:
        return ipaddress.ip_network(f"{ip}/{prefix}", strict=True)
    except ValueError:
        raise SubnetError(FORMAT_GENERIC) from None


def subnet_matches(pattern: str, network: MigrationNetwork) -> bool:
    """VMHost.MatchesSubnet: wildcards match the "{network}/{prefix}" text, else parsed equality."""
    if has_wildcards(pattern):
        return wildcard_match(pattern, network.text)
    return parse_subnet(pattern) == network.subnet


def select_networks(state: MigrationState, subnets: list[str] | None,
                    priorities: list[int] | None = None) -> list[MigrationNetwork]:
    return [n for n in state.networks
            if (subnets is None or any(subnet_matches(s, n) for s in subnets))
            and (priorities is None or n.priority in priorities)]


def _host_params(position: int | None = None) -> tuple[Param, ...]:
    second = None if position is None else position + 1
    return (
        Param("ComputerName", Kind.STRINGS, position=position, not_empty=True),
        Param("Credential", Kind.ANY, position=second),
        Param("CimSession", Kind.CIM_SESSIONS),
    )


def _spec(verb_noun: str, params: tuple[Param, ...], should_process: bool) -> CmdletSpec:
    return CmdletSpec(verb_noun, f"{COMMANDS_NS}.{verb_noun.replace('-', '')}", params,
                      should_process=should_process)


PASSTHRU = Param("Passthru", Kind.SWITCH)
AUTH = Param("VirtualMachineMigrationAuthenticationType", Kind.ENUM,
             enum=MigrationAuthenticationType,
             enum_type_name="Microsoft.HyperV.PowerShell.MigrationAuthenticationType")
PERF = Param("VirtualMachineMigrationPerformanceOption", Kind.ENUM, enum=VMMigrationPerformance,
             enum_type_name="Microsoft.HyperV.PowerShell.VMMigrationPerformance")
MIGRATION_SETTINGS = ("MaximumVirtualMachineMigrations", "UseAnyNetworkForMigration",
                      AUTH.name, PERF.name)
OTHER_SETTINGS = ("MaximumStorageMigrations", "ResourceMeteringSaveInterval", "VirtualHardDiskPath",
                  "VirtualMachinePath", "MacAddressMaximum", "MacAddressMinimum",
                  "FibreChannelWwnn", "FibreChannelWwpnMaximum", "FibreChannelWwpnMinimum",
                  "NumaSpanningEnabled", "EnableEnhancedSessionMode")
_STRING_SETTINGS = tuple(Param(n, Kind.STRING, not_empty=True) for n in OTHER_SETTINGS[2:9])

GET_VMHOST = _spec("Get-VMHost", _host_params(0), False)
SET_VMHOST = _spec("Set-VMHost", _host_params(0) + (
    Param("MaximumStorageMigrations", Kind.UINT32),
    Param("MaximumVirtualMachineMigrations", Kind.UINT32),
    AUTH,
    Param("UseAnyNetworkForMigration", Kind.BOOL),
    PERF,
    Param("ResourceMeteringSaveInterval", Kind.ANY),
    *_STRING_SETTINGS,
    Param("NumaSpanningEnabled", Kind.BOOL),
    Param("EnableEnhancedSessionMode", Kind.BOOL),
    PASSTHRU,
), True)
ENABLE_MIGRATION = _spec("Enable-VMMigration", _host_params(0) + (PASSTHRU,), True)
DISABLE_MIGRATION = _spec("Disable-VMMigration", _host_params(0) + (PASSTHRU,), True)
GET_NETWORK = _spec("Get-VMMigrationNetwork", _host_params() + (
    Param("Subnet", Kind.STRINGS, position=0),
    Param("Priority", Kind.UINT32S),
), False)
SUBNET = Param("Subnet", Kind.STRING, position=0, mandatory=True, not_empty=True, pipeline=True)
ADD_NETWORK = _spec("Add-VMMigrationNetwork", _host_params() + (
    SUBNET, Param("Priority", Kind.UINT32, position=1), PASSTHRU), True)
SET_NETWORK = _spec("Set-VMMigrationNetwork", _host_params() + (
    SUBNET, Param("NewSubnet", Kind.STRING, position=1, not_empty=True),
    Param("NewPriority", Kind.UINT32), PASSTHRU), True)
REMOVE_NETWORK = _spec("Remove-VMMigrationNetwork", _host_params() + (SUBNET, PASSTHRU), True)


def get_vmhost(host: HostView, bound: Bound, out: Emitter) -> None:
    if targets_this_host(host, bound, out):
        out.write(vm_host(host.config, host.state()))


def set_vmhost(host: HostView, bound: Bound, out: Emitter) -> None:
    if not targets_this_host(host, bound, out) or not out.should_process():
        return
    if not any(name in bound for name in MIGRATION_SETTINGS + OTHER_SETTINGS):
        target = vm_host(host.config, host.state())
        out.vm_error("InvalidOperation", ErrorCategory.InvalidOperation, NO_PARAMETER, target)
        return
    host.set_state(_apply_settings(host.state(), bound, out))
    if bound.get("Passthru"):
        out.write(vm_host(host.config, host.state()))


def _apply_settings(state: MigrationState, bound: Bound, out: Emitter) -> MigrationState:
    """SetVMHost.ProcessOneOperand for the settings the lab keeps (others are accepted only)."""
    if "UseAnyNetworkForMigration" in bound:
        state = state.with_any_network(bool(bound.get("UseAnyNetworkForMigration")))
    if "MaximumVirtualMachineMigrations" in bound:
        state = replace(state, max_vm_migrations=bound.get("MaximumVirtualMachineMigrations"))
    if AUTH.name in bound:
        auth = auth_from_ps(bound.get(AUTH.name))
        # SetVMHost.cs only traces Warning_CredSSP (VMTrace.TraceWarning, a trace file): no
        # warning record reaches the pipeline (FIDELITY.md).
        state = replace(state, authentication=auth)
    if PERF.name in bound:
        state = replace(state, performance=perf_from_ps(bound.get(PERF.name)))
    if "MaximumStorageMigrations" in bound:
        state = replace(state, max_storage_migrations=bound.get("MaximumStorageMigrations"))
    return state


def _set_enabled(host: HostView, bound: Bound, out: Emitter, enabled: bool) -> None:
    if not targets_this_host(host, bound, out) or not out.should_process():
        return
    host.set_state(replace(host.state(), enabled=enabled))
    if bound.get("Passthru"):
        out.write(vm_host(host.config, host.state()))


def enable_migration(host: HostView, bound: Bound, out: Emitter) -> None:
    _set_enabled(host, bound, out, True)


def disable_migration(host: HostView, bound: Bound, out: Emitter) -> None:
    _set_enabled(host, bound, out, False)


def _format_error(out: Emitter, error: SubnetError, subnet: str) -> None:
    # A .NET FormatException/OverflowException is neither Argument- nor VirtualizationException.
    out.vm_error("Unspecified", ErrorCategory.NotSpecified, str(error))  # no target (FIDELITY.md)


def get_networks(host: HostView, bound: Bound, out: Emitter) -> None:
    if not targets_this_host(host, bound, out):
        return
    try:
        found = select_networks(host.state(), bound.get("Subnet"), bound.get("Priority"))
    except SubnetError as error:
        _format_error(out, error, bound.get("Subnet"))
        return
    for network in found:
        out.write(migration_network(host.config, network))


def _validate_new_subnet(out: Emitter, text: str) -> IPNetwork | None:
    """AddVMMigrationNetwork.ValidateParameters: parsable, not loopback, not APIPA."""
    try:
        network = parse_subnet(text)
    except SubnetError as error:
        _format_error(out, error, text)
        return None
    if network.network_address.is_loopback:
        out.vm_error("InvalidParameter", ErrorCategory.InvalidArgument, LOOPBACK)
        return None
    if network.version == 4 and str(network.network_address).startswith("169.254."):
        out.vm_error("InvalidParameter", ErrorCategory.InvalidArgument, LINK_LOCAL)
        return None
    return network


def _already_exists(out: Emitter, subnet: str) -> None:
    out.vm_error("OperationFailed", ErrorCategory.InvalidOperation,
                 f"The migration network '{subnet}' already exists.")


def add_network(host: HostView, bound: Bound, out: Emitter) -> None:
    subnet: str = bound.get("Subnet")
    network = _validate_new_subnet(out, subnet)
    if network is None or not targets_this_host(host, bound, out) or not out.should_process():
        return
    state = host.state()
    if any(n.subnet == network for n in state.networks):
        _already_exists(out, subnet)
        return
    priority = bound.get("Priority", None)
    added = MigrationNetwork(network, _priority(priority), typed=_typed(subnet))
    host.set_state(replace(state, networks=state.networks + (added,)))
    if bound.get("Passthru"):
        out.write(migration_network(host.config, added))


def _typed(text: str) -> str:
    """VMHost.AddNetwork stores SubnetNumber as typed (the text before '/'), not canonical."""
    return text.strip().partition("/")[0].strip()


def _priority(value: int | None) -> int | None:
    return DEFAULT_NETWORK_PRIORITY if value is None else value


def set_network(host: HostView, bound: Bound, out: Emitter) -> None:
    subnet: str = bound.get("Subnet")
    if "NewSubnet" not in bound and "NewPriority" not in bound:
        out.vm_error("InvalidParameter", ErrorCategory.InvalidArgument,
                     "Specify -NewSubnet or -NewPriority (or both) to change a migration network.")
        return
    new_network = None
    if "NewSubnet" in bound:
        new_network = _validate_new_subnet(out, bound.get("NewSubnet"))
        if new_network is None:
            return
    if not targets_this_host(host, bound, out) or not out.should_process():
        return
    state = host.state()
    try:
        found = select_networks(state, [subnet])
    except SubnetError as error:
        _format_error(out, error, subnet)
        return
    if len(found) != 1:
        if found:
            out.vm_error("OperationFailed", ErrorCategory.InvalidOperation, MULTIPLE)
        else:
            out.vm_error("ObjectNotFound", ErrorCategory.ObjectNotFound, NO_NETWORKS)
        return
    old = found[0]
    if new_network is not None:
        if any(n.subnet == new_network for n in state.networks):
            _already_exists(out, subnet)  # Hyper-V names the old subnet here
            return
        # As Hyper-V does: a new entry, with -NewPriority or the default one (not the old one).
        changed = MigrationNetwork(new_network, _priority(bound.get("NewPriority")),
                                   typed=_typed(bound.get("NewSubnet")))
    else:
        changed = replace(old, priority=bound.get("NewPriority"))
    networks = tuple(changed if n is old else n for n in state.networks)
    host.set_state(replace(state, networks=networks))
    if bound.get("Passthru"):
        out.write(migration_network(host.config, changed))


def remove_network(host: HostView, bound: Bound, out: Emitter) -> None:
    subnet: str = bound.get("Subnet")
    if not targets_this_host(host, bound, out):
        return
    state = host.state()
    try:
        found = select_networks(state, [subnet]) if state.networks else []
    except SubnetError as error:
        _format_error(out, error, subnet)
        return
    if not found:
        out.vm_error("ObjectNotFound", ErrorCategory.ObjectNotFound, NO_NETWORKS)
        return
    if not out.should_process():
        return
    host.set_state(replace(state, networks=tuple(n for n in state.networks if n not in found)))
    if bound.get("Passthru"):
        for network in found:
            out.write(migration_network(host.config, network))


COMMANDS = (
    Command(GET_VMHOST, get_vmhost, needs_hyperv=True),
    Command(SET_VMHOST, set_vmhost, needs_hyperv=True),
    Command(ENABLE_MIGRATION, enable_migration, needs_hyperv=True),
    Command(DISABLE_MIGRATION, disable_migration, needs_hyperv=True),
    Command(GET_NETWORK, get_networks, needs_hyperv=True),
    Command(ADD_NETWORK, add_network, needs_hyperv=True),
    Command(SET_NETWORK, set_network, needs_hyperv=True),
    Command(REMOVE_NETWORK, remove_network, needs_hyperv=True),
)
