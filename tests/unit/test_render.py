"""The renderers: human text (+/~/- per address, summary line, colour only when asked), Markdown
for pull-request comments, JSON. Plans are built by hand here: what is shown, not how it is planned.
"""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from hvlm.errors import Severity
from hvlm.plan import Action, Change, Finding, ManifestRef, Phase, Plan, plan_to_document
from hvlm.render import (
    NO_CHANGES,
    md_code,
    md_text,
    render,
    review_document,
    safe,
    summary_line,
)
from hvlm.summary import summarize

MIGRATION = "Microsoft Virtual System Migration Service"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def sample_plan(**overrides: object) -> Plan:
    changes = (
        Change("directory/HV01/allowedToDelegateTo", Phase.DIRECTORY_ADD, Action.UPDATE, "HV01",
               "HV01 migrates with Kerberos to 1 peer(s): 1 value(s) missing",
               {"allowedToDelegateTo": ("MSSQLSvc/sql01:1433", f"{MIGRATION}/HV02")},
               {"allowedToDelegateTo": ("MSSQLSvc/sql01:1433", f"{MIGRATION}/HV02", "cifs/HV02")},
               add=("cifs/HV02",)),
        Change("directory/HV01/protocolTransition", Phase.DIRECTORY_ADD, Action.UPDATE, "HV01",
               "delegation.protocolTransition: true",
               {"protocolTransition": False, "userAccountControl": 0x1000},
               {"protocolTransition": True, "userAccountControl": 0x01001000}),
        Change("host/HV01/migration", Phase.HOST, Action.UPDATE, "HV01",
               "differs from the manifest: enabled, authentication",
               {"enabled": False, "authentication": "CredSSP"},
               {"enabled": True, "authentication": "Kerberos"}),
        Change("host/HV01/network/192.168.10.0/24", Phase.HOST, Action.CREATE, "HV01",
               "declared in the manifest, missing on the host", None,
               {"subnet": "192.168.10.0/24", "priority": 0}),
        Change("host/HV01/network/10.0.0.0/8", Phase.HOST, Action.DELETE, "HV01",
               "on the host, not in the manifest's list of networks",
               {"subnet": "10.0.0.0/8", "priority": 3}, None),
        Change("directory/HV01/allowedToDelegateTo/prune", Phase.DIRECTORY_PRUNE, Action.DELETE,
               "HV01", "prune.delegation",
               {"allowedToDelegateTo": ("MSSQLSvc/sql01:1433", "cifs/HV03")},
               {"allowedToDelegateTo": ("MSSQLSvc/sql01:1433",)}, delete=("cifs/HV03",)),
        Change("host/HV01/tickets", Phase.TICKETS, Action.UPDATE, "HV01",
               "the delegation of HV01 changes"),
    )
    findings = (
        Finding(Severity.ERROR, "directory/HV03", "unconstrained-delegation",
                "HV03 is trusted for unconstrained delegation", fix="clear 0x00080000",
                evidence="userAccountControl=0x00081000"),
        Finding(Severity.WARNING, "host/HV02", "host-read-warning", "Get-VM failed"),
    )
    fields: dict[str, object] = {
        "manifest": ManifestRef("prod-east", "prod-east.yaml", "ab" * 32),
        "changes": changes,
        "findings": findings,
        "unread_hosts": ("HV04",),
    }
    fields.update(overrides)
    return Plan(**fields)  # type: ignore[arg-type]


def test_summary_line_counts_actions() -> None:
    assert summary_line(sample_plan()) == "Plan: 1 to add, 4 to change, 2 to delete."
    assert summary_line(sample_plan(changes=())) == NO_CHANGES


def test_human_marks_every_address_with_its_action() -> None:
    text = render(sample_plan(), "human", full=True)
    assert "  + host/HV01/network/192.168.10.0/24\n" in text
    assert "  - host/HV01/network/10.0.0.0/8\n" in text
    assert "  ~ host/HV01/migration\n" in text
    assert "      ~ enabled: false -> true\n" in text
    assert '      ~ authentication: "CredSSP" -> "Kerberos"\n' in text
    assert "      + priority: 0\n" in text
    assert "      - priority: 3\n" in text
    assert "      ~ userAccountControl: 0x00001000 -> 0x01001000\n" in text
    assert text.rstrip().endswith("Plan: 1 to add, 4 to change, 2 to delete.")


