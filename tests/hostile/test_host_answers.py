"""Hostile host answers (issue 13, item 7): a host that answers garbage cannot hurt hvlm.

One of three lab hosts (HV02) answers its pipeline's Receive with a hostile answer
(hvlm_lab.wsman.faults.HOSTILE_ANSWERS): a 200 MB body, malformed XML, an entity-expansion DTD,
CLIXML with wrong types (a string for a UInt32, an unknown enum value, a missing property),
invalid UTF-8, or the real answer trickled one byte a second. For each, `python -m hvlm plan`
(a subprocess, so its time and peak RSS are its own) must:
- report HV02 unread with a one-line reason, within the configured timeouts (read 3 s);
- stay under 300 MB of RSS (ru_maxrss of the child, from os.wait4); for the 200 MB body, grow at
  most 64 MiB over a plan of the same lab without the fault (a client that read the whole body
  before refusing it would grow by the body's size);
- read and plan HV01 and HV03 normally: their changes in the plan, HV02 the only host-unread;
and `hvlm apply` must write nothing on HV02 (read fault) or stop at its verification (verify fault).
Run inside a private network namespace:
    tests/isolated.sh .venv/bin/python -m pytest tests/hostile/test_host_answers.py -q
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hvlm.plan import Address
from hvlm_lab.runner.process import LabProcess, start_process
from hvlm_lab.wsman.faults import HOSTILE_ANSWERS, FaultSpec

pytestmark = [pytest.mark.lab]
REPO = Path(__file__).resolve().parents[2]
BAD, GOOD = "HV02", ("HV01", "HV03")
READ_SECONDS = 3
# connect 2 s + one whole answer 3 s (+ Python start-up and the healthy hosts); never 200 s
TIME_BOUND = 15.0
RSS_BOUND_KB = 300 * 1024
HUGE_GROWTH_KB = 64 * 1024  # over the baseline: the cap is 4 MiB per answer, the body 200 MB
WRITES = ("Enable-VMMigration", "Add-VMMigrationNetwork", "Set-VMHost", "Remove-VMMigrationNetwork",
          "Set-VMMigrationNetwork", "Disable-VMMigration")
REASONS = {
    "huge-body": "an answer over",
    "malformed-xml": "malformed XML",
    "entity-expansion": "carries a DTD",
    "wrong-type": "not an integer: 'lots'",
    "unknown-enum": "Teleport",
    "missing-property": "MaximumStorageMigrations",
    "invalid-utf8": "not valid UTF-8",
    "trickle": f"not complete within {READ_SECONDS}s",
}


@dataclass(frozen=True)
class Run:
    code: int
    output: str
    seconds: float
    max_rss_kb: int


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[LabProcess]:
    proc = start_process(tmp_path / "lab", hosts=3, latency_ms=0, directory=False)
    try:
        text = proc.manifest_path.read_text()
        text = text.replace(
            "  auth: basic\n",
            "  auth: basic\n  retries: 0\n  timeouts:\n    connectSeconds: 2\n"
            f"    readSeconds: {READ_SECONDS}\n    operationSeconds: 2\n",
        )
        proc.manifest_path.write_text(text)
        yield proc
    finally:
        proc.stop()


def hvlm(proc: LabProcess, *args: str) -> Run:
    """`python -m hvlm ARGS` as a child; its wall time and peak RSS (os.wait4's rusage)."""
    env = {**os.environ, **proc.env, "NO_COLOR": "1"}
    started = time.monotonic()
    child = subprocess.Popen([sys.executable, "-m", "hvlm", *args], cwd=REPO, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert child.stdout is not None
    output = child.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - started
    assert "Traceback" not in output and "internal error" not in output, output
    return Run(child.returncode, output, seconds, usage.ru_maxrss)


def writes(proc: LabProcess, name: str) -> list[str]:
    cmdlets = proc.stats(name)["cmdlets"]
    return [c["command"] for c in cmdlets if c["command"] in WRITES and c["outcome"] != "skipped"]


def reason_line(run: Run) -> str:
    lines = [line for line in run.output.splitlines()
             if BAD in line and ("refused" in line or any(r in line for r in REASONS.values()))]
    assert lines, run.output
    return lines[0]


def planned_normally(plan: dict[str, Any], name: str) -> None:
    """The lab's fresh hosts all differ from its manifest: a host read and planned normally has
    its migration change and its network in the saved plan (the JSON contract, `hvlm schema
    --plan`), and no host-unread finding."""
    addresses = {c["address"] for c in plan["changes"] if Address.parse(c["address"]).host == name}
    assert f"host/{name}/migration" in addresses, plan["changes"]
    assert any(a.startswith(f"host/{name}/network/") for a in addresses), addresses


@pytest.mark.parametrize("kind", HOSTILE_ANSWERS)
def test_plan_reports_the_host_unread_within_bounds(lab: LabProcess, kind: str,
                                                     tmp_path: Path) -> None:
    saved = tmp_path / "plan.json"
    baseline = hvlm(lab, "plan", str(lab.manifest_path), "--no-color", "--out", str(saved))
    assert baseline.code == 0, baseline.output  # the same lab without the fault
    lab.set_fault(BAD, FaultSpec(hostile_answer=kind))
    run = hvlm(lab, "plan", str(lab.manifest_path), "--no-color", "--out", str(saved))
    growth = run.max_rss_kb - baseline.max_rss_kb
    print(f"{kind}: {run.seconds:.2f}s, {run.max_rss_kb / 1024:.0f} MB "
          f"({growth / 1024:+.0f} MB over {baseline.max_rss_kb / 1024:.0f} MB)")
    assert run.code == 1, run.output
    assert REASONS[kind] in reason_line(run)
    assert run.seconds < TIME_BOUND, run.seconds
    assert run.max_rss_kb < RSS_BOUND_KB, run.max_rss_kb
    if kind == "huge-body":
        assert growth <= HUGE_GROWTH_KB, (growth, baseline.max_rss_kb, run.max_rss_kb)
    plan = json.loads(saved.read_text(encoding="utf-8"))
    assert plan["unread_hosts"] == [BAD]
    assert [f["subject"] for f in plan["findings"] if f["code"] == "host-unread"] == [
        f"host/{BAD}"]
    for name in GOOD:
        planned_normally(plan, name)
        assert lab.stats(name)["action_counts"].get("Delete") == 2  # both plans closed the pool


@pytest.mark.parametrize("kind", ["entity-expansion", "wrong-type", "trickle", "huge-body"])
def test_apply_touches_nothing_on_the_hostile_host(lab: LabProcess, kind: str,
                                                   tmp_path: Path) -> None:
    lab.set_fault(BAD, FaultSpec(hostile_answer=kind))
    run = hvlm(lab, "apply", str(lab.manifest_path), "--auto-approve", "--no-color")
    assert run.code == 1, run.output
    assert REASONS[kind] in reason_line(run)
    assert writes(lab, BAD) == []
    for name in GOOD:
        assert "Set-VMHost" in writes(lab, name) or "Enable-VMMigration" in writes(lab, name)
    lab.set_fault(BAD, FaultSpec())
    saved = tmp_path / "again.json"
    again = hvlm(lab, "plan", str(lab.manifest_path), "--no-color", "--detailed-exitcode",
                 "--out", str(saved))
    assert again.code == 2, again.output  # HV02's changes are still to do, and only they are
    changes = json.loads(saved.read_text(encoding="utf-8"))["changes"]
    assert {Address.parse(c["address"]).host for c in changes} == {BAD}, changes
    assert f"host/{BAD}/migration" in {c["address"] for c in changes}


@pytest.mark.parametrize("kind", ["malformed-xml", "invalid-utf8", "unknown-enum"])
def test_a_hostile_verification_read_fails_the_host_and_nothing_else(lab: LabProcess,
                                                                     kind: str) -> None:
    lab.set_fault(BAD, FaultSpec(hostile_answer=kind, hostile_from_pipeline=3))
    run = hvlm(lab, "apply", str(lab.manifest_path), "--auto-approve", "--no-color")
    assert run.code == 1, run.output
    assert REASONS[kind] in reason_line(run)
    assert writes(lab, BAD)  # the write went through; only its verification was refused
    lab.set_fault(BAD, FaultSpec())
    again = hvlm(lab, "plan", str(lab.manifest_path), "--no-color", "--detailed-exitcode")
    assert again.code == 0, again.output  # every host, HV02 included, is converged
