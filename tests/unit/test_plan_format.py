"""The plan file (format_version 2): schema-valid, round-trips (every Change equal to the one the
planner built), states each delegation value once, refuses what it does not know (format 1: one
line naming the file), holds only known fields; fingerprints for stale-plan detection.
"""

from __future__ import annotations

import copy
import dataclasses
import ipaddress
import json
import random
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from hvlm.errors import Diagnostic, PlanFileError, Severity
from hvlm.model import AuthenticationType, PerformanceOption
from hvlm.plan import (
    FORMAT_VERSION,
    Action,
    Change,
    Finding,
    GroupRef,
    ManifestRef,
    Phase,
    Plan,
    Target,
    account_fingerprint,
    dumps_plan,
    host_fingerprint,
    loads_plan,
    plan_to_document,
    stale_targets,
    target_key,
    value_runs,
)
from hvlm.state import DelegationState, MigrationState, ObservedNetwork

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "schemas" / "plan.v2.schema.json").read_text()
)
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def migration_state(**overrides: Any) -> MigrationState:
    fields: dict[str, Any] = dict(
        enabled=True, authentication=AuthenticationType.KERBEROS,
        performance=PerformanceOption.SMB, max_virtual_machine_migrations=2,
        max_storage_migrations=2, use_any_network=False,
        networks=(ObservedNetwork(ipaddress.ip_network("192.168.10.0/24"), 0),
                  ObservedNetwork(ipaddress.ip_network("fd00:10::/64"), 1)),
    )
    fields.update(overrides)
    return MigrationState(**fields)


def account(values: tuple[str, ...] = ("cifs/HV02", "MSSQLSvc/sql01:1433"),
            uac: int = 0x1000) -> DelegationState:
    return DelegationState("HV01", "CN=HV01,CN=Computers,DC=lab,DC=example", "HV01$",
                           "hv01.lab.example", ("HOST/HV01", "HOST/hv01.lab.example"), uac, values)


def full_plan() -> Plan:
    host_fp, account_fp = host_fingerprint(migration_state()), account_fingerprint(account())
    changes = (
        Change("directory/HV01/allowedToDelegateTo", Phase.DIRECTORY_ADD, Action.UPDATE, "HV01",
               "missing", {"allowedToDelegateTo": ("cifs/HV02",)},
               {"allowedToDelegateTo": ("cifs/HV02", "cifs/hv02.lab.example")},
               add=("cifs/hv02.lab.example",)),
        Change("directory/HV01/protocolTransition", Phase.DIRECTORY_ADD, Action.UPDATE, "HV01",
               "pt", {"protocolTransition": False, "userAccountControl": 4096},
               {"protocolTransition": True, "userAccountControl": 16781312}),
        Change("host/HV01/migration", Phase.HOST, Action.UPDATE, "HV01", "differs",
               {"enabled": False, "maxStorageMigrations": 2},
               {"enabled": True, "maxStorageMigrations": 4}),
        Change("host/HV01/network/fd00:10::/64", Phase.HOST, Action.CREATE, "HV01", "declared",
               None, {"subnet": "fd00:10::/64", "priority": None}),
        Change("host/HV01/network/10.0.0.0/8", Phase.HOST, Action.DELETE, "HV01", "undeclared",
               {"subnet": "10.0.0.0/8", "priority": 0}, None),
        Change("directory/HV01/allowedToDelegateTo/prune", Phase.DIRECTORY_PRUNE, Action.DELETE,
               "HV01", "prune", {"allowedToDelegateTo": ("cifs/HV02", "cifs/HV03")},
               {"allowedToDelegateTo": ("cifs/HV02",)}, delete=("cifs/HV03",)),
        Change("host/HV01/tickets", Phase.TICKETS, Action.UPDATE, "HV01", "refresh"),
    )
    return Plan(
        manifest=ManifestRef("prod-east", "examples/prod-east.yaml", "0" * 64),
        changes=changes,
        findings=(Finding(Severity.ERROR, "directory/HV01", "unconstrained-delegation", "m",
                          "fix", "evidence"),),
        targets=(Target("host/HV01", host_fp), Target("directory/HV01", account_fp)),
        unread_hosts=("HV02",),
        directory_read=True,
        selection=("HV01",),
        refresh_tickets=True,
        hvlm_version="0.1.0",
        fleet=("HV01", "HV02", "HV03"),
        groups=(GroupRef("rack-01", ("HV01", "HV02")), GroupRef("all", ("HV01", "HV02", "HV03"))),
        domain_controllers=(("HV01", "dc1.lab.example"), ("HV02", "dc2.lab.example")),
    )


