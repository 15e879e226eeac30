"""The objects a simulated Hyper-V host writes to the pipeline, as psrpcore PSObjects.

Part of the lab: `hyperv/host.py` and `hyperv/preflight.py` build their output here, and the lab's
WSMan/PSRP server serialises it with psrpcore. Type names are the real .NET/CIM ones, so the
client sees e.g. "Deserialized.Microsoft.HyperV.PowerShell.VMHost"; properties go in
adapted_properties (<Props>), as a real .NET object's do; enums are psrpcore PSEnumBase types,
so the CLIXML carries the enum type name, its name (ToString) and its integer value.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from psrpcore.types import (
    PSByte,
    PSEnumBase,
    PSInt,
    PSInt64,
    PSNoteProperty,
    PSObject,
    PSType,
    PSUInt,
    PSUInt16,
    PSVersion,
)

from hvlm_lab.hyperv.config import (
    VM_VERSION_NAMES,
    AuthenticationType,
    LabAdapter,
    LabAddress,
    LabHostConfig,
    LabSwitch,
    LabVM,
    MigrationNetwork,
    MigrationState,
    PerformanceOption,
    SwitchType,
)

HV = "Microsoft.HyperV.PowerShell"
CIM = "Microsoft.Management.Infrastructure.CimInstance"


class _NamedEnum(PSEnumBase):
    """str() is the member's name, as the client sees a deserialized enum."""

    def __str__(self) -> str:
        return self.name


@PSType([f"{HV}.MigrationAuthenticationType"])
class MigrationAuthenticationType(_NamedEnum):
    CredSSP = 0
    Kerberos = 1


@PSType([f"{HV}.VMMigrationPerformance"])
class VMMigrationPerformance(_NamedEnum):
    TCPIP = 0
    Compression = 1
    SMB = 2


@PSType([f"{HV}.VMState"])
class PSVMState(_NamedEnum):
    Other = 1
    Running = 2
    Off = 3
    Saved = 6
    Paused = 9


@PSType([f"{HV}.VMSwitchType"])
class VMSwitchType(_NamedEnum):
    Private = 0
    Internal = 1
    External = 2


@PSType([f"{HV}.ProcessorCompatibilityMode"])
class ProcessorCompatibilityMode(_NamedEnum):
    """UNCONFIRMED type name (FIDELITY.md); names and values: LimitProcessorFeaturesMode's."""

    MinimumFeatureSet = 0
    CommonClusterFeatureSet = 1


@PSType(["Microsoft.Windows.ServerManager.Commands.InstallState"])
class InstallState(_NamedEnum):
    """UNCONFIRMED integer values: compare by name (str()), as hvlm must."""

    Available = 0
    Installed = 1
    InstallPending = 2
    Removed = 3
    UninstallPending = 4


@PSType(["Microsoft.PowerShell.Cmdletization.GeneratedTypes.NetIPAddress.AddressFamily"])
class AddressFamily(_NamedEnum, base_type=PSUInt16):
    IPv4 = 2
    IPv6 = 23


def ps_object(type_names: Sequence[str], properties: Sequence[tuple[str, Any]]) -> PSObject:
    """A PSObject with these type names (most derived first) and adapted note properties."""
    obj = PSObject()
    obj.PSObject.type_names = [*type_names, "System.Object"]
    for name, value in properties:
        obj.PSObject.adapted_properties.append(PSNoteProperty(name, value))
    return obj


