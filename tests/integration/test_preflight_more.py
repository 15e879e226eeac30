"""Issue 14's acceptance: what breaks migrations that no tool checks, found by `hvlm check`.

A lab started as `hvlm lab up` starts one (hvlm_lab.runner.lab.Lab: simulated Hyper-V hosts over
real WSMan/PSRP, computer accounts on the session's Samba AD DC with the SPNs a Hyper-V host
registers), its own manifest applied (converged). Each out-of-band change turns the clean check
(exit 0, no finding) into exit 1 naming the finding, and reverting it clears it:

- HV02's `Microsoft Virtual System Migration Service/HV02` SPN deleted over LDAP;
- HV02's migration SPN on HV03's account (moved: the DC refuses a second holder);
- `Disable-NetFirewallRule -Name VIRT-MIGL-In-TCP-NoScope` on HV02 over a plain pypsrp client;
- a lab started with `--credential-guard HV01` under a CredSSP manifest.

The directory is reached through tests/integration/ldap_fault_proxy.py (no fault), which records
every LDAP operation: a plan sends at most 2 search requests; the lab counts WSMan requests per
host: 5 per host for a plan (Basic: create, receive, command, receive, delete).

Run inside a private network namespace (Samba's ports are fixed):
    tests/isolated.sh .venv/bin/python -m pytest tests/integration/test_preflight_more.py -q
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ldap3
import pytest
import yaml
from pypsrp.powershell import PowerShell, RunspacePool
from pypsrp.wsman import WSMan

from hvlm.hosts.commands import READ_STATEMENTS
from hvlm_lab.hyperv.config import CredentialGuard
from hvlm_lab.runner.lab import Lab, LabOptions
from hvlm_lab.samba.dc import SambaDC
from tests.integration.helpers import MIGRATION, CliResult, hvlm_in_process, reset_account
from tests.integration.ldap_fault_proxy import SEARCH_REQUEST, LdapFaultProxy

pytestmark = [pytest.mark.lab, pytest.mark.samba]
NAMES = ("HV01", "HV02", "HV03")
RULE = "VIRT-MIGL-In-TCP-NoScope"
SPN = f"{MIGRATION}/HV02"
PLAN_REQUESTS = 5  # WSMan requests of one host for a plan (one read pipeline, Basic)


@dataclass
class Fleet:
    lab: Lab
    proxy: LdapFaultProxy
    manifest: Path

    def hvlm(self, *args: str) -> CliResult:
        return hvlm_in_process(dict(self.lab.env), *args)

    def check(self) -> tuple[CliResult, set[tuple[str, str, str]]]:
        result = self.hvlm("check", str(self.manifest), "--format", "json")
        found = {(f["severity"], f["subject"], f["code"])
                 for f in json.loads(result.stdout)["findings"]}
        return result, found


def _manifest(lab: Lab, proxy: LdapFaultProxy, path: Path, authentication: str) -> Path:
    """The lab's own manifest, its directory reached through the proxy."""
    document: dict[str, Any] = yaml.safe_load(lab.manifest_path.read_text())
    document["directory"]["servers"] = [
        {"url": f"ldaps://dc1.lab.example:{proxy.port}", "address": "127.0.0.1"}]
    document["directory"]["certValidation"] = str(proxy.ca_bundle)
    document.setdefault("defaults", {}).setdefault("migration", {})["authentication"] = \
        authentication
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def _start(workdir: Path, dc: SambaDC, authentication: str, guard: tuple[str, ...] = ()
           ) -> Iterator[Fleet]:
    options = LabOptions(hosts=len(NAMES), directory=True, credential_guard=guard)
    with Lab.start_with(workdir / "lab", options, dc=dc) as lab, \
            LdapFaultProxy(dc, workdir / "proxy") as proxy:
        fleet = Fleet(lab, proxy, _manifest(lab, proxy, workdir / "manifest.yaml", authentication))
        applied = fleet.hvlm("apply", str(fleet.manifest), "--auto-approve")
        assert applied.code == 0, applied
        try:
            yield fleet
        finally:  # the session's DC is shared: its HV01..HV03 accounts back as created
            for name in NAMES:
                reset_account(dc, name, ())


