"""Pure parser: the deserialised objects of a host's read pipeline -> hvlm.state.HostState.

Pipeline position: hvlm.hosts.session runs the read statements (hvlm.hosts.commands) and hands the
output objects and error records here; the planner and the preflight consume the HostState.
Nothing here does I/O, so every parser is tested from recorded CLIXML (tests/unit/fixtures/).

Objects are classified by their type names (with or without the "Deserialized." prefix), never
by position; a property is looked up in the adapted properties first, then the extended ones;
an enum is read by its name (str()), falling back to the integer it carries.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TypeVar

from hvlm.errors import CmdletError
from hvlm.hosts.records import RecordInfo, cmdlet_error, describe_record
from hvlm.model import IPNetwork
from hvlm.settings import HOST_SETTINGS, Reader
from hvlm.state import (
    MIGRATION_FIREWALL_RULE,
    DeviceGuard,
    FirewallRule,
    HostFacts,
    HostProcessor,
    HostState,
    IPInterface,
    MigrationState,
    ObservedNetwork,
    VirtualMachine,
    VirtualSwitch,
    VMAdapter,
    VMProcessorSettings,
)

_HV = "Microsoft.HyperV.PowerShell."
_CIM = "Microsoft.Management.Infrastructure.CimInstance#"
READ_STEP = "read"


class Kind(Enum):
    VMHOST = "Get-VMHost"
    MIGRATION_NETWORK = "Get-VMMigrationNetwork"
    COMPUTER_SYSTEM = "Get-CimInstance Win32_ComputerSystem"
    OPERATING_SYSTEM = "Get-CimInstance Win32_OperatingSystem"
    FEATURE = "Get-WindowsFeature"
    IP_ADDRESS = "Get-NetIPAddress"
    VM = "Get-VM"
    SUPPORTED_VERSION = "Get-VMHostSupportedVersion"
    DEVICE_GUARD = "Get-CimInstance Win32_DeviceGuard"
    FIREWALL_RULE = "Get-NetFirewallRule"
    NT_DOMAIN = "Get-CimInstance Win32_NTDomain"
    VM_SWITCH = "Get-VMSwitch"
    VM_ADAPTER = "Get-VMNetworkAdapter"
    VM_PROCESSOR = "Get-VMProcessor"
    PROCESSOR = "Get-CimInstance Win32_Processor"
    OTHER = "other"


_EXACT_TYPES = {
    _HV + "VMHost": Kind.VMHOST,
    _HV + "VMMigrationNetwork": Kind.MIGRATION_NETWORK,
    _HV + "VirtualMachine": Kind.VM,
    _HV + "VMHostSupportedVersion": Kind.SUPPORTED_VERSION,
    _HV + "VMSwitch": Kind.VM_SWITCH,
    _HV + "VMNetworkAdapter": Kind.VM_ADAPTER,
    _HV + "VMProcessor": Kind.VM_PROCESSOR,
    "Microsoft.Windows.ServerManager.Commands.Feature": Kind.FEATURE,
}
_CIM_CLASSES = {
    "win32_computersystem": Kind.COMPUTER_SYSTEM,
    "win32_operatingsystem": Kind.OPERATING_SYSTEM,
    "msft_netipaddress": Kind.IP_ADDRESS,
    "win32_deviceguard": Kind.DEVICE_GUARD,
    "msft_netfirewallrule": Kind.FIREWALL_RULE,
    "win32_ntdomain": Kind.NT_DOMAIN,
    "win32_processor": Kind.PROCESSOR,
}

# Cmdlets of the read pipeline whose failure is fatal; the others only lose preflight facts.
ESSENTIAL_CMDLETS = ("Get-VMHost", "Get-VMMigrationNetwork")
READ_CMDLETS = ESSENTIAL_CMDLETS + (
    "Get-CimInstance",
    "Get-WindowsFeature",
    "Get-NetIPAddress",
    "Get-VM",
    "Get-VMHostSupportedVersion",
    "Get-NetFirewallRule",
    "Get-VMSwitch",
    "Get-VMNetworkAdapter",
    "Get-VMProcessor",
)


# -- generic access to deserialised objects ---------------------------------------------------


def type_names(obj: object) -> tuple[str, ...]:
    names = getattr(obj, "types", None) or ()
    return tuple(n[len("Deserialized.") :] if n.startswith("Deserialized.") else n for n in names)


def classify(obj: object) -> Kind:
    for name in type_names(obj):
        if name in _EXACT_TYPES:
            return _EXACT_TYPES[name]
        if name.startswith(_CIM):
            cim_class = name[len(_CIM) :].rsplit("/", 1)[-1].lower()
            if cim_class in _CIM_CLASSES:
                return _CIM_CLASSES[cim_class]
    return Kind.OTHER


_MISSING = object()


def prop(obj: object, name: str, default: Any = None) -> Any:
    """A property: adapted first, then extended; exact name first, then case-insensitive."""
    bags: list[Mapping[str, Any]] = []
    for attr in ("adapted_properties", "extended_properties"):
        bag = getattr(obj, attr, None)
        if isinstance(bag, dict):
            bags.append(bag)
    for bag in bags:
        if name in bag:
            return bag[name]
    wanted = name.lower()
    for bag in bags:
        for key, value in bag.items():
            if key.lower() == wanted:
                return value
    return default


def has_prop(obj: object, name: str) -> bool:
    return prop(obj, name, _MISSING) is not _MISSING


def enum_name(value: object) -> str:
    """The name of a deserialised enum (its ToString), or the text of a plain value."""
    if value is None:
        return ""
    text = getattr(value, "to_string", None)
    return str(text) if text is not None else str(value)


def enum_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    for item in getattr(value, "property_sets", None) or ():
        if isinstance(item, int) and not isinstance(item, bool):
            return item
    return None


E = TypeVar("E", bound=Enum)


def parse_enum(value: object, enum: type[E], by_int: Sequence[E]) -> E:
    """Match by name (case-insensitive), else by the integer the value carries."""
    name = enum_name(value).strip().lower()
    for member in enum:
        if str(member.value).lower() == name:
            return member
    number = enum_int(value)
    if number is not None and 0 <= number < len(by_int):
        return by_int[number]
    raise ValueError(f"unknown {enum.__name__} value {enum_name(value)!r}")


def parse_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = enum_name(value).strip().lower()
    if text in ("true", "1", "$true"):
        return True
    if text in ("false", "0", "$false", ""):
        return False
    raise ValueError(f"not a boolean: {text!r}")


def parse_int(value: object) -> int:
    number = enum_int(value)
    if number is None:
        text = enum_name(value).strip()
        try:
            number = int(text)
        except ValueError:
            raise ValueError(f"not an integer: {text[:40]!r}") from None
    return number


def parse_optional_int(value: object) -> int | None:
    """A Nullable<Int32>: <Nil/> (or a missing property) is None, not an error."""
    return None if value is None else parse_int(value)


def parse_subnet(text: str) -> IPNetwork:
    """A subnet as Hyper-V stores it ("{network}/{prefix}"; a bare IP is /32 or /128)."""
    return ipaddress.ip_network(text.strip(), strict=False)


# -- one parser per kind ----------------------------------------------------------------------

_READERS: dict[Reader, Callable[[object], Any]] = {Reader.BOOL: parse_bool, Reader.INT: parse_int}


def parse_vmhost(obj: object, networks: tuple[ObservedNetwork, ...]) -> MigrationState:
    """Get-VMHost's migration properties, one per row of hvlm.settings.HOST_SETTINGS (a row with
    an `absent` value may be missing: UseAnyNetworkForMigration absent = False, DOMAIN.md)."""
    values: dict[str, Any] = {}
    for setting in HOST_SETTINGS:
        if setting.absent is not None:
            raw = prop(obj, setting.vmhost_property, setting.absent)
        else:
            raw = _required(obj, setting.vmhost_property)
        if setting.enum is not None:
            values[setting.attr] = parse_enum(raw, setting.enum, setting.by_int)
        else:
            values[setting.attr] = _READERS[setting.reader](raw)
    return MigrationState(**values, networks=networks)


def _required(obj: object, name: str) -> Any:
    value = prop(obj, name, _MISSING)
    if value is _MISSING or value is None:
        raise ValueError(f"Get-VMHost returned no {name}")
    return value


def parse_network(obj: object) -> ObservedNetwork:
    subnet = prop(obj, "Subnet")
    if subnet is None:
        raise ValueError("a migration network without Subnet")
    text = str(subnet).strip()
    network = parse_subnet(text)
    return ObservedNetwork(
        subnet=network,
        priority=parse_optional_int(prop(obj, "Priority")),
        text="" if text == str(network) else text,
    )


def parse_address(obj: object) -> IPInterface:
    address = str(prop(obj, "IPAddress", "")).split("%", 1)[0]
    prefix = parse_int(prop(obj, "PrefixLength", 0))
    return ipaddress.ip_interface(f"{address}/{prefix}")


def parse_vm(obj: object) -> VirtualMachine:
    return VirtualMachine(
        name=str(prop(obj, "Name", "") or ""), version=_text(prop(obj, "Version"))
    )


def parse_feature_installed(obj: object) -> bool | None:
    state = prop(obj, "InstallState")
    if state is not None and enum_name(state):
        return enum_name(state).lower() == "installed"
    installed = prop(obj, "Installed")
    return None if installed is None else parse_bool(installed)


def _text(value: object) -> str:
    return "" if value is None else enum_name(value)


def _optional_bool(value: object) -> bool | None:
    return None if value is None else parse_bool(value)


# -- the whole read ---------------------------------------------------------------------------


@dataclass
class _Collected:
    vmhost: object | None = None
    networks: list[ObservedNetwork] | None = None
    computer_system: object | None = None
    operating_system: object | None = None
    feature: object | None = None
    addresses: list[IPInterface] | None = None
    vms: list[VirtualMachine] | None = None
    versions: list[str] | None = None
    device_guard: DeviceGuard | None = None
    device_guard_error: str = ""
    firewall_rule: FirewallRule | None = None
    domain_controller: str = ""
    switches: list[VirtualSwitch] | None = None
    adapters: list[VMAdapter] | None = None
    vm_processors: list[VMProcessorSettings] | None = None
    processors: list[HostProcessor] | None = None
    failed: bool = False  # a terminating error stopped the read: later statements did not run
    errored: set[str] = field(default_factory=set)  # cmdlets that wrote an error record


def parse_host_state(
    name: str, output: Iterable[object], errors: Iterable[object] = (), failed: bool = False
) -> HostState:
    """Turn the read pipeline's output objects and error records into a HostState.

    Errors of Get-VMHost / Get-VMMigrationNetwork (or no VMHost object at all) raise CmdletError;
    errors of the preflight cmdlets and unparseable preflight objects become read_warnings.
    `failed`: a terminating error stopped the pipeline (its record is the last of `errors`).
    """
    warnings: list[str] = []
    got = _Collected(failed=failed)
    records = _security_records(got, list(errors), failed)
    _check_errors(name, records, warnings, got)
    for obj in output:
        try:
            _collect(got, obj)
        except ValueError as exc:
            if classify(obj) in (Kind.VMHOST, Kind.MIGRATION_NETWORK):
                raise CmdletError(name, READ_STEP, f"{classify(obj).value}: {exc}") from exc
            warnings.append(f"{classify(obj).value}: {exc}")
            got.errored.add(classify(obj).value)  # an object lost: its list may be partial
    if got.vmhost is None:
        raise CmdletError(
            name,
            READ_STEP,
            "Get-VMHost returned no object",
            hint="is the Hyper-V role and its PowerShell module installed?",
        )
    try:
        migration = parse_vmhost(got.vmhost, _unique(got.networks or []))
    except ValueError as exc:
        raise CmdletError(name, READ_STEP, str(exc)) from exc
    return HostState(
        name=name, migration=migration, facts=_facts(got), read_warnings=tuple(warnings)
    )


def _check_errors(name: str, errors: list[object], warnings: list[str], got: _Collected) -> None:
    """Errors of essential cmdlets are fatal, and so is any error hvlm cannot pin on a cmdlet:
    it may come from Get-VMHost / Get-VMMigrationNetwork, and a plan built on a partial read
    would be wrong. Errors of preflight cmdlets only cost their facts (read warnings)."""
    for index, record in enumerate(errors):
        info: RecordInfo = describe_record(record, READ_CMDLETS)
        if info.cmdlet in ESSENTIAL_CMDLETS:
            raise cmdlet_error(name, f"{READ_STEP} ({info.cmdlet})", info)
        if not info.cmdlet:
            raise cmdlet_error(name, READ_STEP, info)
        got.errored.add(info.cmdlet)
        terminating = got.failed and index == len(errors) - 1
        suffix = " (the read stopped there)" if terminating else ""
        warnings.append(f"{info.cmdlet}: {info.message}{suffix}")


def _collect(got: _Collected, obj: object) -> None:
    kind = classify(obj)
    if kind is Kind.VMHOST and got.vmhost is None:
        got.vmhost = obj
    elif kind is Kind.MIGRATION_NETWORK:
        got.networks = (got.networks or []) + [parse_network(obj)]
    elif kind is Kind.COMPUTER_SYSTEM:
        got.computer_system = obj
    elif kind is Kind.OPERATING_SYSTEM:
        got.operating_system = obj
    elif kind is Kind.FEATURE:
        if str(prop(obj, "Name", "")).lower() in ("hyper-v", ""):
            got.feature = obj
    elif kind is Kind.IP_ADDRESS:
        got.addresses = (got.addresses or []) + [parse_address(obj)]
    elif kind is Kind.VM:
        got.vms = (got.vms or []) + [parse_vm(obj)]
    elif kind is Kind.SUPPORTED_VERSION:
        got.versions = (got.versions or []) + [_text(prop(obj, "Version"))]
    elif kind is Kind.DEVICE_GUARD:
        got.device_guard = parse_device_guard(obj)
    elif kind is Kind.NT_DOMAIN:
        got.domain_controller = got.domain_controller or parse_domain_controller(obj)
    elif kind is Kind.FIREWALL_RULE:
        rule = parse_firewall_rule(obj)
        if rule.name.lower() == MIGRATION_FIREWALL_RULE.lower():
            got.firewall_rule = rule
    else:
        _collect_vm_facts(got, kind, obj)


def _collect_vm_facts(got: _Collected, kind: Kind, obj: object) -> None:
    """Switches, VM adapters, VM processors and the host's processors (issue 22)."""
    if kind is Kind.VM_SWITCH:
        got.switches = (got.switches or []) + [parse_switch(obj)]
    elif kind is Kind.VM_ADAPTER:
        adapter = parse_vm_adapter(obj)
        got.adapters = (got.adapters or []) + ([adapter] if adapter is not None else [])
    elif kind is Kind.VM_PROCESSOR:
        settings = parse_vm_processor(obj)
        got.vm_processors = (got.vm_processors or []) + ([settings] if settings else [])
    elif kind is Kind.PROCESSOR:
        got.processors = (got.processors or []) + [parse_processor(obj)]


