"""The reviewer's summary (hvlm.summary), table-driven: tests/summary/*.yaml hold a manifest and
an observed fleet (in the planner cases' form, tests/planner) -> the summary's expected entries
and finding groups. Every case also checks what holds for any plan: each changed host is named
by some entry, each phase's change count and the totals are the plan's own.

Shorthand of these cases (expanded here into the planner cases' form): a host range
`HV01..HV16`; `hosts: [{names: RANGE, migration: ...}]`; groups `{name, hosts: RANGE}`; observed
`"*"` for every host not listed; an account's `toward: RANGE` for the values hvlm would have
written toward those hosts (itself excluded); `findings:` made from the real catalogue
(hvlm.findings) for each host of a range (`{name}` and `{fqdn}` in a field or the subject
stand for that host's).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from hvlm import findings as catalogue
from hvlm.findings import Finding
from hvlm.plan import GroupRef, Plan
from hvlm.planner import build_plan
from hvlm.summary import (
    HostSet,
    Summary,
    covered_hosts,
    group_findings,
    host_ranges,
    phase_counts,
    summarize,
)
from tests.unit.test_planner import load_case

ROOT = Path(__file__).resolve().parents[2]
CASES = sorted((ROOT / "tests" / "summary").glob("*.yaml"))
MIGRATION_CLASS = "Microsoft Virtual System Migration Service"
DOMAIN = "corp.example.com"


def expand(text: str) -> list[str]:
    """'HV01..HV16' -> HV01, ..., HV16 (the digits' width kept); a plain name -> [name]."""
    match = re.fullmatch(r"([A-Za-z-]*)(\d+)\.\.\1(\d+)", text)
    if match is None:
        return [text]
    prefix, first, last = match.group(1), match.group(2), match.group(3)
    return [f"{prefix}{n:0{len(first)}d}" for n in range(int(first), int(last) + 1)]


def _toward(name: str, peers: list[str]) -> list[str]:
    values = []
    for peer in peers:
        if peer.upper() != name.upper():
            for spn_class in (MIGRATION_CLASS, "cifs"):
                values += [f"{spn_class}/{peer}", f"{spn_class}/{peer.lower()}.{DOMAIN}"]
    return values


def _every(names: list[str], docs: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for name in names:
        doc = dict(docs.get(name, docs.get("*", {})))
        if "toward" in doc:
            doc["values"] = _toward(name, expand(doc.pop("toward")))
        out[name] = doc
    return out


def planner_case(doc: Mapping[str, Any]) -> dict[str, Any]:
    manifest = dict(doc["manifest"])
    hosts = manifest["hosts"]
    if isinstance(hosts, str):
        hosts = [{"name": n} for n in expand(hosts)]
    else:
        hosts = [{"name": n, **{k: v for k, v in h.items() if k != "names"}}
                 for h in hosts for n in expand(h["names"])]
    manifest["hosts"] = hosts
    manifest["groups"] = [expand(g["hosts"]) for g in manifest.get("groups", [])]
    names = [h["name"] for h in hosts]
    observed = doc["observed"]
    return {"manifest": manifest, "observed": {
        "hosts": _every(names, observed.get("hosts", {})),
        "directory": _every(names, observed.get("directory", {})),
    }}


def _findings(doc: Mapping[str, Any]) -> list[Finding]:
    out = []
    for item in doc.get("findings", []):
        kind = getattr(catalogue, item["kind"])
        for name in expand(item["hosts"]):
            fqdn = f"{name.lower()}.{DOMAIN}"
            fields = {k: str(v).format(name=name, fqdn=fqdn) for k, v in item["fields"].items()}
            subject = item.get("subject", "host/{name}").format(name=name)
            out.append(kind.make(subject, **{"name": name, **fields}))
    return out


def case_plan(doc: Mapping[str, Any]) -> Plan:
    case = load_case(planner_case(doc))
    manifest = case.manifest
    names = {g.name: g for g in manifest.groups}
    groups = tuple(GroupRef(spec["name"], tuple(expand(spec["hosts"])))
                   for spec in doc["manifest"].get("groups", []))
    assert len(groups) == len(names)
    plan = build_plan(manifest, case.hosts, case.directory, findings=_findings(doc))
    return Plan(plan.manifest, plan.changes, plan.findings, plan.targets, plan.unread_hosts,
                plan.directory_read, plan.selection, plan.refresh_tickets, plan.hvlm_version,
                plan.fleet, groups)


def entry_rows(summary: Summary) -> list[list[Any]]:
    rows: list[list[Any]] = []
    for phase in summary.phases:
        for e in phase.entries:
            row: list[Any] = [phase.phase.order + 1, e.symbol, e.hosts.label, e.text]
            rows.append(row + ["exception"] if e.exception else row)
    return rows


def check_invariants(plan: Plan, summary: Summary) -> None:
    changed = {c.host for c in plan.changes}
    assert changed <= covered_hosts(summary), "a changed host is named by no entry"
    assert summary.totals == plan.summary()
    counts = phase_counts(summary)
    assert sum(counts.values()) == len(plan.changes)
    for phase, count in counts.items():
        assert count == len(plan.in_phase(phase))
    grouped = [s for g in summary.findings for s in g.subjects]
    assert sorted(grouped) == sorted(f.subject for f in plan.findings)


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_case(path: Path) -> None:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    plan = case_plan(doc)
    summary = summarize(plan)
    check_invariants(plan, summary)
    expect = doc["expect"]
    assert entry_rows(summary) == expect["entries"]
    if "findings" in expect:
        rows = [[g.severity.value, g.code, g.hosts.label, g.message] for g in summary.findings
                if g.code not in _PLANNER_NOISE]
        assert rows == expect["findings"]


# the planner's own findings in these cases (computer accounts etc.) are not what they test
_PLANNER_NOISE = frozenset({"computer-account-missing", "no-incoming-network"})


def test_there_are_cases() -> None:
    assert len(CASES) >= 6


@pytest.mark.parametrize(("names", "ranges"), [
    (["HV01", "HV02", "HV03", "HV05"], ("HV01–HV03", "HV05")),
    (["HV01", "HV02"], ("HV01", "HV02")),  # a run of two is two names
    (["HV010", "HV9", "HV011", "HV012"], ("HV9", "HV010–HV012")),  # widths differ: not one run
    (["hv2", "HV1", "HV3"], ("HV1–HV3",)),  # NetBIOS names: case does not part a run
    (["web", "HV1", "db"], ("db", "HV1", "web")),
    (["HV100", "HV99", "HV101"], ("HV99", "HV100", "HV101")),
])
def test_host_ranges(names: list[str], ranges: tuple[str, ...]) -> None:
    assert host_ranges(names) == ranges


def test_a_short_label_counts_what_it_does_not_name() -> None:
    names = tuple(f"HV{n:03d}" for n in range(1, 200, 2))  # 100 hosts, no two consecutive
    hosts = HostSet(names, host_ranges(names))
    assert hosts.short_label(3) == "100 hosts (HV001, HV003, HV005 and 97 more)"
    assert all(name in hosts.label for name in names)


def test_the_same_finding_on_many_pairs_masks_both_names() -> None:
    made = [catalogue.AUTHENTICATION_MISMATCH.make(f"{a}<->{b}", a=a, b=b, auth_a="Kerberos",
                                                   auth_b="CredSSP")
            for a, b in (("HV01", "HV02"), ("HV03", "HV04"))]
    (group,) = group_findings(made)
    assert group.message == "{host} and {peer} migrate with different authentication"
    assert group.subjects == ("HV01<->HV02", "HV03<->HV04")
    assert group.hosts.names == ("HV01", "HV02", "HV03", "HV04")
