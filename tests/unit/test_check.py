"""Preflight findings, table-driven: a manifest + observed states -> exactly the expected findings.

Every case starts from CLEAN (three Windows Server 2022 hosts in lab.example, Kerberos, one
migration subnet every host owns an address in, delegation both ways with both name forms and
both services, protocol transition, VMs at 10.0) and changes what it needs:

    manifest:   replaces keys of the clean manifest document (parsed by hvlm.manifest)
    hosts:      {HV01: {field: value}} merged over the clean observed host; {error: "..."} = unread
    accounts:   {HV01: {field: value}} merged over the clean account; {missing: true}
                (spns: the account's servicePrincipalName, default the SPNs a Hyper-V host registers;
                dns: its dNSHostName)
    holders:    {OTHER$: [spn, ...]} other accounts the fleet's SPN search finds
    directory:  null = the directory could not be read
    mode:       live (default) | planned
    expect:     [[severity, subject, code], ...] (exactly these, any order)
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml

from hvlm.check import PLANNER_CODES, Mode, check_fleet, has_errors
from hvlm.errors import Severity
from hvlm.manifest import parse_manifest
from hvlm.model import UAC_TRUSTED_FOR_DELEGATION, UAC_TRUSTED_TO_AUTH_FOR_DELEGATION, Manifest
from hvlm.plan import Finding
from hvlm.render import findings_document, render_findings
from hvlm.state import (
    MIGRATION_FIREWALL_RULE,
    DelegationState,
    DeviceGuard,
    DirectoryState,
    FirewallRule,
    HostFacts,
    HostState,
    MigrationState,
    ObservedNetwork,
    SpnHolder,
    VirtualMachine,
)

MIGRATION = "Microsoft Virtual System Migration Service"
WORKSTATION = 0x1000
V2022 = ["8.0", "9.0", "10.0"]
V2025 = ["8.0", "9.0", "10.0", "11.0", "12.0"]

CLEAN_MANIFEST: dict[str, Any] = {
    "apiVersion": "hvlm/v1",
    "kind": "LiveMigrationConfig",
    "metadata": {"name": "check"},
    "directory": {"domain": "lab.example", "servers": ["ldaps://dc1.lab.example"]},
    "defaults": {
        "migration": {
            "enabled": True, "authentication": "Kerberos", "performance": "Compression",
            "networks": [{"subnet": "192.168.10.0/24", "priority": 0}],
        },
        "delegation": {"services": ["migration", "cifs"], "protocolTransition": True},
    },
    "hosts": [{"name": "HV01"}, {"name": "HV02"}, {"name": "HV03"}],
    "groups": [{"name": "all", "hosts": ["HV01", "HV02", "HV03"]}],
}


def clean_host(index: int) -> dict[str, Any]:
    return {
        "enabled": True, "authentication": "Kerberos", "useAnyNetwork": False,
        "networks": ["192.168.10.0/24"], "part_of_domain": True, "domain": "lab.example",
        "os_build": "20348", "os_caption": "Microsoft Windows Server 2022 Datacenter",
        "hyperv": True, "addresses": [f"192.168.10.{10 + index}/24", "127.0.0.1/8"],
        "vms": [[f"vm{index}", "10.0"]], "supported": V2022, "warnings": [],
        "guard": {"configured": [], "running": []}, "guard_error": "", "firewall": "enabled",
    }


def clean_account(manifest: Manifest, name: str) -> dict[str, Any]:
    spec = manifest.host(name)
    return {"uac": WORKSTATION | UAC_TRUSTED_TO_AUTH_FOR_DELEGATION, "to": list(spec.peers),
            "forms": ["short", "fqdn"], "services": ["migration", "cifs"], "extra": [],
            "spns": hyperv_spns(spec.name, spec.fqdn), "dns": spec.fqdn}


def hyperv_spns(name: str, fqdn: str) -> list[str]:
    """What a Hyper-V host's computer account holds (HOST/ serves cifs/)."""
    return [f"HOST/{name}", f"HOST/{fqdn}", f"{MIGRATION}/{name}", f"{MIGRATION}/{fqdn}"]