def _unique(networks: list[ObservedNetwork]) -> tuple[ObservedNetwork, ...]:
    """First entry per subnet, in canonical order: priority (unset last), IPv4 before IPv6,
    address."""
    seen: dict[IPNetwork, ObservedNetwork] = {}
    for net in networks:
        seen.setdefault(net.subnet, net)
    return tuple(sorted(seen.values(), key=_network_order))


def _network_order(net: ObservedNetwork) -> tuple[bool, int, int, int, int]:
    """Set priorities first (lower = preferred), then unset ones; then by address."""
    subnet = net.subnet
    return (net.priority is None, net.priority or 0, subnet.version, int(subnet.network_address),
            subnet.prefixlen)


def _facts(got: _Collected) -> HostFacts:
    cs, os_ = got.computer_system, got.operating_system
    return HostFacts(
        computer_name=_text(prop(cs, "Name"))
        if cs is not None
        else _text(prop(got.vmhost, "ComputerName")),
        part_of_domain=_optional_bool(prop(cs, "PartOfDomain")) if cs is not None else None,
        domain=_text(prop(cs, "Domain")) if cs is not None else "",
        os_caption=_text(prop(os_, "Caption")) if os_ is not None else "",
        os_version=_text(prop(os_, "Version")) if os_ is not None else "",
        os_build=_text(prop(os_, "BuildNumber")) if os_ is not None else "",
        hyperv_installed=parse_feature_installed(got.feature) if got.feature is not None else None,
        addresses=tuple(got.addresses or ()),
        vms=tuple(got.vms or ()),
        supported_versions=tuple(got.versions or ()),
        device_guard=got.device_guard,
        device_guard_error=got.device_guard_error if got.device_guard is None else "",
        migration_firewall=got.firewall_rule,
        domain_controller=got.domain_controller,
        switches=_read(got, got.switches, "Get-VMSwitch", partial_ok=False),
        vm_adapters=_read(got, got.adapters, "Get-VMNetworkAdapter", partial_ok=True),
        vm_processors=_read(got, got.vm_processors, "Get-VMProcessor", partial_ok=True),
        processors=tuple(got.processors or ()),
    )