def test_schema_is_valid_draft_2020_12() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_round_trip_and_schema() -> None:
    plan = full_plan()
    text = dumps_plan(plan)
    VALIDATOR.validate(json.loads(text))
    assert loads_plan(text) == plan
    assert loads_plan(text.encode()) == plan
    assert json.loads(text)["format_version"] == FORMAT_VERSION == 2


def test_document_holds_only_known_fields() -> None:
    document = plan_to_document(full_plan())
    assert set(document) == {
        "format_version", "hvlm_version", "manifest", "options", "summary", "fleet", "groups",
        "domain_controllers", "changes", "findings", "targets", "unread_hosts", "directory_read",
    }
    assert set(document["manifest"]) == {"name", "source", "digest"}
    assert document["summary"] == {"add": 1, "change": 4, "delete": 2}
    assert document["targets"] == {"host/HV01": host_fingerprint(migration_state()),
                                   "directory/HV01": account_fingerprint(account())}
    assert document["domain_controllers"] == {"HV01": "dc1.lab.example",
                                              "HV02": "dc2.lab.example"}
    assert document["groups"][0] == {"name": "rack-01", "hosts": ["HV01", "HV02"]}
    common = {"address", "phase", "action", "reason"}
    assert [set(change) for change in document["changes"]] == [
        common | {"kept", "add"}, common | {"before", "after"}, common | {"before", "after"},
        common | {"after"}, common | {"before"}, common | {"kept", "delete"}, common,
    ]


def test_each_delegation_value_is_stated_once() -> None:
    """before/after of a delegation change are derived from kept, add and delete on load."""
    document = plan_to_document(full_plan())
    added, pruned = document["changes"][0], document["changes"][5]
    assert added["kept"] == [["cifs/", ["HV02"], ""]]
    assert added["add"] == [["cifs/", ["hv02"], ".lab.example"]]
    assert pruned["kept"] == [["cifs/", ["HV02"], ""]]
    assert pruned["delete"] == [["cifs/", ["HV03"], ""]]
    changes = json.dumps(document["changes"])
    assert changes.count("hv02") == 1 and changes.count("HV03") == 1


def test_a_planners_change_round_trips_equal() -> None:
    """A change whose host is not its address's host is still read back as it was."""
    plan = full_plan()
    odd = Change("host/HV01/tickets", Phase.TICKETS, Action.UPDATE, "hv01", "case")
    again = loads_plan(dumps_plan(Plan(plan.manifest, (odd,))))
    assert again.changes == (odd,)
    assert plan_to_document(Plan(plan.manifest, (odd,)))["changes"][0]["host"] == "hv01"


@pytest.mark.parametrize(
    "values",
    [
        (),
        ("cifs/HV02", "cifs/HV03", "cifs/hv02.lab.example", "cifs/hv03.lab.example"),
        ("Microsoft Virtual System Migration Service/HV02", "cifs/HV02",
         "Microsoft Virtual System Migration Service/HV03"),  # interleaved: order is kept
        ("noslash", "no.slash.either", "/leading", "trailing/", "cifs/", "a/b/c.d/e", "x.y/z"),
        ("CIFS/hv02", "cifs/HV02", "cifs/hv02.LAB.example", "cifs/hv02.lab.example"),
        ("MSSQLSvc/sql01.lab.example:1433", "MSSQLSvc/sql01:1433", "", ".", "/", "//", "./."),
        ("http/ünïcode.例え.jp", "cifs/hv02.lab.example", "cifs/hv02.lab.example"),
        ("x.y/q.y/", "x.y/"),  # starts with the run's prefix, ends with its suffix: they overlap
    ],
)
def test_value_runs_are_lossless(values: tuple[str, ...]) -> None:
    runs = value_runs(values)
    assert tuple(p + m + s for p, middles, s in runs for m in middles) == values
    plan = Plan(ManifestRef("m"), (Change(
        "directory/HV01/allowedToDelegateTo", Phase.DIRECTORY_ADD, Action.UPDATE, "HV01", "r",
        {"allowedToDelegateTo": values}, {"allowedToDelegateTo": values + ("cifs/HV09",)},
        add=("cifs/HV09",)),))
    assert loads_plan(dumps_plan(plan)) == plan


