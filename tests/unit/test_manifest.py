"""Manifest loading and validation: table-driven, every error class located, no I/O."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from hvlm import model as m
from hvlm.errors import ManifestError, Severity
from hvlm.manifest import parse_manifest, schema_text

ROOT = Path(__file__).resolve().parents[2]

HEAD = """\
apiVersion: hvlm/v1
kind: LiveMigrationConfig
metadata: {name: t}
directory: {domain: lab.example, servers: ["ldaps://dc1.lab.example"]}
"""
HOSTS = """\
hosts:
  - name: HV01
  - name: HV02
"""


def errors_of(text: str | bytes) -> list[str]:
    raw = text.encode() if isinstance(text, str) else text
    with pytest.raises(ManifestError) as info:
        parse_manifest(raw, "m.yaml")
    return [str(d) for d in info.value.diagnostics if d.severity is Severity.ERROR]


INVALID = [
    # (id, document, expected located message fragment)
    ("syntax", HEAD + "hosts: [\n", "m.yaml:6:1: YAML syntax"),
    ("duplicate-key", HEAD + HOSTS + "hosts: []\n", "m.yaml:8:1: hosts: duplicate key 'hosts'"),
    ("not-utf8", b"apiVersion: \xff\n", "m.yaml:1:13: not valid UTF-8 (byte 0xff)"),
    ("binary", b"a: 1\n\x00\x01", "m.yaml:2:1: binary data"),
    ("not-mapping", "- a\n- b\n", "m.yaml:1:1: expected a mapping"),
    ("empty", "", "empty document"),
    (
        "api-version",
        HEAD.replace("hvlm/v1", "hvlm/v2") + HOSTS,
        "m.yaml:1:13: apiVersion: must be 'hvlm/v1', found 'hvlm/v2'",
    ),
    (
        "kind",
        HEAD.replace("LiveMigrationConfig", "Other") + HOSTS,
        "kind: must be 'LiveMigrationConfig'",
    ),
    (
        "unknown-field",
        HEAD + HOSTS + "grups: []\n",
        "m.yaml:8:1: grups: unknown field 'grups' (did you mean 'groups'?)",
    ),
    (
        "unknown-nested",
        HEAD + "hosts:\n  - name: HV01\n    migraton: {}\n",
        "m.yaml:7:5: hosts[0].migraton: unknown field 'migraton' (did you mean 'migration'?)",
    ),
    (
        "wrong-type",
        HEAD + HOSTS + "defaults: {migration: {maxStorageMigrations: two}}\n",
        "defaults.migration.maxStorageMigrations: must be an integer, found a string",
    ),
    (
        "out-of-range",
        HEAD + HOSTS + "defaults: {migration: {maxVirtualMachineMigrations: 0}}\n",
        "defaults.migration.maxVirtualMachineMigrations: 0 is out of range (minimum 1)",
    ),
    (
        "bool-not-int",
        HEAD + HOSTS + "defaults: {migration: {maxStorageMigrations: true}}\n",
        "must be an integer, found a boolean",
    ),
    (
        "enum",
        HEAD + HOSTS + "defaults: {migration: {performance: SMBTransport}}\n",
        "defaults.migration.performance: must be one of TCPIP | Compression | SMB; found 'SMBTransport'",
    ),
    (
        "subnet-garbage",
        HEAD + HOSTS + "defaults: {migration: {networks: [{subnet: nope}]}}\n",
        "defaults.migration.networks[0].subnet: 'nope' is not an IPv4 or IPv6 network",
    ),
    (
        "host-bits",
        HEAD + HOSTS + "defaults: {migration: {networks: [{subnet: 192.168.10.1/24}]}}\n",
        "'192.168.10.1/24' has host bits set: the network is 192.168.10.0/24",
    ),
    (
        "host-bits-v6",
        HEAD + HOSTS + "defaults: {migration: {networks: [{subnet: 'fd00::1/64'}]}}\n",
        "the network is fd00::/64",
    ),
    (
        "loopback",
        HEAD + HOSTS + "defaults: {migration: {networks: [{subnet: 127.0.0.0/8}]}}\n",
        "m.yaml:8:44: defaults.migration.networks[0].subnet: 127.0.0.0/8 is a loopback network: "
        "Hyper-V refuses it as a migration network",
    ),
    (
        "loopback-v6",
        HEAD + HOSTS + "defaults: {migration: {networks: [{subnet: '::1'}]}}\n",
        "::1/128 is a loopback network",
    ),
    (
        "link-local",
        HEAD + HOSTS + "defaults: {migration: {networks: [{subnet: 169.254.0.0/16}]}}\n",
        "169.254.0.0/16 is a link-local (APIPA, 169.254.0.0/16) network: Hyper-V refuses it",
    ),
    (
        "link-local-part",
        HEAD + "hosts:\n  - name: HV02\n    migration: {networks: [{subnet: 169.254.7.0/24}]}\n",
        "169.254.7.0/24 is a link-local (APIPA",
    ),
    (
        "duplicate-subnet",
        HEAD
        + HOSTS
        + "defaults: {migration: {networks: [{subnet: 10.0.0.5}, {subnet: 10.0.0.5/32}]}}\n",
        "networks[1].subnet: duplicate subnet 10.0.0.5/32 (same as networks[0])",
    ),
    (
        "any-and-networks",
        HEAD
        + HOSTS
        + "defaults: {migration: {useAnyNetwork: true, networks: [{subnet: 10.0.0.0/8}]}}\n",
        "useAnyNetwork: true and a networks list exclude each other",
    ),
    (
        "enabled-no-network",
        HEAD + HOSTS + "defaults: {migration: {enabled: true, networks: []}}\n",
        "migration enabled with no network",
    ),
    (
        "duplicate-host",
        HEAD + "hosts:\n  - name: HV01\n  - name: hv01\n",
        "m.yaml:7:11: hosts[1].name: duplicate host 'hv01' (also hosts[0]; names are case-insensitive)",
    ),
    (
        "group-unknown-host",
        HEAD + HOSTS + "groups: [{name: g, hosts: [HV01, HV9]}]\n",
        "groups[0].hosts[1]: unknown host 'HV9' (not in hosts)",
    ),
    (
        "netbios-too-long",
        HEAD + "hosts:\n  - name: HYPERVHOST012345\n",
        "must be 1 to 15 characters",
    ),
    (
        "netbios-chars",
        HEAD + "hosts:\n  - name: 'HV01;Stop-VM'\n",
        "characters a NetBIOS name cannot hold",
    ),
    (
        "netbios-ldap",
        HEAD + "hosts:\n  - name: 'HV*)(cn=*'\n",
        "characters a NetBIOS name cannot hold",
    ),
    (
        "fqdn",
        HEAD + "hosts:\n  - name: HV01\n    fqdn: 'hv01.lab.example; calc'\n",
        "is not a valid DNS name",
    ),
    ("address", HEAD + "hosts:\n  - name: HV01\n    address: 'a b:99999'\n", "hosts[0].address"),
    (
        "kerberos-no-directory",
        "apiVersion: hvlm/v1\nkind: LiveMigrationConfig\nmetadata: {name: t}\n"
        + HOSTS
        + "defaults: {migration: {authentication: Kerberos}}\n",
        "uses Kerberos but the manifest has no directory",
    ),
    (
        "secret",
        HEAD + "hosts:\n  - name: HV01\n    connection: {password: hunter2}\n",
        "hosts[0].connection.password: literal secret in the manifest",
    ),
    (
        "alias-bomb",
        "a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
        "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
        "e: [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\n",
        "alias bomb",
    ),
    ("deep", "a: " + "[" * 5000 + "\n", "nesting deeper than 32 levels"),
    ("huge", "a: '" + "x" * (2 * 1024 * 1024) + "'\n", "the limit is 1048576"),
    ("python-tag", "!!python/object/apply:os.system ['echo pwned']\n", "unsupported YAML tag"),
    ("python-scalar-tag", "a: !!python/name:os.system x\n", "could not determine a constructor"),
    ("non-string-key", HEAD + HOSTS + "? [a]\n: 1\n", "mapping keys must be strings"),
]


@pytest.mark.parametrize("case,document,expected", INVALID, ids=[c[0] for c in INVALID])
def test_invalid_manifests_give_a_located_message(case: str, document: str, expected: str) -> None:
    messages = errors_of(document)
    assert any(expected in line for line in messages), messages
    assert all("\n" not in line for line in messages)


def test_all_problems_are_reported_together() -> None:
    doc = HEAD + (
        "hosts:\n  - {name: HV01, migraton: {}}\n  - {name: 'A;B'}\n  - {name: hv01}\n"
        "defaults: {migration: {networks: [{subnet: 10.0.0.1/8}]}}\n"
    )
    messages = errors_of(doc)
    assert len(messages) == 4, messages


def test_secret_values_are_never_echoed() -> None:
    messages = errors_of(HEAD + "hosts:\n  - name: HV01\n    connection: {password: hunter2}\n")
    assert not any("hunter2" in line for line in messages)


def test_warnings_for_any_network_and_credssp() -> None:
    doc = HEAD + HOSTS + "defaults: {migration: {useAnyNetwork: true, authentication: CredSSP}}\n"
    result = parse_manifest(doc.encode(), "m.yaml")
    texts = [str(w) for w in result.warnings]
    assert any("not encrypted" in t for t in texts)
    assert any("Windows Server 2025" in t for t in texts)


def test_protocol_transition_defaults_on_and_false_is_warned() -> None:
    on = parse_manifest((HEAD + HOSTS).encode(), "m.yaml")
    assert all(h.delegation.protocol_transition is True for h in on.manifest.hosts)
    doc = HEAD + HOSTS + "defaults: {delegation: {protocolTransition: false}}\n"
    off = parse_manifest(doc.encode(), "m.yaml")
    assert off.manifest.hosts[0].delegation.protocol_transition is False
    (warning,) = [str(w) for w in off.warnings]
    assert "defaults.delegation.protocolTransition" in warning and "0x8009030E" in warning


def test_listed_networks_mean_these_networks_only() -> None:
    doc = HEAD + HOSTS + "defaults: {migration: {networks: [{subnet: 10.1.0.0/16}]}}\n"
    result = parse_manifest(doc.encode(), "m.yaml")
    migration = result.manifest.hosts[0].migration
    assert migration.use_any_network is False
    assert [n.priority for n in migration.networks or ()] == [None]


def test_examples_validate_against_the_published_schema() -> None:
    schema = json.loads(schema_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        if isinstance(data, dict) and data.get("kind") == "LiveMigrationConfig":
            jsonschema.validate(data, schema, cls=jsonschema.Draft202012Validator)
            parse_manifest(path.read_bytes(), str(path))


# --- resolution -------------------------------------------------------------------------------

FULL = (
    HEAD
    + """\
