"""hvlm's directory session against the lab's real Samba AD DC (issue 5's acceptance).

Run inside a private network namespace (Samba's ports are fixed):
    unshare --net sh -c 'ip link set lo up && .venv/bin/python -m pytest tests/integration/test_directory.py'
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hvlm.directory.session import DirectorySession, SimpleCredentials
from hvlm.errors import (
    CredentialsMissing,
    DirectoryAccessDenied,
    DirectoryAuthError,
    DirectoryUnreachable,
)
from hvlm.model import DirectoryAuth, DirectoryServer, DirectorySpec
from hvlm_lab.pki import LabCA
from hvlm_lab.samba.dc import UAC_PROTOCOL_TRANSITION, Computer, SambaDC
from tests.lab.samba_fixtures import OPERATOR, OPERATOR_PASSWORD, NewComputers

pytestmark = pytest.mark.samba
MIGRATION = "Microsoft Virtual System Migration Service"
DONT_EXPIRE_PASSWORD = 0x10000
DC = DirectoryServer("ldaps://dc1.lab.example", "dc1.lab.example", 636, True, "127.0.0.1")


def spec(
    dc: SambaDC,
    *servers: DirectoryServer,
    auth: DirectoryAuth = DirectoryAuth.SIMPLE,
    ca: Path | None = None,
) -> DirectorySpec:
    return DirectorySpec(
        "lab.example", servers or (DC,), auth, str(ca or dc.ca_path), dc.base_dn, timeout_seconds=3
    )


def admin(dc: SambaDC) -> SimpleCredentials:
    return SimpleCredentials("Administrator@lab.example", dc.config.admin_password)


def session(dc: SambaDC, *servers: DirectoryServer) -> DirectorySession:
    return DirectorySession(spec(dc, *servers), admin(dc))


def values_toward(peer: str) -> list[str]:
    fqdn = f"{peer.lower()}.lab.example"
    return [f"{MIGRATION}/{peer}", f"{MIGRATION}/{fqdn}", f"cifs/{peer}", f"cifs/{fqdn}"]


def test_read_200_accounts_is_one_search(samba_dc: SambaDC) -> None:
    names = [f"R{i:03d}" for i in range(200)]
    samba_dc.add_computers([Computer(n, password=None) for n in names])
    with session(samba_dc) as directory:
        state = directory.read([*names, "NOSUCHHOST"])
        assert directory.counters.searches == 1
        assert directory.counters.search_requests == 1
    assert len(state.accounts) == 200
    assert state.missing == ("NOSUCHHOST",)
    account = state.account("r007")
    assert account is not None
    assert account.dns_host_name == "r007.lab.example"
    assert account.sam_account_name == "R007$"
    assert f"{MIGRATION}/r007.lab.example" in account.service_principal_names


def test_unrelated_values_survive_and_case_variants_are_not_duplicated(
    samba_dc: SambaDC, new_computers: NewComputers
) -> None:
    source, peer = new_computers(2)
    unrelated = ["MSSQLSvc/sql01.lab.example:1433", "cifs/files01.lab.example"]
    variant = f"CIFS/{peer.upper()}.LAB.EXAMPLE"
    samba_dc.seed_delegation(source, [*unrelated, variant])
    with session(samba_dc) as directory:
        account = directory.read([source]).accounts[0]
        result = directory.write(account, add=values_toward(peer), protocol_transition=True)
        assert directory.counters.modifies == 1
    assert result.modify is not None
    assert len(result.modify.add_values) == 3  # the case variant already satisfied cifs/<fqdn>
    stored = samba_dc.read_computer(source)["msDS-AllowedToDelegateTo"]
    assert sorted(stored) == sorted([*unrelated, variant, *values_toward(peer)[:3]])
    with session(samba_dc) as directory:  # a second run changes nothing and sends no modify
        again = directory.write(
            directory.read([source]).accounts[0], add=values_toward(peer), protocol_transition=True
        )
        assert not again.changed and directory.counters.modifies == 0


def test_s4u_fails_before_and_succeeds_after_hvlms_write(
    samba_dc: SambaDC, new_computers: NewComputers
) -> None:
    source, peer = new_computers(2)
    spn = f"cifs/{peer.lower()}.lab.example"
    assert not samba_dc.prove_s4u(source, spn).ok
    with session(samba_dc) as directory:
        account = directory.read([source]).accounts[0]
        directory.write(account, add=values_toward(peer), protocol_transition=True)
    proof = samba_dc.prove_s4u(source, spn)
    assert proof.ok, proof.output


def test_non_privileged_account_gets_the_clear_message_and_nothing_changes(
    samba_dc: SambaDC, new_computers: NewComputers
) -> None:
    source, peer = new_computers(2)
    before = samba_dc.read_computer(source)
    creds = SimpleCredentials(f"{OPERATOR}@lab.example", OPERATOR_PASSWORD)
    with DirectorySession(spec(samba_dc), creds) as directory:
        account = directory.read([source]).accounts[0]
        with pytest.raises(DirectoryAccessDenied) as caught:
            directory.write(account, add=values_toward(peer), protocol_transition=True)
    message = str(caught.value)
    assert "ldaps://dc1.lab.example" in message
    assert account.dn in message
    assert "insufficientAccessRights" in message
    assert "SeEnableDelegationPrivilege" in message and "Domain Admins" in message
    assert samba_dc.read_computer(source) == before


def test_concurrent_uac_change_is_kept_not_overwritten(
    samba_dc: SambaDC, new_computers: NewComputers
) -> None:
    (source,) = new_computers()
    with session(samba_dc) as directory:
        stale = directory.read([source]).accounts[0]
        samba_dc.seed_delegation(source, uac_set=DONT_EXPIRE_PASSWORD)  # someone else, meanwhile
        result = directory.write(stale, protocol_transition=True)
        assert result.attempts == 2  # the guarded delete of the old value failed, then re-read
        assert directory.counters.modifies == 2
    uac = int(samba_dc.read_computer(source)["userAccountControl"][0])
    assert uac & DONT_EXPIRE_PASSWORD and uac & UAC_PROTOCOL_TRANSITION


def test_values_already_added_or_already_gone_count_as_done(
    samba_dc: SambaDC, new_computers: NewComputers
) -> None:
    source, peer = new_computers(2)
    owned = values_toward(peer)
    samba_dc.seed_delegation(source, [owned[3], "cifs/old01.lab.example"])
    with session(samba_dc) as directory:
        stale = directory.read([source]).accounts[0]
    samba_dc.seed_delegation(source, [owned[0]])  # added out of band after the read
    with session(samba_dc) as directory:
        directory.write(stale, delete=["cifs/old01.lab.example"])  # deleted: now gone
        result = directory.write(stale, add=owned, delete=["cifs/old01.lab.example"])
        assert result.changed and result.attempts == 2
    assert sorted(samba_dc.read_computer(source)["msDS-AllowedToDelegateTo"]) == sorted(owned)


def test_failover_to_the_next_server(samba_dc: SambaDC) -> None:
    down = DirectoryServer("ldaps://dc0.lab.example", "dc0.lab.example", 636, True, "127.0.0.2")
    with session(samba_dc, down, DC) as directory:
        assert directory.server == DC
        assert directory.read(["HV01"]).accounts[0].name == "HV01"
    with pytest.raises(DirectoryUnreachable) as caught:
        session(samba_dc, down).open()
    assert "ldaps://dc0.lab.example" in str(caught.value)


def test_starttls_on_ldap_url(samba_dc: SambaDC) -> None:
    plain = DirectoryServer("ldap://dc1.lab.example", "dc1.lab.example", 389, False, "127.0.0.1")
    with session(samba_dc, plain) as directory:
        assert directory.read(["HV02"]).accounts[0].dns_host_name == "hv02.lab.example"


def test_wrong_password_names_the_variables(samba_dc: SambaDC) -> None:
    creds = SimpleCredentials("Administrator@lab.example", "wrong")
    with pytest.raises(DirectoryAuthError) as caught:
        DirectorySession(spec(samba_dc), creds).open()
    assert "invalidCredentials" in str(caught.value)
    assert "HVLM_LDAP_USER" in str(caught.value)
    assert "wrong" not in str(caught.value).replace("wrong user", "")


def test_certificate_from_another_ca_is_refused(samba_dc: SambaDC, tmp_path: Path) -> None:
    other = LabCA.create(tmp_path / "other")
    directory = DirectorySession(spec(samba_dc, ca=other.cert_path), admin(samba_dc))
    with pytest.raises(DirectoryUnreachable) as caught:
        directory.open()
    assert "TLS certificate not trusted" in str(caught.value)
    assert "certValidation" in str(caught.value)


def test_simple_bind_credentials_come_from_the_environment(samba_dc: SambaDC) -> None:
    with pytest.raises(CredentialsMissing, match="HVLM_LDAP_PASSWORD"):
        DirectorySession(spec(samba_dc), env={"HVLM_LDAP_USER": "Administrator@lab.example"})
    env = {
        "HVLM_LDAP_USER": "Administrator@lab.example",
        "HVLM_LDAP_PASSWORD": samba_dc.config.admin_password,
    }
    with DirectorySession(spec(samba_dc), env=env) as directory:
        assert directory.read(["HV03"]).accounts


def test_kerberos_bind_from_the_ticket_cache(
    samba_dc: SambaDC, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = samba_dc.krb5_env(tmp_path / "ccache")
    subprocess.run(
        ["kinit", "Administrator"],
        input=samba_dc.config.admin_password + "\n",
        text=True,
        env=env,
        check=True,
        capture_output=True,
    )
    monkeypatch.setenv("KRB5_CONFIG", env["KRB5_CONFIG"])
    monkeypatch.setenv("KRB5CCNAME", env["KRB5CCNAME"])
    kerberos = spec(samba_dc, auth=DirectoryAuth.KERBEROS)
    with DirectorySession(kerberos, env={}) as directory:
        assert directory.read(["HV01"]).accounts[0].sam_account_name == "HV01$"


def test_filter_metacharacters_in_names_match_nothing(samba_dc: SambaDC) -> None:
    with session(samba_dc) as directory:
        state = directory.read(["HV*", "*", "HV01)(sAMAccountName=HV02"])
        assert directory.counters.searches == 1
    assert state.accounts == ()
    assert state.missing == ("HV*", "*", "HV01)(sAMAccountName=HV02")
