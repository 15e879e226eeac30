"""Plans at fleet size, rendered for people (issue 20): the Markdown fits one pull-request
comment and leaves detail out whole, with a note; the human summary of a uniform fleet is a
screenful; `--full` still lists every address. Plans come from the real planner (the summary
cases' builder, tests/unit/test_summary.py), not from hand-made changes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

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
