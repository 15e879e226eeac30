"""The planner, table-driven: tests/planner/*.yaml hold desired + observed -> expected changes.

Each case file:

    description: what it shows
    manifest:            # the manifest's own keys (defaults, hosts, groups, prune), built here
      domain: corp.example.com
      defaults: {migration: {...}, delegation: {...}}
      hosts: [{name: HV01, migration: {...}}]
      groups: [[HV01, HV02]]
      prune: false
    observed:
      hosts: {HV01: {enabled: false, ...}, HV02: {error: "..."}}   # unset fields: a fresh host
                                                # (also partOfDomain: bool, warnings: [...])
      directory: {HV01: {uac: 4096, values: [...]}}   # a manifest host not listed: account missing
    options: {hosts: [HV01], refresh_tickets: true}
    expect:
      changes: [{address: ..., action: ..., phase: ..., add: [...], ...}]   # in apply order
      findings: [{code: ..., subject: ..., severity: ...}]
      unread: [HV02]

Every case is also planned twice (equal plans), serialised (valid against the JSON Schema and
read back equal), and applied with `simulate`: planning again must find nothing to change.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hvlm.errors import HvlmError
from hvlm.hosts.commands import UnsafeHostChange, host_commands
from hvlm.model import (
    UAC_TRUSTED_FOR_DELEGATION,
    UAC_TRUSTED_TO_AUTH_FOR_DELEGATION,
    AuthenticationType,
    ConnectionSpec,
    DelegationService,
    DelegationSettings,
    DirectoryServer,
    DirectorySpec,
    Group,
    HostSpec,
    Manifest,
    MigrationNetwork,
    MigrationSettings,
    PerformanceOption,
    desired_delegation,
    manifest_names,
    owned_value,
)
from hvlm.plan import Action, Change, Phase, Plan, loads_plan, plan_to_document, stale_targets
from hvlm.planner import build_plan, current_fingerprints, settings_from_plan
from hvlm.render import FORMATS, render
from hvlm.state import (
    DelegationState,
    DirectoryState,
    HostFacts,
    HostState,
    MigrationState,
    ObservedNetwork,
)

ROOT = Path(__file__).resolve().parents[2]
CASES = sorted((ROOT / "tests" / "planner").glob("*.yaml"))
SCHEMA = json.loads((ROOT / "schemas" / "plan.v2.schema.json").read_text())
WORKSTATION_TRUST_ACCOUNT = 0x1000
MIGRATION_CLASS = "Microsoft Virtual System Migration Service"

# --- building the model and the observed state from a case -----------------------------------


def _migration(doc: Mapping[str, Any]) -> MigrationSettings:
    nets = doc.get("networks")
    networks = None if nets is None else tuple(
        MigrationNetwork(ipaddress.ip_network(n["subnet"]), n.get("priority")) for n in nets
    )
    auth, perf = doc.get("authentication"), doc.get("performance")
    return MigrationSettings(
        enabled=doc.get("enabled"),
        authentication=AuthenticationType(auth) if auth else None,
        performance=PerformanceOption(perf) if perf else None,
        max_virtual_machine_migrations=doc.get("maxVirtualMachineMigrations"),
        max_storage_migrations=doc.get("maxStorageMigrations"),
        # as hvlm.manifest resolves it: declaring networks means "only these networks"
        use_any_network=doc.get("useAnyNetwork", False if networks is not None else None),
        networks=networks,
    )


def _peers(hosts: list[str], groups: list[list[str]]) -> dict[str, list[str]]:
    peers: dict[str, list[str]] = {h.upper(): [] for h in hosts}
    for group in groups:
        for member in group:
            known = peers[member.upper()]
            known.extend(p for p in group if p.upper() != member.upper() and p not in known)
    return peers


def build_manifest(doc: Mapping[str, Any]) -> Manifest:
    domain = doc.get("domain", "corp.example.com")
    defaults = doc.get("defaults", {})
    groups = doc.get("groups", [])
    peers = _peers([h["name"] for h in doc["hosts"]], groups)
    hosts = []
    for host in doc["hosts"]:
        name = host["name"]
        fqdn = host.get("fqdn", f"{name.lower()}.{domain}")
        delegation = {**defaults.get("delegation", {}), **host.get("delegation", {})}
        services = delegation.get("services", ["migration", "cifs"])
        hosts.append(HostSpec(
            name=name,
            fqdn=fqdn,
            connection=ConnectionSpec(address=fqdn, port=5986),
            migration=_migration({**defaults.get("migration", {}), **host.get("migration", {})}),
            delegation=DelegationSettings(
                tuple(DelegationService(s) for s in services),
                delegation.get("protocolTransition", True),  # as hvlm.manifest resolves it
            ),
            peers=tuple(peers[name.upper()]),
        ))
    server = DirectoryServer(f"ldaps://dc1.{domain}", f"dc1.{domain}", 636, True)
    return Manifest(
        name=doc.get("name", "case"),
        hosts=tuple(hosts),
        groups=tuple(Group(f"g{i}", tuple(g)) for i, g in enumerate(groups)),
        directory=DirectorySpec(domain, (server,)),
        prune_delegation=doc.get("prune", False),
        source="case.yaml",
        digest="0" * 64,
    )


def build_host(name: str, doc: Mapping[str, Any]) -> HostState:
    return HostState(name, MigrationState(
        enabled=doc.get("enabled", False),
        authentication=AuthenticationType(doc.get("authentication", "CredSSP")),
        performance=PerformanceOption(doc.get("performance", "Compression")),
        max_virtual_machine_migrations=doc.get("maxVirtualMachineMigrations", 2),
        max_storage_migrations=doc.get("maxStorageMigrations", 2),
        use_any_network=doc.get("useAnyNetwork", False),
        networks=tuple(
            ObservedNetwork(ipaddress.ip_network(n["subnet"]), n.get("priority", 0))
            for n in doc.get("networks", [])
        ),
    ), facts=HostFacts(part_of_domain=doc.get("partOfDomain")),
        read_warnings=tuple(doc.get("warnings", [])))


def build_directory(manifest: Manifest, doc: Mapping[str, Any] | None) -> DirectoryState | None:
    if doc is None:
        return None
    accounts = []
    for name, account in doc.items():
        accounts.append(DelegationState(
            name=name,
            dn=f"CN={name},CN=Computers,DC=corp,DC=example,DC=com",
            sam_account_name=f"{name}$",
            dns_host_name=f"{name.lower()}.corp.example.com",
            service_principal_names=tuple(account.get("spns", [f"HOST/{name}"])),
            user_account_control=account.get("uac", WORKSTATION_TRUST_ACCOUNT),
            allowed_to_delegate_to=tuple(account.get("values", [])),
        ))
    listed = {name.upper() for name in doc}
    missing = tuple(h.name for h in manifest.hosts if h.key not in listed)
    return DirectoryState(tuple(accounts), missing, "dc1")


@dataclasses.dataclass(frozen=True)
class Case:
    manifest: Manifest
    hosts: dict[str, HostState]
    errors: dict[str, str]
    directory: DirectoryState | None
    selection: tuple[str, ...] | None
    refresh_tickets: bool

    def plan(self, hosts: Mapping[str, HostState] | None = None,
             directory: DirectoryState | None = None) -> Plan:
        return build_plan(
            self.manifest, self.hosts if hosts is None else hosts,
            self.directory if directory is None else directory,
            selection=self.selection, refresh_tickets=self.refresh_tickets,
            host_errors=self.errors,
        )


def load_case(doc: Mapping[str, Any]) -> Case:
    manifest = build_manifest(doc["manifest"])
    observed = doc.get("observed", {})
    hosts: dict[str, HostState] = {}
    errors: dict[str, str] = {}
    for name, host in (observed.get("hosts") or {}).items():
        if "error" in host:
            errors[name.upper()] = host["error"]
        else:
            hosts[name.upper()] = build_host(name, host)
    options = doc.get("options", {})
    return Case(manifest, hosts, errors, build_directory(manifest, observed.get("directory")),
                tuple(options["hosts"]) if "hosts" in options else None,
                options.get("refresh_tickets", False))


# --- simulate: what apply would leave behind, computed from the plan alone ----------------------

_ATTRS = {
    "enabled": "enabled",
    "authentication": "authentication",
    "performance": "performance",
    "maxVirtualMachineMigrations": "max_virtual_machine_migrations",
    "maxStorageMigrations": "max_storage_migrations",
    "useAnyNetwork": "use_any_network",
}


def _apply_settings(state: MigrationState, after: Mapping[str, Any]) -> MigrationState:
    values: dict[str, Any] = {}
    for name, value in after.items():
        if name == "authentication":
            value = AuthenticationType(value)
        elif name == "performance":
            value = PerformanceOption(value)
        values[_ATTRS[name]] = value
    return dataclasses.replace(state, **values)


def _apply_network(state: MigrationState, change: Change) -> MigrationState:
    subnet = ipaddress.ip_network(change.address.split("/", 3)[3])
    others = tuple(n for n in state.networks if n.subnet != subnet)
    if change.action is Action.DELETE:
        assert len(others) == len(state.networks) - 1, change.address
        return dataclasses.replace(state, networks=others)
    assert change.after is not None
    priority = change.after["priority"]
    assert priority is None or isinstance(priority, int)
    return dataclasses.replace(
        state, networks=(*others, ObservedNetwork(subnet, 7 if priority is None else priority))
    )


def _apply_account(account: DelegationState, change: Change) -> DelegationState:
    assert change.before is not None and change.after is not None
    if change.address.endswith("/protocolTransition"):
        assert change.before["userAccountControl"] == account.user_account_control
        uac = change.after["userAccountControl"]
        assert isinstance(uac, int)
        assert uac ^ account.user_account_control == UAC_TRUSTED_TO_AUTH_FOR_DELEGATION
        return dataclasses.replace(account, user_account_control=uac)
    values = list(account.allowed_to_delegate_to) + list(change.add)
    for value in change.delete:
        values.remove(value)  # a value the plan deletes must exist exactly as stored
    assert tuple(values) == change.after["allowedToDelegateTo"], change.address
    return dataclasses.replace(account, allowed_to_delegate_to=tuple(values))


def simulate(
    plan: Plan, hosts: Mapping[str, HostState], directory: DirectoryState | None
) -> tuple[dict[str, HostState], DirectoryState | None]:
    """The observed state after applying `plan` (each change from its own fields only)."""
    new_hosts = dict(hosts)
    accounts = {a.name.upper(): a for a in directory.accounts} if directory else {}
    for change in plan.changes:
        key = change.host.upper()
        if change.phase is Phase.HOST:
            state = new_hosts[key]
            if change.address.endswith("/migration"):
                assert change.after is not None
                migration = _apply_settings(state.migration, change.after)
            else:
                migration = _apply_network(state.migration, change)
            new_hosts[key] = dataclasses.replace(state, migration=migration)
        elif change.phase in (Phase.DIRECTORY_ADD, Phase.DIRECTORY_PRUNE):
            accounts[key] = _apply_account(accounts[key], change)
    if directory is None:
        return new_hosts, None
    return new_hosts, dataclasses.replace(directory, accounts=tuple(accounts.values()))


# --- the table --------------------------------------------------------------------------------


def _expected_subset(actual: Mapping[str, Any], expected: Mapping[str, Any]) -> dict[str, Any]:
    return {key: actual.get(key) for key in expected}


def _listed(fields: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if fields is None else {
        k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()}


def change_view(change: Change) -> dict[str, Any]:
    """A change as the cases write it: every field of the Change, values as lists (the plan file
    factors delegation values: tests/unit/test_plan_format.py tests that)."""
    return {"address": change.address, "phase": change.phase.value,
            "action": change.action.value, "host": change.host, "target": change.target,
            "reason": change.reason, "before": _listed(change.before),
            "after": _listed(change.after), "add": list(change.add),
            "delete": list(change.delete)}


def check_properties(case: Case, plan: Plan) -> None:
    """Deterministic, serialisable, convergent, and never unconstrained delegation."""
    assert case.plan() == plan
    document = plan_to_document(plan)
    jsonschema.Draft202012Validator(SCHEMA).validate(document)
    assert loads_plan(json.dumps(document)) == plan
    for fmt in FORMATS:
        assert "\x1b" not in render(plan, fmt)
    hosts, directory = simulate(plan, case.hosts, case.directory)
    replanned = case.plan(hosts, directory)
    assert replanned.changes == (), [c.address for c in replanned.changes]
    for change in plan.changes:
        if change.after and "userAccountControl" in change.after:
            assert change.before is not None
            uac_after = change.after["userAccountControl"]
            assert isinstance(uac_after, int)
            uac_before = change.before["userAccountControl"]
            assert isinstance(uac_before, int)
            before_bit = uac_before & UAC_TRUSTED_FOR_DELEGATION
            assert uac_after & UAC_TRUSTED_FOR_DELEGATION == before_bit
    phases = [c.phase.order for c in plan.changes]
    assert phases == sorted(phases)
    check_matches_host_commands(case, plan)


def check_matches_host_commands(case: Case, plan: Plan) -> None:
    """The plan's host changes are exactly what hvlm.hosts.commands will send: no step without a
    change, no change without a step, and a saved plan alone gives the same steps."""
    for spec in case.manifest.hosts:
        state = case.hosts.get(spec.key)
        if state is None or spec.name in plan.unread_hosts or (
                case.selection is not None and spec.key not in case.selection):
            continue
        changes = [c for c in plan.in_phase(Phase.HOST) if c.host == spec.name]
        from_plan = settings_from_plan(changes, state.migration)
        try:
            expected = host_commands(spec.migration, state.migration)
        except UnsafeHostChange:
            # (host_commands also refuses a host that is already stranded and left alone)
            assert not changes or any(f.code == "no-incoming-network" for f in plan.findings)
            with pytest.raises(UnsafeHostChange):
                host_commands(from_plan, state.migration)
            continue
        assert bool(expected) == bool(changes), (spec.name, expected, changes)
        assert host_commands(from_plan, state.migration) == expected
    assert len({c.address for c in plan.changes}) == len(plan.changes)


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_case(path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    case = load_case(doc)
    plan = case.plan()
    expect = doc["expect"]
    actual = [change_view(c) for c in plan.changes]
    assert [c["address"] for c in actual] == [e["address"] for e in expect["changes"]]
    got = [_expected_subset(c, e) for c, e in zip(actual, expect["changes"], strict=True)]
    assert got == expect["changes"]
    findings = {(f.code, f.subject, f.severity.value) for f in plan.findings}
    assert findings == {(f["code"], f["subject"], f["severity"]) for f in expect.get("findings", [])}
    assert list(plan.unread_hosts) == expect.get("unread", [])
    check_properties(case, plan)


def test_there_are_cases() -> None:
    assert len(CASES) >= 10


# --- targeted properties --------------------------------------------------------------------


def _two_hosts(prune: bool = False) -> Case:
    return load_case({
        "manifest": {
            "prune": prune,
            "defaults": {
                "migration": {"enabled": True, "authentication": "Kerberos",
                              "networks": [{"subnet": "192.168.10.0/24", "priority": 0}]},
                "delegation": {"protocolTransition": True},
            },
            "hosts": [{"name": "HV01"}, {"name": "HV02"}],
            "groups": [["HV01", "HV02"]],
        },
        "observed": {"hosts": {"HV01": {}, "HV02": {}}, "directory": {"HV01": {}, "HV02": {}}},
    })


def test_unknown_selection_is_an_error() -> None:
    case = _two_hosts()
    with pytest.raises(HvlmError, match="HV09"):
        build_plan(case.manifest, case.hosts, case.directory, selection=["hv09"])


def test_stale_targets_detects_an_out_of_band_change() -> None:
    case = _two_hosts()
    plan = case.plan()
    assert {t.address for t in plan.targets} == {
        "host/HV01", "host/HV02", "directory/HV01", "directory/HV02"
    }
    now = current_fingerprints(case.hosts, case.directory)
    assert stale_targets(plan, now) == ()
    changed = dict(case.hosts)
    changed["HV02"] = dataclasses.replace(
        changed["HV02"],
        migration=dataclasses.replace(changed["HV02"].migration, max_storage_migrations=5),
    )
    assert stale_targets(plan, current_fingerprints(changed, case.directory)) == ("host/HV02",)
    # only values' order changed: LDAP gives no order, the plan is not stale
    assert case.directory is not None
    reordered = dataclasses.replace(case.directory, accounts=tuple(reversed(case.directory.accounts)))
    assert stale_targets(plan, current_fingerprints(case.hosts, reordered)) == ()
    # a host that could not be read again is stale too
    assert stale_targets(plan, current_fingerprints({}, case.directory)) == (
        "host/HV01", "host/HV02"
    )


def _in_place(authentication: Mapping[str, str]) -> Case:
    """Two hosts whose delegation (both ways, protocol transition) is already in place; both get
    a setting changed (maxStorageMigrations 2 -> 4), and the hosts in CredSSP get Kerberos."""
    values = {n: [f"{service}/{form}" for service in (MIGRATION_CLASS, "cifs")
                  for form in (n, f"{n.lower()}.corp.example.com")] for n in ("HV01", "HV02")}
    uac = WORKSTATION_TRUST_ACCOUNT | UAC_TRUSTED_TO_AUTH_FOR_DELEGATION
    return load_case({
        "manifest": {
            "defaults": {"migration": {"authentication": "Kerberos", "maxStorageMigrations": 4},
                         "delegation": {"protocolTransition": True}},
            "hosts": [{"name": "HV01"}, {"name": "HV02"}], "groups": [["HV01", "HV02"]],
        },
        "observed": {
            "hosts": {n: {"authentication": a} for n, a in authentication.items()},
            "directory": {n: {"values": values["HV02" if n == "HV01" else "HV01"], "uac": uac,
                              "spns": [f"HOST/{n}", f"{MIGRATION_CLASS}/{n}"]}
                          for n in ("HV01", "HV02")},
        },
    })


def _shrunk_delegation(account: DelegationState) -> DelegationState:
    return dataclasses.replace(account, allowed_to_delegate_to=account.allowed_to_delegate_to[1:])


def _lost_migration_spn(account: DelegationState) -> DelegationState:
    return dataclasses.replace(account, service_principal_names=tuple(
        spn for spn in account.service_principal_names if not spn.startswith(MIGRATION_CLASS)))


@pytest.mark.parametrize(
    ("authentication", "directory_targets", "out_of_band", "stale"),
    [
        # both switched to Kerberos: the switch is safe only with the delegation as planned
        ({"HV01": "CredSSP", "HV02": "CredSSP"}, {"directory/HV01", "directory/HV02"},
         ("HV01", _shrunk_delegation), ("directory/HV01",)),
        # HV01 switched: its delegation names HV02's SPNs, so HV02's account is a target too
        ({"HV01": "CredSSP", "HV02": "Kerberos"}, {"directory/HV01", "directory/HV02"},
         ("HV02", _lost_migration_spn), ("directory/HV02",)),
        # already Kerberos, another setting changes: the plan does not depend on the accounts
        ({"HV01": "Kerberos", "HV02": "Kerberos"}, set(), ("HV01", _shrunk_delegation), ()),
    ],
)
def test_a_kerberos_switch_depends_on_its_account_and_its_peers(
    authentication: dict[str, str], directory_targets: set[str],
    out_of_band: tuple[str, Callable[[DelegationState], DelegationState]], stale: tuple[str, ...],
) -> None:
    case = _in_place(authentication)
    plan = case.plan()
    assert [c.address for c in plan.changes] == ["host/HV01/migration", "host/HV02/migration"]
    assert {t.address for t in plan.targets if t.address.startswith("directory/")} == \
        directory_targets
    assert case.directory is not None
    name, change = out_of_band  # between plan and apply
    accounts = tuple(change(a) if a.name == name else a for a in case.directory.accounts)
    directory = dataclasses.replace(case.directory, accounts=accounts)
    assert directory != case.directory
    assert stale_targets(plan, current_fingerprints(case.hosts, directory)) == stale


def test_fingerprint_ignores_order_but_not_content() -> None:
    case = _two_hosts()
    plan = case.plan()
    assert case.directory is not None
    account = case.directory.accounts[0]
    grown = dataclasses.replace(account, allowed_to_delegate_to=("cifs/other",))
    directory = dataclasses.replace(case.directory, accounts=(grown, case.directory.accounts[1]))
    assert stale_targets(plan, current_fingerprints(case.hosts, directory)) == ("directory/HV01",)


def test_manifest_host_names_compare_case_insensitively() -> None:
    case = _two_hosts()
    lower = {k.lower(): v for k, v in case.hosts.items()}
    plan = build_plan(case.manifest, lower, case.directory, selection=["hv01"],
                      host_errors={"hv02": "unreachable"})
    assert {c.host for c in plan.changes if c.phase is Phase.HOST} == {"HV01"}
    assert plan.selection == ("HV01",)
    assert plan.unread_hosts == ()  # HV02 is not selected: its error is not reported
    assert build_plan(case.manifest, lower, case.directory) == case.plan()


# --- hypothesis: random observed states converge in one plan ------------------------------------

SUBNETS = ["192.168.10.0/24", "10.1.0.0/16", "fd00:10::/64", "172.16.5.5/32"]
HOSTS = ["HV01", "HV02", "HV03"]
DOMAIN = "corp.example.com"


def _value_pool() -> list[str]:
    values = ["MSSQLSvc/sql01.corp.example.com:1433", "cifs/fileserver", "HTTP/web01",
              f"{MIGRATION_CLASS}/HV99", f"cifs/hv99.{DOMAIN}"]
    for host in HOSTS:
        for cls in (MIGRATION_CLASS, "cifs"):
            values += [f"{cls}/{host}", f"{cls}/{host.lower()}.{DOMAIN}"]
    return values


def _case_variant(value: str, upper: bool) -> str:
    return value.upper() if upper else value


network_docs = st.lists(
    st.fixed_dictionaries({"subnet": st.sampled_from(SUBNETS),
                           "priority": st.none() | st.integers(0, 3)}),
    max_size=3, unique_by=lambda n: n["subnet"],
)
migration_docs = st.fixed_dictionaries({}, optional={
    "enabled": st.booleans(),
    "authentication": st.sampled_from(["Kerberos", "CredSSP"]),
    "performance": st.sampled_from(["TCPIP", "Compression", "SMB"]),
    "maxVirtualMachineMigrations": st.integers(1, 4),
    "maxStorageMigrations": st.integers(1, 4),
    "networks": network_docs,
})
observed_host_docs = st.fixed_dictionaries({
    "enabled": st.booleans(),
    "authentication": st.sampled_from(["Kerberos", "CredSSP"]),
    "performance": st.sampled_from(["TCPIP", "Compression", "SMB"]),
    "maxVirtualMachineMigrations": st.integers(1, 4),
    "maxStorageMigrations": st.integers(1, 4),
    "useAnyNetwork": st.booleans(),
    "networks": st.lists(
        st.fixed_dictionaries({"subnet": st.sampled_from(SUBNETS), "priority": st.integers(0, 3)}),
        max_size=4, unique_by=lambda n: n["subnet"],
    ),
})
account_docs = st.fixed_dictionaries({
    "uac": st.sampled_from([0x1000, 0x1000 | 0x01000000, 0x1000 | 0x00080000]),
    "values": st.lists(
        st.builds(_case_variant, st.sampled_from(_value_pool()), st.booleans()), max_size=8
    ),
})


@st.composite
def random_cases(draw: st.DrawFn) -> dict[str, Any]:
    hosts = [{"name": h, "migration": draw(migration_docs)} for h in HOSTS]
    observed_hosts = {h: draw(st.one_of(observed_host_docs, st.just({"error": "timed out"})))
                      for h in HOSTS}
    present = draw(st.lists(st.sampled_from(HOSTS), unique=True))
    directory = {h: draw(account_docs) for h in present}
    selection = draw(st.none() | st.lists(st.sampled_from(HOSTS), min_size=1, unique=True))
    doc: dict[str, Any] = {
        "manifest": {
            "prune": draw(st.booleans()),
            "defaults": {"migration": draw(migration_docs),
                         "delegation": {"protocolTransition": draw(st.none() | st.booleans())}},
            "hosts": hosts,
            "groups": draw(st.sampled_from([[HOSTS], [HOSTS[:2]], [], [HOSTS[:2], HOSTS[1:]]])),
        },
        "observed": {"hosts": observed_hosts,
                     "directory": draw(st.none() | st.just(directory))},
        "options": {"refresh_tickets": draw(st.booleans())},
    }
    if selection is not None:
        doc["options"]["hosts"] = selection
    return doc


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_cases())
def test_random_observed_states_converge(doc: dict[str, Any]) -> None:
    case = load_case(doc)
    plan = case.plan()
    check_properties(case, plan)
    names = manifest_names(case.manifest)
    for change in plan.changes:
        assert all(owned_value(v, names) for v in change.delete)  # never an unrelated value
        if change.phase is Phase.HOST:
            assert change.host not in plan.unread_hosts
        if case.selection is not None and change.host.upper() not in case.selection:
            # an account outside the selection only gains or loses values toward selected hosts
            targets = {v.partition("/")[2].split(":")[0].split(".")[0].upper()
                       for v in change.add + change.delete}
            assert change.phase in (Phase.DIRECTORY_ADD, Phase.DIRECTORY_PRUNE), change.address
            assert targets and targets <= set(case.selection), change.address
        if change.phase is Phase.DIRECTORY_ADD and change.add:
            assert change.before is not None
            before = change.before["allowedToDelegateTo"]
            assert isinstance(before, tuple)
            have = {v.lower() for v in before}
            assert not any(v.lower() in have for v in change.add)  # no case-variant duplicate


def test_added_values_are_the_models_desired_delegation() -> None:
    """The planner builds each peer's values once; they must be exactly the model's."""
    case = load_case({
        "manifest": {
            "defaults": {"migration": {"authentication": "Kerberos"}},
            "hosts": [{"name": "HV01", "delegation": {"services": ["cifs"]}},
                      {"name": "HV02", "fqdn": "hv02.other.example"}, {"name": "HV03"}],
            "groups": [["HV01", "HV02", "HV03"], ["HV02", "HV03"]],
        },
        "observed": {"hosts": {}, "directory": {"HV01": {}, "HV02": {}, "HV03": {}}},
    })
    plan = case.plan()
    added = {c.host: c.add for c in plan.in_phase(Phase.DIRECTORY_ADD)
             if c.address.endswith("/allowedToDelegateTo")}
    index = {h.key: h for h in case.manifest.hosts}
    assert added == {
        spec.name: desired_delegation(spec, tuple(index[p.upper()] for p in spec.peers))
        for spec in case.manifest.hosts
    }


@pytest.mark.parametrize("stored", [
    [],  # nothing stored: every value, by service and name form, then peer
    ["cifs/hv02.CORP.example.com", "MSSQLSvc/sql01:1433"],  # a case variant stands for its value
    [f"cifs/HV0{i}" for i in (2, 3, 4)],
])
def test_added_values_are_listed_by_service_and_name_form_then_peer(stored: list[str]) -> None:
    """Also when some are stored already: the order the plan file states compactly."""
    case = load_case({
        "manifest": {
            "defaults": {"migration": {"authentication": "Kerberos"}},
            "hosts": [{"name": f"HV0{i}"} for i in (1, 2, 3, 4)],
            "groups": [["HV01", "HV02", "HV03", "HV04"]],
        },
        "observed": {"hosts": {}, "directory": {
            "HV01": {"values": stored}, "HV02": {}, "HV03": {}, "HV04": {}}},
    })
    (change,) = [c for c in case.plan().changes
                 if c.address == "directory/HV01/allowedToDelegateTo"]
    stored_keys = {v.lower() for v in stored}
    assert list(change.add) == [
        f"{service}/{name}" for service in (MIGRATION_CLASS, "cifs")
        for name in ("HV02", "HV03", "HV04", *(f"hv0{i}.corp.example.com" for i in (2, 3, 4)))
        if f"{service}/{name}".lower() not in stored_keys]


def test_example_manifest_plans_and_converges() -> None:
    """examples/prod-east.yaml through hvlm.manifest, against fresh hosts and accounts."""
    from hvlm.manifest import load_manifest

    manifest = load_manifest(ROOT / "examples" / "prod-east.yaml").manifest
    hosts = {h.key: build_host(h.name, {}) for h in manifest.hosts}
    directory = build_directory(manifest, {h.name: {} for h in manifest.hosts})
    case = Case(manifest, hosts, {}, directory, None, True)
    plan = case.plan()
    assert plan.summary() == (9, 9, 0)  # 3 accounts + 6 networks; 3 x (settings, PT, tickets)
    assert plan.manifest.digest == manifest.digest and plan.manifest.name == "prod-east"
    check_properties(case, plan)