def vm_host(config: LabHostConfig, state: MigrationState) -> PSObject:
    """Get-VMHost's Microsoft.HyperV.PowerShell.VMHost."""
    auth = MigrationAuthenticationType(state.authentication.value)
    perf = VMMigrationPerformance(state.performance.value)
    return ps_object(
        [f"{HV}.VMHost", f"{HV}.VirtualizationObject"],
        [
            ("ComputerName", config.netbios_name),
            ("Name", config.netbios_name),
            # As Hyper-V does: Win32_ComputerSystem.Domain, not the host's FQDN.
            ("FullyQualifiedDomainName", config.cs_domain),
            ("LogicalProcessorCount", PSInt(16)),
            ("MemoryCapacity", PSInt64(68_719_476_736)),
            ("VirtualHardDiskPath", "C:\\ProgramData\\Microsoft\\Windows\\Virtual Hard Disks"),
            ("VirtualMachinePath", "C:\\ProgramData\\Microsoft\\Windows\\Hyper-V"),
            ("NumaSpanningEnabled", True),
            ("EnableEnhancedSessionMode", False),
            ("VirtualMachineMigrationEnabled", state.enabled),
            ("MaximumVirtualMachineMigrations", PSUInt(state.max_vm_migrations)),
            ("MaximumStorageMigrations", PSUInt(state.max_storage_migrations)),
            ("VirtualMachineMigrationAuthenticationType", auth),
            ("VirtualMachineMigrationPerformanceOption", perf),
            ("UseAnyNetworkForMigration", state.use_any_network),
        ],
    )


def migration_network(config: LabHostConfig, network: MigrationNetwork) -> PSObject:
    """Get-VMMigrationNetwork's Microsoft.HyperV.PowerShell.VMMigrationNetwork."""
    return ps_object(
        [f"{HV}.VMMigrationNetwork", f"{HV}.VirtualizationObject"],
        [
            ("ComputerName", config.netbios_name),
            ("Subnet", network.text),
            # Nullable<Int32> on the module's object (DOMAIN.md): Int32, or <Nil/> when the
            # service stored no Metric.
            ("Priority", None if network.priority is None else PSInt(_int32(network.priority))),
        ],
    )


def _int32(metric: int) -> int:
    """NumberConverter.UInt32ToInt32 is an unchecked cast: a Metric >= 2^31 reads negative."""
    return metric - 2**32 if metric > 0x7FFFFFFF else metric


def virtual_machine(config: LabHostConfig, vm: LabVM) -> PSObject:
    """Get-VM's Microsoft.HyperV.PowerShell.VirtualMachine (Version is a string there)."""
    return ps_object(
        [f"{HV}.VirtualMachine", f"{HV}.VirtualMachineBase", f"{HV}.ComputeResource",
         f"{HV}.VirtualizationObject"],
        [
            ("ComputerName", config.netbios_name),
            ("Name", vm.name),
            ("VMName", vm.name),
            ("State", PSVMState(vm.state.value)),
            ("Version", vm.version),
        ],
    )


def lab_id(*parts: str) -> str:
    """A stable GUID for a lab object (VM, switch, adapter), from the host's and its names."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "hvlm-lab:" + "/".join(p.lower() for p in parts)))


def vm_switch(config: LabHostConfig, switch: LabSwitch) -> PSObject:
    """Get-VMSwitch's Microsoft.HyperV.PowerShell.VMSwitch (Name is the friendly name)."""
    return ps_object(
        [f"{HV}.VMSwitch", f"{HV}.VirtualizationObject"],
        [
            ("ComputerName", config.netbios_name),
            ("Name", switch.name),
            ("Id", lab_id(config.name, "switch", switch.name)),
            ("SwitchType", VMSwitchType(switch.switch_type.value)),
            ("AllowManagementOS", switch.switch_type is not SwitchType.Private),
            ("Notes", ""),
        ],
    )


def _vm_device_props(config: LabHostConfig, vm: LabVM) -> list[tuple[str, Any]]:
    return [("ComputerName", config.netbios_name), ("VMName", vm.name),
            ("VMId", lab_id(config.name, "vm", vm.name)), ("IsDeleted", False)]


def vm_network_adapter(config: LabHostConfig, vm: LabVM, adapter: LabAdapter,
                       index: int) -> PSObject:
    """Get-VMNetworkAdapter's Microsoft.HyperV.PowerShell.VMNetworkAdapter: SwitchName and
    SwitchId are null when the adapter is connected to no switch (as the module's getters)."""
    switch = next((s for s in config.switches if s.name == adapter.switch), None)
    connected = adapter.switch is not None and switch is not None
    return ps_object(
        [f"{HV}.VMNetworkAdapter", f"{HV}.VMNetworkAdapterBase", f"{HV}.VMDevice",
         f"{HV}.VirtualizationObject"],
        _vm_device_props(config, vm) + [
            ("Name", adapter.name),
            ("Id", f"Microsoft:{lab_id(config.name, 'vm', vm.name)}\\"
                   f"{lab_id(config.name, vm.name, 'adapter', str(index))}"),
            ("IsManagementOs", False),
            ("IsLegacy", False),
            ("SwitchName", switch.name if connected and switch else None),
            ("SwitchId", lab_id(config.name, "switch", switch.name)
             if connected and switch else None),
            ("Connected", connected),
            ("MacAddress", "00155D" + lab_id(config.name, vm.name, str(index))[:6].upper()),
        ],
    )