def test_value_runs_are_lossless_for_random_values() -> None:
    """Runs continue only where the split is the same as a fresh value's: any list round-trips."""
    rng = random.Random(20)
    for _ in range(3000):
        values = tuple("".join(rng.choice("a./A") for _ in range(rng.randrange(6)))
                       for _ in range(rng.randrange(6)))
        runs = value_runs(values)
        assert tuple(p + m + s for p, middles, s in runs for m in middles) == values, values


def test_value_runs_group_by_service_and_name_form() -> None:
    values = [f"{service}/{name}" for service in ("Microsoft Virtual System Migration Service",
                                                  "cifs")
              for name in (*(f"HV{i:02d}" for i in range(16)),
                           *(f"hv{i:02d}.lab.example" for i in range(16)))]
    assert [(p, len(m), s) for p, m, s in value_runs(values)] == [
        ("Microsoft Virtual System Migration Service/", 16, ""),
        ("Microsoft Virtual System Migration Service/", 16, ".lab.example"),
        ("cifs/", 16, ""), ("cifs/", 16, ".lab.example"),
    ]


@pytest.mark.parametrize(
    ("before", "after", "add", "delete"),
    [
        (("b", "a"), ("a", "b", "c"), ("c",), ()),  # the planner appends what it adds
        (("a", "b"), ("a", "b", "d"), ("c",), ()),
        (("a", "b"), ("b",), (), ("a",)),  # the planner lists deleted values last
        (None, ("a",), ("a",), ()),
    ],
)
def test_a_delegation_change_that_is_not_kept_plus_add_is_refused(
    before: tuple[str, ...] | None, after: tuple[str, ...], add: tuple[str, ...],
    delete: tuple[str, ...],
) -> None:
    """The file derives before/after; it refuses to write a change it would read back different."""
    part = "allowedToDelegateTo/prune" if delete else "allowedToDelegateTo"
    change = Change(f"directory/HV01/{part}", Phase.DIRECTORY_ADD, Action.UPDATE, "HV01", "r",
                    None if before is None else {"allowedToDelegateTo": before},
                    {"allowedToDelegateTo": after}, add=add, delete=delete)
    with pytest.raises(ValueError, match="not kept \\+ delete and kept \\+ add"):
        dumps_plan(Plan(ManifestRef("m"), (change,)))


def test_a_format_1_file_is_refused_in_one_line() -> None:
    old = json.dumps({"format_version": 1, "changes": []})
    with pytest.raises(PlanFileError) as caught:
        loads_plan(old, "plan.json")
    assert str(caught.value) == ("plan file plan.json was made by an older hvlm (format 1): "
                                 "run hvlm plan again")


