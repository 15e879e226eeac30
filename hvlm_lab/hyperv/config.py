"""Configuration and migration state of one simulated Hyper-V host.

Part of the lab (see `hyperv/host.py`, which runs cmdlets against this state). `LabHostConfig` says
what a host IS (name, domain, OS, role, addresses, VMs, supported VM versions);
`MigrationState` is what hvlm reads and changes (Get-VMHost / Set-VMHost and the migration
networks). Both are frozen: the host swaps a whole new `MigrationState` on every change, so a
snapshot never changes under a reader.

Facts followed here come from ../shared/notes/DOMAIN.md; choices that the notes leave open are
marked "lab choice".
"""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, Union

IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
IPInterface = Union[ipaddress.IPv4Interface, ipaddress.IPv6Interface]

# UNCONFIRMED (DOMAIN.md): what Hyper-V stores for a network added without -Priority. The module
# sends no Metric then, and its VMMigrationNetwork.Priority is a Nullable<Int32>: the lab takes the
# reading that breaks clients, no metric at all, which Get-VMMigrationNetwork shows as <Nil/>.
DEFAULT_NETWORK_PRIORITY: int | None = None

# Tags of Msvm_VirtualSystemMigrationNetworkSettingData (DOMAIN.md): entries the user manages, and
# the two hidden entries (0.0.0.0/0 and ::0/0) that make "use any network".
USER_MANAGED = "Microsoft:UserManaged"
ALL_NETWORKS = "Microsoft:UserManagedAllNetworks"
ANY_NETWORK_SUBNETS = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))


class AuthenticationType(Enum):
    """Microsoft.HyperV.PowerShell.MigrationAuthenticationType (values are the .NET integers)."""

    CredSSP = 0
    Kerberos = 1


class PerformanceOption(Enum):
    """Microsoft.HyperV.PowerShell.VMMigrationPerformance (values are the .NET integers)."""

    TCPIP = 0
    Compression = 1
    SMB = 2


@dataclass(frozen=True)
class MigrationNetwork:
    """One incoming migration network entry: a user-managed one (Get-VMMigrationNetwork lists
    it), or one of the two hidden "any network" entries (tag ALL_NETWORKS, never listed)."""

    subnet: IPNetwork
    priority: int | None = DEFAULT_NETWORK_PRIORITY  # None: no Metric stored
    tag: str = USER_MANAGED
    # SubnetNumber as the caller typed it (VMHost.AddNetwork stores the text before '/'); ""
    # for the canonical form. Shown in Subnet and matched by wildcards, never compared.
    typed: str = field(default="", compare=False)

    @property
    def hidden(self) -> bool:
        return self.tag == ALL_NETWORKS

    @property
    def text(self) -> str:
        """The Subnet property as Hyper-V shows it: "{SubnetNumber}/{PrefixLength}"."""
        return f"{self.typed or self.subnet.network_address}/{self.subnet.prefixlen}"

    @classmethod
    def parse(cls, subnet: str, priority: int | None = DEFAULT_NETWORK_PRIORITY
              ) -> MigrationNetwork:
        """For configs and tests: a strict CIDR (a bare IP is /32 or /128)."""
        return cls(ipaddress.ip_network(subnet.strip(), strict=True), priority)


