"""What hvlm sends to a host: the read statements and the ordered, safe write steps. Pure.

Pipeline position: the planner (hvlm.planner) decides WHAT differs; this module turns a host's
desired MigrationSettings and its observed MigrationState into `HostCommand`s (cmdlet + named
parameters), which hvlm.hosts.session sends as structured commands (AddCommand/AddParameter, never
a script and never a string built from values). Nothing here touches the network.

Order of the write steps (each host, one pipeline):

1. `Disable-VMMigration` when `enabled: false` is declared (never otherwise);
2. `Enable-VMMigration` as early as the host then still has a way to migrate (a network, or
   "use any network"): first when it already has one, else right after the step giving it one;
3. `Add-VMMigrationNetwork` for new subnets, `Set-VMMigrationNetwork -NewPriority` for changed
   priorities;
4. one `Set-VMHost` carrying every changed setting (incl. `-UseAnyNetworkForMigration`);
5. `Remove-VMMigrationNetwork` for subnets the manifest no longer lists.

So a host never passes through "migration enabled, not on any network, no network listed"; a
desired state that would end there is refused (`UnsafeHostChange`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from hvlm.errors import HvlmError
from hvlm.hosts.parse import parse_subnet
from hvlm.model import IPNetwork, MigrationNetwork, MigrationSettings
from hvlm.settings import BY_ATTR, HOST_SETTINGS, SET_VMHOST
from hvlm.state import MIGRATION_FIREWALL_RULE, MigrationState, ObservedNetwork

ParameterValue = object  # str | int | bool | None (None = a switch)


@dataclass(frozen=True)
class HostCommand:
    """One cmdlet with its named parameters (in order) and positional arguments.

    Values travel as typed PSRP parameter values; a value of None is a switch parameter.
    """

    cmdlet: str
    parameters: tuple[tuple[str, ParameterValue], ...] = ()
    arguments: tuple[str, ...] = ()  # positional (native commands such as klist)

    def parameter(self, name: str) -> ParameterValue:
        for key, value in self.parameters:
            if key.lower() == name.lower():
                return value
        raise KeyError(name)

    def __str__(self) -> str:
        """A readable, PowerShell-like rendering for messages (never executed)."""
        parts = [self.cmdlet]
        for name, value in self.parameters:
            parts.append(f"-{name}" if value is None else f"-{name} {_render(value)}")
        parts.extend(self.arguments)
        return " ".join(parts)


def _render(value: ParameterValue) -> str:
    if isinstance(value, bool):
        return "$true" if value else "$false"
    return str(value)


class UnsafeHostChange(HvlmError):
    """The desired state would leave migration enabled with no network to migrate on."""


# -- read -------------------------------------------------------------------------------------

GET_VMHOST = HostCommand("Get-VMHost")
GET_MIGRATION_NETWORKS = HostCommand("Get-VMMigrationNetwork")
GET_COMPUTER_SYSTEM = HostCommand("Get-CimInstance", (("ClassName", "Win32_ComputerSystem"),))
GET_OPERATING_SYSTEM = HostCommand("Get-CimInstance", (("ClassName", "Win32_OperatingSystem"),))
GET_HYPERV_FEATURE = HostCommand("Get-WindowsFeature", (("Name", "Hyper-V"),))
GET_IP_ADDRESSES = HostCommand("Get-NetIPAddress")
GET_VMS = HostCommand("Get-VM")
GET_SUPPORTED_VERSIONS = HostCommand("Get-VMHostSupportedVersion")
# Credential Guard evidence (DOMAIN.md): SecurityServicesRunning/Configured containing 1.
DEVICE_GUARD_NAMESPACE = "root/Microsoft/Windows/DeviceGuard"
GET_DEVICE_GUARD = HostCommand(
    "Get-CimInstance",
    (("Namespace", DEVICE_GUARD_NAMESPACE), ("ClassName", "Win32_DeviceGuard")),
)
# The destination's migration listener (TCP 6600): "Hyper-V (MIG-TCP-In)". Read only: hvlm never
# changes firewalls.
GET_MIGRATION_FIREWALL_RULE = HostCommand(
    "Get-NetFirewallRule", (("Name", MIGRATION_FIREWALL_RULE),)
)

# The DC the host uses (issue 15): Win32_NTDomain.DomainControllerName ("\\dc1.lab.example").
GET_NT_DOMAIN = HostCommand("Get-CimInstance", (("ClassName", "Win32_NTDomain"),))

# Whether each VM can move (issue 22). `-VMName *` selects every VM of the host: a wildcard that
# matches nothing writes no error (WriteNonMatchingNameErrors skips wildcard names), so a host
# without VMs reads as empty; -VMName leaves out the management OS's adapters (-All has them).
ALL_VMS = "*"
GET_VM_SWITCHES = HostCommand("Get-VMSwitch")
GET_VM_ADAPTERS = HostCommand("Get-VMNetworkAdapter", (("VMName", ALL_VMS),))
GET_VM_PROCESSORS = HostCommand("Get-VMProcessor", (("VMName", ALL_VMS),))
GET_PROCESSORS = HostCommand("Get-CimInstance", (("ClassName", "Win32_Processor"),))

# Everything the planner and the preflight need, as statements of ONE pipeline. The essential
# two come first; Get-WindowsFeature (absent on client Windows, where a missing command fails the
# rest of the pipeline) comes last so that it can cost nothing but its own fact.
READ_STATEMENTS: tuple[HostCommand, ...] = (
    GET_VMHOST,
    GET_MIGRATION_NETWORKS,
    GET_COMPUTER_SYSTEM,
    GET_OPERATING_SYSTEM,
    GET_IP_ADDRESSES,
    GET_VMS,
    GET_SUPPORTED_VERSIONS,
    GET_DEVICE_GUARD,
    GET_MIGRATION_FIREWALL_RULE,
    GET_NT_DOMAIN,
    GET_VM_SWITCHES,
    GET_VM_ADAPTERS,
    GET_VM_PROCESSORS,
    GET_PROCESSORS,
    GET_HYPERV_FEATURE,
)

# `klist purge -li 0x3e7`: drop the computer's (SYSTEM) Kerberos tickets after delegation changed.
PURGE_SYSTEM_TICKETS = HostCommand("klist", arguments=("purge", "-li", "0x3e7"))


# -- write ------------------------------------------------------------------------------------

ENABLE_MIGRATION = HostCommand("Enable-VMMigration")
DISABLE_MIGRATION = HostCommand("Disable-VMMigration")


def add_network(net: MigrationNetwork) -> HostCommand:
    params: tuple[tuple[str, ParameterValue], ...] = (("Subnet", str(net.subnet)),)
    if net.priority is not None:
        params += (("Priority", net.priority),)
    return HostCommand("Add-VMMigrationNetwork", params)


def set_network_priority(network: ObservedNetwork, priority: int) -> HostCommand:
    """-Subnet names the host's entry as the host shows it (ObservedNetwork.cmdlet_subnet)."""
    return HostCommand(
        "Set-VMMigrationNetwork", (("Subnet", network.cmdlet_subnet), ("NewPriority", priority))
    )