CASES = yaml.safe_load(r"""
- id: clean-fleet
  expect: []

- id: hyperv-role-missing
  hosts: {HV02: {hyperv: false}}
  expect: [[error, host/HV02, hyperv-role-missing]]

- id: hyperv-module-missing-fails-the-read
  hosts: {HV02: {error: "HV02: read (Get-VMHost): The term 'Get-VMHost' is not recognized as the
                         name of a cmdlet, function, script file, or operable program."}}
  expect: [[error, host/HV02, hyperv-role-missing]]

- id: role-unknown-is-not-a-finding
  hosts: {HV02: {hyperv: null}}
  expect: []

- id: not-domain-joined
  hosts: {HV03: {part_of_domain: false, domain: WORKGROUP}}
  expect: [[error, host/HV03, not-domain-joined]]

- id: other-domain-kerberos-pair
  hosts: {HV03: {domain: other.example}}
  expect:
    - [warning, host/HV03, outside-directory-domain]
    - [error, HV01<->HV03, domain-mismatch]
    - [error, HV02<->HV03, domain-mismatch]

- id: other-domain-credssp-pair-is-a-warning
  manifest: {hosts: [{name: HV01}, {name: HV02}], groups: [{name: g, hosts: [HV01, HV02]}]}
  hosts:
    HV01: {authentication: CredSSP, domain: a.lab.example}
    HV02: {authentication: CredSSP, domain: b.lab.example}
  expect:
    - [warning, host/HV01, outside-directory-domain]
    - [warning, host/HV02, outside-directory-domain]
    - [warning, HV01<->HV02, domain-mismatch]

- id: authentication-differs
  hosts: {HV02: {authentication: CredSSP}}
  expect:
    - [error, HV01<->HV02, authentication-mismatch]
    - [error, HV02<->HV03, authentication-mismatch]

- id: all-credssp-on-2022-is-clean
  hosts: {HV01: {authentication: CredSSP}, HV02: {authentication: CredSSP},
          HV03: {authentication: CredSSP}}
  accounts: {HV01: {to: []}, HV02: {to: []}, HV03: {to: []}}
  expect: []

- id: delegation-one-way-only
  accounts: {HV01: {to: [HV03]}}
  expect: [[error, HV01->HV02, delegation-missing]]

- id: delegation-either-name-form-counts
  accounts: {HV01: {forms: [fqdn]}, HV02: {forms: [short]}}
  expect: []

- id: delegation-compared-case-insensitively
  accounts:
    HV01: {to: [], extra: ["microsoft virtual system migration service/hv02",
                           "CIFS/HV02.LAB.EXAMPLE",
                           "Microsoft Virtual System Migration Service/HV03", "cifs/hv03"]}
  expect: []

- id: cifs-missing-is-a-storage-warning
  accounts: {HV02: {services: [migration]}}
  expect:
    - [warning, HV02->HV01, storage-delegation-missing]
    - [warning, HV02->HV03, storage-delegation-missing]

- id: cifs-not-asked-for
  manifest: {defaults: {migration: {enabled: true, authentication: Kerberos,
                                    networks: [{subnet: 192.168.10.0/24}]},
                        delegation: {services: [migration], protocolTransition: true}}}
  accounts: {HV01: {services: [migration]}, HV02: {services: [migration]},
             HV03: {services: [migration]}}
  expect: []

- id: unrelated-values-do-not-count
  accounts: {HV03: {to: [], extra: ["MSSQLSvc/sql01.lab.example:1433", "cifs/HV01"]}}
  expect:
    - [error, HV03->HV01, delegation-missing]
    - [error, HV03->HV02, delegation-missing]

- id: no-protocol-transition
  accounts: {HV02: {uac: 4096}}
  expect: [[error, directory/HV02, protocol-transition-missing]]  # required by the source document

- id: unconstrained-delegation
  accounts: {HV01: {uac: 0x1081000}}
  expect: [[error, directory/HV01, unconstrained-delegation]]

- id: credssp-on-2025-without-device-guard-is-a-guess
  manifest: {hosts: [{name: HV01}, {name: HV02}], groups: [{name: g, hosts: [HV01, HV02]}]}
  hosts:
    HV01: {authentication: CredSSP, os_build: "26100", guard: null, guard_error: Invalid class,
           os_caption: Microsoft Windows Server 2025 Datacenter, supported: [8.0, 10.0, 12.0]}
    HV02: {authentication: CredSSP}
  accounts: {HV01: {to: []}, HV02: {to: []}}
  expect: [[warning, host/HV01, credssp-on-server-2025]]

- id: credssp-on-2025-without-credential-guard-is-clean
  manifest: {hosts: [{name: HV01}, {name: HV02}], groups: [{name: g, hosts: [HV01, HV02]}]}
  hosts:
    HV01: {authentication: CredSSP, os_build: "26100", supported: [8.0, 10.0, 12.0]}
    HV02: {authentication: CredSSP}
  accounts: {HV01: {to: []}, HV02: {to: []}}
  expect: []

- id: credssp-with-credential-guard-running
  manifest: {hosts: [{name: HV01}, {name: HV02}], groups: [{name: g, hosts: [HV01, HV02]}]}
  hosts:
    HV01: {authentication: CredSSP, guard: {configured: [1, 2], running: [1, 2]}}
    HV02: {authentication: CredSSP}
  accounts: {HV01: {to: []}, HV02: {to: []}}
  expect: [[error, host/HV01, credssp-with-credential-guard]]

- id: credential-guard-configured-not-running
  manifest: {hosts: [{name: HV01}, {name: HV02}], groups: [{name: g, hosts: [HV01, HV02]}]}
  hosts:
    HV01: {authentication: CredSSP, guard: {configured: [1], running: []}}
    HV02: {authentication: CredSSP, guard: {configured: [2], running: [2]}}  # HVCI only
  accounts: {HV01: {to: []}, HV02: {to: []}}
  expect: [[warning, host/HV01, credential-guard-configured]]

- id: credential-guard-with-kerberos-is-clean
  hosts: {HV01: {guard: {configured: [1], running: [1]}}, HV02: {guard: null}}
  expect: []

- id: migration-firewall-disabled
  hosts: {HV02: {firewall: disabled}}
  expect: [[error, host/HV02, migration-firewall-closed]]

- id: migration-firewall-missing
  hosts: {HV03: {firewall: missing}}
  expect: [[error, host/HV03, migration-firewall-closed]]

- id: migration-firewall-unknown-or-not-receiving-is-not-judged
  manifest: {groups: [{name: g, hosts: [HV01, HV02]}]}
  hosts: {HV01: {firewall: null}, HV03: {firewall: disabled}}
  accounts: {HV03: {to: []}}
  expect: []

- id: migration-firewall-of-a-disabled-host-is-not-judged
  hosts: {HV01: {enabled: false, firewall: disabled}}
  expect: [[warning, host/HV01, migration-disabled]]

- id: migration-spn-missing
  accounts: {HV02: {spns: [HOST/HV02, HOST/hv02.lab.example,
                           "Microsoft Virtual System Migration Service/hv02.lab.example"]}}
  expect: [[error, directory/HV02, migration-spn-missing]]

- id: migration-spn-compared-case-insensitively
  accounts: {HV02: {spns: [host/hv02, HOST/HV02.LAB.EXAMPLE,
                           "microsoft virtual system migration service/hv02",
                           "MICROSOFT VIRTUAL SYSTEM MIGRATION SERVICE/HV02.LAB.EXAMPLE"]}}
  expect: []

- id: cifs-spn-missing
  accounts: {HV03: {spns: [HOST/HV03, "Microsoft Virtual System Migration Service/HV03",
                           "Microsoft Virtual System Migration Service/hv03.lab.example"]}}
  expect: [[warning, directory/HV03, cifs-spn-missing]]

- id: cifs-spn-counts-as-well-as-host
  accounts: {HV03: {spns: [cifs/HV03, cifs/hv03.lab.example,
                           "Microsoft Virtual System Migration Service/HV03",
                           "Microsoft Virtual System Migration Service/hv03.lab.example"]}}
  expect: []

- id: spns-of-a-host-without-peers-are-not-required
  manifest: {groups: [{name: g, hosts: [HV01, HV02]}]}
  accounts: {HV03: {to: [], spns: []}}
  expect: []

- id: spn-duplicate
  holders: {HV03$: ["Microsoft Virtual System Migration Service/HV02"]}
  expect: [[error, directory/HV02, spn-duplicate]]

- id: spn-duplicate-of-an-account-outside-the-fleet
  holders: {SQL01$: [cifs/hv01.lab.example]}
  expect: [[error, directory/HV01, spn-duplicate]]

- id: dnshostname-mismatch
  accounts: {HV01: {dns: hv01.other.example}}
  expect: [[warning, directory/HV01, dnshostname-mismatch]]

- id: kerberos-on-2025-is-clean
  hosts: {HV01: {os_build: "26100", supported: [8.0, 9.0, 10.0, 11.0, 12.0]}}
  expect: []

- id: subnet-without-address
  hosts: {HV02: {addresses: ["10.0.0.12/24"]}}
  expect: [[error, host/HV02, network-without-address]]

- id: one-of-two-subnets-without-address-is-a-warning
  manifest: {defaults: {migration: {enabled: true, authentication: Kerberos,
                                    networks: [{subnet: 192.168.10.0/24}, {subnet: 10.9.0.0/16}]},
                        delegation: {protocolTransition: true}}}
  hosts:
    HV01: {networks: [192.168.10.0/24, 10.9.0.0/16], addresses: [192.168.10.11/24, 10.9.1.1/16]}
    HV02: {networks: [192.168.10.0/24, 10.9.0.0/16], addresses: [192.168.10.12/24, 10.9.1.2/16]}
    HV03: {networks: [192.168.10.0/24, 10.9.0.0/16]}
  expect: [[warning, host/HV03, network-without-address]]

- id: addresses-unknown-is-not-judged
  hosts: {HV02: {addresses: []}}
  expect: []

- id: vm-version-a-peer-cannot-run
  hosts:
    HV01: {os_build: "26100", supported: [8.0, 9.0, 10.0, 11.0, 12.0],
           vms: [[web, "12.0"], [db, "10.0"], [old, "11.0"]]}
  expect:
    - [error, HV01->HV02, vm-version-unsupported]
    - [error, HV01->HV03, vm-version-unsupported]

- id: vm-version-without-trailing-zero
  hosts: {HV01: {vms: [[web, "10"]]}}
  expect: []

- id: any-network
  hosts: {HV03: {useAnyNetwork: true, networks: []}}
  expect: [[warning, host/HV03, any-network]]

- id: enabled-without-network
  hosts: {HV03: {networks: []}}
  expect: [[error, host/HV03, no-incoming-network]]

- id: migration-disabled
  hosts: {HV01: {enabled: false}}
  expect: [[warning, host/HV01, migration-disabled]]

- id: computer-account-missing
  accounts: {HV03: {missing: true}}
  expect: [[error, directory/HV03, computer-account-missing]]

- id: credssp-computer-account-missing-is-a-warning
  manifest: {hosts: [{name: HV01}, {name: HV02}], groups: [{name: g, hosts: [HV01, HV02]}]}
  hosts: {HV01: {authentication: CredSSP}, HV02: {authentication: CredSSP}}
  accounts: {HV01: {missing: true}, HV02: {to: []}}
  expect: [[warning, directory/HV01, computer-account-missing]]

- id: host-unread
  hosts: {HV02: {error: "HV02: open: connection refused"}}
  expect: [[error, host/HV02, host-unread]]

- id: read-warning
  hosts: {HV01: {warnings: ["Get-WindowsFeature: not recognized"]}}
  expect: [[warning, host/HV01, host-read-warning]]

- id: directory-unread
  directory: null
  expect: [[error, directory, directory-unread]]

- id: hosts-without-peers-have-no-pair-findings
  manifest: {groups: []}
  hosts: {HV02: {authentication: CredSSP}}
  accounts: {HV01: {to: []}, HV02: {to: []}, HV03: {to: []}}
  expect: []

- id: several-problems-at-once
  hosts:
    HV01: {hyperv: false, useAnyNetwork: true, networks: []}
    HV02: {error: timeout}
  accounts: {HV01: {uac: 0x81000}, HV03: {to: [HV02]}}
  expect:
    - [error, host/HV01, hyperv-role-missing]
    - [warning, host/HV01, any-network]
    - [error, directory/HV01, unconstrained-delegation]
    - [error, directory/HV01, protocol-transition-missing]
    - [error, host/HV02, host-unread]
    - [error, HV03->HV01, delegation-missing]

- id: planned-a-fresh-fleet-the-manifest-fixes
  mode: planned
  hosts:
    HV01: {enabled: false, authentication: CredSSP, networks: []}
    HV02: {enabled: false, authentication: CredSSP, networks: []}
    HV03: {enabled: false, authentication: CredSSP, networks: [],
           addresses: [10.0.0.13/24], hyperv: false}
  accounts: {HV01: {to: [], uac: 4096}, HV02: {to: [], uac: 4096}, HV03: {missing: true}}
  expect:
    - [error, host/HV03, network-without-address]
    - [error, host/HV03, hyperv-role-missing]

- id: planned-credssp-on-2025-from-the-manifest
  mode: planned
  manifest: {hosts: [{name: HV01}, {name: HV02, migration: {authentication: CredSSP}}],
             groups: [{name: g, hosts: [HV01, HV02]}]}
  hosts: {HV02: {os_build: "26100", guard: {configured: [1], running: [1]}}}
  accounts: {HV01: {to: []}, HV02: {to: []}}
  expect:
    - [error, host/HV02, credssp-with-credential-guard]
    - [error, HV01<->HV02, authentication-mismatch]

- id: planned-undeclared-authentication-keeps-what-is-live
  mode: planned
  manifest: {defaults: {migration: {enabled: true}}}
  hosts: {HV01: {networks: []}}
  accounts: {HV01: {to: [HV03]}}
  # HV01's no-incoming-network is the planner's in a plan (tests/planner/stranded-left-alone.yaml)
  expect:
    - [error, HV01->HV02, delegation-missing]
""")


