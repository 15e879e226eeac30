"""Observed state: what hvlm read from a host (PSRP) and from its computer account (LDAP). Pure.

Pipeline position: produced by the backends' pure parsers (hvlm.hosts.parse, hvlm.directory.parse),
consumed by the planner (hvlm.planner), the preflight checks (hvlm.check) and export.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, Union

from hvlm.model import (
    UAC_TRUSTED_FOR_DELEGATION,
    UAC_TRUSTED_TO_AUTH_FOR_DELEGATION,
    AuthenticationType,
    IPNetwork,
    PerformanceOption,
)

IPInterface = Union[ipaddress.IPv4Interface, ipaddress.IPv6Interface]


@dataclass(frozen=True)
class ObservedNetwork:
    subnet: IPNetwork
    # Nullable<Int32> on the module's VMMigrationNetwork: None when the service stored no Metric
    # (a network added without -Priority may read back so; DOMAIN.md).
    priority: int | None
    # The Subnet text as the host showed it, when it is not the canonical form (an entry made by
    # another tool with host bits set, say): cmdlets must name it so, as Hyper-V matches
    # SubnetNumber by parsed address, not by network (VMHost.MatchesSubnet).
    text: str = field(default="", compare=False)

    @property
    def cmdlet_subnet(self) -> str:
        return self.text or str(self.subnet)


@dataclass(frozen=True)
class MigrationState:
    """Get-VMHost's migration properties plus Get-VMMigrationNetwork."""

    enabled: bool
    authentication: AuthenticationType
    performance: PerformanceOption
    max_virtual_machine_migrations: int
    max_storage_migrations: int
    use_any_network: bool
    networks: tuple[ObservedNetwork, ...] = ()

    def network(self, subnet: IPNetwork) -> ObservedNetwork | None:
        for net in self.networks:
            if net.subnet == subnet:
                return net
        return None


@dataclass(frozen=True)
class VirtualMachine:
    name: str
    version: str  # configuration version, e.g. "10.0"


@dataclass(frozen=True)
class VirtualSwitch:
    """Get-VMSwitch: a virtual switch (VMSwitch.Name is the switch's friendly name)."""

    name: str
    switch_type: str = ""  # VMSwitchType by name: External, Internal, Private ("" unknown)


@dataclass(frozen=True)
class VMAdapter:
    """Get-VMNetworkAdapter -VMName *: one network adapter of a VM. `switch` is "" when the
    adapter is connected to no switch (VMNetworkAdapter.SwitchName is null then)."""

    vm_name: str
    switch: str = ""
    name: str = ""


@dataclass(frozen=True)
class VMProcessorSettings:
    """Get-VMProcessor -VMName *: a VM's processor compatibility. `compatibility` is None when
    the object had no CompatibilityForMigrationEnabled; `mode` is "" where the host has no
    CompatibilityForMigrationMode (before Windows Server 2025)."""

    vm_name: str
    compatibility: bool | None = None
    mode: str = ""


@dataclass(frozen=True)
class HostProcessor:
    """Win32_Processor: one instance per socket."""

    manufacturer: str = ""  # e.g. GenuineIntel, AuthenticAMD
    name: str = ""  # e.g. Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz
    caption: str = ""  # e.g. Intel64 Family 6 Model 85 Stepping 7


CREDENTIAL_GUARD = 1  # Win32_DeviceGuard.SecurityServices*: 1 = Credential Guard
MIGRATION_FIREWALL_RULE = "VIRT-MIGL-In-TCP-NoScope"  # "Hyper-V (MIG-TCP-In)", TCP 6600


@dataclass(frozen=True)
class DeviceGuard:
    """Win32_DeviceGuard (root/Microsoft/Windows/DeviceGuard): the security services (uint32
    arrays) configured and running."""

    configured: tuple[int, ...] = ()
    running: tuple[int, ...] = ()

    @property
    def credential_guard_running(self) -> bool:
        return CREDENTIAL_GUARD in self.running

    @property
    def credential_guard_configured(self) -> bool:
        return CREDENTIAL_GUARD in self.configured


@dataclass(frozen=True)
class FirewallRule:
    """Get-NetFirewallRule -Name <name>: `exists` False when the host has no such rule."""

    name: str
    exists: bool
    enabled: bool = False
    display_name: str = ""


