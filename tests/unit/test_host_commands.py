"""host_commands: desired MigrationSettings + observed MigrationState -> ordered, safe write steps.

Table-driven cases for the order, and property tests that run every step on the lab's Hyper-V
model (hvlm_lab.hyperv.host.HyperVHost, invoked directly: no wire), an implementation written
apart from hvlm from the domain notes: no intermediate state strands the host, migration is
never disabled unless asked, the host accepts every step without an error, and the final state
is the one the manifest declares (computed here, not by hvlm.hosts.commands).
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hvlm.hosts.commands import (
    READ_STATEMENTS,
    HostCommand,
    UnsafeHostChange,
    host_commands,
    restore_commands,
)
from hvlm.model import AuthenticationType, MigrationNetwork, MigrationSettings, PerformanceOption
from hvlm.state import MigrationState, ObservedNetwork
from hvlm_lab.cmdlets import Invocation
from hvlm_lab.hyperv import config as lab
from hvlm_lab.hyperv.host import HyperVHost

NET_A = ipaddress.ip_network("192.168.10.0/24")
NET_B = ipaddress.ip_network("10.20.0.0/16")
NET_C = ipaddress.ip_network("fd00:30::/64")

FRESH = MigrationState(
    enabled=False,
    authentication=AuthenticationType.CREDSSP,
    performance=PerformanceOption.COMPRESSION,
    max_virtual_machine_migrations=2,
    max_storage_migrations=2,
    use_any_network=False,
)


def names(steps: tuple[HostCommand, ...]) -> list[str]:
    return [str(s) for s in steps]


def test_read_is_one_statement_per_cmdlet_with_parameters_only() -> None:
    assert names(READ_STATEMENTS) == [
        "Get-VMHost",
        "Get-VMMigrationNetwork",
        "Get-CimInstance -ClassName Win32_ComputerSystem",
        "Get-CimInstance -ClassName Win32_OperatingSystem",
        "Get-NetIPAddress",
        "Get-VM",
        "Get-VMHostSupportedVersion",
        "Get-CimInstance -Namespace root/Microsoft/Windows/DeviceGuard -ClassName Win32_DeviceGuard",
        "Get-NetFirewallRule -Name VIRT-MIGL-In-TCP-NoScope",
        "Get-CimInstance -ClassName Win32_NTDomain",
        "Get-VMSwitch",
        "Get-VMNetworkAdapter -VMName *",
        "Get-VMProcessor -VMName *",
        "Get-CimInstance -ClassName Win32_Processor",
        "Get-WindowsFeature -Name Hyper-V",
    ]


def test_nothing_declared_nothing_sent() -> None:
    assert host_commands(MigrationSettings(), FRESH) == ()


def test_already_true_sends_nothing() -> None:
    observed = MigrationState(
        True,
        AuthenticationType.KERBEROS,
        PerformanceOption.SMB,
        4,
        3,
        False,
        (ObservedNetwork(NET_A, 0),),
    )
    desired = MigrationSettings(
        enabled=True,
        authentication=AuthenticationType.KERBEROS,
        performance=PerformanceOption.SMB,
        max_virtual_machine_migrations=4,
        max_storage_migrations=3,
        use_any_network=False,
        networks=(MigrationNetwork(NET_A, 0),),
    )
    assert host_commands(desired, observed) == ()


def test_fresh_host_gets_its_network_before_migration_is_enabled() -> None:
    desired = MigrationSettings(
        enabled=True,
        authentication=AuthenticationType.KERBEROS,
        use_any_network=False,
        networks=(MigrationNetwork(NET_A, 0),),
    )
    assert names(host_commands(desired, FRESH)) == [
        "Add-VMMigrationNetwork -Subnet 192.168.10.0/24 -Priority 0",
        "Enable-VMMigration",
        "Set-VMHost -VirtualMachineMigrationAuthenticationType Kerberos",
    ]


def test_enable_goes_first_when_the_host_already_has_a_network() -> None:
    observed = replace(FRESH, networks=(ObservedNetwork(NET_B, 0),))
    desired = MigrationSettings(enabled=True, networks=(MigrationNetwork(NET_A, 1),))
    assert names(host_commands(desired, observed)) == [
        "Enable-VMMigration",
        "Add-VMMigrationNetwork -Subnet 192.168.10.0/24 -Priority 1",
        "Remove-VMMigrationNetwork -Subnet 10.20.0.0/16",
    ]


def test_replacing_networks_adds_and_reprioritises_before_set_vmhost_and_removal() -> None:
    observed = MigrationState(
        True,
        AuthenticationType.KERBEROS,
        PerformanceOption.COMPRESSION,
        2,
        2,
        True,
        (ObservedNetwork(NET_A, 5), ObservedNetwork(NET_B, 0)),
    )
    desired = MigrationSettings(
        use_any_network=False,
        max_virtual_machine_migrations=4,
        performance=PerformanceOption.SMB,
        networks=(MigrationNetwork(NET_C, 1), MigrationNetwork(NET_A, 0)),
    )
    assert names(host_commands(desired, observed)) == [
        "Add-VMMigrationNetwork -Subnet fd00:30::/64 -Priority 1",
        "Set-VMMigrationNetwork -Subnet 192.168.10.0/24 -NewPriority 0",
        "Set-VMHost -VirtualMachineMigrationPerformanceOption SMB "
        "-MaximumVirtualMachineMigrations 4 -UseAnyNetworkForMigration $false",
        "Remove-VMMigrationNetwork -Subnet 10.20.0.0/16",
    ]


def test_unmanaged_priority_is_left_alone_and_new_network_added_without_one() -> None:
    observed = MigrationState(
        True,
        AuthenticationType.KERBEROS,
        PerformanceOption.COMPRESSION,
        2,
        2,
        False,
        (ObservedNetwork(NET_A, 7),),
    )
    desired = MigrationSettings(networks=(MigrationNetwork(NET_A), MigrationNetwork(NET_B)))
    assert names(host_commands(desired, observed)) == [
        "Add-VMMigrationNetwork -Subnet 10.20.0.0/16",
    ]


def test_one_set_vmhost_carries_every_changed_setting_with_typed_values() -> None:
    desired = MigrationSettings(
        authentication=AuthenticationType.KERBEROS,
        performance=PerformanceOption.TCPIP,
        max_virtual_machine_migrations=8,
        max_storage_migrations=2,  # unchanged: not sent
        use_any_network=True,
    )
    (step,) = host_commands(desired, FRESH)
    assert step == HostCommand(
        "Set-VMHost",
        (
            ("VirtualMachineMigrationAuthenticationType", "Kerberos"),
            ("VirtualMachineMigrationPerformanceOption", "TCPIP"),
            ("MaximumVirtualMachineMigrations", 8),
            ("UseAnyNetworkForMigration", True),
        ),
    )


# enabled, Kerberos, on one network only
ENABLED_ON_A = MigrationState(
    True,
    AuthenticationType.KERBEROS,
    PerformanceOption.COMPRESSION,
    2,
    2,
    False,
    (ObservedNetwork(NET_A, 0),),
)


def test_migration_is_disabled_only_when_declared_and_first() -> None:
    observed = ENABLED_ON_A
    assert names(host_commands(MigrationSettings(enabled=False, networks=()), observed)) == [
        "Disable-VMMigration",
        "Remove-VMMigrationNetwork -Subnet 192.168.10.0/24",
    ]
    assert "Disable-VMMigration" not in names(
        host_commands(MigrationSettings(max_storage_migrations=5), observed)
    )


def test_removing_the_last_network_of_an_enabled_host_is_refused() -> None:
    observed = ENABLED_ON_A
    with pytest.raises(UnsafeHostChange, match="no migration network"):
        host_commands(MigrationSettings(networks=()), observed)
    with pytest.raises(UnsafeHostChange):
        host_commands(MigrationSettings(enabled=True), FRESH)


def test_use_any_network_is_set_before_the_last_network_goes() -> None:
    observed = ENABLED_ON_A
    assert names(host_commands(MigrationSettings(use_any_network=True, networks=()), observed)) == [
        "Set-VMHost -UseAnyNetworkForMigration $true",
        "Remove-VMMigrationNetwork -Subnet 192.168.10.0/24",
    ]


# Metacharacters in values: asserted on the wire, tests/unit/test_wire_contract.py.


# -- property: every prefix of the steps is safe, the end is the desired state ----------------

SUBNETS = [NET_A, NET_B, NET_C, ipaddress.ip_network("172.16.0.0/12")]

observed_states = st.builds(
    MigrationState,
    enabled=st.booleans(),
    authentication=st.sampled_from(AuthenticationType),
    performance=st.sampled_from(PerformanceOption),
    max_virtual_machine_migrations=st.integers(1, 4),
    max_storage_migrations=st.integers(1, 4),
    use_any_network=st.booleans(),
    networks=st.lists(st.sampled_from(SUBNETS), unique=True, max_size=3).flatmap(
        lambda subnets: st.tuples(
            *(st.builds(ObservedNetwork, st.just(s), st.integers(0, 3)) for s in subnets)
        )
    ),
)
desired_settings = st.builds(
    MigrationSettings,
    enabled=st.none() | st.booleans(),
    authentication=st.none() | st.sampled_from(AuthenticationType),
    performance=st.none() | st.sampled_from(PerformanceOption),
    max_virtual_machine_migrations=st.none() | st.integers(1, 4),
    max_storage_migrations=st.none() | st.integers(1, 4),
    use_any_network=st.none() | st.booleans(),
    networks=st.none()
    | st.lists(st.sampled_from(SUBNETS), unique=True, max_size=3).flatmap(
        lambda subnets: st.tuples(
            *(
                st.builds(MigrationNetwork, st.just(s), st.none() | st.integers(0, 3))
                for s in subnets
            )
        )
    ),
)


# -- the oracle: the lab's Hyper-V model, and what the manifest declares ------------------------


def lab_host(state: MigrationState) -> HyperVHost:
    """A simulated Hyper-V host whose migration settings are `state`."""
    host = HyperVHost(lab.server_2022("HV01", ["192.168.10.11/24"]))
    networks = tuple(
        lab.MigrationNetwork(n.subnet, n.priority, typed=n.text.partition("/")[0])
        for n in state.networks
    )
    host.set_state(
        lab.MigrationState(
            enabled=state.enabled,
            max_vm_migrations=state.max_virtual_machine_migrations,
            max_storage_migrations=state.max_storage_migrations,
            authentication=lab.AuthenticationType[state.authentication.value],
            performance=lab.PerformanceOption[state.performance.value],
            networks=networks,
        ).with_any_network(state.use_any_network)
    )
    return host


def seen(host: HyperVHost) -> MigrationState:
    """The lab host's settings, in hvlm's terms (what Get-VMHost and friends would show)."""
    state = host.snapshot()
    return MigrationState(
        enabled=state.enabled,
        authentication=AuthenticationType(state.authentication.name),
        performance=PerformanceOption(state.performance.name),
        max_virtual_machine_migrations=state.max_vm_migrations,
        max_storage_migrations=state.max_storage_migrations,
        use_any_network=state.use_any_network,
        networks=tuple(ObservedNetwork(n.subnet, n.priority) for n in state.networks),
    )


def run_on(host: HyperVHost, step: HostCommand) -> MigrationState:
    """One step as its own statement, as the session sends it; the host must take it cleanly."""
    result = host.invoke([Invocation(step.cmdlet, step.parameters, step.arguments)])
    assert result.terminating is None and result.errors == [], (str(step), result)
    return seen(host)


def no_migration_path(state: MigrationState) -> bool:
    """Enabled, but neither a listed network nor "any network": no migration can come in."""
    return state.enabled and not state.use_any_network and not state.networks


def declared(desired: MigrationSettings, observed: MigrationState) -> MigrationState:
    """The host once every declared field holds; the rest as observed. A network declared
    without a priority keeps the host's (None here: comparable() ignores it anyway)."""
    fields = ("enabled", "authentication", "performance", "max_virtual_machine_migrations",
              "max_storage_migrations", "use_any_network")
    changes: dict[str, object] = {f: getattr(desired, f) for f in fields
                                  if getattr(desired, f) is not None}
    if desired.networks is not None:
        changes["networks"] = tuple(ObservedNetwork(n.subnet, n.priority)
                                    for n in desired.networks)
    return replace(observed, **changes)  # type: ignore[arg-type]


