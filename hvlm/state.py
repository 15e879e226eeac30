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
class DirectoryState:
    """The result of the one directory search: accounts found, and manifest hosts without one."""

    accounts: tuple[DelegationState, ...]
    missing: tuple[str, ...] = ()
    server: str = ""

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