# --- building a case ---------------------------------------------------------------------------


def build_manifest(overrides: Mapping[str, Any]) -> Manifest:
    document = {**CLEAN_MANIFEST, **overrides}
    return parse_manifest(yaml.safe_dump(document).encode(), "case.yaml").manifest


def build_host(name: str, doc: Mapping[str, Any]) -> HostState:
    migration = MigrationState(
        enabled=doc["enabled"],
        authentication=doc["authentication"],
        performance=doc.get("performance", "Compression"),
        max_virtual_machine_migrations=2,
        max_storage_migrations=2,
        use_any_network=doc["useAnyNetwork"],
        networks=tuple(ObservedNetwork(ipaddress.ip_network(n), 0) for n in doc["networks"]),
    )
    facts = HostFacts(
        computer_name=name,
        part_of_domain=doc["part_of_domain"],
        domain=doc["domain"],
        os_caption=doc["os_caption"],
        os_build=doc["os_build"],
        hyperv_installed=doc["hyperv"],
        addresses=tuple(ipaddress.ip_interface(a) for a in doc["addresses"]),
        vms=tuple(VirtualMachine(vm, str(version)) for vm, version in doc["vms"]),
        supported_versions=tuple(str(v) for v in doc["supported"]),
        device_guard=None if doc["guard"] is None else DeviceGuard(
            tuple(doc["guard"]["configured"]), tuple(doc["guard"]["running"])),
        device_guard_error=doc["guard_error"],
        migration_firewall=None if doc["firewall"] is None else FirewallRule(
            MIGRATION_FIREWALL_RULE, doc["firewall"] != "missing", doc["firewall"] == "enabled"),
    )
    return HostState(name, _enums(migration), facts, tuple(doc["warnings"]))