def remove_network(network: ObservedNetwork) -> HostCommand:
    return HostCommand("Remove-VMMigrationNetwork", (("Subnet", network.cmdlet_subnet),))


def host_commands(desired: MigrationSettings, observed: MigrationState) -> tuple[HostCommand, ...]:
    """The ordered, safe steps that bring `observed` to `desired` (empty when nothing differs).

    Only fields the manifest declares (not None) are compared. Raises UnsafeHostChange when the
    desired state itself would leave migration enabled on no network.
    """
    final = expected_state(desired, observed)
    if stranded(final):
        raise UnsafeHostChange(
            "migration would be enabled with useAnyNetwork false and no migration network: "
            "declare at least one network or useAnyNetwork: true"
        )
    adds, priorities, removes = _network_steps(desired, observed)
    set_host = _set_vmhost(desired, observed)
    steps: list[HostCommand] = []
    if desired.enabled is False and observed.enabled:
        steps.append(DISABLE_MIGRATION)
    steps.extend(adds)
    steps.extend(priorities)
    if set_host is not None:
        steps.append(set_host)
    steps.extend(removes)
    if desired.enabled is True and not observed.enabled:
        steps.insert(_first_safe_index(steps, observed), ENABLE_MIGRATION)
    return tuple(steps)


def _network_steps(
    desired: MigrationSettings, observed: MigrationState
) -> tuple[list[HostCommand], list[HostCommand], list[HostCommand]]:
    if desired.networks is None:
        return [], [], []
    adds: list[HostCommand] = []
    priorities: list[HostCommand] = []
    for net in desired.networks:
        seen = observed.network(net.subnet)
        if seen is None:
            adds.append(add_network(net))
        elif net.priority is not None and seen.priority != net.priority:
            priorities.append(set_network_priority(seen, net.priority))
    wanted = {net.subnet for net in desired.networks}
    removes = [remove_network(n) for n in observed.networks if n.subnet not in wanted]
    return adds, priorities, removes


