"""Kerberos end to end: hvlm plans and applies from a ticket cache, with no password at all.

The production auth path. The test (not hvlm) runs `kinit` as a dedicated Domain Admin into a
private ticket cache with the lab's krb5.conf; hvlm then runs as a subprocess whose environment
holds KRB5CCNAME and KRB5_CONFIG and no HVLM_* variable. The lab's hosts speak WinRM over plain
HTTP with Kerberos message encryption, accepting tickets with keys the lab's KDC (Samba) exported
(HTTP/<fqdn> keytab); the directory is bound with SASL GSSAPI over LDAPS to dc1.lab.example.

Evidence that Kerberos was used, not assumed: no password exists in hvlm's environment (NTLM
could not even start), each host saw a one-leg handshake (one 401 per connection, none refused),
and the ticket cache afterwards holds hvlm's service tickets for each host and for the DC's
ldap/ service. Delegation is proven with the KDC itself: S4U2Self + S4U2Proxy from KRB01 to
cifs/krb02 fails before hvlm's apply and succeeds after it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hvlm_lab.pki import LabCA
from hvlm_lab.samba.dc import SambaDC
from hvlm_lab.wsman.auth import merge_keytabs
from hvlm_lab.wsman.server import Credentials, LabServer, Transport
from tests.security.conftest import (
    DC_URL,
    DOMAIN,
    REALM,
    LabHost,
    Run,
    clean_env,
    delegation_of,
    domain_admin,
    host_entry,
    hosts_file,
    hvlm,
    lab_host,
    manifest,
    unique_secret,
)

pytestmark = [pytest.mark.lab, pytest.mark.samba]

ADMIN = "hvlmkrb"
HOSTS = ("KRB01", "KRB02")


@dataclass(frozen=True)
class KerberosLab:
    lab: LabServer
    dc: SambaDC
    work: Path
    ca: Path
    hosts_file: Path
    password: str = field(repr=False)  # the TEST's: given to kinit, never to hvlm
    ntlm: Credentials = field(repr=False)  # the hosts' NTLM account (the control run only)

    def kinit(self, ccache: Path) -> Path:
        """A fresh ticket cache holding only the admin's TGT."""
        proc = subprocess.run(
            ["kinit", f"{ADMIN}@{REALM}"],
            input=self.password + "\n",
            env=self.dc.krb5_env(ccache),
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        assert service_tickets(self.tickets(ccache)) == [f"krbtgt/{REALM}@{REALM}"]
        return ccache

    def env(self, ccache: Path) -> dict[str, str]:
        """What hvlm gets: the ticket cache and the realm's config, not one password."""
        env = clean_env(KRB5CCNAME=f"FILE:{ccache}", KRB5_CONFIG=str(self.dc.krb5_conf))
        assert not [k for k in env if "PASSWORD" in k.upper() or k.startswith("HVLM_")]
        return env

    def manifest(self, name: str, auth: str, by_address: bool) -> Path:
        """by_address: connect to 127.0.0.1:PORT (FQDN only names the host); else to the FQDN."""
        hosts = [self._host(h, by_address) for h in HOSTS]
        directory = {
            "servers": [{"url": DC_URL, "address": "127.0.0.1"}],
            "auth": "kerberos",
            "certValidation": str(self.ca),
        }
        return manifest(self.work / name, hosts, {"transport": "http", "auth": auth}, directory)

    def _host(self, name: str, by_address: bool) -> LabHost:
        if by_address:
            return host_entry(self.lab, name)
        return LabHost(name, None, {"port": self.lab.endpoint(name).port})

    def tickets(self, ccache: Path) -> str:
        proc = subprocess.run(
            ["klist", "-c", f"FILE:{ccache}"],
            env=self.dc.krb5_env(ccache),
            capture_output=True,
            text=True,
            check=True,
        )
        return proc.stdout


def service_tickets(klist: str) -> list[str]:
    """The principals of a `klist` listing (last column of each ticket line)."""
    return [
        line.split()[-1]
        for line in klist.splitlines()
        if "@" in line
        and "/" in line
        and not line.startswith(("Ticket cache", "Default principal"))
    ]


@pytest.fixture(scope="module")
def kerberos_lab(
    samba_dc: SambaDC,
    samba_ca: LabCA,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[KerberosLab]:
    work = tmp_path_factory.mktemp("kerberos-lab")
    password = unique_secret("krb")
    domain_admin(samba_dc, ADMIN, password)
    samba_dc.add_computers(HOSTS)
    keytab = merge_keytabs([samba_dc.export_http_keytab(n) for n in HOSTS], work / "hosts.kt")
    names = [f"{h.lower()}.{DOMAIN}" for h in HOSTS] + [f"dc1.{DOMAIN}"]
    # The hosts' acceptor (in this process) reads the keytab named by KRB5_KTNAME. Their NTLM
    # password is one hvlm never sees (but for the control run): only Kerberos can get hvlm in.
    patch = pytest.MonkeyPatch()
    patch.setenv("KRB5_KTNAME", f"FILE:{keytab}")
    patch.setenv("KRB5_CONFIG", str(samba_dc.krb5_conf))
    ntlm = Credentials(ADMIN, unique_secret("ntlm"))
    configs = [lab_host(n, ntlm, Transport.HTTP_NEGOTIATE, kerberos=True) for n in HOSTS]
    try:
        with LabServer(configs, samba_ca, work / "lab") as lab:
            yield KerberosLab(
                lab,
                samba_dc,
                work,
                samba_ca.cert_path,
                hosts_file(work / "hosts", names),
                password,
                ntlm,
            )
    finally:
        patch.undo()


def run(klab: KerberosLab, ccache: Path, *args: str, by_name: bool = True) -> Run:
    return hvlm(
        ["--log-level", "info", *args],
        klab.env(ccache),
        klab.work,
        hosts_file=klab.hosts_file if by_name else None,
    )


def assert_kerberos_handshakes(klab: KerberosLab) -> None:
    """Every session authenticated in one leg (one 401, then the AP-REQ is accepted): Kerberos.

    NTLM needs two legs (401, NEGOTIATE -> 401 CHALLENGE, AUTHENTICATE): see the control test.
    """
    for name in HOSTS:
        stats = klab.lab.stats(name)
        sessions = stats["action_counts"].get("Create", 0)
        assert sessions > 0 and stats["auth_failures"] == 0, (name, stats)
        assert stats["http_status"].get("401", 0) == sessions, (name, stats)


def assert_host_tickets(klab: KerberosLab, ccache: Path) -> list[str]:
    """hvlm got its service tickets from the cache: HOST/<fqdn> of each host, never an IP."""
    tickets = service_tickets(klab.tickets(ccache))
    for name in HOSTS:
        assert f"host/{name.lower()}.{DOMAIN}@{REALM}" in tickets, tickets
    assert not [t for t in tickets if "127.0.0.1" in t], tickets
    return tickets


def test_plan_and_apply_from_a_ticket_cache(kerberos_lab: KerberosLab, tmp_path: Path) -> None:
    klab = kerberos_lab
    ccache = klab.kinit(tmp_path / "ccache")
    before = klab.dc.prove_s4u("KRB01", f"cifs/krb02.{DOMAIN}")
    assert not before.ok, before.output
    m = str(klab.manifest("kerberos.yaml", "kerberos", by_address=False))
    plan_file = str(tmp_path / "plan.json")
    klab.lab.reset_stats()

    plan = run(klab, ccache, "plan", m, "--out", plan_file, "--detailed-exitcode")
    assert plan.returncode == 2, plan.text
    applied = run(klab, ccache, "apply", plan_file, "--auto-approve")
    assert applied.returncode == 0, applied.text
    again = run(klab, ccache, "plan", m, "--detailed-exitcode")
    assert again.returncode == 0, again.text

    assert_kerberos_handshakes(klab)
    assert f"ldap/dc1.{DOMAIN}@{REALM}" in assert_host_tickets(klab, ccache)
    assert f"cifs/krb02.{DOMAIN}" in delegation_of(klab.dc, "KRB01")
    after = klab.dc.prove_s4u("KRB01", f"cifs/krb02.{DOMAIN}")
    assert after.ok, after.output


def test_negotiate_takes_kerberos_from_the_ticket_cache(
    kerberos_lab: KerberosLab, tmp_path: Path
) -> None:
    klab = kerberos_lab
    ccache = klab.kinit(tmp_path / "ccache")
    m = str(klab.manifest("negotiate.yaml", "negotiate", by_address=False))
    klab.lab.reset_stats()
    plan = run(klab, ccache, "plan", m, "--detailed-exitcode")
    assert plan.returncode in (0, 2), plan.text
    assert_kerberos_handshakes(klab)
    assert_host_tickets(klab, ccache)


@pytest.mark.parametrize("auth", ["kerberos", "negotiate"])
def test_address_differs_from_the_fqdn(
    kerberos_lab: KerberosLab, auth: str, tmp_path: Path
) -> None:
    """address 127.0.0.1:PORT, fqdn krbNN.lab.example: the ticket must be for the FQDN.

    hvlm has no name resolution here (no private /etc/hosts): it must ask for the host's
    service ticket by its FQDN (pypsrp negotiate_hostname_override), not for HOST/127.0.0.1.
    """
    klab = kerberos_lab
    ccache = klab.kinit(tmp_path / "ccache")
    m = str(klab.manifest(f"address-{auth}.yaml", auth, by_address=True))
    klab.lab.reset_stats()
    plan = run(klab, ccache, "plan", m, "--detailed-exitcode", by_name=False)
    assert plan.returncode in (0, 2), plan.text
    assert_kerberos_handshakes(klab)
    assert_host_tickets(klab, ccache)


def test_control_ntlm_shows_two_legs_per_session(kerberos_lab: KerberosLab, tmp_path: Path) -> None:
    """The handshake count above tells Kerberos from NTLM: the same hosts over NTLM take two."""
    klab = kerberos_lab
    m = str(klab.manifest("ntlm.yaml", "ntlm", by_address=True))
    env = clean_env(
        HVLM_WINRM_USER=klab.ntlm.username,
        HVLM_WINRM_PASSWORD=klab.ntlm.password,
        KRB5CCNAME=f"FILE:{klab.kinit(tmp_path / 'ccache')}",  # the directory still binds GSSAPI
        KRB5_CONFIG=str(klab.dc.krb5_conf),
    )
    klab.lab.reset_stats()
    plan = hvlm(["plan", m, "--detailed-exitcode"], env, klab.work)
    assert plan.returncode in (0, 2), plan.text
    for name in HOSTS:
        stats = klab.lab.stats(name)
        assert stats["http_status"].get("401", 0) == 2 * stats["action_counts"]["Create"], stats