@dataclass(frozen=True)
class MigrationState:
    """The live-migration settings of a host. The defaults are a fresh Hyper-V host."""

    enabled: bool = False
    max_vm_migrations: int = 2
    max_storage_migrations: int = 2
    authentication: AuthenticationType = AuthenticationType.CredSSP
    performance: PerformanceOption = PerformanceOption.Compression
    # The user-managed networks, as Get-VMMigrationNetwork lists them.
    networks: tuple[MigrationNetwork, ...] = ()
    # The hidden "any network" entries present (0.0.0.0/0 and ::/0, tag ALL_NETWORKS).
    hidden: tuple[MigrationNetwork, ...] = ()

    @property
    def use_any_network(self) -> bool:
        """UseAnyNetworkForMigration: true only when BOTH hidden entries exist (DOMAIN.md)."""
        present = {n.subnet for n in self.hidden}
        return all(subnet in present for subnet in ANY_NETWORK_SUBNETS)

    def with_any_network(self, on: bool) -> MigrationState:
        """Set-VMHost -UseAnyNetworkForMigration: adds the missing hidden entries, or removes
        both; the listed networks stay in place either way."""
        if not on:
            return replace(self, hidden=())
        present = {n.subnet for n in self.hidden}
        missing = tuple(MigrationNetwork(s, None, ALL_NETWORKS) for s in ANY_NETWORK_SUBNETS
                        if s not in present)
        return replace(self, hidden=self.hidden + missing)

    def subnets(self) -> tuple[str, ...]:
        return tuple(n.text for n in self.networks)


def any_network_state(**fields: Any) -> MigrationState:
    """A MigrationState that uses any network (both hidden entries), e.g. for a lab preset."""
    return MigrationState(**fields).with_any_network(True)


@dataclass(frozen=True)
class OsRelease:
    """Win32_OperatingSystem's Caption / Version / BuildNumber."""

    caption: str
    version: str
    build: str


WINDOWS_SERVER_2022 = OsRelease("Microsoft Windows Server 2022 Datacenter", "10.0.20348", "20348")
WINDOWS_SERVER_2025 = OsRelease("Microsoft Windows Server 2025 Datacenter", "10.0.26100", "26100")

# Names Get-VMHostSupportedVersion shows (lab choice: close to, not copied from, real hosts).
VM_VERSION_NAMES: dict[str, str] = {
    "8.0": "Microsoft Windows 10 Anniversary Update/Windows Server 2016",
    "8.1": "Microsoft Windows 10 Creators Update",
    "8.2": "Microsoft Windows 10 Fall Creators Update/Windows Server 1709",
    "8.3": "Microsoft Windows 10 April 2018 Update/Windows Server 1803",
    "9.0": "Microsoft Windows 10 October 2018 Update/Windows Server 2019",
    "9.1": "Microsoft Windows 10 May 2019 Update/Windows Server 1903",
    "9.2": "Microsoft Windows 10 May 2020 Update/Windows Server 2004",
    "9.3": "Microsoft Windows 10 October 2020 Update/Windows Server 20H2",
    "10.0": "Microsoft Windows Server 2022/Windows 11",
    "11.0": "Microsoft Windows 11 2022 Update",
    "12.0": "Microsoft Windows Server 2025/Windows 11 2024 Update",
}
# DOMAIN.md: Windows Server 2022 supports 8.0-10.0, 2025 supports 8.0-12.0.
SUPPORTED_VERSIONS_2022 = ("8.0", "8.1", "8.2", "8.3", "9.0", "9.1", "9.2", "9.3", "10.0")
SUPPORTED_VERSIONS_2025 = SUPPORTED_VERSIONS_2022 + ("11.0", "12.0")


class VMState(Enum):
    """Microsoft.HyperV.PowerShell.VMState (the values Get-VM uses most)."""

    Other = 1
    Running = 2
    Off = 3
    Paused = 9
    Saved = 6


class SwitchType(Enum):
    """Microsoft.HyperV.PowerShell.VMSwitchType (VMSwitch.SwitchType)."""

    Private = 0
    Internal = 1
    External = 2


class CompatibilityMode(Enum):
    """VMProcessor.CompatibilityForMigrationMode (Windows Server 2025): the WMI property
    LimitProcessorFeaturesMode, MinimumFeatureSet = 0, CommonClusterFeatureSet = 1."""

    MinimumFeatureSet = 0
    CommonClusterFeatureSet = 1


@dataclass(frozen=True)
class LabSwitch:
    """A virtual switch (Get-VMSwitch): its friendly name and type."""

    name: str
    switch_type: SwitchType = SwitchType.External


@dataclass(frozen=True)
class LabProcessor:
    """The host's processor (Win32_Processor), the same in each socket."""

    manufacturer: str
    name: str
    caption: str = ""
    sockets: int = 2
    cores: int = 20