connection: {transport: https, auth: basic, certValidation: /ca.pem}
defaults:
  migration:
    enabled: true
    authentication: Kerberos
    maxVirtualMachineMigrations: 2
    networks: [{subnet: 192.168.10.0/24, priority: 0}, {subnet: 10.1.1.7}]
  delegation: {services: [migration, cifs], protocolTransition: true}
hosts:
  - name: HV01
  - name: HV02
    fqdn: hyperv02.corp.example
    address: "127.0.0.1:15986"
    migration: {maxVirtualMachineMigrations: 4, useAnyNetwork: true}
  - name: HV03
    migration: {authentication: CredSSP}
  - name: HV04
groups:
  - {name: a, hosts: [HV01, HV02, HV03]}
  - {name: b, hosts: [hv03, HV04]}
"""
)


@pytest.fixture(scope="module")
def full() -> m.Manifest:
    return parse_manifest(FULL.encode(), "full.yaml").manifest


def test_effective_settings_merge_defaults_and_overrides(full: m.Manifest) -> None:
    hv01, hv02 = full.host("HV01"), full.host("hv02")
    assert hv01.migration.max_virtual_machine_migrations == 2
    assert hv02.migration.max_virtual_machine_migrations == 4
    assert hv01.migration.networks == (
        m.MigrationNetwork(ipaddress.ip_network("192.168.10.0/24"), 0),
        m.MigrationNetwork(ipaddress.ip_network("10.1.1.7/32"), None),
    )
    assert hv01.migration.use_any_network is False
    assert hv02.migration.use_any_network is True and hv02.migration.networks is None
    assert hv01.migration.performance is None  # not declared: not managed


def test_connection_defaults_and_overrides(full: m.Manifest) -> None:
    hv01, hv02 = full.host("HV01"), full.host("HV02")
    assert (hv01.connection.address, hv01.connection.port) == ("hv01.lab.example", 5986)
    assert hv01.connection.url == "https://hv01.lab.example:5986/wsman"
    assert (hv02.connection.address, hv02.connection.port) == ("127.0.0.1", 15986)
    assert (
        hv02.connection.auth is m.WinRMAuth.BASIC and hv02.connection.cert_validation == "/ca.pem"
    )
    assert full.directory is not None and full.directory.base_dn == "DC=lab,DC=example"
    assert full.directory.servers[0].port == 636 and full.directory.servers[0].use_ssl


def test_peers_come_from_groups(full: m.Manifest) -> None:
    assert full.host("HV01").peers == ("HV02", "HV03")
    assert full.host("HV03").peers == ("HV01", "HV02", "HV04")
    assert full.host("HV04").peers == ("HV03",)


def test_desired_delegation_both_name_forms_kerberos_only(full: m.Manifest) -> None:
    hv01 = full.host("HV01")
    values = m.desired_delegation(hv01, full.peers_of(hv01))
    assert values == (
        "Microsoft Virtual System Migration Service/HV02",
        "Microsoft Virtual System Migration Service/HV03",
        "Microsoft Virtual System Migration Service/hyperv02.corp.example",
        "Microsoft Virtual System Migration Service/hv03.lab.example",
        "cifs/HV02",
        "cifs/HV03",
        "cifs/hyperv02.corp.example",
        "cifs/hv03.lab.example",
    )
    hv03 = full.host("HV03")  # CredSSP: no delegation wanted
    assert m.desired_delegation(hv03, full.peers_of(hv03)) == ()


@pytest.mark.parametrize(
    "value,owned",
    [
        ("Microsoft Virtual System Migration Service/HV02", True),
        ("microsoft virtual system migration service/HYPERV02.corp.EXAMPLE", True),
        ("CIFS/hv04.lab.example", True),
        ("cifs/fileserver01.lab.example", False),  # not a host of the manifest
        ("MSSQLSvc/sql01.lab.example:1433", False),  # another service class
        ("HOST/HV02", False),
        ("garbage", False),
    ],
)
def test_ownership_of_delegation_values(full: m.Manifest, value: str, owned: bool) -> None:
    assert m.owned_value(value, m.manifest_names(full)) is owned
