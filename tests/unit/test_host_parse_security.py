"""Issue 14's host facts from recorded CLIXML: Win32_DeviceGuard (Credential Guard) and the
migration firewall rule, parsed by hvlm.hosts.parse through hvlm's own CLIXML reader
(hvlm.hosts.clixml.deserialize, error records wrapped in clixml.Record, as hvlm.hosts.transport
does; no network, no other deserialiser).

Fixtures: fixtures/hosts/security_read.xml (objects) and security_errors.xml (error records), shaped
like PowerShell 5.1 remoting output of the real classes (hvlm_lab/FIDELITY.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hvlm.hosts.clixml import Record, as_obj, deserialize
from hvlm.hosts.parse import Kind, classify, parse_firewall_rule, parse_host_state
from hvlm.state import MIGRATION_FIREWALL_RULE, DeviceGuard, FirewallRule
from tests.unit.psrp_wire import objs

FIXTURES = Path(__file__).parent / "fixtures" / "hosts"


def _objects(name: str) -> list[Any]:
    return [deserialize(data, "an output object") for data in objs(FIXTURES / name)]


def _errors() -> list[Any]:
    return [Record(as_obj(deserialize(data, "an error record")))
            for data in objs(FIXTURES / "security_errors.xml")]


def _obj(xml: str) -> Any:
    return deserialize(xml.encode(), "an output object")


def _read(objects: list[Any], errors: list[Any] = ()) -> Any:  # type: ignore[assignment]
    return parse_host_state("HV01", _objects("hv01_read.xml") + objects, errors)


def test_objects_are_classified_by_their_cim_class() -> None:
    guard, rule = _objects("security_read.xml")
    assert classify(guard) is Kind.DEVICE_GUARD
    assert classify(rule) is Kind.FIREWALL_RULE


def test_device_guard_arrays_and_the_rule_are_host_facts() -> None:
    facts = _read(_objects("security_read.xml")).facts
    assert facts.device_guard == DeviceGuard(configured=(1, 2), running=(1,))
    assert facts.device_guard.credential_guard_running
    assert facts.migration_firewall == FirewallRule(
        MIGRATION_FIREWALL_RULE, exists=True, enabled=False, display_name="Hyper-V (MIG-TCP-In)")


def test_not_read_means_unknown() -> None:
    facts = _read([]).facts
    assert facts.device_guard is None and facts.migration_firewall is None


def test_missing_rule_is_a_fact_not_a_read_warning() -> None:
    state = _read([], [_errors()[0]])
    assert state.facts.migration_firewall == FirewallRule(MIGRATION_FIREWALL_RULE, exists=False)
    assert state.read_warnings == ()


def test_device_guard_namespace_missing_is_a_reason_not_a_read_warning() -> None:
    state = _read([], [_errors()[1]])
    assert state.facts.device_guard is None
    assert state.facts.device_guard_error.strip() == "Invalid namespace"
    assert state.read_warnings == ()


def test_other_firewall_errors_stay_read_warnings() -> None:
    state = _read([], [_errors()[2]])
    assert state.facts.migration_firewall is None
    assert state.read_warnings == ("Get-NetFirewallRule: Access is denied.",)


def test_a_terminating_not_found_is_still_a_failure_of_the_read() -> None:
    state = parse_host_state("HV01", _objects("hv01_read.xml"), [_errors()[0]], failed=True)
    assert state.facts.migration_firewall is None
    assert "the read stopped there" in state.read_warnings[0]


def _rule(enabled_xml: str) -> Any:
    return _obj(
        '<Obj RefId="0"><TN RefId="0"><T>Deserialized.Microsoft.Management.Infrastructure.'
        "CimInstance#root/standardcimv2/MSFT_NetFirewallRule</T>"
        "<T>Deserialized.System.Object</T></TN><Props>"
        f'<S N="Name">{MIGRATION_FIREWALL_RULE}</S>{enabled_xml}</Props></Obj>')


@pytest.mark.parametrize(("enabled_xml", "expected"), [
    ('<Obj N="Enabled" RefId="1"><TN RefId="1"><T>Deserialized.Microsoft.PowerShell.'
     "Cmdletization.GeneratedTypes.NetSecurity.Enabled</T><T>Deserialized.System.Enum</T>"
     "<T>Deserialized.System.Object</T></TN>"
     "<ToString>True</ToString><I32>1</I32></Obj>", True),
    ('<Obj N="Enabled" RefId="1"><TN RefId="1"><T>System.Enum</T><T>System.Object</T></TN>'
     "<I32>2</I32></Obj>", False),
    ('<U16 N="Enabled">1</U16>', True),  # the raw uint16 of the MOF
    ('<U16 N="Enabled">2</U16>', False),
    ('<S N="Enabled">True</S>', True),
    ('<B N="Enabled">false</B>', False),
])
def test_enabled_is_read_by_name_or_by_its_integer(enabled_xml: str, expected: bool) -> None:
    assert parse_firewall_rule(_rule(enabled_xml)).enabled is expected


def test_an_unknown_enabled_value_is_a_read_warning() -> None:
    state = _read([_rule('<U16 N="Enabled">7</U16>')])
    assert state.facts.migration_firewall is None
    assert "Enabled" in state.read_warnings[0]


def test_empty_arrays_and_nil_are_no_service() -> None:
    guard = _obj(
        '<Obj RefId="0"><TN RefId="0"><T>Deserialized.Microsoft.Management.Infrastructure.'
        "CimInstance#root/Microsoft/Windows/DeviceGuard/Win32_DeviceGuard</T>"
        "<T>Deserialized.System.Object</T></TN><Props>"
        '<Obj N="SecurityServicesConfigured" RefId="1"><TN RefId="1"><T>System.UInt32[]</T>'
        '</TN><LST /></Obj><Nil N="SecurityServicesRunning" /></Props></Obj>')
    facts = _read([guard]).facts
    assert facts.device_guard == DeviceGuard((), ())
    assert not facts.device_guard.credential_guard_configured