@dataclass(frozen=True)
class LabAdapter:
    """A VM's network adapter; `switch` None: connected to no switch."""

    switch: str | None
    name: str = "Network Adapter"


@dataclass(frozen=True)
class LabVM:
    """A virtual machine as Get-VM shows it: the configuration version matters for migration;
    its adapters (Get-VMNetworkAdapter) and processor compatibility (Get-VMProcessor) too."""

    name: str
    version: str = "10.0"
    state: VMState = VMState.Off
    adapters: tuple[LabAdapter, ...] = ()
    compatibility_for_migration: bool = False
    compatibility_mode: CompatibilityMode = CompatibilityMode.MinimumFeatureSet


# Without an inventory (`hvlm lab up --inventory`) every host has this one switch and this
# processor: the same everywhere, so that VMs move between any two lab hosts.
DEFAULT_SWITCHES = (LabSwitch("LabSwitch"),)
DEFAULT_PROCESSOR = LabProcessor("GenuineIntel", "Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz",
                                 "Intel64 Family 6 Model 85 Stepping 7")


@dataclass(frozen=True)
class LabAddress:
    """An address the host owns (Get-NetIPAddress)."""

    interface: IPInterface
    interface_alias: str = "Ethernet"
    interface_index: int = 4

    @classmethod
    def parse(cls, text: str, interface_alias: str = "Ethernet") -> LabAddress:
        """ "10.0.0.11/24" -> an address with its prefix length (a bare IP gets /32 or /128)."""
        return cls(ipaddress.ip_interface(text.strip()), interface_alias)


LOOPBACK_ADDRESSES = (
    LabAddress(ipaddress.ip_interface("127.0.0.1/8"), "Loopback Pseudo-Interface 1", 1),
    LabAddress(ipaddress.ip_interface("::1/128"), "Loopback Pseudo-Interface 1", 1),
)


class CredentialGuard(Enum):
    """What Win32_DeviceGuard says about Credential Guard (service 1) on a lab host."""

    OFF = "off"  # in neither SecurityServicesConfigured nor SecurityServicesRunning
    CONFIGURED = "configured"  # configured, running after the next reboot
    RUNNING = "running"  # configured and running


@dataclass(frozen=True)
class LabHostConfig:
    """Everything about a simulated host that hvlm only reads."""

    name: str  # NetBIOS name, e.g. HV01
    domain: str = "lab.example"
    part_of_domain: bool = True
    os: OsRelease = WINDOWS_SERVER_2022
    hyperv_installed: bool = True
    addresses: tuple[LabAddress, ...] = ()
    vms: tuple[LabVM, ...] = ()
    supported_vm_versions: tuple[str, ...] = SUPPORTED_VERSIONS_2022
    initial_state: MigrationState = field(default_factory=MigrationState)
    credential_guard: CredentialGuard = CredentialGuard.OFF
    # The Hyper-V role's rule VIRT-MIGL-In-TCP-NoScope: enabled as the role installs it (lab
    # choice, FIDELITY.md); False disabled, None absent. Enable-/Disable-NetFirewallRule change it.
    migration_firewall: bool | None = True
    # The DC the host uses (Win32_NTDomain.DomainControllerName), e.g. dc2.lab.example (issue 15).
    domain_controller: str = "dc1.lab.example"
    # Virtual switches and the processor (issue 22; `hvlm lab up --inventory` changes them).
    switches: tuple[LabSwitch, ...] = DEFAULT_SWITCHES
    processor: LabProcessor = DEFAULT_PROCESSOR

    @property
    def has_compatibility_mode(self) -> bool:
        """VMProcessor.CompatibilityForMigrationMode exists from Windows Server 2025 on (lab
        reading, FIDELITY.md): older hosts' objects lack the property."""
        return self.os.build.isdigit() and int(self.os.build) >= 26100

    @property
    def netbios_name(self) -> str:
        return self.name.upper()

    @property
    def fqdn(self) -> str:
        return f"{self.name}.{self.domain}" if self.part_of_domain else self.name

    @property
    def cs_domain(self) -> str:
        """Win32_ComputerSystem.Domain: the DNS domain, or the workgroup name off-domain."""
        return self.domain if self.part_of_domain else "WORKGROUP"

    @property
    def default_vm_version(self) -> str:
        return max(self.supported_vm_versions, key=_version_key)

    def all_addresses(self) -> tuple[LabAddress, ...]:
        """The configured addresses plus loopback, as a real host lists them."""
        return self.addresses + LOOPBACK_ADDRESSES

    def names(self) -> frozenset[str]:
        """Lower-cased names by which -ComputerName may designate this very host."""
        own = {self.name, self.fqdn, "localhost", ".", "127.0.0.1", "::1"}
        own.update(str(a.interface.ip) for a in self.addresses)
        return frozenset(n.lower() for n in own)


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def _addresses(addresses: Iterable[str | LabAddress]) -> tuple[LabAddress, ...]:
    return tuple(a if isinstance(a, LabAddress) else LabAddress.parse(a) for a in addresses)