def test_the_oracle_round_trips_a_state() -> None:
    """Control: the conversion to and from the lab's model loses nothing."""
    state = replace(ENABLED_ON_A, use_any_network=True,
                    networks=(ObservedNetwork(NET_A, 3), ObservedNetwork(NET_C, None)))
    assert seen(lab_host(state)) == state
    assert seen(lab_host(FRESH)) == FRESH


def test_the_lab_refuses_a_step_that_cannot_apply() -> None:
    """Control: run_on fails on what a real host would refuse (the oracle can say no)."""
    host = lab_host(ENABLED_ON_A)
    with pytest.raises(AssertionError):
        run_on(host, HostCommand("Add-VMMigrationNetwork", (("Subnet", "192.168.10.0/24"),)))


@settings(max_examples=200, deadline=None)
@given(desired=desired_settings, observed=observed_states)
def test_steps_are_safe_minimal_and_converge(
    desired: MigrationSettings, observed: MigrationState
) -> None:
    try:
        steps = host_commands(desired, observed)
    except UnsafeHostChange:
        assert no_migration_path(declared(desired, observed))
        return
    host = lab_host(observed)
    state = observed
    for step in steps:
        state = run_on(host, step)
        if not no_migration_path(observed):
            assert not no_migration_path(state), (steps, step)
        if desired.enabled is not False:
            assert state.enabled or not observed.enabled  # never disabled unless asked
    assert comparable(state, desired) == comparable(declared(desired, observed), desired)
    assert host_commands(desired, state) == ()  # idempotent: a second run sends nothing
    assert len([s for s in steps if s.cmdlet == "Set-VMHost"]) <= 1


