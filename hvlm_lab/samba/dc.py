"""The lab's directory: a throwaway Samba AD DC (real LDAP, LDAPS and Kerberos KDC) on 127.0.0.1.

Part of the lab (not the reconcile pipeline). `hvlm lab up`, the pytest fixtures
(tests/lab/samba_fixtures.py) and the integration tests of hvlm.directory run against it.
This module holds `SambaDC` and its test API (computer accounts, users, delegation seeding,
keytabs, S4U proof) and re-exports the package's public names; the rest of the package:

    config.py     constants, `DCConfig` (one per DC), smb.conf/krb5.conf text, `available()`
    provision.py  the domain on disk: `samba-tool domain provision` or a template copy, TLS files
    process.py    the `samba` process: start, readiness probes, stop by PID

Python API::

    ca = LabCA.create(workdir / "ca")
    dc = SambaDC.provision(workdir / "dc", ca=ca, admin_password="...")   # ~5-8 s, or a copy
    dc.start()                  # ready when rootDSE answers, TCP 88 accepts, TLS on 636 validates
    dc.add_computers(["HV01", "HV02"])        # as Windows would, all in ONE LDAP session
    dc.seed_delegation("HV01", ["MSSQLSvc/sql01.lab.example:1433"], uac_set=UAC_PROTOCOL_TRANSITION)
    dc.add_user("operator", "...")           # a NON-privileged account
    ok = dc.prove_s4u("HV01", "cifs/HV02.lab.example").ok   # S4U2Self + S4U2Proxy with MIT tools
    dc.stop()                   # SIGTERM by PID, waits until nothing listens

    SambaDC.attach(workdir / "dc")   # the same DC from another process (e.g. `hvlm lab down`)
    available()                      # is Samba (samba, samba-tool, kinit, kvno) installed?

Facts followed (../shared/notes/LAB.md) are documented where they are applied: config.py (the
smb.conf: private paths, ldap+kdc only, SASL over TLS), provision.py (templates, TLS SANs) and
process.py (fixed ports: one DC per network namespace, `-M single`).
"""

from __future__ import annotations

import json
import os
import ssl
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import ldap3

from hvlm_lab.pki import LabCA
from hvlm_lab.samba import process
from hvlm_lab.samba.config import (
    DC_ADDRESS,
    DC_HOST_NAME,
    ENCTYPES_AES_RC4,
    LAB_ADMIN_PASSWORD,
    LAB_MACHINE_PASSWORD,
    MIGRATION_SPN_CLASS,
    PORTS,
    STATE_FILE,
    UAC_ACCOUNTDISABLE,
    UAC_NORMAL_ACCOUNT,
    UAC_PROTOCOL_TRANSITION,
    UAC_TRUSTED_FOR_DELEGATION,
    UAC_WORKSTATION_TRUST_ACCOUNT,
    DCConfig,
    SambaError,
    available,
    run_tool,
)
from hvlm_lab.samba.provision import provision_domain

__all__ = [
    "DC_ADDRESS",
    "DC_HOST_NAME",
    "LAB_ADMIN_PASSWORD",
    "LAB_MACHINE_PASSWORD",
    "MIGRATION_SPN_CLASS",
    "PORTS",
    "UAC_ACCOUNTDISABLE",
    "UAC_NORMAL_ACCOUNT",
    "UAC_PROTOCOL_TRANSITION",
    "UAC_TRUSTED_FOR_DELEGATION",
    "UAC_WORKSTATION_TRUST_ACCOUNT",
    "Computer",
    "DCConfig",
    "S4UResult",
    "SambaDC",
    "SambaError",
    "available",
]


@dataclass(frozen=True)
class S4UResult:
    """The outcome of `prove_s4u`: ok when the KDC issued the delegated ticket."""

    ok: bool
    output: str