def _set(document: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    node: Any = document
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return document


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("format_version",), 1),
        (("password",), "hunter2"),
        (("changes", 0, "credentials"), "x"),
        (("changes", 0, "address"), "host/HV01/firewall"),
        (("changes", 0, "action"), "replace"),
        (("targets", "host/HV01"), "md5:abc"),
        (("targets",), {"host/HV01/migration": "sha256:" + "0" * 64}),
        (("fleet",), "HV01"),
        (("groups", 0, "hosts"), "HV01"),
        (("domain_controllers", "HV01"), 1),
        (("findings", 0, "severity"), "info"),
        # the shape of before/after follows the address
        (("changes", 0, "add"), []),
        (("changes", 0, "add"), [["cifs/", [], ""]]),
        (("changes", 0, "add"), [["cifs/", ["HV02"]]]),
        (("changes", 0, "before"), {"allowedToDelegateTo": []}),
        (("changes", 0, "delete"), [["cifs/", ["HV02"], ""]]),
        (("changes", 0, "phase"), "directory-prune"),
        (("changes", 1, "kept"), []),
        (("changes", 1, "after", "userAccountControl"), "0x1000"),
        (("changes", 2, "after", "password"), "x"),
        (("changes", 2, "after", "performance"), "SMBTransport"),
        (("changes", 3, "after", "priority"), -1),
        (("changes", 5, "action"), "update"),
        (("changes", 6, "before"), {"enabled": True}),
    ],
)
def test_schema_rejects_unknown_fields_and_versions(path: tuple[Any, ...], value: Any) -> None:
    document = plan_to_document(full_plan())
    assert VALIDATOR.is_valid(document)
    assert not VALIDATOR.is_valid(_set(copy.deepcopy(document), path, value))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not JSON"),
        ("[]", "expected an object"),
        ('{"format_version": 3}', "format_version 3 is not supported"),
        ('{"format_version": 1}', r"plan file was made by an older hvlm \(format 1\): run hvlm plan "
         "again"),
        ('{"format_version": true}', "format_version True is not supported"),
        ('{"format_version": "1"}', "format_version '1' is not supported"),
    ],
)
def test_unreadable_plan_files(text: str, message: str) -> None:
    with pytest.raises(PlanFileError, match=message):
        loads_plan(text)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("changes", 0, "phase"), "later", r"changes\[0\]\.phase: unknown value 'later'"),
        (("changes", 0, "action"), ["update"], r"changes\[0\]\.action: unknown value"),
        (("changes", 1, "address"), "host", r"changes\[1\]\.address: 'host' is not an address"),
        (("changes", 0, "add"), [1], r"changes\[0\]\.add\[0\]: expected \[prefix, \[values\], suffix\]"),
        (("changes", 0, "add"), "cifs/HV02", r"changes\[0\]\.add: expected a list of \[prefix"),
        (("changes", 0, "kept"), [["cifs/", [], ""]], r"changes\[0\]\.kept\[0\]: expected"),
        (("changes", 0, "kept"), None, r"changes\[0\]\.kept: expected a list"),
        (("changes", 0, "before"), {}, r"changes\[0\]\.before: not a field of this change"),
        (("changes", 1, "kept"), [], r"changes\[1\]\.kept: not a field of this change"),
        (("changes", 1, "host"), 1, r"changes\[1\]\.host: expected a string"),
        (("changes", 2, "after"), {"x": {"y": 1}}, r"changes\[2\]\.after\.x: unsupported value"),
        (("changes", 2, "after"), [], r"changes\[2\]\.after: expected an object"),
        (("targets",), [], "targets: expected an object"),
        (("targets",), {"host/HV01/migration": "x"},
         r"targets\['host/HV01/migration'\]: 'host/HV01/migration' is not a target"),
        (("targets",), {"hv01": "x"}, r"targets\['hv01'\]: 'hv01' is not an address"),
        (("targets", "host/HV01"), None, r"targets\['host/HV01'\]: expected a string"),
        (("fleet",), None, "fleet: expected a list of strings"),
        (("groups",), {}, "groups: expected a list"),
        (("groups", 1, "hosts"), [1], r"groups\[1\]\.hosts: expected a list of strings"),
        (("groups", 0, "name"), None, r"groups\[0\]\.name: expected a string"),
        (("domain_controllers",), [], "domain_controllers: expected an object"),
        (("domain_controllers",), {"a/b": "dc"}, r"domain_controllers\['a/b'\]: 'a/b' is not a "
         "host name"),
        (("domain_controllers", "HV01"), 1, r"domain_controllers\['HV01'\]: expected a string"),
        (("findings", 0, "severity"), "info", r"findings\[0\]\.severity: unknown value"),
        (("directory_read",), "yes", r"plan\.directory_read: expected true or false"),
        (("options", "hosts"), "HV01", "options.hosts: expected a list of strings"),
        (("manifest", "digest"), None, r"manifest\.digest: expected a string"),
    ],
)
def test_malformed_fields_are_located(path: tuple[Any, ...], value: Any, message: str) -> None:
    document = _set(plan_to_document(full_plan()), path, value)
    with pytest.raises(PlanFileError, match=message):
        loads_plan(json.dumps(document))


