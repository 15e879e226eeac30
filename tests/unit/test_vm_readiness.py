"""Issue 22: will each VM move? The parsers of the new statements, and the rules (table-driven).

Parsers: a recorded read (tests/unit/fixtures/hosts/vm_readiness_read.xml, shapes per
FIDELITY.md) and the readings that must not invent findings: a statement that failed or never ran
is None (not judged), one that ran and wrote nothing is () (a host without VMs or switches).
Rules: hvlm.readiness on HostFacts, one row per situation (names differing only in case,
disconnected adapters, hosts without VMs, properties missing on older hosts, facts not read,
many VMs grouped into one finding).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pypsrp.serializer import Serializer

from hvlm import readiness
from hvlm.errors import Severity
from hvlm.findings import Finding, finding_document
from hvlm.hosts.parse import parse_host_state
from hvlm.state import (
    HostFacts,
    HostProcessor,
    VirtualMachine,
    VirtualSwitch,
    VMAdapter,
    VMProcessorSettings,
)

FIXTURES = Path(__file__).parent / "fixtures" / "hosts"
GOLD = HostProcessor("GenuineIntel", "Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz",
                     "Intel64 Family 6 Model 85 Stepping 7")
SILVER = HostProcessor("GenuineIntel", "Intel(R) Xeon(R) Silver 4314 CPU @ 2.40GHz",
                       "Intel64 Family 6 Model 106 Stepping 6")
EPYC = HostProcessor("AuthenticAMD", "AMD EPYC 7543 32-Core Processor",
                     "AMD64 Family 25 Model 1 Stepping 1")


def load(name: str) -> list[Any]:
    root = ET.parse(FIXTURES / name).getroot()
    return [Serializer().deserialize(ET.tostring(e, encoding="unicode")) for e in root]


def record(cmdlet_class: str, message: str, error_id: str = "ObjectNotFound") -> Any:
    """An ErrorRecord as hvlm.hosts.records reads one (a Hyper-V VirtualizationException)."""
    return SimpleNamespace(details_message=message, exception=None, message=message,
                           fq_error=f"{error_id},Microsoft.HyperV.PowerShell.Commands."
                                    f"{cmdlet_class}",
                           target_object=None, invocation_name="", command_name="")


# --- parsing ---------------------------------------------------------------------------------


def test_recorded_read_gives_switches_adapters_processors() -> None:
    facts = parse_host_state("HV01", load("vm_readiness_read.xml")).facts
    assert facts.switches == (VirtualSwitch("External", "External"),
                              VirtualSwitch("Storage Net", "Private"))
    # the disconnected adapter and the resource-pool one name no switch; the management OS's
    # adapter belongs to no VM and is not listed
    assert facts.vm_adapters == (VMAdapter("web01", "External", "Network Adapter"),
                                 VMAdapter("web01", "", "Network Adapter 2"),
                                 VMAdapter("db01", "", "Network Adapter"))
    # 2022: no CompatibilityForMigrationMode; db01's object lacks CompatibilityForMigrationEnabled
    assert facts.vm_processors == (VMProcessorSettings("web01", False, ""),
                                   VMProcessorSettings("db01", None, ""))
    assert facts.processors == (GOLD, GOLD)


def _vmhost_only() -> list[Any]:
    return load("vm_readiness_read.xml")[:1]


def test_a_host_without_vms_or_switches_reads_as_empty_not_unknown() -> None:
    facts = parse_host_state("HV01", _vmhost_only()).facts
    assert (facts.switches, facts.vm_adapters, facts.vm_processors) == ((), (), ())
    assert facts.processors == ()  # Win32_Processor always has an instance: () = not read


def test_a_terminating_error_before_the_statements_leaves_them_unknown() -> None:
    failed = record("GetVMHostSupportedVersion", "The operation was stopped.", "Stopped")
    state = parse_host_state("HV01", _vmhost_only(), [failed], failed=True)
    facts = state.facts
    assert (facts.switches, facts.vm_adapters, facts.vm_processors) == (None, None, None)
    assert state.read_warnings == ("Get-VMHostSupportedVersion: The operation was stopped. "
                                   "(the read stopped there)",)


def test_a_switch_error_makes_the_switch_list_unknown_an_adapter_error_does_not() -> None:
    objects = load("vm_readiness_read.xml")
    errors = [record("GetVMSwitch", "The operation failed.", "OperationFailed"),
              record("GetVMNetworkAdapter", 'Hyper-V was unable to find a virtual machine with '
                     'name "gone".')]
    state = parse_host_state("HV01", objects, errors)
    assert state.facts.switches is None  # a partial list would invent vm-switch-missing
    assert state.facts.vm_adapters is not None and len(state.facts.vm_adapters) == 3
    assert [w.split(":")[0] for w in state.read_warnings] == ["Get-VMSwitch",
                                                              "Get-VMNetworkAdapter"]


def test_compatibility_mode_is_read_by_name_where_the_host_has_it() -> None:
    processor = Serializer().deserialize(
        '<Obj RefId="0"><TN RefId="0"><T>Deserialized.Microsoft.HyperV.PowerShell.VMProcessor</T>'
        '<T>Deserialized.System.Object</T></TN><Props><S N="VMName">app</S>'
        '<B N="CompatibilityForMigrationEnabled">true</B>'
        '<Obj N="CompatibilityForMigrationMode" RefId="1"><TN RefId="1">'
        '<T>Deserialized.Microsoft.HyperV.PowerShell.ProcessorCompatibilityMode</T>'
        '<T>Deserialized.System.Enum</T><T>Deserialized.System.ValueType</T>'
        '<T>Deserialized.System.Object</T></TN><ToString>CommonClusterFeatureSet</ToString>'
        '<I32>1</I32></Obj></Props></Obj>')
    facts = parse_host_state("HV25", _vmhost_only() + [processor]).facts
    assert facts.vm_processors == (VMProcessorSettings("app", True, "CommonClusterFeatureSet"),)


# --- the rules -------------------------------------------------------------------------------


def host(*, switches: tuple[str, ...] | None = ("External",),
         vms: tuple[tuple[str, tuple[str, ...], bool | None], ...] = (),
         cpu: tuple[HostProcessor, ...] = (GOLD,), versions: tuple[str, ...] = ("10.0",),
         adapters_read: bool = True) -> HostFacts:
    """vms: (name, switches of its adapters ("" = disconnected), CompatibilityForMigration)."""
    return HostFacts(
        vms=tuple(VirtualMachine(name, "10.0") for name, _, _ in vms),
        supported_versions=versions,
        switches=None if switches is None else tuple(VirtualSwitch(s) for s in switches),
        vm_adapters=tuple(VMAdapter(name, s) for name, used, _ in vms for s in used)
        if adapters_read else None,
        vm_processors=tuple(VMProcessorSettings(name, compat) for name, _, compat in vms),
        processors=cpu,
    )


@dataclass(frozen=True)
class Case:
    id: str
    source: HostFacts
    target: HostFacts
    # (code, severity, vms) of every finding HV01->HV02 and HV01<->HV02
    expect: tuple[tuple[str, Severity, tuple[str, ...]], ...] = ()
    words: tuple[str, ...] = field(default=())  # in the messages


E, W = Severity.ERROR, Severity.WARNING
WEB = ("web01", ("External",), True)
CASES = (
    Case("same switch, same processor", host(vms=(WEB,)), host()),
    Case("switch missing", host(vms=(WEB,)), host(switches=("LabSwitch",)),
         (("vm-switch-missing", E, ("web01",)),),
         ("web01 on HV01 cannot move to HV02: switch 'External' is missing on HV02",)),
    Case("names differing only in case", host(vms=(WEB,)), host(switches=("external",)),
         (("vm-switch-case-differs", W, ("web01",)),), ("only as 'external'",)),
    Case("disconnected adapters need no switch", host(vms=(("web01", ("",), True),)),
         host(switches=())),
    Case("a VM without adapters", host(vms=(("web01", (), True),)), host(switches=())),
    Case("a host without VMs", host(), host(switches=())),
    Case("destination switches not read", host(vms=(WEB,)), host(switches=None)),
    Case("source adapters not read", host(vms=(WEB,), adapters_read=False), host(switches=())),
    Case("a destination without any switch", host(vms=(WEB,)), host(switches=()),
         (("vm-switch-missing", E, ("web01",)),), ("Get-VMSwitch on HV02: (none)",)),
    Case("two switches missing: one finding each",
         host(switches=("External", "Backup"), vms=(("web01", ("External", "Backup"), True),)),
         host(switches=("LabSwitch",)),
         (("vm-switch-missing", E, ("web01",)), ("vm-switch-missing", E, ("web01",))),
         ("'External'", "'Backup'")),
    Case("many VMs on one missing switch: one finding",
         host(vms=tuple((f"vm{i:02d}", ("External",), True) for i in range(1, 8))),
         host(switches=("LabSwitch",)),
         (("vm-switch-missing", E, tuple(f"vm{i:02d}" for i in range(1, 8))),),
         ("7 VMs on HV01 cannot move to HV02", "(vm01, vm02, vm03, vm04, vm05 and 2 more)")),
    Case("other vendor: once per pair, not per VM",
         host(vms=(("web01", ("External",), False), ("db01", ("External",), True))),
         host(cpu=(EPYC,)),
         (("processor-vendor-mismatch", E, ()),), ("GenuineIntel", "AuthenticAMD")),
    Case("same vendor, other model, compatibility off",
         host(vms=(("web01", ("External",), False), ("db01", ("External",), True))),
         host(cpu=(SILVER,)),
         (("processor-compatibility-off", E, ("web01",)),),
         ("web01 on HV01 cannot live-migrate to HV02", "Set-VMProcessor -VMName web01 ")),
    Case("compatibility not read (property missing): not judged",
         host(vms=(("web01", ("External",), None),)), host(cpu=(SILVER,))),
    Case("same model written differently",
         host(vms=(("web01", ("External",), False),),
              cpu=(replace(GOLD, name="intel(r) xeon(r)  gold 6248 CPU @ 2.50GHz "),)),
         host()),
    Case("model from Caption when Name is missing",
         host(vms=(("web01", ("External",), False),), cpu=(replace(GOLD, name=""),)),
         host(cpu=(replace(SILVER, name=""),)),
         (("processor-compatibility-off", E, ("web01",)),), ("Model 85", "Model 106")),
    Case("processors not read on one host: neither rule judges",
         host(vms=(("web01", ("External",), False),), cpu=()), host(cpu=(EPYC,))),
    Case("configuration version the destination cannot run",
         host(vms=(WEB,)), host(versions=("8.0", "9.0")),
         (("vm-version-unsupported", E, ("web01",)),), ("web01 (10.0)",)),
)


def judge(source: HostFacts, target: HostFacts) -> list[Finding]:
    return list(readiness.symmetric("HV01", source, "HV02", target)) + \
        list(readiness.directed("HV01", source, "HV02", target))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_rule(case: Case) -> None:
    found = judge(case.source, case.target)
    assert [(f.code, f.severity, f.vms) for f in found] == list(case.expect)
    text = " ".join(f"{f.message} {f.evidence} {f.fix}" for f in found)
    for word in case.words:
        assert word in text
    for finding in found:
        assert finding.subject == ("HV01<->HV02" if finding.code == "processor-vendor-mismatch"
                                   else "HV01->HV02")


def test_vms_join_by_name_case_insensitively() -> None:
    facts = HostFacts(vms=(VirtualMachine("Web01", "10.0"),),
                      vm_adapters=(VMAdapter("WEB01", "External"),),
                      vm_processors=(VMProcessorSettings("web01", False),))
    assert readiness.vm_views(facts) == (readiness.VMView("Web01", "10.0", ("External",), False),)


def test_each_direction_is_judged_on_its_own() -> None:
    source, target = host(vms=(WEB,)), host(switches=("LabSwitch",))
    assert [f.code for f in readiness.directed("HV02", target, "HV01", source)] == []
    assert [f.code for f in readiness.directed("HV01", source, "HV02", target)] == [
        "vm-switch-missing"]


def test_the_vms_travel_in_the_json_document_only_when_there_are_some() -> None:
    [finding] = readiness.directed("HV01", host(vms=(WEB,)), "HV02", host(switches=()))
    assert finding_document(finding)["vms"] == ["web01"]
    [vendor] = readiness.symmetric("HV01", host(), "HV02", host(cpu=(EPYC,)))
    assert "vms" not in finding_document(vendor)


def test_a_saved_plan_keeps_the_vms_of_its_findings() -> None:
    import json

    import jsonschema

    from hvlm.plan import ManifestRef, Plan, dumps_plan, loads_plan

    schema = json.loads((Path(__file__).resolve().parents[2] / "schemas" /
                         "plan.v2.schema.json").read_text())
    [finding] = readiness.directed("HV01", host(vms=(WEB,)), "HV02", host(switches=()))
    plan = Plan(manifest=ManifestRef("lab", "manifest.yaml", "0" * 64), changes=(),
                findings=(finding,), hvlm_version="0.1.0")
    text = dumps_plan(plan)
    jsonschema.Draft202012Validator(schema).validate(json.loads(text))
    assert loads_plan(text).findings == (finding,)
