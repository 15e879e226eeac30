"""Replication-aware apply against two real, replicating Samba DCs (issue 15 acceptance).

One module-scoped `DCPair` (hvlm_lab.samba.pair; copied from a template cached where the session's
Samba template lives) on 127.0.0.1 (dc1.lab.example) and 127.0.0.2 (dc2.lab.example), the
addresses of `hvlm lab up --dcs 2` (so both share one template), in a network namespace of this
module's own (the session's DC listens on 127.0.0.1 of the session's namespace). Simulated hosts
(LabServer) report dc2 as their DC (Win32_NTDomain) unless a test says otherwise; every test has
its own hosts and accounts (created on DC1 and replicated to DC2 once, up front) and its own
manifest listing both DCs, DC1 first (hvlm writes to DC1).

Lag on demand: DISABLE_INBOUND_REPL on DC2 (`pause_inbound()`), as `repadmin /options` on Windows.
Accounts are read back with plain ldap3 (simple bind over LDAPS as Administrator) from each DC.

Run as root inside `tests/isolated.sh` (127.0.0.2 is added to lo of the module's namespace).
"""

from __future__ import annotations

import dataclasses
import json
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import ldap3
import pytest

from hvlm_lab.hyperv.config import AuthenticationType, server_2022
from hvlm_lab.hyperv.host import HyperVHost
from hvlm_lab.pki import LabCA
from hvlm_lab.samba.dc import LAB_ADMIN_PASSWORD, SambaDC, available
from hvlm_lab.samba.pair import PAIR_ADDRESSES, DCPair
from hvlm_lab.wsman.server import Credentials, LabEndpointConfig, LabServer
from tests.integration.helpers import (
    DOMAIN,
    FRESH,
    UNRELATED,
    WANTED,
    WINRM_PASSWORD,
    WINRM_USER,
    CliResult,
    LabFleet,
    ManifestOptions,
    lower,
    manifest_text,
    values_toward,
)
from tests.lab.samba_fixtures import samba_template_dir
from tests.netns import new_netns

ADDRESSES = PAIR_ADDRESSES  # 127.0.0.1, 127.0.0.2
DC1_URL, DC2_URL = f"ldaps://dc1.{DOMAIN}:636", f"ldaps://dc2.{DOMAIN}:636"
DELEGATION = "msDS-AllowedToDelegateTo"
# The hosts of each test (created up front, so that DC2 holds every account before any pause).
GROUPS = {
    "paused": ("RP01", "RP02"),  # RP01 uses dc1, RP02 dc2
    "during": ("RW01", "RW02"),
    "failover": ("RF01", "RF02", "RF03"),  # RF03 in no group: hvlm's values toward it are pruned
    "lww": ("RL01",),
    "verify": ("RV01", "RV02", "RV03"),
}
DC_OF = {"RP01": f"dc1.{DOMAIN}"}  # every other host: dc2


# --- plain LDAP reads, one DC at a time -----------------------------------------------------------


def delegation_on(dc: SambaDC, names: Sequence[str]) -> dict[str, frozenset[str]]:
    """msDS-AllowedToDelegateTo of each account as `dc` holds it (plain ldap3, LDAPS simple bind)."""
    tls = ldap3.Tls(ca_certs_file=str(dc.ca_path), validate=ssl.CERT_REQUIRED)
    server = ldap3.Server(dc.config.address, port=636, use_ssl=True, tls=tls, get_info=ldap3.NONE)
    conn = ldap3.Connection(server, f"Administrator@{DOMAIN.upper()}", LAB_ADMIN_PASSWORD,
                            auto_bind=True)
    try:
        found = {}
        for name in names:
            conn.search(dc.computer_dn(name), "(objectClass=computer)", ldap3.BASE,
                        attributes=[DELEGATION])
            raw = conn.response[0]["raw_attributes"] if conn.response else {}
            found[name] = frozenset(v.decode() for v in raw.get(DELEGATION, []))
        return found
    finally:
        conn.unbind()


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.2)
    return time.monotonic() - started


def wanted_values(names: Sequence[str], name: str) -> set[str]:
    return set().union(*(values_toward(p) for p in names if p != name)) | {UNRELATED}


# --- the lab --------------------------------------------------------------------------------------


@dataclasses.dataclass
class TwoDCLab:
    pair: DCPair
    server: LabServer
    hosts: dict[str, HyperVHost]
    workdir: Path

    def fleet(self, hosts: str, **manifest: object) -> LabFleet:
        names = GROUPS[hosts]
        fleet = LabFleet(self.pair.dc1, self.server, {n: self.hosts[n] for n in names},
                         self.workdir / hosts)
        fleet.workdir.mkdir(parents=True, exist_ok=True)
        write_manifest(fleet, ManifestOptions(**manifest))  # type: ignore[arg-type]
        return fleet

    def both(self, names: Sequence[str]) -> tuple[dict[str, frozenset[str]], ...]:
        return delegation_on(self.pair.dc1, names), delegation_on(self.pair.dc2, names)

    def replicated(self, names: Sequence[str]) -> bool:
        one, two = self.both(names)
        return one == two


