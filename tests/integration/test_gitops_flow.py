"""Issue 17's lab acceptance: the reviewed plan is the applied plan, run as the GitOps example runs it.

The plan job and the apply job are the REAL scripts of examples/gitops/.github/workflows/hvlm.yaml (their
`run:` blocks, in bash), each in its own "checkout" (a directory holding fleet/prod-east.yaml, as
on a runner); the plan job's artifact (plan.json) is carried to the apply job's `reviewed/`, as
actions/download-artifact does. Against the lab (simulated Hyper-V hosts, the session's Samba DC):
- an out-of-band change between plan and apply (a host, or a computer account) makes the apply
  job fail with hvlm's "stale plan" and the next step ("re-run the plan job"), and nothing changes:
  host state, the hosts' write cmdlets (none) and every account's uSNChanged;
- without one, the apply job applies exactly the plan's changes, and the fleet then plans clean.
Issue 20's: a saved plan that switches a host to Kerberos while its delegation is already in place
depends on that delegation: one value deleted out of band makes `hvlm apply PLANFILE` refuse it
(stale, naming directory/HOST) and the host keeps CredSSP; `hvlm show plan.json --format
markdown` prints the bytes `hvlm plan --format markdown --out plan.json` printed.

Run inside a private network namespace (Samba's ports are fixed):
    tests/isolated.sh .venv/bin/python -m pytest -q -p no:cacheprovider tests/integration/test_gitops_flow.py
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import ldap3
import pytest
import yaml

from hvlm_lab.hyperv.config import AuthenticationType
from hvlm_lab.samba.dc import UAC_PROTOCOL_TRANSITION, SambaDC
from tests.integration.helpers import (
    ENABLED_OLD,
    FRESH,
    MIGRATION,
    REPO,
    UNRELATED,
    WANTED,
    CliResult,
    LabFleet,
    lab_fleet,
    values_toward,
)

pytestmark = [pytest.mark.lab, pytest.mark.samba]
NAMES = ("GO01", "GO02")
START = {"GO01": FRESH, "GO02": ENABLED_OLD}
MANIFEST = "fleet/prod-east.yaml"  # the examples' manifest path, relative to the checkout
PR_NUMBER = "17"


def example_step(job: str, name_starts: str) -> str:
    workflow = yaml.safe_load((REPO / "examples/gitops/.github/workflows/hvlm.yaml").read_text())
    (step,) = [s for s in workflow["jobs"][job]["steps"] if s["name"].startswith(name_starts)]
    return str(step["run"])


PLAN_STEP = example_step("plan", "Plan (saved to plan.json")
APPLY_STEP = example_step("apply", "Apply the reviewed plan")


@pytest.fixture(scope="module")
def gitops_lab(lab_dc: SambaDC, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabFleet]:
    with lab_fleet(lab_dc, tmp_path_factory.mktemp("gitops"), NAMES) as fleet:
        yield fleet


@pytest.fixture
def fleet(gitops_lab: LabFleet) -> LabFleet:
    gitops_lab.reset(START)
    gitops_lab.write_manifest()
    return gitops_lab


def checkout(fleet: LabFleet, where: Path) -> Path:
    """A runner's checkout of the repository: the manifest at the examples' relative path."""
    (where / "fleet").mkdir(parents=True)
    shutil.copyfile(fleet.manifest, where / MANIFEST)
    return where


def run_step(fleet: LabFleet, script: str, cwd: Path, **env: str) -> CliResult:
    """One `run:` block as the runner runs it (`shell: bash` = bash -e {0}), hvlm on PATH."""
    environment = dict(fleet.env(), HVLM_MANIFEST=MANIFEST, **env)
    environment["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), environment["PATH"]])
    proc = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script], cwd=cwd,
        env=environment, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=180, check=False,
    )  # fmt: skip
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def plan_job_then_artifact(fleet: LabFleet, tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """The pull-request job; returns the apply job's checkout holding the downloaded artifact."""
    pr = checkout(fleet, tmp_path / "pr-checkout")
    planned = run_step(fleet, PLAN_STEP, pr)
    assert planned.code == 0, planned  # exit 2 of hvlm plan (changes) is a successful job
    assert "changes to review" in planned.stdout, planned
    assert (pr / "plan.md").read_text().strip()  # the Markdown of the PR comment
    main = checkout(fleet, tmp_path / "main-checkout")
    (main / "reviewed").mkdir()
    shutil.copyfile(pr / "plan.json", main / "reviewed" / "plan.json")
    document = json.loads((pr / "plan.json").read_text())
    assert document["manifest"]["source"] == MANIFEST  # relative: found again in any checkout
    assert document["changes"], "the lab's fresh fleet has changes"
    return main, document


