"""Issue 22's acceptance: `hvlm lab up --inventory FILE`, then `hvlm apply` and `hvlm check`.

Each scenario starts a lab from a shell (`hvlm lab up --no-directory`: the VM rules need no
directory), converges it with `hvlm apply`, and asserts exactly the findings `hvlm check --format
json` reports, with the exit code; then the same lab's SARIF, and a plan in 5 WSMan requests per
host (`hvlm lab stats`). Everything crosses the real wire: pypsrp against the simulated hosts.

Run inside a private network namespace:
    tests/isolated.sh .venv/bin/python -m pytest tests/integration/test_vm_readiness.py -q
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from hvlm_lab.runner.files import read_env

pytestmark = [pytest.mark.lab]
HVLM = [sys.executable, "-m", "hvlm"]
GOLD = {"manufacturer": "GenuineIntel", "name": "Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz"}
SILVER = {"manufacturer": "GenuineIntel", "name": "Intel(R) Xeon(R) Silver 4314 CPU @ 2.40GHz"}
EPYC = {"manufacturer": "AuthenticAMD", "name": "AMD EPYC 7543 32-Core Processor"}
WEB01 = {"name": "web01", "version": "10.0", "state": "Running", "adapters": ["External"],
         "compatibilityForMigration": False}
DB01 = {"name": "db01", "adapters": ["Internal", None], "compatibilityForMigration": True}
# HV01's web01 is on a switch HV02 lacks, with compatibility off toward HV02's other Intel
# model; HV03 has AMD processors.
BROKEN = {
    "HV01": {"switches": ["External", "Internal"], "processor": GOLD, "vms": [WEB01, DB01]},
    "HV02": {"switches": ["Internal"], "processor": SILVER},
    "HV03": {"switches": ["External", "Internal"], "processor": EPYC},
}
FIXED = {
    "HV01": {"switches": ["External", "Internal"], "processor": GOLD,
             "vms": [{**WEB01, "compatibilityForMigration": True}, DB01]},
    "HV02": {"switches": ["External", "Internal"], "processor": SILVER},
    "HV03": {"switches": ["External", "Internal"], "processor": GOLD},
}


def hvlm(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HVLM, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


class LabRun:
    """A lab started by `hvlm lab up`, converged by `hvlm apply`."""

    def __init__(self, workdir: Path, inventory: dict[str, Any] | None) -> None:
        self.workdir = workdir
        args = ["lab", "up", "--dir", str(workdir), "--no-directory", "--hosts", "3"]
        if inventory is not None:
            path = workdir.parent / f"{workdir.name}-inventory.yaml"
            path.write_text(yaml.safe_dump(inventory))
            args += ["--inventory", str(path)]
        started = hvlm(*args)
        assert started.returncode == 0, started.stderr
        self.env = read_env(workdir)
        self.manifest = str(workdir / "manifest.yaml")
        applied = hvlm("apply", self.manifest, "--auto-approve", env=self.env)
        assert applied.returncode == 0, applied.stdout + applied.stderr

    def check(self, fmt: str = "json") -> tuple[int, Any]:
        result = hvlm("check", self.manifest, "--format", fmt, env=self.env)
        assert result.stderr == "" or "Traceback" not in result.stderr
        return result.returncode, json.loads(result.stdout)

    def stop(self) -> None:
        hvlm("lab", "down", "--dir", str(self.workdir))


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Any]:
    runs: list[LabRun] = []

    def run(inventory: dict[str, Any] | None) -> LabRun:
        lab = LabRun(tmp_path / f"lab{len(runs)}", inventory)
        runs.append(lab)
        return lab

    yield run
    for lab in runs:
        lab.stop()


def codes(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(f["code"], f["subject"]) for f in document["findings"]}


def test_without_an_inventory_check_is_clean(start: Any) -> None:
    code, document = start(None).check()
    assert (code, document["findings"]) == (0, [])


def test_switch_processor_vendor_and_model_then_fixed(start: Any) -> None:
    broken = start(BROKEN)
    code, document = broken.check()
    assert code == 1
    assert codes(document) == {
        ("vm-switch-missing", "HV01->HV02"),
        ("processor-compatibility-off", "HV01->HV02"),
        ("processor-vendor-mismatch", "HV01<->HV03"),
        ("processor-vendor-mismatch", "HV02<->HV03"),
    }
    by_code = {f["code"]: f for f in document["findings"]}
    switch = by_code["vm-switch-missing"]
    assert switch["severity"] == "error" and switch["vms"] == ["web01"]
    assert switch["message"] == ("web01 on HV01 cannot move to HV02: switch 'External' is "
                                 "missing on HV02")
    assert "Get-VMSwitch on HV02: 'Internal'" in switch["evidence"]
    compatibility = by_code["processor-compatibility-off"]
    assert compatibility["vms"] == ["web01"]  # db01 has compatibility on
    assert "Gold 6248" in compatibility["evidence"] and "Silver 4314" in compatibility["evidence"]
    assert "GenuineIntel" in by_code["processor-vendor-mismatch"]["evidence"]

    # SARIF: on the manifest's group that pairs the hosts, with the VMs
    code, sarif = broken.check("sarif")
    assert code == 1
    lines = Path(broken.manifest).read_text().splitlines()
    result = next(r for r in sarif["runs"][0]["results"] if r["ruleId"] == "vm-switch-missing")
    line = result["locations"][0]["physicalLocation"]["region"]["startLine"]
    assert "name:" in lines[line - 1] and lines[line - 2].strip() == "groups:", lines[line - 1]
    assert result["properties"]["vms"] == ["web01"]

    # still one read pipeline: 5 WSMan requests per host for a plan
    hvlm("lab", "stats", "--dir", str(broken.workdir), "--reset")
    planned = hvlm("plan", broken.manifest, env=broken.env)
    assert planned.returncode == 0, planned.stderr
    stats = json.loads(hvlm("lab", "stats", "--dir", str(broken.workdir)).stdout)
    assert {name: host["wsman_requests"] for name, host in stats["hosts"].items()} == {
        "HV01": 5, "HV02": 5, "HV03": 5}
    broken.stop()

    code, document = start(FIXED).check()
    assert (code, document["findings"]) == (0, [])


def test_names_differing_only_in_case_warn(start: Any) -> None:
    inventory = {"HV01": {"vms": [{"name": "app", "adapters": ["LabSwitch"]}]},
                 "HV02": {"switches": ["labswitch"]}}
    code, document = start(inventory).check()
    assert code == 0  # a warning: the migration's own matching is not documented
    assert [(f["code"], f["subject"], f["severity"], f["vms"]) for f in document["findings"]] == [
        ("vm-switch-case-differs", "HV01->HV02", "warning", ["app"])]