def write_manifest(fleet: LabFleet, options: ManifestOptions, timeout: float = 60) -> None:
    """The helpers' manifest with both DCs (DC1 first) and a replication timeout."""
    fleet.options = options
    single = f"  servers: [{{url: 'ldaps://dc1.{DOMAIN}:636', address: 127.0.0.1}}]"
    text = manifest_text(fleet, options)
    assert single in text
    both = (f"  servers: [{{url: '{DC1_URL}', address: {ADDRESSES[0]}}}, "
            f"{{url: '{DC2_URL}', address: {ADDRESSES[1]}}}]\n"
            f"  replicationTimeoutSeconds: {timeout}")
    fleet.manifest.write_text(text.replace(single, both), encoding="utf-8")


@pytest.fixture(scope="module")
def two_dcs(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
            ) -> Iterator[TwoDCLab]:
    if not available():
        pytest.fail("Samba AD DC is not installed: run `make system-deps`", pytrace=False)
    with new_netns():
        yield from _two_dcs(tmp_path_factory, request)


def _two_dcs(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
             ) -> Iterator[TwoDCLab]:
    workdir = tmp_path_factory.mktemp("two-dcs")
    ca = LabCA.create(workdir / "dc-ca")
    started = time.monotonic()
    pair = DCPair.create(workdir / "pair", ca=ca, addresses=ADDRESSES,
                         template_dir=samba_template_dir(request.config, tmp_path_factory))
    print(f"\nDC pair ready in {time.monotonic() - started:.1f} s")
    try:
        names = [n for group in GROUPS.values() for n in group]
        pair.dc1.add_computers(names)
        for name in names:
            pair.dc1.seed_delegation(name, [UNRELATED])
        configs = {n: dataclasses.replace(
            server_2022(n, [f"192.168.10.{11 + i}/24"], domain=DOMAIN),
            domain_controller=DC_OF.get(n, f"dc2.{DOMAIN}")) for i, n in enumerate(names)}
        hosts = {n: HyperVHost(c) for n, c in configs.items()}
        pair.replicate_now()
        wait_until(lambda: all(delegation_on(pair.dc2, names).values()), 30,
                   "DC2 holds the new accounts")
        endpoints = [LabEndpointConfig(n, h, Credentials(WINRM_USER, WINRM_PASSWORD))
                     for n, h in hosts.items()]
        with LabServer(endpoints, LabCA.create(workdir / "ca"), workdir / "lab",
                       control_port=None) as server:
            yield TwoDCLab(pair, server, hosts, workdir)
    finally:
        pair.stop()


def assert_reason(result: CliResult, *texts: str) -> None:
    for text in texts:
        assert text in result.output, f"{text!r} not in:\n{result}"


# --- tests ----------------------------------------------------------------------------------------


def test_paused_past_the_timeout_then_resumed(two_dcs: TwoDCLab) -> None:
    """(a) DC2 lags past the timeout: exit 1, delegation-not-replicated names the host and DC2;
    the host that uses DC2 keeps CredSSP while its delegation is on DC1; the host that uses DC1
    is switched. (b) resumed: the next apply converges, the plan is empty."""
    fleet = two_dcs.fleet("paused")
    a, b = GROUPS["paused"]
    two_dcs.pair.pause_inbound()
    try:
        started = time.monotonic()
        failed = fleet.apply("--replication-timeout", "5")
        waited = time.monotonic() - started
    finally:
        two_dcs.pair.resume_inbound()
    assert failed.code == 1, failed
    assert_reason(failed, f"error  delegation-not-replicated  directory/{b}: the delegation "
                  f"written for {b} has not reached {DC2_URL} after 5 s (missing: "
                  f"Microsoft Virtual System Migration Service/{a}",
                  "it is not switched to Kerberos and its tickets are not purged",
                  "Apply FAILED")
    assert waited >= 5, waited
    assert_reason(failed, f"Domain controllers the hosts use (Win32_NTDomain; apply waits until "
                          f"they hold the delegation it writes): dc1.{DOMAIN}: {a}; "
                          f"dc2.{DOMAIN}: {b}.")
    # b uses DC2: not switched, nor anything else of its host step; its delegation is on DC1 only
    assert fleet.state(b).authentication is AuthenticationType.CredSSP
    assert fleet.state(b) == FRESH
    assert not [c for c in fleet.writes(b) if "klist" in c.lower()]
    on_dc1, on_dc2 = two_dcs.both([a, b])
    assert lower(wanted_values([a, b], b)) <= lower(on_dc1[b])
    assert on_dc2[b] == {UNRELATED}
    # a uses DC1, which has its delegation: switched (DC2's lag is reported, not blocking)
    assert fleet.state(a) == WANTED
    assert f"skipped: its delegation has not replicated to {DC2_URL}" in failed.output

    # (b) replication resumed: the next apply waits for DC2 to pull, then switches b
    again = fleet.apply()
    assert again.code == 0, again
    assert fleet.state(b) == WANTED
    plan = fleet.plan()
    assert plan.code == 0, plan
    assert_reason(plan, "No changes")
    # (d) both DCs return the same values for every account
    on_dc1, on_dc2 = two_dcs.both([a, b])
    assert on_dc1 == on_dc2
    for name in (a, b):
        assert lower(on_dc1[name]) == lower(wanted_values([a, b], name))