@dataclass(frozen=True)
class HostFacts:
    """What preflight needs; None where the host did not say (e.g. a cmdlet missing)."""

    computer_name: str = ""
    part_of_domain: bool | None = None
    domain: str = ""
    os_caption: str = ""
    os_version: str = ""
    os_build: str = ""
    hyperv_installed: bool | None = None
    addresses: tuple[IPInterface, ...] = ()
    vms: tuple[VirtualMachine, ...] = ()
    supported_versions: tuple[str, ...] = ()
    # Win32_DeviceGuard; None when the class could not be read (device_guard_error says why).
    device_guard: DeviceGuard | None = None
    device_guard_error: str = ""
    # The migration listener's rule (VIRT-MIGL-In-TCP-NoScope); None when not read.
    migration_firewall: FirewallRule | None = None
    # The DC the host uses (Win32_NTDomain.DomainControllerName without "\\"); "" when unknown.
    domain_controller: str = ""
    # What decides whether each VM can move (issue 22); None: not read (the cmdlet failed or
    # did not run), () read and empty (a host without switches, VMs or adapters).
    switches: tuple[VirtualSwitch, ...] | None = None
    vm_adapters: tuple[VMAdapter, ...] | None = None
    vm_processors: tuple[VMProcessorSettings, ...] | None = None
    processors: tuple[HostProcessor, ...] = ()  # Win32_Processor; () when not read

    @property
    def is_server_2025_or_later(self) -> bool:
        try:
            return int(self.os_build) >= 26100
        except ValueError:
            return "2025" in self.os_caption


@dataclass(frozen=True)
class HostState:
    name: str
    migration: MigrationState
    facts: HostFacts = field(default_factory=HostFacts)
    # Messages of non-fatal errors met while reading (e.g. a preflight cmdlet missing).
    read_warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class DelegationState:
    """A computer account as read from AD (one search for all hosts)."""

    name: str  # the manifest's host name this account belongs to
    dn: str
    sam_account_name: str
    dns_host_name: str
    service_principal_names: tuple[str, ...]
    user_account_control: int
    allowed_to_delegate_to: tuple[str, ...]

    @property
    def protocol_transition(self) -> bool:
        return bool(self.user_account_control & UAC_TRUSTED_TO_AUTH_FOR_DELEGATION)

    @property
    def unconstrained(self) -> bool:
        return bool(self.user_account_control & UAC_TRUSTED_FOR_DELEGATION)

    def has_value(self, value: str) -> bool:
        """Case-insensitive, as the KDC compares."""
        wanted = value.lower()
        return any(v.lower() == wanted for v in self.allowed_to_delegate_to)


@dataclass(frozen=True)
class SpnHolder:
    """An account that holds some of the fleet's SPNs (the duplicate search, one for the fleet)."""

    dn: str
    sam_account_name: str
    spns: tuple[str, ...]  # only the fleet's SPNs it holds, as stored


@dataclass(frozen=True)
class DirectoryState:
    """The result of the one directory search: accounts found, and manifest hosts without one."""

    accounts: tuple[DelegationState, ...]
    missing: tuple[str, ...] = ()
    server: str = ""
    # Every account holding one of the fleet's migration/cifs/HOST SPNs; None: not searched.
    spn_holders: tuple[SpnHolder, ...] | None = None

    def holders(self, spn: str) -> tuple[SpnHolder, ...]:
        """The accounts holding `spn` (compared case-insensitively, as the KDC does)."""
        wanted = spn.lower()
        return tuple(h for h in self.spn_holders or () if any(s.lower() == wanted for s in h.spns))

    def account(self, name: str) -> DelegationState | None:
        wanted = name.upper()
        for account in self.accounts:
            if account.name.upper() == wanted:
                return account
        return None


class ObservationLike(Protocol):
    """hvlm.reconcile.Observation: hosts and errors keyed by upper-cased name."""

    @property
    def hosts(self) -> Mapping[str, HostState]: ...
    @property
    def host_errors(self) -> Mapping[str, str]: ...
    @property
    def directory(self) -> DirectoryState | None: ...
    @property
    def directory_error(self) -> str | None: ...