def test_host_fingerprint_ignores_network_order_only() -> None:
    state = migration_state()
    reordered = migration_state(networks=tuple(reversed(state.networks)))
    assert host_fingerprint(state) == host_fingerprint(reordered)
    assert host_fingerprint(state).startswith("sha256:") and len(host_fingerprint(state)) == 71
    for other in (
        migration_state(enabled=False),
        migration_state(authentication=AuthenticationType.CREDSSP),
        migration_state(performance=PerformanceOption.TCPIP),
        migration_state(max_virtual_machine_migrations=3),
        migration_state(max_storage_migrations=3),
        migration_state(use_any_network=True),
        migration_state(networks=state.networks[:1]),
        migration_state(networks=(ObservedNetwork(ipaddress.ip_network("192.168.10.0/24"), 5),
                                  state.networks[1])),
    ):
        assert host_fingerprint(other) != host_fingerprint(state)


def test_account_fingerprint_ignores_value_order_only() -> None:
    """Neither delegation values nor SPNs come in a fixed order; anything else counts."""
    base = account()
    assert account_fingerprint(base) == account_fingerprint(account(tuple(reversed(
        base.allowed_to_delegate_to))))
    assert account_fingerprint(base) != account_fingerprint(account(uac=0x01001000))
    assert account_fingerprint(base) != account_fingerprint(account(("cifs/HV02",)))
    # a case change is a change (what apply would delete must exist exactly)
    assert account_fingerprint(base) != account_fingerprint(
        account(("CIFS/HV02", "MSSQLSvc/sql01:1433")))
    # what delegation toward the account names: a Kerberos switch toward it depends on them
    assert account_fingerprint(base) != account_fingerprint(
        dataclasses.replace(base, service_principal_names=()))
    assert account_fingerprint(base) != account_fingerprint(
        dataclasses.replace(base, dns_host_name="hv01.other.example"))
    assert account_fingerprint(base) == account_fingerprint(dataclasses.replace(
        base, service_principal_names=("HOST/hv01.lab.example", "HOST/HV01")
    )) != account_fingerprint(dataclasses.replace(
        base, service_principal_names=("HOST/hv01.lab.example",)))


def test_stale_targets() -> None:
    plan = full_plan()
    fresh = {target_key("host/hv01"): host_fingerprint(migration_state()),
             target_key("directory/HV01"): account_fingerprint(account())}
    assert stale_targets(plan, fresh) == ()
    assert stale_targets(plan, {**fresh, "host/HV01": None}) == ("host/HV01",)
    moved = {**fresh, "directory/HV01": account_fingerprint(account(uac=0x01001000))}
    assert stale_targets(plan, moved) == ("directory/HV01",)
    assert stale_targets(plan, {}) == ("host/HV01", "directory/HV01")


def test_plan_equality_ignores_the_writer_version() -> None:
    plan = full_plan()
    assert Plan(**{**plan.__dict__, "hvlm_version": "9.9"}) == plan


def test_finding_from_a_validation_diagnostic() -> None:
    warning = Diagnostic(Severity.WARNING, "useAnyNetwork: true sends migration traffic "
                         "unencrypted on any network", "m.yaml", 12, 5, "defaults.migration")
    finding = Finding.from_diagnostic(warning)
    assert finding == Finding(Severity.WARNING, "m.yaml:12: defaults.migration", "manifest",
                              warning.message)


def test_change_target() -> None:
    assert full_plan().changes[3].target == "host/HV01"
    assert full_plan().changes[5].target == "directory/HV01"


def test_plan_planner_and_renderers_import_no_backend() -> None:
    """The layer rule: planning and rendering never pull in pypsrp, psrpcore, ldap3 or requests."""
    import subprocess
    import sys

    code = ("import sys, hvlm.plan, hvlm.planner, hvlm.render; "
            "print(sorted(m for m in ('pypsrp', 'psrpcore', 'ldap3', 'requests', 'spnego') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_hvlm_schema_plan_prints_the_format_2_schema() -> None:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "hvlm", "schema", "--plan"], capture_output=True,
                         text=True, check=True, timeout=120)
    assert json.loads(out.stdout) == SCHEMA
    assert SCHEMA["properties"]["format_version"] == {"const": FORMAT_VERSION}