T = TypeVar("T")


def _read(got: _Collected, items: list[T] | None, cmdlet: str, *,
          partial_ok: bool) -> tuple[T, ...] | None:
    """What a VM statement read, or None when hvlm cannot tell: the read stopped before it ran
    (a terminating error, and nothing of it seen), or (`partial_ok` False) it wrote an error, so
    its list may lack entries. An empty answer of a statement that ran is (), not None: a host
    without VMs or switches. A partial list of adapters or VM processors only hides findings;
    a partial list of switches would invent vm-switch-missing, hence the difference."""
    if got.failed and items is None:
        return None
    if not partial_ok and cmdlet in got.errored:
        return None
    return tuple(items or ())


def parse_domain_controller(obj: object) -> str:
    """Win32_NTDomain.DomainControllerName: "\\\\dc1.contoso.com" (DNS style when available, else
    "\\\\DC1"), without the backslashes; "" for an entry without a DC (not a domain)."""
    return _text(prop(obj, "DomainControllerName")).strip().lstrip("\\")


# -- switches, VM adapters, VM processors, the host's processors (issue 22) -------------------


def parse_switch(obj: object) -> VirtualSwitch:
    """Get-VMSwitch's VMSwitch: Name (the switch's friendly name) and SwitchType (an enum)."""
    name = _text(prop(obj, "Name"))
    if not name:
        raise ValueError("a VMSwitch without Name")
    return VirtualSwitch(name=name, switch_type=_text(prop(obj, "SwitchType")))


