"""Issue 17's acceptance on the lab: `hvlm check --format sarif` on a fleet with findings is a
valid SARIF 2.1.0 log whose results sit on the manifest lines of the hosts they are about."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest

from hvlm_lab.samba.dc import SambaDC
from tests.integration.helpers import FRESH, WANTED, LabFleet, lab_fleet

pytestmark = [pytest.mark.lab, pytest.mark.samba]
NAMES = ("SA01", "SA02")
ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "tests" / "data" / "sarif-2.1.0-rtm.5.json").read_text())


@pytest.fixture(scope="module")
def fleet(lab_dc: SambaDC, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabFleet]:
    with lab_fleet(lab_dc, tmp_path_factory.mktemp("sarif"), NAMES) as fleet:
        yield fleet


def host_line(manifest: Path, name: str) -> int:
    lines = manifest.read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, start=1) if f"name: {name}," in line)


def test_check_sarif_points_at_the_hosts_line(fleet: LabFleet) -> None:
    fleet.reset({"SA01": WANTED, "SA02": FRESH})  # SA02: migration off, no network
    result = fleet.hvlm("check", str(fleet.manifest), "--format", "sarif")
    assert result.code == 1, result  # an error finding
    assert "Traceback" not in result.output and result.stdout.startswith("{"), result
    log = json.loads(result.stdout)
    jsonschema.Draft4Validator(SCHEMA).validate(log)
    results = log["runs"][0]["results"]
    on_sa02 = [r for r in results if r["properties"]["subject"] in ("host/SA02", "directory/SA02")]
    assert "migration-disabled" in {r["ruleId"] for r in on_sa02}, \
        [r["message"]["text"] for r in on_sa02]
    expected_line = host_line(fleet.manifest, "SA02")
    for r in on_sa02:
        location = r["locations"][0]["physicalLocation"]
        assert Path(location["artifactLocation"]["uri"]).name == "manifest.yaml"
        assert location["region"]["startLine"] == expected_line, r
    rules = {rule["id"] for rule in log["runs"][0]["tool"]["driver"]["rules"]}
    assert {r["ruleId"] for r in results} == rules
