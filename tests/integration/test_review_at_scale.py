"""Issue 20's acceptance on the lab: a first plan of 200 hosts is reviewable where it is posted.

A lab of 200 fresh simulated hosts with their computer accounts on the session's Samba DC, all in
one group (the lab's manifest: every account gains 796 values). `hvlm plan --format markdown
--out plan.json` runs as a pipeline runs it (a subprocess, real WSMan/PSRP and LDAP): its
Markdown fits one GitHub comment (<= 60,000 characters), states the JSON plan's exact totals and
names the fleet; `hvlm show plan.json --format markdown` prints the same bytes without
contacting anything; the human summary is a screenful.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from hvlm_lab.samba.dc import SambaDC
from tests.integration.helpers import LabFleet, lab_fleet

pytestmark = [pytest.mark.lab, pytest.mark.samba]

NAMES = [f"RV{n:03d}" for n in range(1, 201)]
GITHUB_COMMENT = 65_536


@pytest.fixture(scope="module")
def fleet(lab_dc: SambaDC, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabFleet]:
    with lab_fleet(lab_dc, tmp_path_factory.mktemp("review-200"), NAMES) as fleet:
        yield fleet


def test_a_200_host_markdown_plan_fits_one_comment_and_show_prints_the_same_bytes(
    fleet: LabFleet, tmp_path: Path
) -> None:
    planfile = tmp_path / "plan.json"
    planned = fleet.hvlm("plan", str(fleet.manifest), "--format", "markdown", "--out",
                         str(planfile), timeout=600)
    assert planned.code == 0, planned
    markdown = planned.stdout
    assert len(markdown) <= 60_000 < GITHUB_COMMENT, len(markdown)
    document = json.loads(planfile.read_text(encoding="utf-8"))
    totals = document["summary"]
    assert totals["add"] + totals["change"] >= 800, totals  # every host and account changes
    assert (f"**Plan: {totals['add']} to add, {totals['change']} to change, "
            f"{totals['delete']} to delete.**") in markdown
    assert "| `+` | all 200 hosts | 1. gain delegation to each other: migration + cifs, both " \
           "name forms, 796 values each |" in markdown, markdown[:4000]
    assert "| `~` | all 200 hosts | 2. authentication: CredSSP → Kerberos |" in markdown
    assert "Left out to stay within 60,000 characters" in markdown  # 159,200 values do not fit
    assert document["unread_hosts"] == []

    shown = fleet.hvlm("show", str(planfile), "--format", "markdown")
    assert shown.code == 0, shown
    assert shown.stdout == markdown  # byte for byte what the pull request got

    human = fleet.hvlm("show", str(planfile))
    assert human.code == 0, human
    assert len(human.stdout.splitlines()) <= 100, human.stdout
    assert "all 200 hosts: gain delegation to each other" in human.stdout