def parse_vm_adapter(obj: object) -> VMAdapter | None:
    """Get-VMNetworkAdapter's VMNetworkAdapter. SwitchName is null when the adapter is not
    connected; connected to a resource pool without a switch, it is a localized description
    ("soft affinity") while SwitchId is null: such an adapter names no switch either. The
    management OS's adapters (IsManagementOs) belong to no VM and are skipped (None)."""
    if _optional_bool(prop(obj, "IsManagementOs")):
        return None
    vm_name = _text(prop(obj, "VMName"))
    if not vm_name:
        return None
    switch = _text(prop(obj, "SwitchName"))
    if has_prop(obj, "SwitchId") and prop(obj, "SwitchId") is None:
        switch = ""
    return VMAdapter(vm_name=vm_name, switch=switch, name=_text(prop(obj, "Name")))


def parse_vm_processor(obj: object) -> VMProcessorSettings | None:
    """Get-VMProcessor's VMProcessor: CompatibilityForMigrationEnabled (bool), and where the
    host has it (Windows Server 2025) the enum CompatibilityForMigrationMode."""
    vm_name = _text(prop(obj, "VMName"))
    if not vm_name:
        return None
    return VMProcessorSettings(
        vm_name=vm_name,
        compatibility=_optional_bool(prop(obj, "CompatibilityForMigrationEnabled")),
        mode=_text(prop(obj, "CompatibilityForMigrationMode")),
    )