@pytest.fixture(scope="module")
def fleet(lab_dc: SambaDC, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    yield from _start(tmp_path_factory.mktemp("preflight"), lab_dc, "Kerberos")


def _clean(fleet: Fleet) -> None:
    result, found = fleet.check()
    assert (result.code, found) == (0, set()), result


def _finds(fleet: Fleet, expected: set[tuple[str, str, str]]) -> CliResult:
    result, found = fleet.check()
    assert result.code == 1, result
    assert found == expected, result
    human = fleet.hvlm("check", str(fleet.manifest))
    assert human.code == 1 and all(f"[{code}]" in human.stdout for _, _, code in expected), human
    return human


def _modify_spn(dc: SambaDC, name: str, operation: str, spn: str) -> None:
    with dc.admin_connection() as conn:
        conn.modify(dc.computer_dn(name), {"servicePrincipalName": [(operation, [spn])]})
        assert conn.result["result"] == 0, conn.result


# --- a converged lab is clean; a plan costs 5 WSMan requests per host and 2 LDAP searches --------


def test_converged_lab_is_clean_and_a_plan_reads_once(fleet: Fleet) -> None:
    _clean(fleet)
    fleet.lab.server.reset_stats()
    fleet.proxy.operations.clear()
    planned = fleet.hvlm("plan", str(fleet.manifest), "--detailed-exitcode")
    assert planned.code == 0, planned
    requests = {n: fleet.lab.server.stats(n)["wsman_requests"] for n in NAMES}
    assert requests == dict.fromkeys(NAMES, PLAN_REQUESTS), requests
    searches = fleet.proxy.operations.count(SEARCH_REQUEST)
    assert 1 <= searches <= 2, fleet.proxy.operations
    records = fleet.lab.server.stats("HV02")["cmdlets"]
    assert len(records) == len(READ_STATEMENTS)  # one pipeline: the read, nothing else
    assert len({r["pipeline"] for r in records}) == 1
    assert [r["statement"] for r in records] == list(range(len(records)))  # a statement each
    received = [_received(r) for r in records]
    assert [r for r in received if r in READ_EXPECTED] == READ_EXPECTED, received
    assert received[-1][0] == "Get-WindowsFeature"  # last: absent on client Windows


# What the host's side received, written by hand from DOMAIN.md (not from hvlm.hosts.commands):
# (command, [(parameter, value, .NET type as received)]), in pipeline order. Statements added to
# the read later may come between these; each of these must arrive exactly so.
READ_EXPECTED: list[tuple[str, list[tuple[str, object, str]]]] = [
    ("Get-VMHost", []),
    ("Get-VMMigrationNetwork", []),
    ("Get-CimInstance", [("ClassName", "Win32_ComputerSystem", "System.String")]),
    ("Get-CimInstance", [("ClassName", "Win32_OperatingSystem", "System.String")]),
    ("Get-NetIPAddress", []),
    ("Get-VM", []),
    ("Get-VMHostSupportedVersion", []),
    ("Get-CimInstance", [("Namespace", "root/Microsoft/Windows/DeviceGuard", "System.String"),
                         ("ClassName", "Win32_DeviceGuard", "System.String")]),
    ("Get-NetFirewallRule", [("Name", RULE, "System.String")]),
    ("Get-CimInstance", [("ClassName", "Win32_NTDomain", "System.String")]),
    ("Get-WindowsFeature", [("Name", "Hyper-V", "System.String")]),
]


def _received(record: dict[str, Any]) -> tuple[str, list[tuple[str, object, str]]]:
    """One command of the lab's record: (command, [(parameter, value, .NET type)])."""
    assert record["is_script"] is False and record["arguments"] == [], record
    types = dict(record["parameter_types"])
    return record["command"], [(name, value, types[name]) for name, value in record["parameters"]]


# --- the out-of-band changes ----------------------------------------------------------------------


def test_migration_spn_deleted_over_ldap(fleet: Fleet, lab_dc: SambaDC) -> None:
    _modify_spn(lab_dc, "HV02", ldap3.MODIFY_DELETE, SPN)
    try:
        human = _finds(fleet, {("error", "directory/HV02", "migration-spn-missing")})
        assert f'setspn -S "{SPN}" HV02' in human.stdout
    finally:
        _modify_spn(lab_dc, "HV02", ldap3.MODIFY_ADD, SPN)
    _clean(fleet)


def test_migration_spn_on_another_account(fleet: Fleet, lab_dc: SambaDC) -> None:
    """Samba, like AD DCs since 2012 R2, refuses a second holder of an SPN at write time
    (constraintViolation "would cause a conflict"), so the lab cannot hold both copies at once:
    HV02's SPN is moved to HV03's account (a cloned or renamed host's leftover)."""
    with lab_dc.admin_connection() as conn:
        conn.modify(lab_dc.computer_dn("HV03"), {"servicePrincipalName": [(ldap3.MODIFY_ADD,
                                                                           [SPN])]})
        assert conn.result["description"] == "constraintViolation", conn.result
    _modify_spn(lab_dc, "HV02", ldap3.MODIFY_DELETE, SPN)
    _modify_spn(lab_dc, "HV03", ldap3.MODIFY_ADD, SPN)
    try:
        human = _finds(fleet, {("error", "directory/HV02", "spn-duplicate"),
                               ("error", "directory/HV02", "migration-spn-missing")})
        assert f'setspn -D "{SPN}" HV03' in human.stdout
    finally:
        _modify_spn(lab_dc, "HV03", ldap3.MODIFY_DELETE, SPN)
        _modify_spn(lab_dc, "HV02", ldap3.MODIFY_ADD, SPN)
    _clean(fleet)


def _run_on_host(fleet: Fleet, name: str, cmdlet: str) -> None:
    """A plain pypsrp client, as an administrator would run the cmdlet remotely."""
    host = next(h for h in fleet.lab.info.hosts if h.name == name)
    env = fleet.lab.env
    wsman = WSMan(host.host, port=host.port, ssl=True, auth="basic",
                  username=env["HVLM_WINRM_USER"], password=env["HVLM_WINRM_PASSWORD"],
                  cert_validation=str(fleet.lab.ca_path))
    with wsman, RunspacePool(wsman) as pool:
        ps = PowerShell(pool)
        ps.add_cmdlet(cmdlet).add_parameter("Name", RULE)
        ps.invoke()
        assert not ps.had_errors, ps.streams.error


def test_migration_firewall_rule_disabled_on_hv02(fleet: Fleet) -> None:
    _run_on_host(fleet, "HV02", "Disable-NetFirewallRule")
    try:
        assert fleet.lab.hosts["HV02"].firewall_rules()[RULE] is False
        human = _finds(fleet, {("error", "host/HV02", "migration-firewall-closed")})
        assert f"Enable-NetFirewallRule -Name {RULE}" in human.stdout
    finally:
        _run_on_host(fleet, "HV02", "Enable-NetFirewallRule")
    _clean(fleet)


def test_credential_guard_under_credssp(lab_dc: SambaDC,
                                        tmp_path_factory: pytest.TempPathFactory) -> None:
    workdir = tmp_path_factory.mktemp("credential-guard")
    for fleet in _start(workdir, lab_dc, "CredSSP", guard=("HV01",)):
        assert fleet.lab.hosts["HV01"].config.credential_guard is CredentialGuard.RUNNING
        human = _finds(fleet, {("error", "host/HV01", "credssp-with-credential-guard")})
        assert "Kerberos" in human.stdout
        kerberos = _manifest(fleet.lab, fleet.proxy, workdir / "kerberos.yaml", "Kerberos")
        applied = fleet.hvlm("apply", str(kerberos), "--auto-approve")
        assert applied.code == 0, applied
        fleet.manifest = kerberos  # the fix the finding names: Kerberos, applied
        _clean(fleet)