def _enums(state: MigrationState) -> MigrationState:
    from dataclasses import replace

    from hvlm.model import AuthenticationType, PerformanceOption

    return replace(state, authentication=AuthenticationType(state.authentication),
                   performance=PerformanceOption(state.performance))


def build_account(manifest: Manifest, name: str, doc: Mapping[str, Any]) -> DelegationState:
    classes = {"migration": MIGRATION, "cifs": "cifs"}
    values: list[str] = []
    for target in doc["to"]:
        spec = manifest.host(target)
        for service in doc["services"]:
            for form in doc["forms"]:
                values.append(f"{classes[service]}/{spec.name if form == 'short' else spec.fqdn}")
    return DelegationState(
        name=name, dn=f"CN={name},CN=Computers,DC=lab,DC=example", sam_account_name=f"{name}$",
        dns_host_name=doc["dns"], service_principal_names=tuple(doc["spns"]),
        user_account_control=doc["uac"], allowed_to_delegate_to=tuple(values + doc["extra"]),
    )


@dataclass
class Observed:
    hosts: dict[str, HostState] = field(default_factory=dict)
    host_errors: dict[str, str] = field(default_factory=dict)
    directory: DirectoryState | None = None
    directory_error: str | None = None


def build_case(case: Mapping[str, Any]) -> tuple[Manifest, Observed]:
    manifest = build_manifest(case.get("manifest", {}))
    observed = Observed()
    for i, spec in enumerate(manifest.hosts, start=1):
        patch = (case.get("hosts") or {}).get(spec.name, {})
        if "error" in patch:
            observed.host_errors[spec.key] = patch["error"]
        else:
            observed.hosts[spec.key] = build_host(spec.name, {**clean_host(i), **patch})
    if "directory" in case and case["directory"] is None:
        observed.directory_error = "ldaps://dc1.lab.example: connection refused"
        return manifest, observed
    accounts, missing = [], []
    for spec in manifest.hosts:
        patch = (case.get("accounts") or {}).get(spec.name, {})
        if patch.get("missing"):
            missing.append(spec.name)
        else:
            doc = {**clean_account(manifest, spec.name), **patch}
            accounts.append(build_account(manifest, spec.name, doc))
    holders = [SpnHolder(a.dn, a.sam_account_name, a.service_principal_names) for a in accounts]
    holders += [SpnHolder(f"CN={sam.rstrip('$')},CN=Computers,DC=lab,DC=example", sam,
                          tuple(spns)) for sam, spns in (case.get("holders") or {}).items()]
    observed.directory = DirectoryState(tuple(accounts), tuple(missing), "dc1",
                                        spn_holders=tuple(holders))
    return manifest, observed


