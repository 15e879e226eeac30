"""`hvlm show PLANFILE`: a saved plan printed again, contacting nothing, with the same renderers
as `hvlm plan` (byte for byte), `--format json` being the file itself; a bad file is one line.

The lab test (tests/integration/test_gitops_flow.py) compares against a real `hvlm plan` run;
these run `python -m hvlm` on files written here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hvlm.plan import Action, Change, ManifestRef, Phase, Plan, dumps_plan
from hvlm.render import render
from tests.unit.test_plan_format import full_plan

ROOT = Path(__file__).resolve().parents[2]


def show(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hvlm", "show", *args], cwd=ROOT,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120,
                          check=False)


@pytest.fixture
def planfile(tmp_path: Path) -> Path:
    path = tmp_path / "plan.json"
    path.write_text(render(full_plan(), "json"), encoding="utf-8")  # what `plan --out` writes
    return path


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--format", "markdown"), render(full_plan(), "markdown")),
        (("--format", "markdown", "--full"), render(full_plan(), "markdown", full=True)),
        (("--format", "markdown", "--markdown-budget", "2000"),
         render(full_plan(), "markdown", budget=2000)),
        ((), render(full_plan(), "human")),  # not a TTY: no colour
        (("--color",), render(full_plan(), "human", color=True)),
        (("--full", "--no-color"), render(full_plan(), "human", full=True)),
    ],
)
def test_show_prints_what_plan_printed(planfile: Path, args: tuple[str, ...],
                                       expected: str) -> None:
    proc = show(str(planfile), *args)
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout == expected


def test_show_json_is_the_plan_file_itself(planfile: Path) -> None:
    proc = show(str(planfile), "--format", "json")
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout == planfile.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "error: {path}: cannot read: No such file or directory"),
        ("{", "error: {path}: plan file is not JSON: Expecting property name enclosed in double quotes: "
              "line 1 column 2 (char 1)"),
        (json.dumps({"format_version": 1, "changes": []}),
         "error: plan file {path} was made by an older hvlm (format 1): run hvlm plan again"),
        ("apiVersion: hvlm/v1\n", "error: {path}: plan file is not JSON: Expecting value: "
                                  "line 1 column 1 (char 0)"),
        (dumps_plan(full_plan()).replace('"kept":[["cifs/",["HV02"],""]]', '"kept":"cifs/HV02"',
                                         1),
         "error: {path}: plan file: changes[0].kept: expected a list of [prefix, [values], suffix]"),
    ],
)
def test_a_bad_plan_file_is_one_line_and_exit_1(tmp_path: Path, content: str | None,
                                                message: str) -> None:
    path = tmp_path / "plan.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    proc = show(str(path))
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [message.format(path=path)]


def test_apply_refuses_a_format_1_plan_in_one_line(tmp_path: Path) -> None:
    """A plan saved by an older hvlm (format 1) is refused before anything is read or changed."""
    path = tmp_path / "plan.json"
    path.write_text(json.dumps({"format_version": 1, "manifest": {"source": "m.yaml"},
                                "changes": [{"address": "host/HV01/migration", "add": []}]}),
                    encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "hvlm", "apply", str(path)], cwd=ROOT,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120,
                          check=False)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"error: plan file {path} was made by an older hvlm (format 1): run hvlm plan again"]


@pytest.mark.parametrize("reason", ["x", "x" * 17_000_000])  # a 10,000-host plan is ~22 MB
def test_apply_reads_a_plan_file_of_any_size_as_a_plan(tmp_path: Path, reason: str) -> None:
    """`hvlm apply FILE` tells a saved plan from a manifest by reading it whole: here it goes on
    to the plan's manifest (missing), instead of reading the plan as a manifest."""
    manifest = tmp_path / "gone" / "fleet.yaml"
    plan = Plan(ManifestRef("m", str(manifest), "0" * 64), (
        Change("host/HV01/tickets", Phase.TICKETS, Action.UPDATE, "HV01", reason),))
    path = tmp_path / "plan.json"
    path.write_text(dumps_plan(plan), encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "hvlm", "apply", str(path)], cwd=ROOT,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120,
                          check=False)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [f"{manifest}: cannot read: No such file or directory"]


def test_show_json_prints_the_file_as_it_is_once_it_reads_as_a_plan(tmp_path: Path) -> None:
    """A plan file indented by `jq .` (or written by another build) is shown as it is: `--format
    json` is the file, not this hvlm's serialisation of what it read."""
    path = tmp_path / "indented.json"
    path.write_text(json.dumps(json.loads(render(full_plan(), "json")), indent=2) + "\n",
                    encoding="utf-8")
    proc = show(str(path), "--format", "json")
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout == path.read_text(encoding="utf-8")
