"""Plans at fleet size, rendered for people (issue 20): the Markdown fits one pull-request
comment and leaves detail out whole, with a note; the human summary of a uniform fleet is a
screenful; `--full` still lists every address. Plans come from the real planner (the summary
cases' builder, tests/unit/test_summary.py), not from hand-made changes."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from hvlm.errors import Severity
from hvlm.findings import AUTHENTICATION_MISMATCH, Finding
from hvlm.plan import Plan, loads_plan
from hvlm.render import MARKDOWN_BUDGET, render
from hvlm.summary import summarize
from tests.unit.test_render import assert_whole_tables
from tests.unit.test_summary import case_plan

PLAN_SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "schemas" / "plan.v2.schema.json")
                         .read_text(encoding="utf-8"))


def fleet_plan(hosts: int, rack: int = 16, odd: str = "") -> Plan:
    width = len(str(hosts))
    names = [f"HV{n:0{width}d}" for n in range(1, hosts + 1)]
    racks = [names[i:i + rack] for i in range(0, hosts, rack)]
    doc: dict[str, Any] = {
        "manifest": {
            "defaults": {"migration": {
                "enabled": True, "authentication": "Kerberos", "performance": "SMB",
                "networks": [{"subnet": "192.168.10.0/24", "priority": 0}]}},
            "hosts": f"{names[0]}..{names[-1]}",
            "groups": [{"name": f"rack-{i + 1:02d}", "hosts": f"{r[0]}..{r[-1]}"}
                       for i, r in enumerate(racks)],
        },
        "observed": {"hosts": {"*": {}}, "directory": {"*": {}}},
    }
    if odd:
        doc["observed"]["hosts"][odd] = {"performance": "TCPIP"}
    return case_plan(doc)


@pytest.fixture(scope="module")
def plan_200() -> Plan:
    return fleet_plan(200, odd="HV077")


def test_a_200_host_first_plan_fits_one_comment_with_exact_totals(plan_200: Plan) -> None:
    md = render(plan_200, "markdown")
    assert len(md) <= MARKDOWN_BUDGET
    add, change, delete = plan_200.summary()
    assert f"**Plan: {add} to add, {change} to change, {delete} to delete.**" in md
    assert (add, change, delete) == (400, 400, 0)  # accounts created + networks; protocol transition + settings
    assert "| `+` | all 200 hosts | 1. gain delegation to the other hosts of their group, in " \
           "each of 13 groups: migration + cifs, both name forms, 4 values per peer, " \
           "11,744 in all |" in md
    assert "| `~` | HV077 | 2. performance: TCPIP → SMB *(differs from the rest)* |" in md
    assert "| `~` | 199 hosts (HV001–HV076, HV078–HV200) | 2. performance: Compression → SMB |" \
        in md
    # what did not fit is left out whole, and said so
    assert "> **Note:** Left out to stay within 60,000 characters: every change of step 1 " \
           "(400)" in md
    assert "hvlm show PLANFILE \\-\\-full" in md or "hvlm show PLANFILE --full" in md
    assert_whole_tables(md)
    assert md.count("<details>") == md.count("</details>")
    fences = re.findall(r"^`{3,}", md, re.M)
    assert len(fences) % 2 == 0


@pytest.mark.parametrize("budget", [2_000, 5_000, 20_000])
def test_the_budget_is_configurable_and_kept(plan_200: Plan, budget: int) -> None:
    md = render(plan_200, "markdown", budget=budget)
    assert len(md) <= budget
    assert "**Plan: 400 to add, 400 to change, 0 to delete.**" in md
    assert f"Left out to stay within {budget:,} characters" in md
    assert_whole_tables(md)


def test_every_change_is_listed_whole_when_it_fits() -> None:
    plan = fleet_plan(3)
    md = render(plan, "markdown")
    assert "Left out" not in md
    for change in plan.changes:
        assert f"{change.action.symbol} {change.address}\n" in md


def test_a_uniform_fleet_is_a_screenful_for_people_and_full_lists_every_address() -> None:
    plan = fleet_plan(1_000)
    text = render(plan, "human")
    assert len(text.splitlines()) <= 100
    assert "all 1000 hosts: authentication: CredSSP → Kerberos" in text
    full = render(plan, "human", full=True)
    for change in plan.changes:
        assert f" {change.address}\n" in full
    assert text.rstrip().endswith("Plan: 2000 to add, 2000 to change, 0 to delete.")


def test_the_json_plan_carries_the_summary_for_machines_and_reads_back_as_the_plan(
    plan_200: Plan,
) -> None:
    text = render(plan_200, "json")
    document = json.loads(text)
    jsonschema.validate(document, PLAN_SCHEMA)
    assert loads_plan(text) == plan_200  # "review" is derived: not read back
    review = document["review"]
    summary = summarize(plan_200)
    assert [e["text"] for s in review["steps"] for e in s["entries"]] == \
        [e.text for e in summary.entries]
    assert [s["changes"] for s in review["steps"]] == [400, 400]
    first = review["steps"][0]["entries"][0]
    assert first["hosts"] == {"label": "all 200 hosts", "count": 200, "ranges": ["HV001–HV200"],
                              "groups": [], "all": True}
    assert first["values"] == 11_744 and first["symbol"] == "+"
    odd = next(e for s in review["steps"] for e in s["entries"] if e["exception"])
    assert odd["hosts"]["ranges"] == ["HV077"] and odd["text"] == "performance: TCPIP → SMB"


def scattered_plan(hosts: int, every: int) -> tuple[Plan, list[str]]:
    """A converged fleet where every `every`-th host drifted (performance): no two adjacent."""
    names = [f"HV{n:04d}" for n in range(1, hosts + 1)]
    drifted = names[::every]
    observed: dict[str, Any] = {"*": {"performance": "SMB"}}
    observed.update({name: {"performance": "Compression"} for name in drifted})
    racks = [names[i:i + 16] for i in range(0, hosts, 16)]
    doc = {"manifest": {"defaults": {"migration": {"performance": "SMB"}},
                        "hosts": f"{names[0]}..{names[-1]}",
                        "groups": [{"name": f"rack-{i}", "hosts": f"{r[0]}..{r[-1]}"}
                                   for i, r in enumerate(racks)]},
           "observed": {"hosts": observed, "directory": {"*": {}}}}
    return case_plan(doc), drifted


def test_scattered_drift_names_every_changed_host_in_the_summary_people_read() -> None:
    plan, drifted = scattered_plan(9_999, 37)  # 271 hosts, no two adjacent: 271 ranges
    assert len(drifted) == 271
    human = render(plan, "human")
    line = next(line for line in human.splitlines() if "performance: Compression → SMB" in line)
    assert all(f"{name}," in line or f"{name})" in line for name in drifted), line
    markdown = render(plan, "markdown")
    row = next(line for line in markdown.splitlines() if "performance: Compression → SMB" in line)
    assert all(name in row for name in drifted), row
    # when the full row does not fit, the short one stands in, and says how many it leaves out
    small = render(plan, "markdown", budget=2_000)
    row = next(line for line in small.splitlines() if "performance: Compression → SMB" in line)
    assert "and 247 more" in row and len(small) <= 2_000, small


def test_the_budget_holds_with_many_dcs_and_a_long_host_selection() -> None:
    plan = fleet_plan(2_000)
    dcs = tuple((name, f"dc{i % 400}.lab.example") for i, name in enumerate(plan.fleet))
    selection = tuple(plan.fleet[::2])  # 1,000 names, none adjacent
    for budget in (2_000, 10_000):
        md = render(dataclasses.replace(plan, domain_controllers=dcs, selection=selection),
                    "markdown", budget=budget)
        assert len(md) <= budget, len(md)
        assert "**Plan: " in md
        assert_whole_tables(md)


def test_error_findings_keep_room_and_are_counted_when_the_summary_is_long() -> None:
    names = [f"HV{n:03d}" for n in range(1, 301)]
    doc = {"manifest": {"defaults": {"migration": {"maxVirtualMachineMigrations": 2}},
                        "hosts": "HV001..HV300"},
           "observed": {"hosts": {name: {"maxVirtualMachineMigrations": 3 + i}
                                  for i, name in enumerate(names)}, "directory": {"*": {}}}}
    plan = case_plan(doc)  # 300 hosts, each from another value: 300 summary rows
    findings = tuple(Finding(Severity.ERROR, f"host/{name}", "migration-firewall-closed",
                             f"{name} refuses migrations on TCP 6600 ({i})")
                     for i, name in enumerate(plan.fleet[:300]))
    plan = dataclasses.replace(plan, findings=findings)
    md = render(plan, "markdown", budget=5_000)
    assert len(md) <= 5_000
    assert "**Findings: 300 error(s), 0 warning(s).**" in md
    assert "#### Findings (300)" in md and "| **error** |" in md


def test_pair_findings_name_their_pairs() -> None:
    findings = tuple(AUTHENTICATION_MISMATCH.make(f"{a}<->{b}", a=a, b=b, auth_a="Kerberos",
                                                  auth_b="CredSSP")
                     for a, b in (("HV01", "HV02"), ("HV01", "HV03"), ("HV04", "HV05")))
    plan = dataclasses.replace(fleet_plan(5), findings=findings)
    human = render(plan, "human")
    assert ("3 pairs ({host}<->{peer}): HV01<->HV02, HV01<->HV03, HV04<->HV05: "
            "{host} and {peer} migrate with different authentication") in human, human