def triples(findings: list[Finding]) -> list[tuple[str, str, str]]:
    return sorted((f.severity.value, f.subject, f.code) for f in findings)


# --- the table ---------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_findings(case: Mapping[str, Any]) -> None:
    manifest, observed = build_case(case)
    findings = check_fleet(manifest, observed, mode=Mode(case.get("mode", "live")))
    assert triples(findings) == sorted(tuple(e) for e in case["expect"])
    assert has_errors(findings) == any(e[0] == "error" for e in case["expect"])
    for finding in findings:
        assert finding.message and finding.fix, finding
        assert finding.code == finding.code.lower() and " " not in finding.code


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_deterministic_and_without_duplicates(case: Mapping[str, Any]) -> None:
    manifest, observed = build_case(case)
    first = check_fleet(manifest, observed)
    assert first == check_fleet(manifest, observed)
    assert len(set(first)) == len(first)


# --- details that the table does not show -------------------------------------------------------


def _one(case_id: str, code: str, mode: Mode = Mode.LIVE) -> Finding:
    case = next(c for c in CASES if c["id"] == case_id)
    manifest, observed = build_case(case)
    return next(f for f in check_fleet(manifest, observed, mode=mode) if f.code == code)


def test_delegation_evidence_names_both_forms_and_the_error_code() -> None:
    finding = _one("delegation-one-way-only", "delegation-missing")
    assert f"'{MIGRATION}/HV02'" in finding.evidence
    assert f"'{MIGRATION}/hv02.lab.example'" in finding.evidence
    assert "0x8009030D" in finding.message
    assert "klist purge -li 0x3e7" in finding.fix


