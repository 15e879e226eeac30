"""What decides whether a VM can move, on a simulated host: Get-VMSwitch, Get-VMNetworkAdapter,
Get-VMProcessor (issue 22).

Part of the lab: `hyperv/host.py` registers `COMMANDS`; the answers come from the host's
`LabHostConfig` (`switches`, `vms` with their adapters and processor compatibility), which
`hvlm lab up --inventory FILE` sets (runner/inventory.py). Behaviour follows the module's
decompiled reading (FIDELITY.md): a VM name with wildcards that matches nothing writes no error,
a literal name that matches nothing writes a non-terminating ObjectNotFound record, a switch name
that matches nothing an InvalidParameter record (GetSwitchesByNamesAndServers with
ErrorDisplayMode.WriteWarning), and the parameter sets (VMName, All, ManagementOS, VM) exclude
each other.
"""

from __future__ import annotations

from psrpcore.types import ErrorCategory, PSObject

from hvlm_lab.hyperv.binding import (
    HOST_PARAMS,
    Bound,
    CmdletSpec,
    Kind,
    Param,
    binding_error,
)
from hvlm_lab.hyperv.config import LabVM, SwitchType
from hvlm_lab.hyperv.objects import (
    management_os_adapter,
    vm_network_adapter,
    vm_processor,
    vm_switch,
)
from hvlm_lab.hyperv.runtime import (
    Command,
    Emitter,
    HostView,
    has_wildcards,
    matches_any,
    targets_this_host,
)

GET_SWITCH = CmdletSpec("Get-VMSwitch", "Microsoft.HyperV.PowerShell.Commands.GetVMSwitch", (
    Param("Name", Kind.STRING, position=0, aliases=("SwitchName",), not_empty=True),
    Param("Id", Kind.ANY, aliases=("SwitchId",)),
    Param("ResourcePoolName", Kind.STRINGS, position=1, not_empty=True),
    Param("SwitchType", Kind.STRINGS),
) + HOST_PARAMS)
GET_ADAPTER = CmdletSpec(
    "Get-VMNetworkAdapter", "Microsoft.HyperV.PowerShell.Commands.GetVMNetworkAdapter", (
        Param("VMName", Kind.STRINGS, position=0, not_empty=True),
        Param("Name", Kind.STRING, position=1, aliases=("VMNetworkAdapterName",)),
        Param("All", Kind.SWITCH),
        Param("ManagementOS", Kind.SWITCH),
        Param("SwitchName", Kind.STRING, not_empty=True),
        Param("IsLegacy", Kind.BOOL),
        Param("VM", Kind.ANY),
        Param("VMSnapshot", Kind.ANY, aliases=("VMCheckpoint",)),
    ) + HOST_PARAMS)
GET_PROCESSOR = CmdletSpec(
    "Get-VMProcessor", "Microsoft.HyperV.PowerShell.Commands.GetVMProcessor", (
        Param("VMName", Kind.STRINGS, position=0, not_empty=True),
        Param("VM", Kind.ANY),
        Param("VMSnapshot", Kind.ANY, aliases=("VMCheckpoint",)),
    ) + HOST_PARAMS)


def _parameter_set(spec: CmdletSpec, bound: Bound, sets: tuple[str, ...]) -> str:
    """The one parameter set the bound parameters select (each set is named by the parameter
    that is mandatory in it; the first is the default and needs its parameter)."""
    chosen = [name for name in sets if name in bound]
    if len(chosen) > 1:
        raise binding_error(spec, "AmbiguousParameterSet",
                            "Parameter set cannot be resolved using the specified named "
                            "parameters.")
    if not chosen:
        raise binding_error(spec, "MissingMandatoryParameter",
                            "Cannot process command because of one or more missing mandatory "
                            f"parameters: {sets[0]}.")
    return chosen[0]


def _unsupported(spec: CmdletSpec, name: str) -> Exception:
    return binding_error(spec, "NotSupportedInLab",
                         f"The lab does not simulate -{name} (hvlm never sends it).")