def test_paused_then_resumed_during_the_wait(two_dcs: TwoDCLab) -> None:
    """(c) DC2 resumes ~2 s into the wait: apply waits, then continues; exit 0, and both DCs
    agree (d)."""
    fleet = two_dcs.fleet("during")
    names = GROUPS["during"]
    two_dcs.pair.pause_inbound()

    def resume() -> None:
        time.sleep(2)
        two_dcs.pair.resume_inbound()
        two_dcs.pair.replicate_now()  # as `repadmin /syncall` would, rather than the 10 s pull

    thread = threading.Thread(target=resume, daemon=True)
    started = time.monotonic()
    thread.start()
    try:
        result = fleet.hvlm("--log-level", "info", "apply", str(fleet.manifest), "--auto-approve")
    finally:
        thread.join(30)
    took = time.monotonic() - started
    assert result.code == 0, result
    assert took >= 2, took
    waits = [json.loads(line) for line in result.stderr.splitlines()
             if '"waiting for replication"' in line]
    assert waits and all(w["servers"] == [DC2_URL] for w in waits), result.stderr[-3000:]
    assert "delegation-not-replicated" not in result.output
    assert all(fleet.state(n) == WANTED for n in names)
    on_dc1, on_dc2 = two_dcs.both(names)
    assert on_dc1 == on_dc2
    for name in names:
        assert lower(on_dc1[name]) == lower(wanted_values(names, name))


def test_samba_keeps_the_last_writer_of_msds_allowedtodelegateto(two_dcs: TwoDCLab) -> None:
    """Why hvlm replays writes after a failover: msDS-AllowedToDelegateTo is not a linked
    attribute, so it replicates as a whole and the newer copy wins. A value added on DC1 that DC2
    has not pulled is LOST once the same attribute is written on DC2 (here: another value added),
    on both DCs, even though neither write deleted it."""
    (name,) = GROUPS["lww"]
    pair = two_dcs.pair
    only_dc1, only_dc2 = "host/only-on-dc1.lab.example", "host/only-on-dc2.lab.example"
    pair.pause_inbound()
    try:
        pair.dc1.seed_delegation(name, [only_dc1])
        time.sleep(1.5)  # DC1 writes first, DC2 later: same version, DC2's is the newer
        pair.dc2.seed_delegation(name, [only_dc2])
    finally:
        pair.resume_inbound()
    pair.replicate_now(into=2)
    pair.replicate_now(into=1)
    wait_until(lambda: two_dcs.replicated([name]), 30, "both DCs agree")
    on_dc1, on_dc2 = two_dcs.both([name])
    assert on_dc1[name] == on_dc2[name] == {UNRELATED, only_dc2}, on_dc1  # only_dc1 is gone


