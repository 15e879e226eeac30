"""Findings are judged once: `hvlm plan` (planner + check in planned mode) and `hvlm check` report
each problem exactly once, under one code of the one catalogue (hvlm.findings)."""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from hvlm.check import Mode, check_fleet
from hvlm.findings import CATALOGUE, PLANNER_CODES, Finding, Judge
from hvlm.manifest import parse_manifest
from hvlm.model import AuthenticationType, Manifest, PerformanceOption
from hvlm.planner import build_plan
from hvlm.render import render, render_findings
from hvlm.state import (
    DelegationState,
    DirectoryState,
    HostFacts,
    HostState,
    MigrationState,
    ObservedNetwork,
)

ROOT = Path(__file__).resolve().parents[2]
MIGRATION = "Microsoft Virtual System Migration Service"

MANIFEST = {
    "apiVersion": "hvlm/v1",
    "kind": "LiveMigrationConfig",
    "metadata": {"name": "once"},
    "directory": {"domain": "lab.example", "servers": ["ldaps://dc1.lab.example"]},
    "defaults": {"migration": {"enabled": True, "authentication": "Kerberos"}},
    "hosts": [{"name": "HV01"}, {"name": "HV02"}],
    "groups": [{"name": "g", "hosts": ["HV01", "HV02"]}],
}


@dataclass
class Observation:
    hosts: Mapping[str, HostState]
    host_errors: Mapping[str, str] = field(default_factory=dict)
    directory: DirectoryState | None = None
    directory_error: str | None = None


def _host(name: str, joined: bool, networks: tuple[str, ...]) -> HostState:
    migration = MigrationState(
        True, AuthenticationType.KERBEROS, PerformanceOption.COMPRESSION, 2, 2, False,
        tuple(ObservedNetwork(ipaddress.ip_network(n), 0) for n in networks),
    )
    facts = HostFacts(computer_name=name, part_of_domain=joined,
                      domain="lab.example" if joined else "WORKGROUP",
                      addresses=(ipaddress.ip_interface("192.168.10.11/24"),))
    return HostState(name, migration, facts)


def _account(name: str, peer: str) -> DelegationState:
    values = tuple(f"{c}/{p}" for c in (MIGRATION, "cifs") for p in (peer, f"{peer}.lab.example"))
    return DelegationState(name, f"CN={name},DC=lab,DC=example", f"{name}$",
                           f"{name.lower()}.lab.example", (), 0x1000 | 0x01000000, values)


def _fleet() -> tuple[Manifest, Observation]:
    """HV01: not domain-joined, migration enabled on no network; HV02: clean."""
    manifest = parse_manifest(yaml.safe_dump(MANIFEST).encode(), "once.yaml").manifest
    hosts = {"HV01": _host("HV01", False, ()), "HV02": _host("HV02", True, ("192.168.10.0/24",))}
    directory = DirectoryState((_account("HV01", "hv02"), _account("HV02", "hv01")))
    return manifest, Observation(hosts, directory=directory)


def _problems(findings: tuple[Finding, ...] | list[Finding]) -> Counter[tuple[str, str]]:
    return Counter((f.subject, f.code) for f in findings)


def _as_hvlm_plan_does(manifest: Manifest, observation: Observation) -> tuple[Finding, ...]:
    """hvlm.cli.plan: check in planned mode, handed to the planner, which adds its own."""
    planned = check_fleet(manifest, observation, mode=Mode.PLANNED)
    plan = build_plan(manifest, observation.hosts, observation.directory, findings=planned)
    return plan.findings


def test_plan_reports_each_problem_once_under_one_code() -> None:
    manifest, observation = _fleet()
    findings = _as_hvlm_plan_does(manifest, observation)
    problems = _problems(findings)
    assert problems[("host/HV01", "not-domain-joined")] == 1
    assert problems[("host/HV01", "no-incoming-network")] == 1
    assert all(count == 1 for count in problems.values()), problems
    assert {f.code for f in findings if f.subject == "host/HV01"} == {
        "not-domain-joined", "no-incoming-network"}
    # the planner's old names are gone
    assert not {"host-not-in-domain", "no-migration-network"} & {f.code for f in findings}
    # and the rendered plan shows each once
    text = render(build_plan(manifest, observation.hosts, observation.directory,
                             findings=check_fleet(manifest, observation, mode=Mode.PLANNED)))
    assert text.count("[not-domain-joined]") == 1 and text.count("[no-incoming-network]") == 1


def test_check_reports_the_same_problems_under_the_same_codes() -> None:
    manifest, observation = _fleet()
    live = check_fleet(manifest, observation)
    assert _problems(live) == _problems(_as_hvlm_plan_does(manifest, observation))
    text = render_findings(live, 2)
    assert text.count("[not-domain-joined]") == 1 and text.count("[no-incoming-network]") == 1


def test_planner_codes_are_declared_in_the_catalogue() -> None:
    assert {c for c, k in CATALOGUE.items() if k.judge is Judge.PLANNER} == PLANNER_CODES
    assert {"host-unread", "directory-unread", "not-domain-joined", "no-incoming-network"} \
        <= PLANNER_CODES


def test_every_finding_in_the_product_comes_from_the_catalogue() -> None:
    """No module builds a Finding by hand (only hvlm.findings, and the plan-file reader)."""
    built = re.compile(r"\bFinding\(")
    for path in sorted((ROOT / "hvlm").rglob("*.py")):
        if path.name in {"findings.py"} or path.parts[-2:] == ("hvlm", "plan.py"):
            continue
        assert not built.search(path.read_text()), path
    codes = set(re.findall(r'"([a-z]+(?:-[a-z0-9]+)+)"', (ROOT / "README.md").read_text()))
    assert codes.isdisjoint({"host-not-in-domain", "no-migration-network"})