@pytest.mark.parametrize("change", ["host", "directory"])
def test_an_out_of_band_change_makes_the_apply_job_fail_stale_and_change_nothing(
    fleet: LabFleet, tmp_path: Path, change: str
) -> None:
    main, _ = plan_job_then_artifact(fleet, tmp_path)
    if change == "host":
        fleet.hosts["GO02"].set_state(replace(fleet.state("GO02"), max_vm_migrations=7))
    else:  # someone adds, by hand, a value of an account that the plan changes
        fleet.dc.seed_delegation("GO01", ["cifs/go02.lab.example"])
    states, accounts = fleet.states(), fleet.accounts()  # after the change, with uSNChanged
    fleet.server.reset_stats()

    job = run_step(fleet, APPLY_STEP, main, PR_NUMBER=PR_NUMBER)

    assert job.code == 1, job
    assert "stale plan" in job.stderr, job  # hvlm's message, shown by the job
    assert "changed since it was planned" in job.stderr and "run hvlm plan again" in job.stderr
    assert (
        f"::error::The reviewed plan is stale and nothing was changed. Next step: re-run the plan "
        f"job of pull request #{PR_NUMBER}"
    ) in job.stdout, job
    assert "Traceback" not in job.output
    assert fleet.writes() == []  # no write cmdlet reached any host
    assert fleet.states() == states
    assert fleet.accounts() == accounts  # values, userAccountControl and uSNChanged unchanged


def test_without_a_change_the_apply_job_applies_exactly_the_reviewed_plan(
    fleet: LabFleet, tmp_path: Path
) -> None:
    main, document = plan_job_then_artifact(fleet, tmp_path)
    planned = sorted(str(c["address"]) for c in document["changes"])

    job = run_step(fleet, APPLY_STEP, main, PR_NUMBER=PR_NUMBER)

    assert job.code == 0, job
    assert "stale" not in job.output
    outcomes = [line.split() for line in job.stdout.splitlines() if line.strip()]
    applied = sorted(words[1] for words in outcomes if words and words[0] == "applied")
    assert applied == planned, job.stdout
    assert not [w for w in outcomes if w and w[0] in ("failed", "skipped")], job.stdout
    assert fleet.converged()
    again = fleet.plan()  # the pipeline never re-plans; the test does, to prove convergence
    assert again.code == 0, again


def test_show_prints_the_markdown_plan_printed_byte_for_byte(
    fleet: LabFleet, tmp_path: Path
) -> None:
    """The PR comment again from the artifact alone: `hvlm show` contacts nothing."""
    saved = tmp_path / "plan.json"
    planned = fleet.hvlm("plan", str(fleet.manifest), "--format", "markdown", "--out", str(saved))
    assert planned.code == 0, planned
    assert "Plan: " in planned.stdout, planned  # the lab's fresh fleet has changes
    fleet.server.reset_stats()
    shown = fleet.hvlm("show", str(saved), "--format", "markdown")
    assert (shown.code, shown.stderr) == (0, ""), shown
    assert shown.stdout.encode() == planned.stdout.encode()
    as_json = fleet.hvlm("show", str(saved), "--format", "json")
    assert as_json.stdout.encode() == saved.read_bytes()
    assert all(fleet.server.stats(n)["wsman_requests"] == 0 for n in NAMES)


def test_a_kerberos_switch_is_stale_once_its_delegation_in_place_loses_a_value(
    fleet: LabFleet, tmp_path: Path
) -> None:
    """The plan changes no account (the delegation is there), only switches GO01 and GO02 to
    Kerberos: it still depends on GO01's delegation, which loses a value before apply."""
    credssp = replace(WANTED, authentication=AuthenticationType.CredSSP)
    fleet.reset({name: credssp for name in NAMES})
    for name, peer in (("GO01", "GO02"), ("GO02", "GO01")):
        fleet.dc.seed_delegation(name, sorted(values_toward(peer)), uac_set=UAC_PROTOCOL_TRANSITION)
    saved = tmp_path / "plan.json"
    planned = fleet.hvlm("plan", str(fleet.manifest), "--format", "json", "--out", str(saved))
    assert planned.code == 0, planned
    document = json.loads(saved.read_text())
    assert [c["address"] for c in document["changes"]] == ["host/GO01/migration",
                                                           "host/GO02/migration"]
    gone = f"{MIGRATION}/go02.lab.example"
    with fleet.dc.admin_connection() as conn:  # out of band, as someone in ADUC would
        conn.modify(fleet.dc.computer_dn("GO01"),
                    {"msDS-AllowedToDelegateTo": [(ldap3.MODIFY_DELETE, [gone])]})
        assert conn.result["result"] == 0, conn.result
    assert fleet.account("GO01").values == {*values_toward("GO02"), UNRELATED} - {gone}
    fleet.server.reset_stats()

    applied = fleet.hvlm("apply", str(saved))

    assert applied.code == 1, applied
    assert applied.stderr.splitlines()[-1] == (
        f"error: {saved}: stale plan: directory/GO01 changed since it was planned; nothing was "
        "changed; run hvlm plan again"), applied
    assert fleet.writes() == []
    assert {n: fleet.state(n).authentication for n in NAMES} == {
        n: AuthenticationType.CredSSP for n in NAMES}
    assert {"directory/GO01", "directory/GO02"} <= set(document["targets"])