def comparable(state: MigrationState, desired: MigrationSettings) -> tuple[object, ...]:
    """Networks as a set; the priority of a network added without one is the host's business."""
    loose = {n.subnet for n in desired.networks or () if n.priority is None}
    nets = frozenset((n.subnet, None if n.subnet in loose else n.priority) for n in state.networks)
    return (replace(state, networks=()), nets)


# -- the safety net after a failed write ----------------------------------------------------------


def test_restore_turns_off_only_what_hvlm_turned_on() -> None:
    stranded_now = replace(FRESH, enabled=True)
    assert names(restore_commands(FRESH, stranded_now)) == ["Disable-VMMigration"]


def test_restore_puts_back_the_networks_of_an_enabled_host() -> None:
    before = replace(FRESH, enabled=True, networks=(ObservedNetwork(NET_B, 3),))
    after = replace(before, networks=())
    assert names(restore_commands(before, after)) == [
        "Add-VMMigrationNetwork -Subnet 10.20.0.0/16 -Priority 3"
    ]
    any_before = replace(FRESH, enabled=True, use_any_network=True)
    assert names(restore_commands(any_before, replace(any_before, use_any_network=False))) == [
        "Set-VMHost -UseAnyNetworkForMigration $true"
    ]


def test_restore_does_nothing_when_not_stranded_or_already_stranded() -> None:
    ok = replace(FRESH, enabled=True, networks=(ObservedNetwork(NET_A, 0),))
    assert restore_commands(FRESH, ok) == ()
    assert restore_commands(replace(FRESH, enabled=True), replace(FRESH, enabled=True)) == ()