@dataclass(frozen=True)
class Computer:
    """A computer account to create. FQDN defaults to name.lower() + "." + the DNS domain."""

    name: str
    password: str | None = LAB_MACHINE_PASSWORD  # None: no keys (bulk creation ~2x faster)
    fqdn: str = ""
    extra_spns: tuple[str, ...] = ()
    delegate_to: tuple[str, ...] = ()  # msDS-AllowedToDelegateTo values
    uac_extra: int = 0  # bits OR-ed into 4096 (e.g. UAC_PROTOCOL_TRANSITION)


def _computer_entry(cfg: DCConfig, spec: Computer) -> tuple[str, dict[str, object]]:
    name = spec.name.upper()
    fqdn = spec.fqdn or f"{name.lower()}.{cfg.dns_domain}"
    spns = [f"HOST/{name}", f"HOST/{fqdn}", f"RestrictedKrbHost/{name}",
            f"RestrictedKrbHost/{fqdn}", f"{MIGRATION_SPN_CLASS}/{name}",
            f"{MIGRATION_SPN_CLASS}/{fqdn}", *spec.extra_spns]
    attrs: dict[str, object] = {
        "objectClass": ["top", "person", "organizationalPerson", "user", "computer"],
        "sAMAccountName": f"{name}$",
        "dNSHostName": fqdn,
        "servicePrincipalName": spns,
        "userAccountControl": str(UAC_WORKSTATION_TRUST_ACCOUNT | spec.uac_extra),
        "msDS-SupportedEncryptionTypes": str(ENCTYPES_AES_RC4),
    }
    if spec.password is not None:
        attrs["unicodePwd"] = _unicode_pwd(spec.password)
    if spec.delegate_to:
        attrs["msDS-AllowedToDelegateTo"] = list(spec.delegate_to)
    return f"CN={name},CN=Computers,{cfg.base_dn}", attrs


def _unicode_pwd(password: str) -> bytes:
    """AD's write-only password attribute: the quoted password in UTF-16-LE (LDAPS only)."""
    return f'"{password}"'.encode("utf-16-le")


def _raise_unless_ok(conn: ldap3.Connection, step: str) -> None:
    result = conn.result
    if result.get("result") != 0:
        raise SambaError(f"{step}: {result.get('description')} {result.get('message')}".strip())


