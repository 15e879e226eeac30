"""SARIF 2.1.0 output (`hvlm check/validate --format sarif`): valid against the SARIF 2.1.0 JSON
Schema (tests/data, from Microsoft's @microsoft/jest-sarif), one rule per finding code, and every
result on the manifest line of the host, group or setting it is about."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from hvlm.errors import Diagnostic, Severity
from hvlm.findings import CATALOGUE, NOT_DOMAIN_JOINED, Finding
from hvlm.sarif import ManifestLocator, sarif_log
from hvlm.yamlsafe import load_yaml

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "tests" / "data" / "sarif-2.1.0-rtm.5.json").read_text())
MANIFEST = """\
apiVersion: hvlm/v1
kind: LiveMigrationConfig
metadata: {name: t}
directory:
  domain: lab.example
  servers: ["ldaps://dc1.lab.example"]
hosts:
  - name: HV01
  - name: HV-02
    fqdn: hv-02.lab.example
  - {name: HV03}
groups:
  - name: rack-a
    hosts: [HV01, HV-02]
"""


def valid(document: dict[str, Any]) -> None:
    jsonschema.Draft4Validator(SCHEMA).validate(document)


def locator(text: str = MANIFEST, file: str = "fleet.yaml") -> ManifestLocator:
    loaded, problems = load_yaml(text.encode(), file)
    assert loaded is not None, problems
    return ManifestLocator(file, loaded.data, loaded.positions)


@pytest.mark.parametrize("subject, position", [
    ("host/HV01", (8, 11)),
    ("directory/HV-02", (9, 11)),  # a hyphen in the name
    ("host/hv03", (11, 12)),  # case-insensitive, flow mapping
    ("HV01->HV-02", (13, 11)),  # a pair: on the group holding both
    ("HV01<->HV03", (8, 11)),  # no group holds both: on the first host
    ("directory", (5, 3)),
    ("host/HV99", (5, 3)),  # not declared: the directory section, not a crash
    ("fleet.yaml:3: metadata", (1, 1)),
])
def test_subjects_are_located_on_their_declaration(subject: str, position: tuple[int, int]) -> None:
    assert locator().locate(subject) == position


def test_a_check_log_validates_and_points_at_the_host() -> None:
    findings = [
        NOT_DOMAIN_JOINED.make("host/HV-02", name="HV-02", joined=False, domain="WORKGROUP"),
        Finding(Severity.WARNING, "HV01->HV-02", "delegation-missing", "HV01 cannot delegate",
                fix="hvlm apply", evidence="msDS-AllowedToDelegateTo: none"),
    ]
    log = sarif_log(findings, locator(), version="9.9.9")
    valid(log)
    run = log["runs"][0]
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == [
        "not-domain-joined", "delegation-missing"]
    assert run["tool"]["driver"]["rules"][0]["defaultConfiguration"]["level"] == "error"
    first, second = run["results"]
    assert (first["ruleId"], first["level"], first["ruleIndex"]) == ("not-domain-joined", "error", 0)
    region = first["locations"][0]["physicalLocation"]
    assert region["artifactLocation"]["uri"] == "fleet.yaml"
    assert region["region"] == {"startLine": 9, "startColumn": 11}
    assert "join HV-02 to the domain" in first["message"]["text"]
    assert second["locations"][0]["physicalLocation"]["region"]["startLine"] == 13
    assert second["properties"]["evidence"] == "msDS-AllowedToDelegateTo: none"


def test_every_catalogue_code_makes_a_valid_rule() -> None:
    findings = [Finding(kind.severity, "host/HV01", code, "m") for code, kind in CATALOGUE.items()]
    log = sarif_log(findings, locator(), version="1")
    valid(log)
    rules = log["runs"][0]["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == list(CATALOGUE)
    assert all("{" not in r["shortDescription"]["text"] for r in rules)


def test_diagnostics_keep_their_own_location() -> None:
    diagnostic = Diagnostic(Severity.ERROR, "bad subnet", "fleet.yaml", 12, 7,
                            "hosts[0].migration.networks[0].subnet")
    log = sarif_log([], None, [diagnostic], version="1")
    valid(log)
    (result,) = log["runs"][0]["results"]
    assert result["ruleId"] == "manifest" and result["level"] == "error"
    assert result["locations"][0]["physicalLocation"]["region"] == {
        "startLine": 12, "startColumn": 7}


def test_validate_format_sarif_on_stdout_locates_the_refused_subnet(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(MANIFEST + "defaults:\n  migration:\n    networks: [{subnet: 169.254.0.0/16}]\n")
    proc = subprocess.run([sys.executable, "-m", "hvlm", "validate", "--format", "sarif", str(bad)],
                          capture_output=True, text=True, check=False, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr == ""
    log = json.loads(proc.stdout)
    valid(log)
    (result,) = log["runs"][0]["results"]
    assert "link-local (APIPA" in result["message"]["text"]
    location = result["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == "bad.yaml"  # relative to the working directory
    assert location["region"] == {"startLine": 17, "startColumn": 25}