def test_dc1_stops_after_the_directory_add_phase(two_dcs: TwoDCLab,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """(e) DC1 takes the additions, then stops before DC2 has pulled them (DC2's inbound
    replication paused): hvlm writes them again on DC2, waits for nothing more, prunes on DC2,
    and says which server did what. Once DC1 is back and replicated, both DCs hold exactly the
    wanted values and the next plan is empty."""
    import hvlm.reconcile.apply as apply_module

    names = GROUPS["failover"][:2]
    first, outside = names[0], GROUPS["failover"][2]
    pair = two_dcs.pair
    stale = sorted(values_toward(outside))
    pair.dc1.seed_delegation(first, stale)
    pair.replicate_now()
    wait_until(lambda: lower(stale) <= lower(delegation_on(pair.dc2, [first])[first]), 30,
               "DC2 holds the stale values")
    fleet = two_dcs.fleet("failover", prune=True, group=names)
    original = apply_module.await_replication
    stopped: list[float] = []

    def stop_dc1_then_wait(*args: object, **kwargs: object) -> None:
        started = time.monotonic()
        pair.dc1.stop()
        stopped.append(time.monotonic() - started)
        original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(apply_module, "await_replication", stop_dc1_then_wait)
    pair.pause_inbound()
    try:
        started = time.monotonic()
        result = fleet.hvlm("--log-level", "info", "apply", str(fleet.manifest), "--auto-approve",
                            "--replication-timeout", "20")
        took = time.monotonic() - started
    finally:
        monkeypatch.undo()
        pair.dc1.start()
        pair.resume_inbound()
    assert result.code == 0, result
    assert stopped, "the hook did not run"
    assert took < 20, took  # nothing waited for the timeout
    for name in names:
        assert_reason(result, f"applied  directory/{name}/allowedToDelegateTo  written on "
                              f"{DC1_URL}; it went away: re-applied on {DC2_URL}")
    assert_reason(result, f"applied  directory/{first}/allowedToDelegateTo/prune  written on "
                          f"{DC2_URL}", "Apply complete")
    assert "delegation-not-replicated" not in result.output
    assert all(fleet.state(n) == WANTED for n in GROUPS["failover"])
    # DC2 took the whole outcome (DC1, back, may already have pulled it)
    on_dc2 = delegation_on(pair.dc2, names)
    for name in names:
        assert lower(on_dc2[name]) == lower(wanted_values(names, name)), on_dc2
    # DC1 back: replication both ways, then the same exact values on both DCs
    pair.replicate_now(into=1)
    pair.replicate_now(into=2)
    wait_until(lambda: two_dcs.replicated(names), 30, "both DCs agree")
    on_dc1, on_dc2 = two_dcs.both(names)
    assert on_dc1 == on_dc2
    for name in names:
        assert lower(on_dc1[name]) == lower(wanted_values(names, name))
    plan = fleet.plan()
    assert plan.code == 0, plan
    assert_reason(plan, "No changes")


def test_dc1_stops_before_verification(two_dcs: TwoDCLab, monkeypatch: pytest.MonkeyPatch) -> None:
    """(e) DC1 takes the prune, then stops before DC2 has pulled it (paused after the host phase)
    and before verification: the verification read fails over to DC2, which lacks the prune;
    hvlm writes it again there instead of reporting drift, and says so. DC1 back: exact."""
    import hvlm.reconcile.apply as apply_module

    names = GROUPS["verify"][:2]
    first, outside = names[0], GROUPS["verify"][2]
    pair = two_dcs.pair
    stale = sorted(values_toward(outside))
    pair.dc1.seed_delegation(first, stale)
    pair.replicate_now()
    wait_until(lambda: lower(stale) <= lower(delegation_on(pair.dc2, [first])[first]), 30,
               "DC2 holds the stale values")
    fleet = two_dcs.fleet("verify", prune=True, group=names)
    host_phase, verify = apply_module._host_phase, apply_module._verify

    def then_pause(*args: object, **kwargs: object) -> None:
        host_phase(*args, **kwargs)  # type: ignore[arg-type]
        pair.pause_inbound()  # the prune that follows stays on DC1

    def stop_dc1_then_verify(*args: object, **kwargs: object) -> tuple[str, ...]:
        pair.dc1.stop()
        return verify(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(apply_module, "_host_phase", then_pause)
    monkeypatch.setattr(apply_module, "_verify", stop_dc1_then_verify)
    try:
        result = fleet.hvlm("--log-level", "info", "apply", str(fleet.manifest), "--auto-approve")
    finally:
        monkeypatch.undo()
        pair.dc1.start()
        pair.resume_inbound()
    assert result.code == 0, result
    assert_reason(result, f"applied  directory/{first}/allowedToDelegateTo/prune  written on "
                          f"{DC1_URL}; it went away: re-applied on {DC2_URL}",
                  "Apply complete", "0 still differing")
    for name in names:  # the additions had reached DC2 before the host phase (the wait)
        assert_reason(result, f"applied  directory/{name}/allowedToDelegateTo  written on "
                              f"{DC1_URL}; it went away: re-applied on {DC2_URL}")
    on_dc2 = delegation_on(pair.dc2, names)
    for name in names:
        assert lower(on_dc2[name]) == lower(wanted_values(names, name)), on_dc2
    pair.replicate_now(into=1)
    pair.replicate_now(into=2)
    wait_until(lambda: two_dcs.replicated(names), 30, "both DCs agree")
    on_dc1, on_dc2 = two_dcs.both(names)
    assert on_dc1 == on_dc2
    for name in names:
        assert lower(on_dc1[name]) == lower(wanted_values(names, name))
    plan = fleet.plan()
    assert plan.code == 0, plan