def test_protocol_transition_names_0x8009030e() -> None:
    finding = _one("no-protocol-transition", "protocol-transition-missing")
    assert "0x8009030E" in finding.message
    assert "userAccountControl=0x00001000" in finding.evidence


def test_vm_version_evidence_lists_the_vms_and_the_peer_versions() -> None:
    finding = _one("vm-version-a-peer-cannot-run", "vm-version-unsupported")
    assert finding.subject == "HV01->HV02"
    assert "web (12.0)" in finding.evidence and "old (11.0)" in finding.evidence
    assert "db (10.0)" not in finding.evidence
    assert "8.0, 9.0, 10.0" in finding.evidence


def test_network_evidence_lists_the_addresses() -> None:
    finding = _one("subnet-without-address", "network-without-address")
    assert "192.168.10.0/24" in finding.message
    assert "10.0.0.12/24" in finding.evidence


def test_unconstrained_evidence_shows_the_bit() -> None:
    finding = _one("unconstrained-delegation", "unconstrained-delegation")
    assert f"0x{UAC_TRUSTED_FOR_DELEGATION:08x}" in finding.evidence


def test_selection_limits_hosts_and_pairs() -> None:
    case = next(c for c in CASES if c["id"] == "several-problems-at-once")
    manifest, observed = build_case(case)
    findings = check_fleet(manifest, observed, selection=["hv03"])
    # HV03 alone was read: its host checks only, no pair (its peers were not selected)
    assert triples(findings) == []
    findings = check_fleet(manifest, observed, selection=["HV01", "HV03"])
    assert ("error", "HV03->HV01", "delegation-missing") in triples(findings)
    assert ("error", "host/HV02", "host-unread") not in triples(findings)