def management_os_adapter(config: LabHostConfig, switch: LabSwitch) -> PSObject:
    """The management OS's adapter on an External/Internal switch (Get-VMNetworkAdapter -All or
    -ManagementOS): a VMInternalNetworkAdapter with IsManagementOs True and no VM."""
    return ps_object(
        [f"{HV}.VMInternalNetworkAdapter", f"{HV}.VMNetworkAdapterBase", f"{HV}.VMDevice",
         f"{HV}.VirtualizationObject"],
        [
            ("ComputerName", config.netbios_name),
            ("Name", switch.name),
            ("VMName", None),
            ("IsManagementOs", True),
            ("SwitchName", switch.name),
            ("SwitchId", lab_id(config.name, "switch", switch.name)),
        ],
    )


def vm_processor(config: LabHostConfig, vm: LabVM) -> PSObject:
    """Get-VMProcessor's Microsoft.HyperV.PowerShell.VMProcessor; CompatibilityForMigrationMode
    only on hosts that have it (Windows Server 2025)."""
    props: list[tuple[str, Any]] = _vm_device_props(config, vm) + [
        ("Name", "Processor"),
        ("Count", PSInt64(2)),
        ("CompatibilityForMigrationEnabled", vm.compatibility_for_migration),
        ("CompatibilityForOlderOperatingSystemsEnabled", False),
        ("ExposeVirtualizationExtensions", False),
        ("ResourcePoolName", "Primordial"),
    ]
    if config.has_compatibility_mode:
        props.append(("CompatibilityForMigrationMode",
                      ProcessorCompatibilityMode(vm.compatibility_mode.value)))
    return ps_object([f"{HV}.VMProcessor", f"{HV}.VMDevice", f"{HV}.VirtualizationObject"], props)


def win32_processors(config: LabHostConfig) -> list[PSObject]:
    """Get-CimInstance Win32_Processor: one instance per socket (CPU0, CPU1...)."""
    cpu = config.processor
    return [ps_object(
        _cim_types("root/cimv2", "Win32_Processor", "CIM_Processor", "CIM_LogicalDevice",
                   "CIM_LogicalElement", "CIM_ManagedSystemElement"),
        [
            ("DeviceID", f"CPU{socket}"),
            ("SocketDesignation", f"CPU{socket}"),
            ("Manufacturer", cpu.manufacturer),
            ("Name", cpu.name),
            ("Caption", cpu.caption),
            ("Description", cpu.caption),
            ("Architecture", PSUInt16(9)),  # x64
            ("NumberOfCores", PSUInt(cpu.cores)),
            ("NumberOfLogicalProcessors", PSUInt(cpu.cores * 2)),
            ("SystemName", config.netbios_name),
        ],
    ) for socket in range(cpu.sockets)]


def supported_version(version: str, is_default: bool) -> PSObject:
    """Get-VMHostSupportedVersion's object: Version is a System.Version."""
    return ps_object(
        [f"{HV}.VMHostSupportedVersion", f"{HV}.VirtualizationObject"],
        [
            ("Name", VM_VERSION_NAMES.get(version, f"Version {version}")),
            ("Version", PSVersion(version)),
            ("IsDefault", is_default),
        ],
    )


def _cim_types(namespace: str, *classes: str) -> list[str]:
    """PowerShell's CIM type-name hierarchy: every class with its namespace, then every class
    without it (GetTypeNameHierarchy), then CimInstance itself."""
    return ([f"{CIM}#{namespace}/{c}" for c in classes] + [f"{CIM}#{c}" for c in classes]
            + [CIM])


