"""`hvlm export`'s pure core: an observed fleet -> a manifest that validates and plans no change.

The property test draws mixed fleets (settings, networks, any-network, partial and one-way
delegation, one name form only, case variants, unrelated values, missing accounts), exports them,
loads the YAML through hvlm.manifest (the same code as `hvlm validate`) and plans it against the
same observation with hvlm.planner: the plan must be empty.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hvlm.export import ExportError, dump_manifest, export_document
from hvlm.manifest import parse_manifest
from hvlm.model import (
    UAC_TRUSTED_TO_AUTH_FOR_DELEGATION,
    AuthenticationType,
    Manifest,
    PerformanceOption,
)
from hvlm.planner import build_plan
from hvlm.state import DelegationState, DirectoryState, HostState, MigrationState, ObservedNetwork

MIGRATION = "Microsoft Virtual System Migration Service"
WORKSTATION = 0x1000
DOMAIN = "lab.example"
INVENTORY: dict[str, Any] = {
    "apiVersion": "hvlm/v1",
    "kind": "LiveMigrationConfig",
    "metadata": {"name": "brownfield", "description": "kept as written"},
    "directory": {"domain": DOMAIN, "servers": [{"url": "ldaps://dc1.lab.example",
                                                 "address": "127.0.0.1"}],
                  "auth": "simple", "certValidation": "/tmp/ca.pem"},
    "connection": {"transport": "https", "auth": "basic", "certValidation": "/tmp/ca.pem"},
}


@dataclass
class Observed:
    hosts: dict[str, HostState] = field(default_factory=dict)
    host_errors: dict[str, str] = field(default_factory=dict)
    directory: DirectoryState | None = None
    directory_error: str | None = None


def inventory(names: Sequence[str], **extra: Any) -> dict[str, Any]:
    hosts = [{"name": n, "address": f"127.0.0.1:{5986 + i}"} for i, n in enumerate(names)]
    return {**INVENTORY, "hosts": hosts, **extra}


def load(document: Mapping[str, Any]) -> Manifest:
    return parse_manifest(yaml.safe_dump(dict(document)).encode(), "inventory.yaml").manifest


def host(name: str, *, enabled: bool = True, auth: str = "Kerberos", perf: str = "Compression",
         vm: int = 2, storage: int = 2, any_network: bool = False,
         networks: Sequence[tuple[str, int]] = (("192.168.10.0/24", 0),)) -> HostState:
    return HostState(name, MigrationState(
        enabled, AuthenticationType(auth), PerformanceOption(perf), vm, storage, any_network,
        tuple(ObservedNetwork(ipaddress.ip_network(s), p) for s, p in networks),
    ))


def account(name: str, values: Sequence[str] = (), transition: bool = True) -> DelegationState:
    uac = WORKSTATION | (UAC_TRUSTED_TO_AUTH_FOR_DELEGATION if transition else 0)
    return DelegationState(name, f"CN={name},CN=Computers,DC=lab,DC=example", f"{name}$",
                           f"{name.lower()}.{DOMAIN}", (f"HOST/{name}",), uac, tuple(values))


def full(*targets: str, services: Sequence[str] = (MIGRATION, "cifs")) -> list[str]:
    return [f"{service}/{form}" for target in targets for service in services
            for form in (target, f"{target.lower()}.{DOMAIN}")]


def observe(states: Sequence[HostState], accounts: Sequence[DelegationState] | None,
            manifest: Manifest) -> Observed:
    observed = Observed(hosts={s.name.upper(): s for s in states})
    if accounts is not None:
        present = {a.name.upper() for a in accounts}
        missing = tuple(h.name for h in manifest.hosts if h.key not in present)
        observed.directory = DirectoryState(tuple(accounts), missing, "dc1")
    return observed


def export_and_plan(document: Mapping[str, Any], observed: Observed,
                    selection: Sequence[str] = ()) -> tuple[dict[str, Any], Any]:
    manifest = load(document)
    exported = export_document(document, manifest, observed, selection)
    text = dump_manifest(exported, "inventory.yaml")
    result = parse_manifest(text.encode(), "exported.yaml")  # what `hvlm validate` runs
    plan = build_plan(result.manifest, observed.hosts, observed.directory)
    return yaml.safe_load(text), plan


# --- examples ------------------------------------------------------------------------------------


def test_uniform_fleet_puts_everything_in_defaults() -> None:
    doc = inventory(["HV01", "HV02", "HV03"])
    manifest = load(doc)
    states = [host(n) for n in ("HV01", "HV02", "HV03")]
    accounts = [account("HV01", full("HV02", "HV03")), account("HV02", full("HV01", "HV03")),
                account("HV03", full("HV01", "HV02"))]
    exported, plan = export_and_plan(doc, observe(states, accounts, manifest))
    assert plan.changes == ()
    assert exported["defaults"] == {
        "migration": {"enabled": True, "authentication": "Kerberos", "performance": "Compression",
                      "maxVirtualMachineMigrations": 2, "maxStorageMigrations": 2,
                      "networks": [{"subnet": "192.168.10.0/24", "priority": 0}]},
        "delegation": {"protocolTransition": True, "services": ["migration", "cifs"]},
    }
    assert exported["hosts"] == [{"name": n, "address": f"127.0.0.1:{5986 + i}"}
                                 for i, n in enumerate(["HV01", "HV02", "HV03"])]
    assert exported["groups"] == [{"name": "delegation-1", "hosts": ["HV01", "HV02", "HV03"]}]


def test_sections_kept_as_written_and_prune_left_out() -> None:
    doc = inventory(["HV01"], prune={"delegation": True})
    doc["hosts"][0].update(fqdn="hv01.other.example", connection={"port": 1234})
    manifest = load(doc)
    exported, plan = export_and_plan(doc, observe([host("HV01", auth="CredSSP")],
                                                  [account("HV01")], manifest))
    assert plan.changes == ()
    for key in ("metadata", "directory", "connection"):
        assert exported[key] == INVENTORY[key]
    assert exported["hosts"][0] == {"name": "HV01", "fqdn": "hv01.other.example",
                                    "address": "127.0.0.1:5986", "connection": {"port": 1234}}
    assert "prune" not in exported and "groups" not in exported


def test_mixed_settings_become_overrides() -> None:
    doc = inventory(["HV01", "HV02", "HV03", "HV04"])
    manifest = load(doc)
    states = [host("HV01"), host("HV02", vm=4, perf="SMB"),
              host("HV03", any_network=True, networks=()), host("HV04", auth="CredSSP")]
    exported, plan = export_and_plan(doc, observe(states, [account(s.name) for s in states],
                                                  manifest))
    assert plan.changes == ()
    overrides = {h["name"]: h.get("migration") for h in exported["hosts"]}
    assert overrides == {
        "HV01": None,
        "HV02": {"performance": "SMB", "maxVirtualMachineMigrations": 4},
        "HV03": {"useAnyNetwork": True},
        "HV04": {"authentication": "CredSSP"},
    }


def test_host_without_any_network_blocks_network_defaults() -> None:
    doc = inventory(["HV01", "HV02", "HV03"])
    manifest = load(doc)
    states = [host("HV01"), host("HV02"), host("HV03", enabled=True, networks=())]
    exported, plan = export_and_plan(doc, observe(states, [account(s.name) for s in states],
                                                  manifest))
    assert plan.changes == ()
    assert "networks" not in exported["defaults"]["migration"]
    assert exported["hosts"][2]["migration"] == {"useAnyNetwork": False}
    assert exported["hosts"][0]["migration"]["networks"] == [
        {"subnet": "192.168.10.0/24", "priority": 0}]


def test_groups_are_cliques_of_mutual_delegation_with_both_forms() -> None:
    names = ["HV01", "HV02", "HV03", "HV04", "HV05"]
    doc = inventory(names, groups=[{"name": "rack-a", "hosts": ["hv01", "HV02", "HV03"]}])
    manifest = load(doc)
    accounts = [
        account("HV01", full("HV02", "HV03")),
        account("HV02", full("HV01", "HV03", "HV04")),
        account("HV03", full("HV01", "HV02", "HV04")),
        account("HV04", full("HV02", "HV03") + [f"{MIGRATION}/hv05.{DOMAIN}"]),  # one form only
        account("HV05", full("HV04")),
    ]
    exported, plan = export_and_plan(doc, observe([host(n) for n in names], accounts, manifest))
    assert plan.changes == ()
    # HV01-HV03 is a clique (keeps its name); HV02-HV03-HV04 too; HV04-HV05 is one-form only
    assert exported["groups"] == [
        {"name": "rack-a", "hosts": ["HV01", "HV02", "HV03"]},
        {"name": "delegation-1", "hosts": ["HV02", "HV03", "HV04"]},
    ]


def test_services_are_what_a_host_delegates_to_every_peer() -> None:
    doc = inventory(["HV01", "HV02"])
    manifest = load(doc)
    accounts = [account("HV01", full("HV02", services=[MIGRATION])),
                account("HV02", full("HV01"))]
    exported, plan = export_and_plan(doc, observe([host("HV01"), host("HV02")], accounts,
                                                  manifest))
    assert plan.changes == ()
    services = {h["name"]: h.get("delegation", {}).get("services",
                                                       exported["defaults"]["delegation"]
                                                       ["services"])
                for h in exported["hosts"]}
    assert services == {"HV01": ["migration"], "HV02": ["migration", "cifs"]}


def test_selection_exports_only_those_hosts() -> None:
    doc = inventory(["HV01", "HV02", "HV03"])
    manifest = load(doc)
    states = [host(n) for n in ("HV01", "HV03")]
    accounts = [account("HV01", full("HV02", "HV03")), account("HV02", full("HV01")),
                account("HV03", full("HV01"))]
    observed = observe(states, accounts, manifest)
    observed.host_errors["HV02"] = "not selected, not read"
    exported, plan = export_and_plan(doc, observed, ["hv01", "HV03"])
    assert [h["name"] for h in exported["hosts"]] == ["HV01", "HV03"]
    assert exported["groups"] == [{"name": "delegation-1", "hosts": ["HV01", "HV03"]}]
    assert plan.changes == ()


def test_unread_host_fails_the_export() -> None:
    doc = inventory(["HV01", "HV02"])
    manifest = load(doc)
    observed = observe([host("HV01")], [account("HV01")], manifest)
    observed.host_errors["HV02"] = "HV02: open: connection refused"
    with pytest.raises(ExportError, match=r"HV02: open: connection refused.*--host"):
        export_document(doc, manifest, observed)


def test_unread_directory_fails_the_export() -> None:
    doc = inventory(["HV01"])
    manifest = load(doc)
    observed = observe([host("HV01")], None, manifest)
    observed.directory_error = "ldaps://dc1: refused"
    with pytest.raises(ExportError, match=r"directory could not be read.*refused"):
        export_document(doc, manifest, observed)


def test_kerberos_without_a_directory_fails_clearly() -> None:
    doc = {k: v for k, v in inventory(["HV01"]).items() if k != "directory"}
    doc["hosts"][0]["fqdn"] = "hv01.lab.example"
    manifest = load(doc)
    with pytest.raises(ExportError, match=r"HV01 migrate.*directory section"):
        export_document(doc, manifest, observe([host("HV01")], None, manifest))
    exported = export_document(doc, manifest, observe([host("HV01", auth="CredSSP")], None,
                                                      manifest))
    assert "directory" not in exported and "delegation" not in exported["defaults"]


def test_dump_has_no_anchors_and_a_header() -> None:
    doc = inventory(["HV01", "HV02"])
    manifest = load(doc)
    states = [host("HV01", networks=[("10.1.0.0/16", 1), ("fd00:10::/64", 0)]),
              host("HV02", networks=[("fd00:10::/64", 0), ("10.1.0.0/16", 1)])]
    text = dump_manifest(export_document(doc, manifest, observe(states, [], manifest)), "inv.yaml")
    assert text.startswith("# Exported by `hvlm export` from inv.yaml")
    assert "&id" not in text and "*id" not in text
    assert yaml.safe_load(text)["defaults"]["migration"]["networks"] == [
        {"subnet": "fd00:10::/64", "priority": 0}, {"subnet": "10.1.0.0/16", "priority": 1}]


# --- the property: export -> validate -> plan is empty ------------------------------------------

NAMES = ["HV01", "HV02", "HV03", "HV04", "HV05"]
SUBNETS = ["192.168.10.0/24", "10.1.0.0/16", "fd00:10::/64", "10.2.3.4/32"]


@st.composite
def fleets(draw: st.DrawFn) -> tuple[list[HostState], list[DelegationState]]:
    count = draw(st.integers(1, len(NAMES)))
    names = NAMES[:count]
    states = []
    for name in names:
        mode = draw(st.sampled_from(["any", "none", "list", "list"]))
        nets = draw(st.lists(st.tuples(st.sampled_from(SUBNETS), st.integers(0, 2)),
                             min_size=1, max_size=3, unique_by=lambda n: n[0]))
        states.append(host(
            name, enabled=draw(st.booleans()), auth=draw(st.sampled_from(["Kerberos", "CredSSP"])),
            perf=draw(st.sampled_from(["TCPIP", "Compression", "SMB"])),
            vm=draw(st.integers(1, 3)), storage=draw(st.integers(1, 3)),
            any_network=mode == "any", networks=nets if mode == "list" else (),
        ))
    accounts = []
    for name in names:
        if draw(st.integers(0, 9)) == 0:
            continue  # computer account missing
        values: list[str] = []
        for target in names:
            if target == name:
                continue
            for service in (MIGRATION, "cifs"):
                for form in (target, f"{target.lower()}.{DOMAIN}"):
                    if draw(st.integers(0, 3)) > 0:
                        shown = draw(st.sampled_from([form, form.upper()]))
                        values.append(f"{service}/{shown}")
        values += draw(st.lists(st.sampled_from(["MSSQLSvc/sql01.lab.example:1433",
                                                 "cifs/files01", "HTTP/web"]), unique=True))
        accounts.append(account(name, values, transition=draw(st.booleans())))
    return states, accounts


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fleets())
def test_export_then_plan_reports_no_change(fleet: tuple[list[HostState],
                                                        list[DelegationState]]) -> None:
    states, accounts = fleet
    doc = inventory([s.name for s in states])
    manifest = load(doc)
    exported, plan = export_and_plan(doc, observe(states, accounts, manifest))
    assert plan.changes == (), [c.address for c in plan.changes]
    for group in exported.get("groups", []):
        assert len(group["hosts"]) >= 2