@settings(max_examples=100, deadline=None)
@given(before=observed_states, after=observed_states)
def test_restore_always_unstrands_and_never_disables_a_host_that_was_on(
    before: MigrationState, after: MigrationState
) -> None:
    steps = restore_commands(before, after)
    host = lab_host(after)
    state = after
    for step in steps:
        state = run_on(host, step)
    if no_migration_path(after) and not no_migration_path(before):
        assert not no_migration_path(state)
        assert state.enabled or not before.enabled
    else:
        assert steps == ()


def test_an_entry_with_host_bits_is_named_as_the_host_shows_it() -> None:
    """Hyper-V matches -Subnet by the stored SubnetNumber's address (VMHost.MatchesSubnet): an
    entry another tool stored as 10.1.0.5/16 must be removed as 10.1.0.5/16, not 10.1.0.0/16."""
    odd = ObservedNetwork(ipaddress.ip_network("10.1.0.0/16"), 3, text="10.1.0.5/16")
    observed = replace(FRESH, enabled=True, networks=(odd,))
    wanted = MigrationSettings(networks=(MigrationNetwork(ipaddress.ip_network("10.2.0.0/16")),))
    assert [str(c) for c in host_commands(wanted, observed)][-1] == \
        "Remove-VMMigrationNetwork -Subnet 10.1.0.5/16"
    reprioritise = MigrationSettings(networks=(
        MigrationNetwork(ipaddress.ip_network("10.1.0.0/16"), 1),))
    (step,) = host_commands(reprioritise, observed)
    assert step.parameter("Subnet") == "10.1.0.5/16" and step.parameter("NewPriority") == 1