@dataclass
class SambaDC:
    """One provisioned domain controller in a workdir; `pid` is set while it runs."""

    config: DCConfig
    pid: int | None = None
    _log: Path | None = field(default=None, repr=False)

    # ---- lifecycle -------------------------------------------------------------------------
    @classmethod
    def provision(
        cls,
        workdir: Path,
        *,
        ca: LabCA,
        realm: str = "LAB.EXAMPLE",
        domain: str = "LAB",
        admin_password: str = LAB_ADMIN_PASSWORD,
        template_dir: Path | None = None,
    ) -> SambaDC:
        """Provision a fresh domain into `workdir` (which must not hold one yet)."""
        cfg = DCConfig(Path(workdir).resolve(), realm.upper(), domain.upper(), admin_password)
        provision_domain(cfg, ca, template_dir)
        dc = cls(cfg)
        dc._save_state()
        return dc

    @classmethod
    def attach(cls, workdir: Path) -> SambaDC:
        """The DC provisioned in `workdir` by another process (reads its state file)."""
        state = json.loads((Path(workdir) / STATE_FILE).read_text())
        cfg = DCConfig(Path(state["workdir"]), state["realm"], state["domain"],
                       state["admin_password"], state.get("host_name", DC_HOST_NAME),
                       state.get("address", DC_ADDRESS), state.get("replicating", False),
                       Path(state["names_dir"]) if state.get("names_dir") else None)
        return cls(cfg, pid=state.get("pid"))

    def _save_state(self) -> None:
        cfg = self.config
        state = {"workdir": str(cfg.workdir), "realm": cfg.realm, "domain": cfg.domain,
                 "admin_password": cfg.admin_password, "host_name": cfg.host_name,
                 "address": cfg.address, "pid": self.pid, "replicating": cfg.replicating,
                 "names_dir": str(cfg.names_dir) if cfg.names_dir else None,
                 "ca": str(cfg.ca_path), "krb5_conf": str(cfg.krb5_conf),
                 "ldaps": self.ldaps_url, "dc_fqdn": cfg.dc_fqdn}
        cfg.state_file.write_text(json.dumps(state, indent=2) + "\n")
        cfg.state_file.chmod(0o600)

    def start(self, timeout: float = 60.0) -> float:
        """Start `samba` in the background; return the seconds it took to become ready."""
        started = time.monotonic()
        self._log = self.config.log_dir / "samba.out"
        proc = process.spawn(self.config, self._log)
        self.pid = proc.pid
        self._save_state()
        try:
            process.wait_ready(self.config, proc, started + timeout, self._log)
        except SambaError:
            self.stop()
            raise
        return time.monotonic() - started

    def running(self) -> bool:
        return process.running(self.pid)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM to the PID we started; wait until it is gone and nothing listens."""
        if self.pid is not None:
            process.terminate(self.pid, timeout)
        self.pid = None
        self._save_state()
        process.wait_ports_free(self.config, timeout)

    def __enter__(self) -> SambaDC:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- client-side facts -------------------------------------------------------------------
    @property
    def ldap_url(self) -> str:
        return f"ldap://{self.config.address}"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://{self.config.address}"

    @property
    def ca_path(self) -> Path:
        return self.config.ca_path

    @property
    def krb5_conf(self) -> Path:
        return self.config.krb5_conf

    @property
    def base_dn(self) -> str:
        return self.config.base_dn

    @property
    def admin_dn(self) -> str:
        return self.config.admin_dn

    def krb5_env(self, ccache: Path | None = None) -> dict[str, str]:
        """os.environ plus KRB5_CONFIG (and KRB5CCNAME when given) for MIT tools and gssapi."""
        env = dict(os.environ, KRB5_CONFIG=str(self.krb5_conf))
        if ccache is not None:
            env["KRB5CCNAME"] = f"FILE:{ccache}"
        return env

    def computer_dn(self, name: str) -> str:
        return f"CN={name.upper()},CN=Computers,{self.base_dn}"

    def user_dn(self, name: str) -> str:
        return f"CN={name},CN=Users,{self.base_dn}"

    @contextmanager
    def admin_connection(self) -> Iterator[ldap3.Connection]:
        """An LDAPS connection bound as Administrator, validating against the lab CA."""
        tls = ldap3.Tls(ca_certs_file=str(self.ca_path), validate=ssl.CERT_REQUIRED)
        server = ldap3.Server(self.config.address, port=636, use_ssl=True, tls=tls,
                              get_info=ldap3.NONE)
        conn = ldap3.Connection(server, self.admin_dn, self.config.admin_password,
                                auto_bind=True, raise_exceptions=False)
        try:
            yield conn
        finally:
            conn.unbind()

    # ---- accounts ----------------------------------------------------------------------------
    def add_computer(self, name: str, **kwargs: object) -> str:
        """Create one computer account as Windows would; returns its DN."""
        return self.add_computers([Computer(name, **kwargs)])[0]  # type: ignore[arg-type]

    def add_computers(self, computers: Iterable[Computer | str]) -> list[str]:
        """Create many computer accounts in ONE LDAP session (200 in a few seconds)."""
        specs = [c if isinstance(c, Computer) else Computer(c) for c in computers]
        dns: list[str] = []
        with self.admin_connection() as conn:
            for spec in specs:
                dn, attrs = _computer_entry(self.config, spec)
                conn.add(dn, attributes=attrs)
                _raise_unless_ok(conn, f"add computer {spec.name}")
                dns.append(dn)
        return dns

    def add_user(self, name: str, password: str) -> str:
        """Create an enabled, NON-privileged user (Domain Users only); returns its DN."""
        dn = self.user_dn(name)
        attrs = {
            "objectClass": ["top", "person", "organizationalPerson", "user"],
            "sAMAccountName": name,
            "userPrincipalName": f"{name}@{self.config.dns_domain}",
            "userAccountControl": str(UAC_NORMAL_ACCOUNT),
            "unicodePwd": _unicode_pwd(password),
        }
        with self.admin_connection() as conn:
            conn.add(dn, attributes=attrs)
            _raise_unless_ok(conn, f"add user {name}")
        return dn

    def seed_delegation(self, name: str, values: Sequence[str] = (), *, uac_set: int = 0,
                        uac_clear: int = 0) -> None:
        """Add msDS-AllowedToDelegateTo values (single values, as given) and set/clear UAC bits."""
        dn = self.computer_dn(name)
        with self.admin_connection() as conn:
            changes: dict[str, list[tuple[str, list[object]]]] = {}
            if values:
                changes["msDS-AllowedToDelegateTo"] = [(ldap3.MODIFY_ADD, list(values))]
            if uac_set or uac_clear:
                current = self._uac(conn, dn)
                new = (current | uac_set) & ~uac_clear
                changes["userAccountControl"] = [(ldap3.MODIFY_REPLACE, [str(new)])]
            if changes:
                conn.modify(dn, changes)
                _raise_unless_ok(conn, f"seed delegation on {name}")

    def read_computer(self, name: str) -> dict[str, list[str]]:
        """The attributes hvlm cares about, as raw strings (for test assertions)."""
        attrs = ["sAMAccountName", "dNSHostName", "servicePrincipalName", "userAccountControl",
                 "msDS-AllowedToDelegateTo"]
        with self.admin_connection() as conn:
            conn.search(self.computer_dn(name), "(objectClass=computer)", ldap3.BASE,
                        attributes=attrs)
            _raise_unless_ok(conn, f"read computer {name}")
            entry = conn.response[0]["raw_attributes"]
            return {k: [v.decode() for v in entry.get(k, [])] for k in attrs}

    @staticmethod
    def _uac(conn: ldap3.Connection, dn: str) -> int:
        conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["userAccountControl"])
        _raise_unless_ok(conn, f"read userAccountControl of {dn}")
        return int(conn.response[0]["raw_attributes"]["userAccountControl"][0])

    # ---- Kerberos ----------------------------------------------------------------------------
    def export_keytab(self, principal: str, path: Path | None = None) -> Path:
        """Export the keys of `principal` (e.g. 'HV01$' or 'HTTP/hv01.lab.example')."""
        stem = principal.replace("/", "_").replace("$", "").replace(" ", "_")
        target = Path(path) if path else self.config.keytab_dir / f"{stem}.keytab"
        target.unlink(missing_ok=True)
        run_tool(["samba-tool", "domain", "exportkeytab", str(target), f"--principal={principal}",
              "-s", str(self.config.smb_conf)], f"export keytab of {principal}")
        return target

    def export_http_keytab(self, name: str) -> Path:
        """Keys for HTTP/<fqdn> of host `name` (the KDC maps HTTP/ to the account's HOST/ SPN)."""
        return self.export_keytab(f"HTTP/{name.lower()}.{self.config.dns_domain}")

    def prove_s4u(self, source: str, target_spn: str, impersonate: str = "Administrator"
                  ) -> S4UResult:
        """S4U2Self + S4U2Proxy as `source`'s computer account toward `target_spn` (MIT tools)."""
        account = f"{source.upper()}$"
        keytab = self.export_keytab(account)
        ccache = self.config.workdir / f"ccache-s4u-{source.upper()}"
        env = self.krb5_env(ccache)
        principal = f"{account}@{self.config.realm}"
        kinit = run_tool(["kinit", "-f", "-k", "-t", str(keytab), principal], "kinit", env,
                     check=False, timeout=30)
        if kinit.returncode != 0:
            return S4UResult(False, f"kinit: {kinit.stderr.strip()}")
        kvno = run_tool(["kvno", "-k", str(keytab), "-I", impersonate, "-P", target_spn],
                    "kvno", env, check=False, timeout=30)
        ccache.unlink(missing_ok=True)
        return S4UResult(kvno.returncode == 0, (kvno.stdout + kvno.stderr).strip())