def parse_processor(obj: object) -> HostProcessor:
    """Win32_Processor (one instance per socket): Manufacturer, Name, Caption (strings)."""
    return HostProcessor(
        manufacturer=_text(prop(obj, "Manufacturer")).strip(),
        name=_text(prop(obj, "Name")).strip(),
        caption=_text(prop(obj, "Caption")).strip(),
    )


# -- Credential Guard and the migration firewall rule (issue 14) ------------------------------

_NOT_FOUND = "cmdletizationquery_notfound"  # Get-NetFirewallRule -Name <missing>: ObjectNotFound


def parse_device_guard(obj: object) -> DeviceGuard:
    """Win32_DeviceGuard: SecurityServicesConfigured / SecurityServicesRunning are uint32[]
    (absent or <Nil/>: none)."""
    return DeviceGuard(
        configured=_uint_list(prop(obj, "SecurityServicesConfigured")),
        running=_uint_list(prop(obj, "SecurityServicesRunning")),
    )


def _uint_list(value: object) -> tuple[int, ...]:
    if value is None:
        return ()
    items = value if isinstance(value, (list, tuple)) else [value]
    return tuple(parse_int(item) for item in items)


def parse_firewall_rule(obj: object) -> FirewallRule:
    """MSFT_NetFirewallRule: Enabled is the cmdletization enum Enabled (True = 1, False = 2),
    read by name, else by its integer; a plain bool or text is accepted too."""
    return FirewallRule(
        name=_text(prop(obj, "Name")),
        exists=True,
        enabled=_rule_enabled(prop(obj, "Enabled")),
        display_name=_text(prop(obj, "DisplayName")),
    )