def computer_system(config: LabHostConfig) -> PSObject:
    """Get-CimInstance Win32_ComputerSystem."""
    return ps_object(
        _cim_types("root/cimv2", "Win32_ComputerSystem", "CIM_UnitaryComputerSystem",
                   "CIM_ComputerSystem", "CIM_System", "CIM_LogicalElement",
                   "CIM_ManagedSystemElement"),
        [
            ("Name", config.netbios_name),
            ("DNSHostName", config.name.lower()),
            ("Domain", config.cs_domain),
            ("PartOfDomain", config.part_of_domain),
            ("Workgroup", None if config.part_of_domain else "WORKGROUP"),
            ("DomainRole", PSUInt16(3 if config.part_of_domain else 2)),
            ("Manufacturer", "hvlm lab"),
            ("Model", "Simulated Hyper-V host"),
        ],
    )


def nt_domain(config: LabHostConfig) -> PSObject:
    """Get-CimInstance Win32_NTDomain: the domain entry with the DC the host uses (MS Learn,
    Win32_NTDomain class / DOMAIN_CONTROLLER_INFO: "\\\\" + the DC's DNS name when available);
    off-domain, an entry without a DC."""
    joined = config.part_of_domain
    netbios = config.cs_domain.split(".")[0].upper()
    dc = config.domain_controller if joined else ""
    return ps_object(
        _cim_types("root/cimv2", "Win32_NTDomain", "CIM_System", "CIM_LogicalElement",
                   "CIM_ManagedSystemElement"),
        [
            ("Name", f"Domain: {netbios}"),
            ("Caption", netbios),
            ("DomainName", netbios if joined else None),
            ("DnsForestName", config.domain if joined else None),
            ("DomainControllerName", f"\\\\{dc}" if dc else None),
            ("DomainControllerAddressType", PSInt(1) if dc else None),
            ("Status", "OK" if joined else "Unknown"),
        ],
    )


def operating_system(config: LabHostConfig) -> PSObject:
    """Get-CimInstance Win32_OperatingSystem."""
    return ps_object(
        _cim_types("root/cimv2", "Win32_OperatingSystem", "CIM_OperatingSystem",
                   "CIM_LogicalElement", "CIM_ManagedSystemElement"),
        [
            ("Caption", config.os.caption),
            ("Version", config.os.version),
            ("BuildNumber", config.os.build),
            ("CSName", config.netbios_name),
            ("OSArchitecture", "64-bit"),
            ("ProductType", PSUInt(3)),
        ],
    )


def net_ip_address(address: LabAddress) -> PSObject:
    """Get-NetIPAddress's MSFT_NetIPAddress."""
    family = AddressFamily.IPv4 if address.interface.version == 4 else AddressFamily.IPv6
    return ps_object(
        _cim_types("ROOT/StandardCimv2", "MSFT_NetIPAddress", "CIM_IPProtocolEndpoint",
                   "CIM_ProtocolEndpoint", "CIM_ServiceAccessPoint"),
        [
            ("IPAddress", str(address.interface.ip)),
            ("InterfaceIndex", PSUInt(address.interface_index)),
            ("InterfaceAlias", address.interface_alias),
            ("AddressFamily", family),
            ("PrefixLength", PSByte(address.interface.network.prefixlen)),
            ("AddressState", PSUInt16(4)),  # uint16 in the MOF: 4 = Preferred
        ],
    )


def windows_feature(name: str, display_name: str, installed: bool) -> PSObject:
    """Get-WindowsFeature's Microsoft.Windows.ServerManager.Commands.Feature."""
    state = InstallState.Installed if installed else InstallState.Available
    return ps_object(
        ["Microsoft.Windows.ServerManager.Commands.Feature"],
        [
            ("Name", name),
            ("DisplayName", display_name),
            ("Installed", installed),
            ("InstallState", state),
            ("FeatureType", "Role" if name == "Hyper-V" else "Feature"),
            ("Path", display_name),
        ],
    )


def auth_from_ps(value: MigrationAuthenticationType) -> AuthenticationType:
    return AuthenticationType(int(value))


def perf_from_ps(value: VMMigrationPerformance) -> PerformanceOption:
    return PerformanceOption(int(value))