def test_human_lists_phases_in_apply_order() -> None:
    text = render(sample_plan(), "human")
    headings = [text.index(f"{p.order + 1}. {p.heading}") for p in Phase]
    assert headings == sorted(headings)


def test_human_shows_unrelated_values_as_kept() -> None:
    text = render(sample_plan(), "human", full=True)
    assert '        "MSSQLSvc/sql01:1433" (kept)\n' in text
    assert '      + "cifs/HV02"\n' in text
    assert '      - "cifs/HV03"\n' in text


def test_human_shows_findings_and_unread_hosts() -> None:
    text = render(sample_plan(), "human")
    assert "error: directory/HV03: HV03 is trusted for unconstrained delegation" in text
    assert "evidence: userAccountControl=0x00081000" in text
    assert "fix: clear 0x00080000" in text
    assert "warning: host/HV02: Get-VM failed [host-read-warning]" in text
    assert "Hosts not read, no change planned for them: HV04" in text
    assert "(sha256 abababababab)" in text


def test_colour_only_when_asked() -> None:
    plain = render(sample_plan(), "human")
    coloured = render(sample_plan(), "human", color=True)
    assert "\x1b" not in plain
    assert "\x1b[32m+\x1b[0m" in coloured and "\x1b[31m-\x1b[0m" in coloured
    assert ANSI.sub("", coloured) == plain


def test_no_changes_still_shows_findings() -> None:
    text = render(sample_plan(changes=(), unread_hosts=()), "human")
    assert NO_CHANGES in text
    assert "unconstrained-delegation" in text
    assert "will perform" not in text


HOSTILE = "cifs/evil\x1b[2J\x1b]0;owned\x07\u202e|</details>```<img src=x>"


def hostile_plan() -> Plan:
    change = Change(
        "directory/HV01/allowedToDelegateTo", Phase.DIRECTORY_ADD, Action.UPDATE, "HV01",
        f"reason with {HOSTILE}", {"allowedToDelegateTo": (HOSTILE,)},
        {"allowedToDelegateTo": (HOSTILE, "cifs/HV02")}, add=("cifs/HV02",),
    )
    finding = Finding(Severity.WARNING, "host/HV01", "host-read-warning", HOSTILE, fix=HOSTILE)
    return Plan(ManifestRef("m|x"), (change,), (finding,))


def test_terminal_escapes_from_the_directory_are_made_inert() -> None:
    text = render(hostile_plan(), "human")
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    assert "\\u001b[2J" in text and "\\u202e" in text
    coloured = render(hostile_plan(), "human", color=True)
    assert "\x1b[2J" not in coloured and "\x1b]" not in coloured


def test_markdown_cannot_be_broken_out_of() -> None:
    md = render(hostile_plan(), "markdown")
    # the diff block is fenced by more backticks than any run inside it...
    fence = re.search(r"^(`{3,})diff$", md, re.M)
    assert fence is not None and len(fence.group(1)) == 4
    inside = md[fence.end():md.index("\n````\n", fence.end())]
    assert "\n```" not in inside.replace("\n````", "")
    # ...so the raw value stays code there, and outside the block everything is escaped
    outside = md.replace(inside, "")
    assert "<img" not in outside and "</details>```" not in outside
    assert outside.count("</details>") == outside.count("<details>") == 1
    assert_whole_tables(md)


def _cells(row: str) -> int:
    return row.count("|") - row.count("\\|") - 1


def assert_whole_tables(md: str) -> None:
    """Every table row has its header's cells: no value closed a cell, no row was cut."""
    header = 0
    for line in md.splitlines():
        if line.startswith("|---"):
            continue
        if line.startswith("| "):
            header = header or _cells(line)
            assert _cells(line) == header, line
        else:
            header = 0


