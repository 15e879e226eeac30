"""`hvlm lab up --inventory FILE` (issue 22): the file's format and errors, and the simulated
Get-VMSwitch / Get-VMNetworkAdapter / Get-VMProcessor / Win32_Processor it drives.

No wire here (HyperVHost.invoke); tests/integration/test_vm_readiness.py crosses it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from hvlm_lab.cmdlets import Invocation, StatementResult
from hvlm_lab.hyperv.config import (
    DEFAULT_PROCESSOR,
    DEFAULT_SWITCHES,
    LabAdapter,
    LabHostConfig,
    LabVM,
    SwitchType,
    VMState,
    server_2022,
    server_2025,
)
from hvlm_lab.hyperv.host import HyperVHost
from hvlm_lab.runner.files import LabError
from hvlm_lab.runner.inventory import apply_inventory, load_inventory, parse_inventory
from hvlm_lab.runner.lab import LabOptions

ISSUE_EXAMPLE = """\
HV01:
  switches: [External, Internal]
  processor: {manufacturer: GenuineIntel, name: "Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz"}
  vms:
    - {name: web01, version: "10.0", state: Running, adapters: [External], compatibilityForMigration: false}
"""  # the issue's form, verbatim


def run(host: HyperVHost, command: str, **params: Any) -> StatementResult:
    return host.invoke([Invocation(command, tuple(params.items()))])


def props(obj: Any) -> dict[str, Any]:
    return {p.name: p.get_value(obj) for p in obj.PSObject.adapted_properties}


# --- the file --------------------------------------------------------------------------------


def test_the_issue_form_gives_hv01_its_switches_processor_and_vm() -> None:
    configs = LabOptions(hosts=3, inventory=parse_inventory(ISSUE_EXAMPLE)).configs()
    hv01, hv02 = configs[0], configs[1]
    assert [s.name for s in hv01.switches] == ["External", "Internal"]
    assert hv01.processor.manufacturer == "GenuineIntel"
    assert hv01.vms == (LabVM("web01", "10.0", VMState.Running, (LabAdapter("External"),),
                              False),)
    # a host missing from the file keeps the defaults: one switch, the same processor
    assert (hv02.switches, hv02.processor, hv02.vms) == (DEFAULT_SWITCHES, DEFAULT_PROCESSOR, ())


def test_without_an_inventory_every_host_is_alike() -> None:
    configs = LabOptions(hosts=3).configs()
    assert {(c.switches, c.processor, c.vms) for c in configs} == {
        (DEFAULT_SWITCHES, DEFAULT_PROCESSOR, ())}


def test_more_keys_defaults_and_adapter_forms() -> None:
    inventory = parse_inventory("""\
hv02:
  os: "2025"
  switches: [{name: External, type: External}, {name: Lab Private, type: private}]
  vms:
    - name: db01
      adapters: [external, null, {name: Backup NIC, switch: Lab Private}, {switch: null}]
      compatibilityForMigration: true
      compatibilityForMigrationMode: CommonClusterFeatureSet
      state: Off
