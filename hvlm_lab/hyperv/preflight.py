"""Preflight commands of a simulated host: Get-CimInstance (Win32_ComputerSystem,
Win32_OperatingSystem), Get-WindowsFeature, Get-NetIPAddress, Get-VM, Get-VMHostSupportedVersion,
and the native `klist` (purge -li 0x3e7 after delegation changes).

Part of the lab: `hyperv/host.py` registers `COMMANDS`. The answers come from the host's
`LabHostConfig`, so tests build mixed fleets (a 2025 host, a host outside the domain, a host
without the Hyper-V role, VMs with versions a destination does not support).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from psrpcore.types import ErrorCategory, PSObject

from hvlm_lab.cmdlets import ErrorInfo
from hvlm_lab.hyperv import security
from hvlm_lab.hyperv.binding import (
    HOST_PARAMS,
    Bound,
    CmdletSpec,
    Kind,
    Param,
    binding_error,
)
from hvlm_lab.hyperv.config import LabHostConfig
from hvlm_lab.hyperv.objects import (
    AddressFamily,
    computer_system,
    net_ip_address,
    nt_domain,
    operating_system,
    supported_version,
    virtual_machine,
    win32_processors,
    windows_feature,
)
from hvlm_lab.hyperv.runtime import (
    Command,
    Emitter,
    HostView,
    has_wildcards,
    matches_any,
    targets_this_host,
)

GET_CIM = CmdletSpec(
    "Get-CimInstance", "Microsoft.Management.Infrastructure.CimCmdlets.GetCimInstanceCommand", (
        Param("ClassName", Kind.STRING, position=0, not_empty=True),
        Param("Namespace", Kind.STRING),
        Param("Query", Kind.STRING),
        Param("QueryDialect", Kind.STRING),
        Param("Filter", Kind.STRING),
        Param("Property", Kind.STRINGS, aliases=("SelectProperties",)),
        Param("KeyOnly", Kind.SWITCH),
        Param("Shallow", Kind.SWITCH),
        Param("OperationTimeoutSec", Kind.UINT32, aliases=("OT",)),
        Param("ResourceUri", Kind.STRING),
        Param("ComputerName", Kind.STRINGS, aliases=("CN", "ServerName")),
        Param("CimSession", Kind.CIM_SESSIONS),
    ))
GET_FEATURE = CmdletSpec(
    "Get-WindowsFeature", "Microsoft.Windows.ServerManager.Commands.GetWindowsFeatureCommand", (
        Param("Name", Kind.STRINGS, position=0),
        Param("Vhd", Kind.STRING),
        Param("ComputerName", Kind.STRINGS, aliases=("Cn",)),
        Param("Credential", Kind.ANY),
        Param("LogPath", Kind.STRING),
    ))
GET_NET_IP = CmdletSpec("Get-NetIPAddress", "Get-NetIPAddress", (
    Param("IPAddress", Kind.STRINGS, position=0),
    Param("InterfaceIndex", Kind.UINT32S, aliases=("ifIndex",)),
    Param("InterfaceAlias", Kind.STRINGS, aliases=("ifAlias",)),
    Param("AddressFamily", Kind.ENUM, enum=AddressFamily,
          enum_type_name="Microsoft.PowerShell.Cmdletization.GeneratedTypes.NetIPAddress."
                         "AddressFamily"),
    Param("Type", Kind.STRINGS),
    Param("PrefixLength", Kind.UINT32S),
    Param("AddressState", Kind.STRINGS),
    Param("PolicyStore", Kind.STRING),
    Param("IncludeAllCompartments", Kind.SWITCH),
    Param("CimSession", Kind.CIM_SESSIONS, aliases=("Session",)),
    Param("ThrottleLimit", Kind.UINT32),
    Param("AsJob", Kind.SWITCH),
))
GET_VM = CmdletSpec("Get-VM", "Microsoft.HyperV.PowerShell.Commands.GetVM", (
    Param("Name", Kind.STRINGS, position=0, aliases=("VMName",)),
    Param("Id", Kind.ANY),
) + HOST_PARAMS)
GET_SUPPORTED = CmdletSpec(
    "Get-VMHostSupportedVersion", "Microsoft.HyperV.PowerShell.Commands.GetVMHostSupportedVersion",
    (Param("ComputerName", Kind.STRINGS, position=0, not_empty=True),
     Param("Credential", Kind.ANY, position=1),
     Param("CimSession", Kind.CIM_SESSIONS),
     Param("Default", Kind.SWITCH)))
KLIST = CmdletSpec("klist", "klist.exe", (), common=False)

CIM_EXCEPTION = "Microsoft.Management.Infrastructure.CimException"
FEATURES = (
    ("Hyper-V", "Hyper-V"),
    ("RSAT-Hyper-V-Tools", "Hyper-V Management Tools"),
    ("Hyper-V-PowerShell", "Hyper-V Module for Windows PowerShell"),
)
SYSTEM_LOGON = "0x3e7"
CURRENT_LOGON = "0x5c3a1f"


def get_cim_instance(host: HostView, bound: Bound, out: Emitter) -> None:
    class_name = bound.get("ClassName") or _class_from_query(bound.get("Query"))
    if class_name is None:
        raise binding_error(
            out.spec, "AmbiguousParameterSet",
            "Parameter set cannot be resolved using the specified named parameters.")
    if not targets_this_host(host, bound, out):
        return
    namespace = (bound.get("Namespace") or "root/cimv2").replace("\\", "/").lower()
    if namespace == security.DEVICE_GUARD_NAMESPACE and security.get_device_guard(
            host, class_name, out):
        return
    if namespace != "root/cimv2":
        _cim_error(out, "0x8004100e", "Invalid namespace ", namespace)
        return
    builders: dict[str, Callable[[LabHostConfig], list[PSObject]]] = {
        "win32_computersystem": lambda c: [computer_system(c)],
        "win32_operatingsystem": lambda c: [operating_system(c)],
        "win32_ntdomain": lambda c: [nt_domain(c)],
        "win32_processor": win32_processors,
    }
    builder = builders.get(class_name.lower())
    if builder is None:
        # The target is "<namespace>:<class>" (FIDELITY.md), e.g. root\cimv2:Win32_Nope.
        _cim_error(out, "0x80041010", "Invalid class ", f"{namespace.replace('/', chr(92))}:"
                   f"{class_name}")
        return
    for obj in builder(host.config):
        out.write(obj)


def _class_from_query(query: str | None) -> str | None:
    match = re.match(r"\s*select\s+.+?\s+from\s+(\w+)", query or "", re.IGNORECASE)
    return match.group(1) if match else None


def _cim_error(out: Emitter, hresult: str, message: str, target: str) -> None:
    out.error(ErrorInfo(message, f"HRESULT {hresult},{out.spec.type_name}",
                        ErrorCategory.MetadataError, CIM_EXCEPTION, target))


def get_windows_feature(host: HostView, bound: Bound, out: Emitter) -> None:
    if not targets_this_host(host, bound, out):
        return
    installed = host.config.hyperv_installed
    for name, display in FEATURES:
        if matches_any(bound.get("Name"), name):
            out.write(windows_feature(name, display, installed))


def get_net_ip_address(host: HostView, bound: Bound, out: Emitter) -> None:
    addresses = [a for a in host.config.all_addresses() if _address_selected(a, bound)]
    for address in addresses:
        out.write(net_ip_address(address))
    if addresses:
        return
    for name, prop in (("IPAddress", "IPAddress"), ("InterfaceAlias", "InterfaceAlias")):
        for value in bound.get(name) or []:
            out.error(ErrorInfo(
                f"No matching MSFT_NetIPAddress objects found by CIM query for instances of the "  # noqa: S608
                f"ROOT/StandardCimv2/MSFT_NetIPAddress class on the  CIM server: SELECT * FROM "
                f"MSFT_NetIPAddress  WHERE (({prop} LIKE '{value}')). Verify query parameters "
                "and retry.", f"CmdletizationQuery_NotFound_{prop},Get-NetIPAddress",
                ErrorCategory.ObjectNotFound,
                "Microsoft.PowerShell.Cmdletization.Cim.CimJobException", value))


def _address_selected(address: Any, bound: Bound) -> bool:
    family = bound.get("AddressFamily")
    indexes = bound.get("InterfaceIndex")
    prefixes = bound.get("PrefixLength")
    return (matches_any(bound.get("IPAddress"), str(address.interface.ip))
            and matches_any(bound.get("InterfaceAlias"), address.interface_alias)
            and (family is None or int(family) == (2 if address.interface.version == 4 else 23))
            and (indexes is None or address.interface_index in indexes)
            and (prefixes is None or address.interface.network.prefixlen in prefixes))


def get_vm(host: HostView, bound: Bound, out: Emitter) -> None:
    if not targets_this_host(host, bound, out):
        return
    names: list[str] | None = bound.get("Name")
    vms = [vm for vm in host.config.vms if matches_any(names, vm.name)]
    for vm in vms:
        out.write(virtual_machine(host.config, vm))
    for name in names or []:
        if not has_wildcards(name) and not any(matches_any([name], vm.name) for vm in vms):
            out.vm_error("InvalidParameter", ErrorCategory.InvalidArgument,
                         f'Hyper-V was unable to find a virtual machine with name "{name}".', name)


def get_supported_versions(host: HostView, bound: Bound, out: Emitter) -> None:
    if not targets_this_host(host, bound, out):
        return
    default = host.config.default_vm_version
    for version in host.config.supported_vm_versions:
        if bound.get("Default") and version != default:
            continue
        out.write(supported_version(version, version == default))


def klist(host: HostView, bound: Bound, out: Emitter) -> None:
    """klist [purge] [-li <logon id>]: text lines as the real program prints them."""
    tokens = [str(t) for t in bound.get("args", [])]
    lowered = [t.lower() for t in tokens]
    logon = CURRENT_LOGON
    if "-li" in lowered:
        index = lowered.index("-li")
        if index + 1 >= len(tokens):
            _klist_usage(out)
            return
        logon = _logon_id(tokens[index + 1])
        del lowered[index:index + 2]
    if lowered not in ([], ["purge"], ["tickets"]):
        _klist_usage(out)
        return
    lines = ["", f"Current LogonId is 0:{CURRENT_LOGON}"]
    if logon != CURRENT_LOGON:
        lines.append(f"Targeted LogonId is 0:{logon}")
    if lowered == ["purge"]:
        host.record_purge(logon)
        lines += ["\tDeleting all tickets:", "\tTicket(s) purged!"]
    else:
        lines += ["", f"Cached Tickets: ({host.ticket_count(logon)})"]
    for line in lines:
        out.write(line)


def _logon_id(text: str) -> str:
    try:
        return hex(int(text, 16))
    except ValueError:
        return text.lower()


def _klist_usage(out: Emitter) -> None:
    for line in ("", "Usage: klist [-lh <LogonId.HighPart>] [-li <LogonId.LowPart>] "
                 "tickets | tgt | purge | sessions | kcd_cache | get | add_bind | query_bind | "
                 "purge_bind"):
        out.write(line)


COMMANDS = (
    Command(GET_CIM, get_cim_instance),
    Command(GET_FEATURE, get_windows_feature),
    Command(GET_NET_IP, get_net_ip_address),
    Command(GET_VM, get_vm, needs_hyperv=True),
    Command(GET_SUPPORTED, get_supported_versions, needs_hyperv=True),
    Command(KLIST, klist, native=True),
)