def _vms(vms: Iterable[LabVM | tuple[str, str]]) -> tuple[LabVM, ...]:
    return tuple(v if isinstance(v, LabVM) else LabVM(v[0], v[1]) for v in vms)


def server_2022(
    name: str,
    addresses: Iterable[str | LabAddress] = (),
    vms: Iterable[LabVM | tuple[str, str]] = (),
    **options: Any,
) -> LabHostConfig:
    """A Windows Server 2022 Datacenter host (VM versions 8.0-10.0). Options: domain,
    part_of_domain, hyperv_installed, state (the initial MigrationState)."""
    return _server(name, WINDOWS_SERVER_2022, SUPPORTED_VERSIONS_2022, addresses, vms, **options)


def server_2025(
    name: str,
    addresses: Iterable[str | LabAddress] = (),
    vms: Iterable[LabVM | tuple[str, str]] = (),
    **options: Any,
) -> LabHostConfig:
    """A Windows Server 2025 Datacenter host (VM versions 8.0-12.0); options as server_2022."""
    return _server(name, WINDOWS_SERVER_2025, SUPPORTED_VERSIONS_2025, addresses, vms, **options)


def _server(
    name: str,
    os: OsRelease,
    supported: tuple[str, ...],
    addresses: Iterable[str | LabAddress],
    vms: Iterable[LabVM | tuple[str, str]],
    *,
    domain: str = "lab.example",
    part_of_domain: bool = True,
    hyperv_installed: bool = True,
    state: MigrationState | None = None,
) -> LabHostConfig:
    return LabHostConfig(
        name=name,
        domain=domain,
        part_of_domain=part_of_domain,
        os=os,
        hyperv_installed=hyperv_installed,
        addresses=_addresses(addresses),
        vms=_vms(vms),
        supported_vm_versions=supported,
        initial_state=state or MigrationState(),
    )


def fleet(
    count: int,
    *,
    migration_subnet: str = "10.10.0.0/16",
    domain: str = "lab.example",
    windows_2025: Iterable[int] = (),
) -> tuple[LabHostConfig, ...]:
    """`count` fresh hosts HV01, HV02... each owning one address in `migration_subnet`.

    For `hvlm lab up` and tests: every host can take incoming migrations on that one subnet.
    Hosts whose 1-based index is in `windows_2025` run Windows Server 2025, the others 2022.
    """
    network = ipaddress.ip_network(migration_subnet, strict=True)
    usable = list(itertools.islice(network.hosts(), 10, 10 + count))
    if len(usable) < count:
        raise ValueError(f"{migration_subnet} is too small for {count} hosts")
    width = max(2, len(str(count)))
    newer = set(windows_2025)
    return tuple(
        (server_2025 if index in newer else server_2022)(
            f"HV{index:0{width}d}", [f"{address}/{network.prefixlen}"], domain=domain
        )
        for index, address in enumerate(usable, start=1)
    )
