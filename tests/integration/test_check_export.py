"""Issue 7's acceptance: `hvlm check` and `hvlm export` through the CLI against the lab.

Simulated Hyper-V hosts (real WSMan/PSRP on loopback, each with its own OS, role, domain,
addresses and VMs) and computer accounts on the session's Samba AD DC. Each check case puts the
fleet in one problem state (host settings out of band, accounts through LDAP as Administrator),
writes a manifest naming the hosts concerned and asserts EXACTLY the expected findings and the
exit code; a clean fleet has none. Export: the lab's realistic manifest is applied, one host is
changed out of band and extra delegation exists; export -> validate -> plan reports no change.

Run inside a private network namespace (Samba's ports are fixed):
    tests/isolated.sh .venv/bin/python -m pytest tests/integration/test_check_export.py -q
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from hvlm_lab.hyperv.config import (
    AuthenticationType,
    CredentialGuard,
    LabHostConfig,
    MigrationNetwork,
    MigrationState,
    PerformanceOption,
    server_2022,
    server_2025,
)
from hvlm_lab.hyperv.host import HyperVHost
from hvlm_lab.pki import LabCA
from hvlm_lab.samba.dc import UAC_WORKSTATION_TRUST_ACCOUNT, SambaDC
from hvlm_lab.wsman.server import Credentials, FaultSpec, LabEndpointConfig, LabServer
from tests.integration.helpers import (
    DOMAIN,
    LDAP_USER,
    MIGRATION,
    SUBNET,
    UNRELATED,
    WINRM_PASSWORD,
    WINRM_USER,
    CliResult,
    check_errors,
    hvlm_in_process,
    read_account,
    reset_account,
    values_toward,
)

pytestmark = [pytest.mark.lab, pytest.mark.samba]
PROTOCOL_TRANSITION, UNCONSTRAINED = 0x01000000, 0x00080000
KERBEROS = MigrationState(enabled=True, authentication=AuthenticationType.Kerberos,
                          networks=(MigrationNetwork.parse(SUBNET, 0),))
CREDSSP = replace(KERBEROS, authentication=AuthenticationType.CredSSP)
CONFIGS: tuple[LabHostConfig, ...] = (
    server_2022("CK01", ["192.168.10.21/24"], [("app1", "10.0")]),
    server_2022("CK02", ["192.168.10.22/24"]),
    replace(server_2025("CK03", ["192.168.10.23/24"], [("web", "10.0")]),
            credential_guard=CredentialGuard.RUNNING),
    server_2025("CK04", ["192.168.10.24/24"], [("new", "12.0"), ("old", "9.0")]),
    server_2022("CK05", ["192.168.10.25/24"], hyperv_installed=False),
    server_2022("CK06", ["192.168.10.26/24"], part_of_domain=False),
    server_2022("CK07", ["192.168.10.27/24"], domain="other.example"),
    server_2022("CK08", ["192.168.10.28/24"]),  # no computer account
    server_2022("CK09", ["10.0.0.29/24"]),
)
WITH_ACCOUNTS = tuple(c.name for c in CONFIGS if c.name != "CK08")


@dataclass
class Fleet:
    dc: SambaDC
    server: LabServer
    hosts: dict[str, HyperVHost]
    workdir: Path

    def env(self) -> dict[str, str]:
        from hvlm_lab.samba.dc import LAB_ADMIN_PASSWORD

        return {"HVLM_WINRM_USER": WINRM_USER, "HVLM_WINRM_PASSWORD": WINRM_PASSWORD,
                "HVLM_LDAP_USER": LDAP_USER, "HVLM_LDAP_PASSWORD": LAB_ADMIN_PASSWORD}

    def hvlm(self, *args: str) -> CliResult:
        return hvlm_in_process(self.env(), *args)

    def inventory(self, names: Sequence[str]) -> dict[str, Any]:
        """A minimal inventory: directory, connection and hosts."""
        return {
            "apiVersion": "hvlm/v1", "kind": "LiveMigrationConfig",
            "metadata": {"name": "check-tests"},
            "directory": {"domain": DOMAIN,
                          "servers": [{"url": f"ldaps://dc1.{DOMAIN}", "address": "127.0.0.1"}],
                          "auth": "simple", "certValidation": str(self.dc.ca_path),
                          "baseDN": self.dc.base_dn, "timeoutSeconds": 5},
            "connection": {"transport": "https", "auth": "basic",
                           "certValidation": str(self.server.ca_path), "retries": 0,
                           "timeouts": {"connectSeconds": 2, "readSeconds": 3,
                                        "operationSeconds": 2}},
            "hosts": [{"name": n, "address": self._address(n)} for n in names],
        }

    def _address(self, name: str) -> str:
        endpoint = self.server.endpoint(name)
        return f"{endpoint.host}:{endpoint.port}"

    def manifest(self, names: Sequence[str], auth: Mapping[str, str] | None = None,
                 **extra: Any) -> dict[str, Any]:
        """The lab's realistic target for `names`: Kerberos, one subnet, one group."""
        document = self.inventory(names)
        document["defaults"] = {
            "migration": {"enabled": True, "authentication": "Kerberos",
                          "networks": [{"subnet": SUBNET, "priority": 0}]},
            "delegation": {"services": ["migration", "cifs"], "protocolTransition": True},
        }
        for host in document["hosts"]:
            if auth and host["name"] in auth:
                host["migration"] = {"authentication": auth[host["name"]]}
        document["groups"] = [{"name": "tested", "hosts": list(names)}]
        document.update(extra)
        return document

    def write(self, document: Mapping[str, Any], name: str = "manifest.yaml") -> Path:
        path = self.workdir / name
        path.write_text(yaml.safe_dump(dict(document), sort_keys=False), encoding="utf-8")
        return path

    def delegate(self, source: str, *targets: str, uac: int = PROTOCOL_TRANSITION,
                 extra: Sequence[str] = ()) -> None:
        values = [v for t in targets for v in sorted(values_toward(t))] + [UNRELATED, *extra]
        reset_account(self.dc, source, values)
        if uac:
            self.dc.seed_delegation(source, uac_set=uac)

    def clean(self, names: Sequence[str]) -> None:
        """Hosts on Kerberos and the subnet; every account delegating to every other, both ways."""
        for name in self.hosts:
            self.server.set_fault(name, FaultSpec())
            self.hosts[name].set_state(KERBEROS)
        for name in WITH_ACCOUNTS:
            self.delegate(name, *[n for n in names if n != name])
        self.server.reset_stats()


