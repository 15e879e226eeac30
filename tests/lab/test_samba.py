"""The lab's Samba AD DC, checked with plain ldap3, ssl and MIT Kerberos tools (not hvlm's code).

Run inside a private network namespace (Samba's ports are fixed):
    unshare --net sh -c 'ip link set lo up && .venv/bin/python -m pytest tests/lab/test_samba.py -q'
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import textwrap
from pathlib import Path

import ldap3
import pytest
from ldap3.core.exceptions import LDAPSocketOpenError

from hvlm_lab.pki import LabCA
from hvlm_lab.samba.dc import (
    UAC_ACCOUNTDISABLE,
    UAC_PROTOCOL_TRANSITION,
    UAC_WORKSTATION_TRUST_ACCOUNT,
    Computer,
    SambaDC,
)
from tests.lab.samba_fixtures import OPERATOR, OPERATOR_PASSWORD, NewComputers, samba_template_dir

pytestmark = pytest.mark.samba
MIGRATION = "Microsoft Virtual System Migration Service"
REPO = Path(__file__).resolve().parents[2]


def ldaps(dc: SambaDC, user: str, password: str, ca: Path | None = None) -> ldap3.Connection:
    tls = ldap3.Tls(ca_certs_file=str(ca or dc.ca_path), validate=ssl.CERT_REQUIRED)
    server = ldap3.Server("127.0.0.1", port=636, use_ssl=True, tls=tls, get_info=ldap3.NONE)
    return ldap3.Connection(server, user, password, auto_bind=True)


def admin(dc: SambaDC) -> ldap3.Connection:
    return ldaps(dc, dc.admin_dn, dc.config.admin_password)


def read(conn: ldap3.Connection, dc: SambaDC, name: str, attrs: list[str]) -> dict[str, list[str]]:
    assert conn.search(dc.computer_dn(name), "(objectClass=computer)", ldap3.BASE, attributes=attrs)
    raw = conn.response[0]["raw_attributes"]
    return {a: [v.decode() for v in raw.get(a, [])] for a in attrs}


def test_ldaps_bind_validates_against_the_lab_ca(samba_dc: SambaDC) -> None:
    conn = admin(samba_dc)
    assert conn.bound
    assert conn.search(
        samba_dc.admin_dn, "(objectClass=user)", ldap3.BASE, attributes=["sAMAccountName"]
    )
    assert conn.entries[0].sAMAccountName.value == "Administrator"


def test_tls_certificate_valid_by_name_and_by_ip(samba_dc: SambaDC) -> None:
    ctx = ssl.create_default_context(cafile=str(samba_dc.ca_path))
    for name in ("dc1.lab.example", "127.0.0.1"):
        with (
            socket.create_connection(("127.0.0.1", 636)) as raw,
            ctx.wrap_socket(raw, server_hostname=name) as tls,
        ):
            assert tls.version() is not None
    with (
        socket.create_connection(("127.0.0.1", 636)) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        ctx.wrap_socket(raw, server_hostname="dc2.lab.example")


def test_ldaps_refuses_a_certificate_from_another_ca(samba_dc: SambaDC, tmp_path: Path) -> None:
    other = LabCA.create(tmp_path / "other-ca")
    with pytest.raises(LDAPSocketOpenError):
        ldaps(samba_dc, samba_dc.admin_dn, samba_dc.config.admin_password, other.cert_path)


def test_plain_ldap_simple_bind_needs_tls(samba_dc: SambaDC) -> None:
    conn = ldap3.Connection(
        ldap3.Server("127.0.0.1", port=389, get_info=ldap3.NONE),
        samba_dc.admin_dn,
        samba_dc.config.admin_password,
    )
    assert not conn.bind()
    assert conn.result["description"] == "strongerAuthRequired"


def test_host_account_is_created_as_windows_would(samba_dc: SambaDC) -> None:
    attrs = ["sAMAccountName", "dNSHostName", "servicePrincipalName", "userAccountControl"]
    entry = read(admin(samba_dc), samba_dc, "HV01", attrs)
    assert entry["sAMAccountName"] == ["HV01$"]
    assert entry["dNSHostName"] == ["hv01.lab.example"]
    uac = int(entry["userAccountControl"][0])
    assert uac & UAC_WORKSTATION_TRUST_ACCOUNT and not uac & UAC_ACCOUNTDISABLE
    assert {
        "HOST/HV01",
        "HOST/hv01.lab.example",
        f"{MIGRATION}/HV01",
        f"{MIGRATION}/hv01.lab.example",
    } <= set(entry["servicePrincipalName"])


def test_seeding_delegation_values_and_flags(
    samba_dc: SambaDC, new_computers: NewComputers
) -> None:
    (name,) = new_computers()
    values = ["MSSQLSvc/sql01.lab.example:1433", "CIFS/hv02.LAB.example"]
    samba_dc.seed_delegation(name, values, uac_set=UAC_PROTOCOL_TRANSITION)
    entry = read(
        admin(samba_dc), samba_dc, name, ["msDS-AllowedToDelegateTo", "userAccountControl"]
    )
    assert sorted(entry["msDS-AllowedToDelegateTo"]) == sorted(values)
    assert int(entry["userAccountControl"][0]) == (
        UAC_WORKSTATION_TRUST_ACCOUNT | UAC_PROTOCOL_TRANSITION
    )
    samba_dc.seed_delegation(name, uac_clear=UAC_PROTOCOL_TRANSITION)
    entry = read(admin(samba_dc), samba_dc, name, ["userAccountControl"])
    assert int(entry["userAccountControl"][0]) == UAC_WORKSTATION_TRUST_ACCOUNT


def test_s4u_proof_fails_before_and_succeeds_after_delegation(
    samba_dc: SambaDC, new_computers: NewComputers
) -> None:
    source, target = new_computers(2)
    spn = f"cifs/{target.lower()}.lab.example"
    before = samba_dc.prove_s4u(source, spn)
    assert not before.ok
    assert "constrained delegation failed" in before.output or "can't fulfill" in before.output
    samba_dc.seed_delegation(source, [spn])  # value without protocol transition: still refused
    assert not samba_dc.prove_s4u(source, spn).ok
    samba_dc.seed_delegation(source, uac_set=UAC_PROTOCOL_TRANSITION)
    after = samba_dc.prove_s4u(source, spn)
    assert after.ok, after.output


def test_non_privileged_user_cannot_write_delegation(samba_dc: SambaDC) -> None:
    conn = ldaps(samba_dc, f"{OPERATOR}@lab.example", OPERATOR_PASSWORD)
    assert read(conn, samba_dc, "HV02", ["dNSHostName"])["dNSHostName"] == ["hv02.lab.example"]
    conn.modify(
        samba_dc.computer_dn("HV02"),
        {"msDS-AllowedToDelegateTo": [(ldap3.MODIFY_ADD, ["cifs/hv03.lab.example"])]},
    )
    assert conn.result["description"] == "insufficientAccessRights"
    assert (
        read(admin(samba_dc), samba_dc, "HV02", ["msDS-AllowedToDelegateTo"])[
            "msDS-AllowedToDelegateTo"
        ]
        == []
    )


def test_bulk_creation_of_200_accounts(samba_dc: SambaDC) -> None:
    names = [f"BULK{i:03d}" for i in range(200)]
    samba_dc.add_computers([Computer(n, password=None) for n in names])  # no keys: ~3 s, not ~7
    conn = admin(samba_dc)
    found = conn.extend.standard.paged_search(
        samba_dc.base_dn,
        "(&(objectClass=computer)(sAMAccountName=BULK*))",
        attributes=["dNSHostName"],
        paged_size=500,
        generator=False,
    )
    entries = [e for e in found if e["type"] == "searchResEntry"]  # not referrals
    assert sorted(e["raw_attributes"]["dNSHostName"][0].decode() for e in entries) == sorted(
        f"{n.lower()}.lab.example" for n in names
    )


def test_http_keytab_decrypts_a_service_ticket(samba_dc: SambaDC, tmp_path: Path) -> None:
    keytab = samba_dc.export_http_keytab("HV03")
    env = samba_dc.krb5_env(tmp_path / "ccache")
    subprocess.run(
        ["kinit", "Administrator"],
        input=samba_dc.config.admin_password + "\n",
        text=True,
        env=env,
        check=True,
        capture_output=True,
    )
    proc = subprocess.run(
        ["kvno", "-k", str(keytab), "HTTP/hv03.lab.example"],
        text=True,
        env=env,
        capture_output=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "keytab entry valid" in proc.stdout


_LIFECYCLE = textwrap.dedent("""
    import json, socket, sys, time
    from pathlib import Path
    from hvlm_lab.pki import LabCA
    from hvlm_lab.samba.dc import PORTS, SambaDC
    work, template = Path(sys.argv[1]), Path(sys.argv[2])
    t0 = time.monotonic()
    dc = SambaDC.provision(work / "dc", ca=LabCA.create(work / "ca"), template_dir=template)
    t1 = time.monotonic()
    dc.start()
    dc.add_computers(["HV01", "HV02", "HV03"])
    t2 = time.monotonic()
    pid = dc.pid
    again = SambaDC.attach(work / "dc")   # as `hvlm lab down` would, from its state file
    again.stop()
    t3 = time.monotonic()
    def listening(port):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            return False
    print(json.dumps({"pid": pid, "listening": [p for p in PORTS if listening(p)],
                      "provision_s": t1 - t0, "start_and_3_accounts_s": t2 - t1,
                      "stop_s": t3 - t2}))
""")


def test_start_and_stop_in_a_fresh_namespace(
    samba_dc: SambaDC,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """A whole lifecycle in a nested network namespace (ports are fixed: one DC per namespace)."""
    template = samba_template_dir(request.config, tmp_path_factory)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    script = 'ip link set lo up && exec "$0" -c "$1" "$2" "$3"'
    proc = subprocess.run(
        [
            "unshare",
            "--net",
            "sh",
            "-c",
            script,
            sys.executable,
            _LIFECYCLE,
            str(tmp_path),
            str(template),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    print("samba lab timings:", report)
    assert report["listening"] == []
    assert not Path(f"/proc/{report['pid']}").exists()
    assert samba_dc.running()  # the session's DC, in the outer namespace, is untouched