""")
    [_, hv02] = apply_inventory((server_2022("HV01"), server_2022("HV02")), inventory)
    vm = hv02.vms[0]
    assert hv02.has_compatibility_mode and vm.version == "12.0"  # 2025's newest
    # a switch name is matched as Connect-VMNetworkAdapter matches it, and then reads as the
    # switch's own name
    assert [a.switch for a in vm.adapters] == ["External", None, "Lab Private", None]
    assert vm.adapters[2].name == "Backup NIC"
    assert hv02.switches[1].switch_type is SwitchType.Private
    assert (vm.state, vm.compatibility_for_migration) == (VMState.Off, True)


BAD = (
    ("[1, 2]", "inventory.yaml:1:1: expected a mapping of host name"),
    ("HV01: {colour: red}", "inventory.yaml:1:8: HV01: unknown key 'colour'"),
    ("HV01:\n  vms:\n    - {version: '10.0'}", "inventory.yaml:3:7: HV01.vms[0]: a VM needs a name"),
    ("HV01:\n  vms: [{name: a, state: Sleeping}]",
     "inventory.yaml:2:26: HV01.vms[0].state: 'Sleeping' is not one of running, off, saved, "
     "paused"),
    ("HV01:\n  vms: [{name: a, compatibilityForMigration: 'no'}]",
     "inventory.yaml:2:46: HV01.vms[0].compatibilityForMigration: expected true or false"),
    ("HV01:\n  vms: [{name: a}, {name: A}]", "inventory.yaml:2:20: HV01.vms: VM 'A' is listed "
     "twice"),
    ("HV01:\n  switches: [{type: External}]",
     "inventory.yaml:2:14: HV01.switches[0]: a switch needs a name"),
    ("HV01:\n  processor: {name: x}",
     "inventory.yaml:2:14: HV01.processor: a processor needs a manufacturer"),
    ("HV01:\n  switches: External", "inventory.yaml:2:13: HV01.switches: expected a list"),
    ("HV01: {}\nhv01: {}", "inventory.yaml:2:1: hv01: this host is given twice"),
    ("HV01: [", "inventory.yaml:1:8: not YAML"),
)


@pytest.mark.parametrize(("text", "message"), BAD, ids=[m.split(": ", 1)[1][:40] for _, m in BAD])
def test_mistakes_are_one_located_line(text: str, message: str) -> None:
    with pytest.raises(LabError) as caught:
        parse_inventory(text, "inventory.yaml")
    assert str(caught.value).startswith(message), str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_host_or_switch_the_lab_does_not_have_is_refused_with_its_place(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text("HV01: {}\nHV09: {}\n")
    with pytest.raises(LabError, match=r"inventory.yaml:2:1: HV09: no such lab host "
                                       r"\(lab hosts: HV01, HV02\)"):
        LabOptions(hosts=2, inventory=load_inventory(path)).configs()
    path.write_text("HV01:\n  vms: [{name: a, adapters: [Missing]}]\n")
    with pytest.raises(LabError, match="HV01: VM 'a': switch 'Missing' is not one of the host's "
                                       r"switches \(LabSwitch\)"):
        LabOptions(hosts=2, inventory=load_inventory(path)).configs()


# --- the simulated cmdlets -------------------------------------------------------------------


def host_with_vms(base: LabHostConfig) -> HyperVHost:
    return HyperVHost(dataclasses.replace(base, vms=(
        LabVM("web01", adapters=(LabAdapter("LabSwitch"), LabAdapter(None, "Second"))),
        LabVM("db01", compatibility_for_migration=True),
    )))


def test_adapters_of_every_vm_with_a_wildcard_and_nothing_for_a_host_without_vms() -> None:
    result = run(host_with_vms(server_2022("HV01")), "Get-VMNetworkAdapter", VMName="*")
    assert [(props(o)["VMName"], props(o)["SwitchName"], props(o)["SwitchId"] is None)
            for o in result.output] == [("web01", "LabSwitch", False), ("web01", None, True)]
    empty = run(HyperVHost(server_2022("HV02")), "Get-VMNetworkAdapter", VMName="*")
    assert (empty.output, empty.errors, empty.terminating) == ([], [], None)
    processors = run(HyperVHost(server_2022("HV02")), "Get-VMProcessor", VMName="*")
    assert (processors.output, processors.errors, processors.terminating) == ([], [], None)


def test_a_literal_vm_name_that_matches_nothing_is_a_non_terminating_error() -> None:
    result = run(host_with_vms(server_2022("HV01")), "Get-VMProcessor", VMName=["db01", "nope"])
    assert [props(o)["VMName"] for o in result.output] == ["db01"]
    assert [e.error_id for e in result.errors] == [
        "ObjectNotFound,Microsoft.HyperV.PowerShell.Commands.GetVMProcessor"]
    assert result.terminating is None


def test_parameter_sets_exclude_each_other() -> None:
    host = host_with_vms(server_2022("HV01"))
    missing = run(host, "Get-VMNetworkAdapter")
    both = host.invoke([Invocation("Get-VMNetworkAdapter", (("VMName", "*"), ("All", None)))])
    assert missing.terminating is not None and "missing mandatory parameters: VMName" in \
        missing.terminating.message
    assert both.terminating is not None and \
        both.terminating.error_id.startswith("AmbiguousParameterSet,")
    everything = run(host, "Get-VMNetworkAdapter", All=None)
    assert [props(o)["IsManagementOs"] for o in everything.output] == [True, False, False]


def test_compatibility_mode_only_on_2025_and_processors_per_socket() -> None:
    old = run(host_with_vms(server_2022("HV01")), "Get-VMProcessor", VMName="db01").output[0]
    new = run(host_with_vms(server_2025("HV02")), "Get-VMProcessor", VMName="db01").output[0]
    assert "CompatibilityForMigrationMode" not in props(old)
    assert str(props(new)["CompatibilityForMigrationMode"]) == "MinimumFeatureSet"
    assert props(old)["CompatibilityForMigrationEnabled"] is True
    cpus = run(HyperVHost(server_2022("HV01")), "Get-CimInstance", ClassName="Win32_Processor")
    assert [(props(o)["DeviceID"], props(o)["Manufacturer"]) for o in cpus.output] == [
        ("CPU0", "GenuineIntel"), ("CPU1", "GenuineIntel")]


def test_get_vmswitch_by_name_and_a_name_that_matches_nothing() -> None:
    host = HyperVHost(server_2022("HV01"))
    assert [props(o)["Name"] for o in run(host, "Get-VMSwitch", Name="labswitch").output] == [
        "LabSwitch"]
    nope = run(host, "Get-VMSwitch", Name="Nope")
    assert [e.error_id for e in nope.errors] == [
        "InvalidParameter,Microsoft.HyperV.PowerShell.Commands.GetVMSwitch"]
    assert str(props(run(host, "Get-VMSwitch").output[0])["SwitchType"]) == "External"
