"""Will each VM move? Per pair and direction: switches, processors, configuration versions. Pure.

Pipeline position: below hvlm.check, which calls it for every pair of hosts that migrate among
each other (manifest groups), after observation: `directed(...)` for each direction (HV01->HV02
and HV02->HV01), `symmetric(...)` once per pair. It reads only HostFacts (hvlm.state), which
hvlm.hosts.parse fills from the one read pipeline per host (Get-VM, Get-VMSwitch,
Get-VMNetworkAdapter -VMName *, Get-VMProcessor -VMName *, Win32_Processor,
Get-VMHostSupportedVersion), and returns findings of the catalogue (hvlm.findings).

Rules (each VM of the source, toward the destination):

- `vm-switch-missing`: an adapter of the VM is connected to a switch the destination does not
  have under that name (Move-VM refuses it). A disconnected adapter (SwitchName null) needs none.
  Names are compared exactly; a switch the destination has only in another case is
  `vm-switch-case-differs` (a warning): the Hyper-V module finds switches by name
  case-insensitively (WQL, OrdinalIgnoreCase), but no source says how the migration itself matches
  them, so hvlm neither calls it fine nor an error.
- `processor-compatibility-off`: both hosts have processors of one manufacturer but of different
  models (Win32_Processor.Name, else Caption), and the VM's CompatibilityForMigrationEnabled is
  False.
- `vm-version-unsupported`: the VM's configuration version is not in the destination's
  Get-VMHostSupportedVersion.
- Once per pair, not per VM: `processor-vendor-mismatch` (different Win32_Processor.Manufacturer):
  no running VM live-migrates between them, with or without compatibility.

A fact that was not read (None, or no Win32_Processor) is not judged: a rule reports only what
the hosts said. Many VMs with the same problem make ONE finding per (source, destination, switch)
or per (source, destination): its message names up to five and counts the rest; `Finding.vms`
lists them all (JSON and SARIF carry it).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from hvlm.findings import (
    PROCESSOR_COMPATIBILITY_OFF,
    PROCESSOR_VENDOR_MISMATCH,
    VM_SWITCH_CASE_DIFFERS,
    VM_SWITCH_MISSING,
    VM_VERSION_UNSUPPORTED,
    Finding,
)
from hvlm.state import HostFacts

MAX_LISTED = 5


@dataclass(frozen=True)
class VMView:
    """One VM as the rules see it, joined by name (case-insensitively, as Hyper-V looks VMs up)
    from Get-VM, Get-VMNetworkAdapter and Get-VMProcessor."""

    name: str
    version: str | None = None  # None: Get-VM did not list it
    switches: tuple[str, ...] | None = None  # of connected adapters; None: adapters not read
    compatibility: bool | None = None  # CompatibilityForMigrationEnabled; None: not read


def vm_views(facts: HostFacts) -> tuple[VMView, ...]:
    """Every VM the host reported, in the order Get-VM (then the others) listed them."""
    names: dict[str, str] = {}
    for name in [vm.name for vm in facts.vms] + [a.vm_name for a in facts.vm_adapters or ()] \
            + [p.vm_name for p in facts.vm_processors or ()]:
        names.setdefault(name.casefold(), name)
    versions = {vm.name.casefold(): vm.version for vm in facts.vms}
    compatibility = {p.vm_name.casefold(): p.compatibility for p in facts.vm_processors or ()}
    return tuple(
        VMView(name, versions.get(key), _switches_of(facts, key), compatibility.get(key))
        for key, name in names.items())


def _switches_of(facts: HostFacts, key: str) -> tuple[str, ...] | None:
    if facts.vm_adapters is None:
        return None
    used = [a.switch for a in facts.vm_adapters if a.vm_name.casefold() == key and a.switch]
    return tuple(dict.fromkeys(used))


# --- once per pair ---------------------------------------------------------------------------


def vendor(facts: HostFacts) -> str | None:
    """The processor manufacturer (GenuineIntel, AuthenticAMD...), None when not read."""
    found = sorted({p.manufacturer.strip() for p in facts.processors if p.manufacturer.strip()},
                   key=str.casefold)
    return " + ".join(found) if found else None


def model(facts: HostFacts) -> str | None:
    """The processor model (Name, else Caption; whitespace collapsed), None when not read."""
    found = sorted({" ".join((p.name or p.caption).split()) for p in facts.processors
                    if (p.name or p.caption).strip()}, key=str.casefold)
    return " + ".join(found) if found else None


def _same(a: str, b: str) -> bool:
    return a.casefold() == b.casefold()


def symmetric(a: str, facts_a: HostFacts, b: str, facts_b: HostFacts) -> Iterator[Finding]:
    """processor-vendor-mismatch for the pair a<->b."""
    vendor_a, vendor_b = vendor(facts_a), vendor(facts_b)
    if vendor_a and vendor_b and not _same(vendor_a, vendor_b):
        yield PROCESSOR_VENDOR_MISMATCH.make(f"{a}<->{b}", a=a, b=b, vendor_a=vendor_a,
                                             vendor_b=vendor_b)


# --- per VM, one direction -------------------------------------------------------------------


def directed(src: str, source: HostFacts, dst: str, target: HostFacts) -> Iterator[Finding]:
    """The findings of every VM of `src` toward `dst`."""
    views = vm_views(source)
    yield from _versions(src, views, dst, target)
    yield from _switches(src, views, dst, target)
    yield from _compatibility(src, source, views, dst, target)


def _who(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else f"{len(names)} VMs"


def _listed(names: Sequence[str], separator: str = ", ") -> str:
    more = f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else ""
    return separator.join(names[:MAX_LISTED]) + more


def _names(names: Sequence[str]) -> str:
    return "" if len(names) == 1 else f" ({_listed(names)})"


def _switches(src: str, views: Sequence[VMView], dst: str, target: HostFacts
              ) -> Iterator[Finding]:
    if target.switches is None:
        return
    present = [s.name for s in target.switches]
    missing: dict[str, list[str]] = {}
    other_case: dict[tuple[str, str], list[str]] = {}
    for vm in views:
        for switch in vm.switches or ():
            if switch in present:
                continue
            peer = next((p for p in present if _same(p, switch)), None)
            group = missing.setdefault(switch, []) if peer is None \
                else other_case.setdefault((switch, peer), [])
            group.append(vm.name)
    shown = ", ".join(f"'{p}'" for p in present) or "(none)"
    subject = f"{src}->{dst}"
    for switch, names in missing.items():
        yield VM_SWITCH_MISSING.make(subject, vms=tuple(names), who=_who(names),
                                     names=_names(names), src=src, dst=dst, switch=switch,
                                     listed=_listed(names), switches=shown)
    for (switch, peer), names in other_case.items():
        yield VM_SWITCH_CASE_DIFFERS.make(subject, vms=tuple(names), who=_who(names),
                                          names=_names(names), src=src, dst=dst, switch=switch,
                                          peer_switch=peer, listed=_listed(names),
                                          switches=shown)


def _compatibility(src: str, source: HostFacts, views: Sequence[VMView], dst: str,
                   target: HostFacts) -> Iterator[Finding]:
    vendor_src, vendor_dst = vendor(source), vendor(target)
    model_src, model_dst = model(source), model(target)
    if not (vendor_src and vendor_dst and model_src and model_dst):
        return
    if not _same(vendor_src, vendor_dst) or _same(model_src, model_dst):
        return
    names = [vm.name for vm in views if vm.compatibility is False]
    if names:
        yield PROCESSOR_COMPATIBILITY_OFF.make(
            f"{src}->{dst}", vms=tuple(names), who=_who(names), names=_names(names), src=src,
            dst=dst, vm_list=_listed(names, ","), listed=_listed(names), model_src=model_src,
            model_dst=model_dst)


def version_key(version: str) -> tuple[int, ...] | str:
    """A configuration version for comparison: "10.0" and "10" are the same version."""
    try:
        parts = [int(p) for p in version.strip().split(".")]
    except ValueError:
        return version.strip().lower()
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def _versions(src: str, views: Sequence[VMView], dst: str, target: HostFacts
              ) -> Iterator[Finding]:
    supported = target.supported_versions
    if not supported:
        return
    keys = {version_key(v) for v in supported}
    bad = [vm for vm in views if vm.version is not None and version_key(vm.version) not in keys]
    if not bad:
        return
    listed = ", ".join(f"{vm.name} ({vm.version})" for vm in bad[:MAX_LISTED])
    more = f" and {len(bad) - MAX_LISTED} more" if len(bad) > MAX_LISTED else ""
    yield VM_VERSION_UNSUPPORTED.make(
        f"{src}->{dst}", vms=tuple(vm.name for vm in bad), count=len(bad), src=src, dst=dst,
        listed=f"{listed}{more}", supported=", ".join(supported))