def test_markdown_has_the_summary_findings_and_every_change_when_it_fits() -> None:
    md = render(sample_plan(), "markdown")
    assert md.startswith("### hvlm plan: <code>prod-east</code>\n\n**Plan: 1 to add, 4 to change")
    assert "#### What changes (HV01)\n\n| | Hosts | Change |" in md
    assert "| `+` | HV01 | 2. incoming network 192.168.10.0/24 added (priority 0) |" in md
    assert "| `~` | HV01 | 2. authentication: CredSSP → Kerberos |" in md
    for phase in Phase:
        assert f"<details><summary>{phase.order + 1}. {phase.heading}: every change" in md
    assert "Left out" not in md
    assert "#### Findings (2)" in md and "| **error** | <code>directory/HV03</code>" in md
    assert "> **Note:** Hosts not read, no change planned for them: HV04\n" in md
    assert '+     "cifs/HV02"' in md and '-     "cifs/HV03"' in md


def test_markdown_without_changes() -> None:
    md = render(sample_plan(changes=(), findings=(), unread_hosts=()), "markdown")
    assert md == f"### hvlm plan: <code>prod-east</code>\n\n**{NO_CHANGES}**\n"


def test_json_is_the_plan_document_with_its_summary_for_machines() -> None:
    document = json.loads(render(sample_plan(), "json"))
    review = document.pop("review")
    assert document == plan_to_document(sample_plan())
    assert review == review_document(summarize(sample_plan()))
    assert [e["text"] for e in review["steps"][1]["entries"]][:2] == [
        "authentication: CredSSP → Kerberos", "enabled: false → true"]


def test_unknown_format() -> None:
    with pytest.raises(ValueError, match="yaml"):
        render(sample_plan(), "yaml")


def test_escaping_helpers() -> None:
    assert safe("HV01") == "HV01"
    assert safe("a\nb\tc") == "a\\u000ab\\u0009c"
    assert md_text("a|b *c* <d>") == "a\\|b \\*c\\* &lt;d&gt;"
    assert md_code("a|`b`<") == "<code>a&#124;&#96;b&#96;&lt;</code>"


def test_notes_for_selection_tickets_and_an_unread_directory() -> None:
    text = render(sample_plan(selection=("HV01",), directory_read=False), "human")
    assert "Only the selected hosts (--host HV01) are planned" in text
    assert "The directory was not read: no delegation change is planned." in text
    assert "plan with --refresh-tickets to purge them" in text
    with_tickets = render(sample_plan(refresh_tickets=True), "human")
    assert "--refresh-tickets" not in with_tickets and "--host" not in with_tickets
    md = render(sample_plan(selection=("HV01",)), "markdown")
    assert "> **Note:** Only the selected hosts (--host HV01) are planned" in md


def test_each_hosts_dc_is_a_note_in_human_and_markdown() -> None:
    dcs = {"HV01": "dc1.lab.example", "HV02": "dc2.lab.example", "HV03": "dc1.lab.example",
           "HV05": ""}
    plan = dataclasses.replace(sample_plan(), domain_controllers=tuple(dcs.items()))
    note = ("Domain controllers the hosts use (Win32_NTDomain; apply waits until they hold the "
            "delegation it writes): dc1.lab.example: HV01, HV03; dc2.lab.example: HV02; "
            "unknown: HV05.")
    assert note in render(plan, "human")
    assert f"> **Note:** {md_text(note)}" in render(plan, "markdown")
    assert "Domain controllers" not in render(sample_plan(), "human")  # one DC: no note


def test_the_dc_note_names_a_few_hosts_per_dc_then_counts() -> None:
    dcs = {f"HV{n:03d}": "dc1.lab.example" for n in range(1, 101)}
    text = render(dataclasses.replace(sample_plan(), domain_controllers=tuple(dcs.items())),
                  "human")
    assert "dc1.lab.example: HV001, HV002, HV003, HV004, HV005, HV006, HV007, HV008 and 92 more." \
        in text
