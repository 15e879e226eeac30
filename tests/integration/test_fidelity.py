"""Issue 11's acceptance on the lab: hosts as Hyper-V Manager leaves them.

- A network added without -Priority (the GUI path of the source document) reads back with a null
  Priority through a plain pypsrp client, and hvlm still reads, plans and checks that host.
- A manifest without `protocolTransition` plans "use any authentication protocol" on.
- Listing networks means "these networks only": an out-of-band UseAnyNetworkForMigration $true is
  switched back off, apply converges, and the next plan is empty.

The CLI runs against simulated hosts (real WSMan/PSRP) and the session's Samba DC.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pypsrp.powershell import PowerShell, RunspacePool
from pypsrp.wsman import WSMan

from hvlm_lab.samba.dc import SambaDC
from tests.integration.helpers import (
    FRESH,
    WANTED,
    WINRM_PASSWORD,
    WINRM_USER,
    LabFleet,
    lab_fleet,
)

pytestmark = [pytest.mark.lab, pytest.mark.samba]
NAMES = ("FI01", "FI02")
TRANSITION = 0x01000000


@pytest.fixture(scope="module")
def fidelity_lab(lab_dc: SambaDC, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabFleet]:
    with lab_fleet(lab_dc, tmp_path_factory.mktemp("fidelity"), NAMES) as fleet:
        yield fleet


@pytest.fixture
def fleet(fidelity_lab: LabFleet) -> LabFleet:
    fidelity_lab.reset({name: FRESH for name in NAMES})
    fidelity_lab.write_manifest()
    return fidelity_lab


def pypsrp_client(fleet: LabFleet, name: str) -> WSMan:
    endpoint = fleet.server.endpoint(name)
    return WSMan(
        endpoint.host, port=endpoint.port, ssl=True, auth="basic", username=WINRM_USER,
        password=WINRM_PASSWORD,
        cert_validation=str(fleet.server.ca_path),  # type: ignore[arg-type]  # a CA path
    )


def run_cmdlet(fleet: LabFleet, name: str, cmdlet: str, **params: Any) -> list[Any]:
    """A plain pypsrp client: one cmdlet with named parameters, its output objects."""
    with RunspacePool(pypsrp_client(fleet, name)) as pool:
        ps = PowerShell(pool)
        ps.add_cmdlet(cmdlet)
        for key, value in params.items():
            ps.add_parameter(key, value)
        output = ps.invoke()
        assert not ps.had_errors and not ps.streams.error, [str(e) for e in ps.streams.error]
        return list(output)


def codes(result_json: str) -> set[str]:
    return {f["code"] for f in json.loads(result_json)["findings"]}


def test_a_network_added_without_priority_reads_as_none_and_hvlm_reads_the_host(
    fleet: LabFleet,
) -> None:
    run_cmdlet(fleet, "FI01", "Add-VMMigrationNetwork", Subnet="10.99.0.0/24")
    (network,) = run_cmdlet(fleet, "FI01", "Get-VMMigrationNetwork")
    assert network.adapted_properties["Subnet"] == "10.99.0.0/24"
    assert network.adapted_properties["Priority"] is None

    plan = fleet.hvlm("plan", str(fleet.manifest), "--format", "json")
    assert plan.code == 0, plan
    document = json.loads(plan.stdout)
    assert "host-unread" not in {f["code"] for f in document["findings"]}
    assert document["unread_hosts"] == []
    removed = [c for c in document["changes"] if c["address"] == "host/FI01/network/10.99.0.0/24"]
    assert [(c["action"], c["before"]) for c in removed] == [
        ("delete", {"subnet": "10.99.0.0/24", "priority": None})]
    human = fleet.hvlm("plan", str(fleet.manifest), "--full")
    assert "priority: unset (Hyper-V chooses)" in human.stdout, human
    assert "FI01: incoming network 10.99.0.0/24 removed (priority unset;" in human.stdout, human

    check = fleet.hvlm("check", str(fleet.manifest), "--format", "json")
    assert "host-unread" not in codes(check.stdout), check
    assert "Traceback" not in check.output


def test_an_unset_priority_is_left_alone_when_the_manifest_writes_none(
    fleet: LabFleet, tmp_path: Path,
) -> None:
    """Export of a host whose network has no priority plans to zero changes."""
    assert fleet.apply().code == 0
    run_cmdlet(fleet, "FI02", "Add-VMMigrationNetwork", Subnet="10.98.0.0/24")
    exported = fleet.hvlm("export", str(fleet.manifest))
    assert exported.code == 0, exported
    assert "subnet: 10.98.0.0/24\n" in exported.stdout and "Traceback" not in exported.output
    path = tmp_path / "exported.yaml"
    path.write_text(exported.stdout, encoding="utf-8")
    again = fleet.hvlm("plan", str(path), "--detailed-exitcode")
    assert again.code == 0, again
    assert "No changes" in again.stdout


def test_protocol_transition_is_planned_when_the_manifest_does_not_write_it(
    fleet: LabFleet,
) -> None:
    text = fleet.manifest.read_text(encoding="utf-8")
    fleet.manifest.write_text(
        text.replace("{services: [migration, cifs], protocolTransition: true}",
                     "{services: [migration, cifs]}"), encoding="utf-8")
    assert "protocolTransition" not in fleet.manifest.read_text(encoding="utf-8")
    plan = fleet.hvlm("plan", str(fleet.manifest), "--format", "json")
    assert plan.code == 0, plan
    turned_on = {c["address"]: c["after"] for c in json.loads(plan.stdout)["changes"]
                 if c["address"].endswith("/protocolTransition")}
    assert set(turned_on) == {f"directory/{n}/protocolTransition" for n in NAMES}
    assert all(after["protocolTransition"] is True for after in turned_on.values())
    assert fleet.apply().code == 0
    assert all(fleet.account(n).uac & TRANSITION for n in NAMES)


def test_declared_networks_switch_use_any_network_off_and_converge(fleet: LabFleet) -> None:
    assert fleet.apply().code == 0 and fleet.state("FI01") == WANTED
    run_cmdlet(fleet, "FI01", "Set-VMHost", UseAnyNetworkForMigration=True)
    assert fleet.state("FI01").use_any_network
    assert fleet.state("FI01").networks == WANTED.networks  # the listed networks stay

    plan = fleet.hvlm("plan", str(fleet.manifest), "--format", "json")
    changes = json.loads(plan.stdout)["changes"]
    assert [(c["address"], c["before"], c["after"]) for c in changes] == [
        ("host/FI01/migration", {"useAnyNetwork": True}, {"useAnyNetwork": False})]
    fleet.server.reset_stats()
    applied = fleet.apply()
    assert applied.code == 0, applied
    assert fleet.writes("FI01") == ["Set-VMHost"]
    assert fleet.state("FI01") == WANTED and not fleet.state("FI01").use_any_network
    final = fleet.plan()
    assert final.code == 0, final