def _set_vmhost(desired: MigrationSettings, observed: MigrationState) -> HostCommand | None:
    """One Set-VMHost with every declared setting that differs (hvlm.settings.SET_VMHOST)."""
    params: list[tuple[str, ParameterValue]] = []
    for setting in SET_VMHOST:
        want = getattr(desired, setting.attr)
        if want is not None and want != getattr(observed, setting.attr):
            assert setting.parameter is not None
            params.append((setting.parameter, setting.plain(want)))
    return HostCommand("Set-VMHost", tuple(params)) if params else None


def _first_safe_index(steps: list[HostCommand], observed: MigrationState) -> int:
    """Where Enable-VMMigration goes: the first point where the host has a way to migrate."""
    state = replace(observed, enabled=True)
    for index in range(len(steps) + 1):
        if not stranded(state):
            return index
        if index < len(steps):
            state = simulate(state, steps[index])
    return len(steps)


def stranded(state: MigrationState) -> bool:
    """Migration enabled, not on any network, and no network listed: migrations cannot work."""
    return state.enabled and not state.use_any_network and not state.networks


def restore_commands(before: MigrationState, after: MigrationState) -> tuple[HostCommand, ...]:
    """Undo what stranded a host that was not stranded before a failed write (a safety net).

    Puts back the networks (or "use any network") it had; if migration was off before, turns
    it off again (undoing hvlm's own Enable-VMMigration, never disabling a host that was on).
    """
    if not stranded(after) or stranded(before):
        return ()
    if not before.enabled:
        return (DISABLE_MIGRATION,)
    steps = [add_network(MigrationNetwork(n.subnet, n.priority)) for n in before.networks]
    if before.use_any_network:
        parameter = BY_ATTR["use_any_network"].parameter
        assert parameter is not None
        steps.append(HostCommand("Set-VMHost", ((parameter, True),)))
    return tuple(steps)


def expected_state(desired: MigrationSettings, observed: MigrationState) -> MigrationState:
    """What the host looks like once the declared fields are applied."""
    changes: dict[str, object] = {}
    for setting in HOST_SETTINGS:
        want = getattr(desired, setting.attr)
        if want is not None:
            changes[setting.attr] = want
    if desired.networks is not None:
        changes["networks"] = tuple(
            ObservedNetwork(
                n.subnet,
                n.priority if n.priority is not None else _observed_priority(observed, n.subnet),
            )
            for n in desired.networks
        )
    return replace(observed, **changes)  # type: ignore[arg-type]


def _observed_priority(observed: MigrationState, subnet: IPNetwork) -> int | None:
    """The priority a network keeps when the manifest leaves it unmanaged: the host's, or (for a
    network added without -Priority) whatever the service chooses, None included."""
    seen = observed.network(subnet)
    return seen.priority if seen is not None else None


def simulate(state: MigrationState, step: HostCommand) -> MigrationState:
    """The effect of one write step on a MigrationState (used to prove the order safe)."""
    name = step.cmdlet
    if name == "Enable-VMMigration":
        return replace(state, enabled=True)
    if name == "Disable-VMMigration":
        return replace(state, enabled=False)
    if name in {"Add-VMMigrationNetwork", "Set-VMMigrationNetwork", "Remove-VMMigrationNetwork"}:
        subnet = parse_subnet(str(step.parameter("Subnet")))
        others = tuple(n for n in state.networks if n.subnet != subnet)
        if name == "Remove-VMMigrationNetwork":
            return replace(state, networks=others)
        key = "Priority" if name == "Add-VMMigrationNetwork" else "NewPriority"
        priority = dict((k, v) for k, v in step.parameters).get(key)
        number = None if priority is None else int(str(priority))
        return replace(state, networks=others + (ObservedNetwork(subnet, number),))
    if name == "Set-VMHost":
        changes: dict[str, object] = {}
        for setting in SET_VMHOST:
            if any(k == setting.parameter for k, _ in step.parameters):
                assert setting.parameter is not None
                changes[setting.attr] = setting.typed(step.parameter(setting.parameter))
        return replace(state, **changes)  # type: ignore[arg-type]
    return state