def _rule_enabled(value: object) -> bool:
    if isinstance(value, bool):
        return value
    name = enum_name(value).strip().lower()
    if name in ("true", "false"):
        return name == "true"
    number = enum_int(value)
    if number is None and name.isdigit():
        number = int(name)
    if number in (1, 2):
        return number == 1
    raise ValueError(f"unknown Enabled value {enum_name(value)!r}")


def _security_records(got: _Collected, records: list[object], failed: bool) -> list[object]:
    """Take out the records that are facts, not read failures: Get-NetFirewallRule's ObjectNotFound
    (the rule does not exist) and Get-CimInstance's failure on Win32_DeviceGuard (the class cannot
    be read: the OS-build guess stands in). A terminating record always stays a failure."""
    kept: list[object] = []
    for index, record in enumerate(records):
        if failed and index == len(records) - 1:
            kept.append(record)
            continue
        info = describe_record(record, READ_CMDLETS)
        if info.cmdlet == "Get-NetFirewallRule" and info.error_id.lower().startswith(_NOT_FOUND) \
                and MIGRATION_FIREWALL_RULE.lower() in (info.target + info.message).lower():
            got.firewall_rule = got.firewall_rule or FirewallRule(MIGRATION_FIREWALL_RULE, False)
        elif info.cmdlet == "Get-CimInstance" and "deviceguard" in (
                info.target + info.message).lower():
            got.device_guard_error = info.message
        else:
            kept.append(record)
    return kept