@pytest.fixture(scope="module")
def lab(lab_dc: SambaDC, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    workdir = tmp_path_factory.mktemp("check")
    hosts = {c.name: HyperVHost(c) for c in CONFIGS}
    configs = [LabEndpointConfig(n, h, Credentials(WINRM_USER, WINRM_PASSWORD))
               for n, h in hosts.items()]
    lab_dc.add_computers(WITH_ACCOUNTS)
    with LabServer(configs, LabCA.create(workdir / "ca"), workdir / "lab",
                   control_port=None) as server:
        yield Fleet(lab_dc, server, hosts, workdir)


# --- check: one problem per case, exactly the expected findings ---------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    hosts: tuple[str, ...]
    expect: frozenset[tuple[str, str, str]]
    auth: Mapping[str, str] | None = None  # manifest authentication per host


def _setup(lab: Fleet, case: Case) -> None:
    lab.clean(case.hosts)
    setup = SETUPS.get(case.id)
    if setup is not None:
        setup(lab)


def _credssp_ck02(lab: Fleet) -> None:
    lab.hosts["CK02"].set_state(CREDSSP)
    lab.delegate("CK02")


def _one_name_form(lab: Fleet) -> None:
    reset_account(lab.dc, "CK01", [f"{MIGRATION}/ck02.{DOMAIN}", "cifs/CK02"])
    lab.dc.seed_delegation("CK01", uac_set=PROTOCOL_TRANSITION)


def _credssp_pair(lab: Fleet) -> None:
    lab.hosts["CK02"].set_state(CREDSSP)
    lab.hosts["CK03"].set_state(CREDSSP)


SETUPS: dict[str, Callable[[Fleet], None]] = {
    "authentication-differs": _credssp_ck02,
    "delegation-one-way": lambda lab: lab.delegate("CK02"),
    "delegation-one-name-form-is-enough": _one_name_form,
    "no-protocol-transition": lambda lab: lab.delegate("CK02", "CK01", uac=0),
    "unconstrained-delegation": lambda lab: lab.delegate(
        "CK01", "CK02", uac=PROTOCOL_TRANSITION | UNCONSTRAINED),
    "credssp-on-2025": _credssp_pair,
    "any-network": lambda lab: lab.hosts["CK02"].set_state(
        replace(KERBEROS, networks=()).with_any_network(True)),
    "host-unread": lambda lab: lab.server.set_fault("CK02", FaultSpec(refuse_auth=True)),
}

CASES = [
    Case("clean-fleet", ("CK01", "CK02", "CK03"), frozenset()),
    Case("hyperv-role-missing", ("CK01", "CK05"), frozenset({
        ("error", "host/CK05", "hyperv-role-missing")})),
    Case("subnet-without-address", ("CK01", "CK09"), frozenset({
        ("error", "host/CK09", "network-without-address")})),
    Case("not-domain-joined", ("CK01", "CK06"), frozenset({
        ("error", "host/CK06", "not-domain-joined")})),
    Case("other-domain", ("CK01", "CK07"), frozenset({
        ("warning", "host/CK07", "outside-directory-domain"),
        ("error", "CK01<->CK07", "domain-mismatch")})),
    Case("authentication-differs", ("CK01", "CK02"), frozenset({
        ("error", "CK01<->CK02", "authentication-mismatch")})),
    Case("delegation-one-way", ("CK01", "CK02"), frozenset({
        ("error", "CK02->CK01", "delegation-missing")})),
    Case("delegation-one-name-form-is-enough", ("CK01", "CK02"), frozenset()),
    Case("no-protocol-transition", ("CK01", "CK02"), frozenset({
        ("error", "directory/CK02", "protocol-transition-missing")})),
    Case("unconstrained-delegation", ("CK01", "CK02"), frozenset({
        ("error", "directory/CK01", "unconstrained-delegation")})),
    Case("credssp-on-2025", ("CK02", "CK03"), frozenset({
        ("error", "host/CK03", "credssp-with-credential-guard")}),
        auth={"CK02": "CredSSP", "CK03": "CredSSP"}),
    Case("vm-version-a-peer-cannot-run", ("CK01", "CK04"), frozenset({
        ("error", "CK04->CK01", "vm-version-unsupported")})),
    Case("any-network", ("CK01", "CK02"), frozenset({
        ("warning", "host/CK02", "any-network")})),
    Case("computer-account-missing", ("CK01", "CK08"), frozenset({
        ("error", "directory/CK08", "computer-account-missing")})),
    Case("host-unread", ("CK01", "CK02"), frozenset({
        ("error", "host/CK02", "host-unread")})),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_check_finds_exactly_the_problem(lab: Fleet, case: Case) -> None:
    _setup(lab, case)
    path = lab.write(lab.manifest(case.hosts, case.auth))
    result = lab.hvlm("check", str(path), "--format", "json")
    document = json.loads(result.stdout)
    found = {(f["severity"], f["subject"], f["code"]) for f in document["findings"]}
    assert found == case.expect, result
    errors = any(severity == "error" for severity, _, _ in case.expect)
    assert result.code == (1 if errors else 0), result
    for finding in document["findings"]:
        assert finding["message"] and finding["fix"]
    # the same single read per host as plan, and nothing written anywhere
    for name in case.hosts:
        stats = lab.server.stats(name)
        if case.id != "host-unread" or name != "CK02":
            assert stats["wsman_requests"] <= 5, (name, stats["wsman_requests"])
        assert all(str(c["command"]).lower().startswith("get-") for c in stats["cmdlets"])


def test_check_human_output_and_host_selection(lab: Fleet) -> None:
    lab.clean(("CK01", "CK04"))
    path = lab.write(lab.manifest(("CK01", "CK04", "CK05")))
    result = lab.hvlm("check", str(path), "--host", "CK01", "--host", "CK04")
    assert result.code == 1, result
    assert "error   CK04->CK01  [vm-version-unsupported]" in result.stdout
    assert "new (12.0)" in result.stdout and "old (9.0)" not in result.stdout
    assert "CK05" not in result.stdout  # not selected, not read
    assert lab.server.stats("CK05")["wsman_requests"] == 0
    assert result.stdout.rstrip().endswith("Check: 1 error(s), 0 warning(s) on 2 host(s).")
    unknown = lab.hvlm("check", str(path), "--host", "NOPE")
    assert unknown.code == 1 and "NOPE" in unknown.stderr and unknown.stdout == ""


# --- export -> validate -> plan: no change --------------------------------------------------------

EXPORTED = ("CK01", "CK02", "CK03", "CK04")


@pytest.fixture
def brownfield(lab: Fleet) -> Fleet:
    """The lab's manifest applied to four hosts, then changed out of band: mixed settings and
    existing delegation that the manifest did not write."""
    lab.clean(())
    for name in EXPORTED:
        lab.hosts[name].set_state(MigrationState())  # fresh hosts
        lab.delegate(name, uac=0)
    applied = lab.hvlm("apply", str(lab.write(lab.manifest(EXPORTED))), "--auto-approve")
    assert applied.code == 0, applied
    # out of band: CK02 tuned by hand, CK04 moved to "any network" and CredSSP; CK03 also
    # delegating to a file server (hvlm's own values stay)
    lab.hosts["CK02"].set_state(replace(
        KERBEROS, performance=PerformanceOption.SMB, max_vm_migrations=4,
        networks=(MigrationNetwork.parse(SUBNET, 0), MigrationNetwork.parse("10.20.0.0/16", 5))))
    lab.hosts["CK04"].set_state(replace(KERBEROS, authentication=AuthenticationType.CredSSP,
                                        networks=()).with_any_network(True))
    lab.dc.seed_delegation("CK03", ["cifs/files01.lab.example"])
    return lab


def test_export_validate_plan_reports_no_change(brownfield: Fleet) -> None:
    lab = brownfield
    source = lab.workdir / "manifest.yaml"
    exported = lab.hvlm("export", str(source))
    assert exported.code == 0, exported
    path = lab.workdir / "exported.yaml"
    path.write_text(exported.stdout, encoding="utf-8")

    validated = lab.hvlm("validate", str(path))
    assert validated.code == 0, validated
    planned = lab.hvlm("plan", str(path), "--detailed-exitcode")
    assert planned.code == 0, planned
    assert "No changes" in planned.stdout

    document = yaml.safe_load(exported.stdout)
    hosts = {h["name"]: h for h in document["hosts"]}
    assert hosts["CK02"]["migration"] == {
        "performance": "SMB", "maxVirtualMachineMigrations": 4,
        "networks": [{"subnet": SUBNET, "priority": 0}, {"subnet": "10.20.0.0/16", "priority": 5}]}
    assert hosts["CK04"]["migration"] == {"authentication": "CredSSP", "useAnyNetwork": True}
    assert "migration" not in hosts["CK01"]
    assert document["groups"] == [{"name": "tested", "hosts": list(EXPORTED)}]
    assert document["directory"] == yaml.safe_load(source.read_text())["directory"]


def test_export_of_a_minimal_inventory_and_one_host(brownfield: Fleet) -> None:
    lab = brownfield
    inventory = lab.write(lab.inventory(EXPORTED), "inventory.yaml")
    exported = lab.hvlm("export", str(inventory))
    assert exported.code == 0, exported
    path = lab.workdir / "exported-minimal.yaml"
    path.write_text(exported.stdout, encoding="utf-8")
    assert lab.hvlm("validate", str(path)).code == 0
    planned = lab.hvlm("plan", str(path), "--detailed-exitcode")
    assert planned.code == 0, planned
    assert yaml.safe_load(exported.stdout)["groups"] == [
        {"name": "delegation-1", "hosts": list(EXPORTED)}]

    lab.server.reset_stats()  # the full export above read every host
    one = lab.hvlm("export", str(inventory), "--host", "CK02")
    assert one.code == 0, one
    document = yaml.safe_load(one.stdout)
    assert [h["name"] for h in document["hosts"]] == ["CK02"] and "groups" not in document
    requests = {name: lab.server.stats(name)["wsman_requests"] for name in EXPORTED}
    assert requests["CK02"] > 0 and [n for n, r in requests.items() if r] == ["CK02"], requests


def test_export_refuses_when_a_host_cannot_be_read(brownfield: Fleet) -> None:
    lab = brownfield
    lab.server.set_fault("CK03", FaultSpec(refuse_auth=True))
    try:
        result = lab.hvlm("export", str(lab.write(lab.inventory(EXPORTED), "inventory.yaml")))
    finally:
        lab.server.set_fault("CK03", FaultSpec())
    assert result.code == 1, result
    assert result.stdout == ""
    assert "CK03" in result.stderr and "--host" in result.stderr


def test_accounts_untouched_by_check_and_export(brownfield: Fleet) -> None:
    lab = brownfield
    before = {n: read_account(lab.dc, n) for n in EXPORTED}
    checked = lab.hvlm("check", str(lab.workdir / "manifest.yaml"))
    assert checked.code == (1 if check_errors(checked.stdout) else 0), checked
    assert lab.hvlm("export", str(lab.workdir / "manifest.yaml")).code == 0
    after = {n: read_account(lab.dc, n) for n in EXPORTED}
    assert after == before  # uSNChanged included: no modify at all
    assert UAC_WORKSTATION_TRUST_ACCOUNT & after["CK01"].uac