def resolve_vms(host: HostView, bound: Bound, out: Emitter) -> list[LabVM]:
    """VMs by -VMName (wildcards, case-insensitive); a literal name that matches none writes a
    non-terminating ObjectNotFound record (WriteNonMatchingNameErrors, ErrorDisplayMode.WriteError)
    and one with wildcards writes nothing."""
    names: list[str] = bound.get("VMName") or []
    vms = [vm for vm in host.config.vms if matches_any(names, vm.name)]
    for name in names:
        if not has_wildcards(name) and not any(vm.name.lower() == name.lower() for vm in vms):
            out.vm_error("ObjectNotFound", ErrorCategory.ObjectNotFound,
                         f'Hyper-V was unable to find a virtual machine with name "{name}".')
    return vms


def get_vm_switch(host: HostView, bound: Bound, out: Emitter) -> None:
    if not targets_this_host(host, bound, out):
        return
    if "Id" in bound or "ResourcePoolName" in bound:
        raise _unsupported(out.spec, "Id" if "Id" in bound else "ResourcePoolName")
    name: str | None = bound.get("Name")
    types = {t.lower() for t in bound.get("SwitchType") or []}
    unknown = types - {t.name.lower() for t in SwitchType}
    if unknown:
        raise binding_error(out.spec, "CannotConvertArgumentNoMessage",
                            f"Cannot bind parameter 'SwitchType'. Cannot convert value "
                            f"\"{sorted(unknown)[0]}\" to type "
                            "\"Microsoft.HyperV.PowerShell.VMSwitchType\".")
    found = [s for s in host.config.switches if name is None or matches_any([name], s.name)]
    if name is not None and not has_wildcards(name) and not found:
        out.vm_error("InvalidParameter", ErrorCategory.InvalidArgument,
                     f'Hyper-V was unable to find a virtual switch with name "{name}".', name)
    for switch in found:
        if not types or switch.switch_type.name.lower() in types:
            out.write(vm_switch(host.config, switch))


def get_vm_network_adapter(host: HostView, bound: Bound, out: Emitter) -> None:
    chosen = _parameter_set(out.spec, bound, ("VMName", "All", "ManagementOS", "VM",
                                              "VMSnapshot"))
    if chosen in ("VM", "VMSnapshot"):
        raise _unsupported(out.spec, chosen)
    if not targets_this_host(host, bound, out):
        return
    config = host.config
    adapters: list[tuple[PSObject, str]] = []
    if chosen in ("All", "ManagementOS"):
        wanted = bound.get("SwitchName")
        adapters += [(management_os_adapter(config, s), s.name) for s in config.switches
                     if s.switch_type is not SwitchType.Private
                     and (wanted is None or matches_any([wanted], s.name))]
    if chosen in ("All", "VMName"):
        vms = config.vms if chosen == "All" else resolve_vms(host, bound, out)
        adapters += [(vm_network_adapter(config, vm, adapter, index), adapter.name)
                     for vm in vms for index, adapter in enumerate(vm.adapters)]
    _write_adapters(out, adapters, bound.get("Name"))


def _write_adapters(out: Emitter, pairs: list[tuple[PSObject, str]], name: str | None) -> None:
    """-Name filters by adapter name (wildcards); none left: ObjectNotFound
    (FilterNetworkAdaptersByName throws inside EnumerateOperands: a non-terminating record)."""
    if name:
        pairs = [(obj, n) for obj, n in pairs if matches_any([name], n)]
        if not pairs:
            out.vm_error("ObjectNotFound", ErrorCategory.ObjectNotFound,
                         "No network adapter is found.")
            return
    for obj, _ in pairs:
        out.write(obj)


def get_vm_processor(host: HostView, bound: Bound, out: Emitter) -> None:
    chosen = _parameter_set(out.spec, bound, ("VMName", "VM", "VMSnapshot"))
    if chosen != "VMName":
        raise _unsupported(out.spec, chosen)
    if not targets_this_host(host, bound, out):
        return
    for vm in resolve_vms(host, bound, out):
        out.write(vm_processor(host.config, vm))


COMMANDS = (
    Command(GET_SWITCH, get_vm_switch, needs_hyperv=True),
    Command(GET_ADAPTER, get_vm_network_adapter, needs_hyperv=True),
    Command(GET_PROCESSOR, get_vm_processor, needs_hyperv=True),
)