def test_planned_mode_leaves_out_what_the_planner_reports() -> None:
    case = next(c for c in CASES if c["id"] == "several-problems-at-once")
    manifest, observed = build_case(case)
    planned = check_fleet(manifest, observed, mode=Mode.PLANNED)
    assert not {f.code for f in planned} & PLANNER_CODES
    # the delegation the manifest adds is not a finding any more
    assert "delegation-missing" not in {f.code for f in planned}


def test_json_document() -> None:
    case = next(c for c in CASES if c["id"] == "several-problems-at-once")
    manifest, observed = build_case(case)
    findings = check_fleet(manifest, observed)
    document = json.loads(json.dumps(findings_document(findings, manifest)))
    assert document["format_version"] == 1
    assert document["summary"] == {"errors": 5, "warnings": 1}
    assert document["findings"][0]["severity"] == "error"
    assert set(document["findings"][0]) == {"severity", "subject", "code", "message",
                                            "evidence", "fix"}


def test_human_rendering_is_inert_and_summarised() -> None:
    hostile = Finding(Severity.ERROR, "host/HV01", "host-unread", "boom \x1b[2J", fix="f")
    text = render_findings([hostile], 3)
    assert "\x1b" not in text
    assert text.endswith("Check: 1 error(s), 0 warning(s) on 3 host(s).\n")
    assert render_findings([], 3) == "Check: no findings on 3 host(s).\n"
    assert "\x1b[31m" in render_findings([hostile], 1, color=True)
