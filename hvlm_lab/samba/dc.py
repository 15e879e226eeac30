"""The lab's directory: a throwaway Samba AD DC (real LDAP, LDAPS and Kerberos KDC) on 127.0.0.1.

Part of the lab (not the reconcile pipeline). `hvlm lab up`, the pytest fixtures
(tests/lab/samba_fixtures.py) and the integration tests of hvlm.directory run against it.

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

Facts followed (../shared/notes/LAB.md): the domain is provisioned into a private targetdir, and
every pid/log/socket/lock/state directory lives inside the workdir, so nothing lands in
/var/lib/samba or /run/samba. The server runs with `-M single` and `ldap server require strong
auth = allow_sasl_over_tls` (SASL GSSAPI over LDAPS). Only the ldap and kdc services run: no DNS
server (it would forward to a non-loopback resolver), no dynamic DNS/SPN updates, no SMB.
TLS uses a certificate issued by the lab CA with SANs dc1.lab.example and 127.0.0.1, so clients
validate against `ca_path` by IP and by name. `krb5_conf` is a client configuration (kdc =
127.0.0.1, rdns = false, dns_canonicalize_hostname = false, forwardable = true) for KRB5_CONFIG.

Samba's ports are fixed (389/636/88): one DC per network namespace. Run tests that start a DC
inside `unshare --net sh -c 'ip link set lo up && ...'`; `start()` refuses when a port is taken.

Provisioning is the slow part. `provision(..., template_dir=DIR)` keeps a provisioned copy per
(realm, domain, password) in DIR and copies it next time (the provisioned tree holds no absolute
path: this module writes smb.conf itself).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import ldap3

from hvlm_lab.pki import LabCA

# userAccountControl bits (MicrosoftDocs a-useraccountcontrol.md)
UAC_ACCOUNTDISABLE = 0x00000002
UAC_NORMAL_ACCOUNT = 0x00000200
UAC_WORKSTATION_TRUST_ACCOUNT = 0x00001000
UAC_TRUSTED_FOR_DELEGATION = 0x00080000
UAC_PROTOCOL_TRANSITION = 0x01000000  # TRUSTED_TO_AUTH_FOR_DELEGATION

MIGRATION_SPN_CLASS = "Microsoft Virtual System Migration Service"
DC_HOST_NAME = "DC1"
DC_ADDRESS = "127.0.0.1"
PORTS = (389, 636, 88)
_ENCTYPES_AES_RC4 = 0x1C  # what a joined Windows computer advertises: RC4, AES128, AES256
_TOOLS = ("samba", "samba-tool", "kinit", "kvno")
_STATE_FILE = "samba-dc.json"
# A throwaway lab's well-known passwords (never production: the DC listens on loopback only).
LAB_ADMIN_PASSWORD = "Lab-Admin-Pass-1!"  # noqa: S105
LAB_MACHINE_PASSWORD = "Lab-Machine-Pass-1!"  # noqa: S105


class SambaError(RuntimeError):
    """A lab directory step failed; the message names the step and carries the tool's output."""


def available() -> bool:
    """True when Samba AD DC and the MIT Kerberos client tools are installed."""
    return all(_which(tool) for tool in _TOOLS)


def _which(tool: str) -> str | None:
    return shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")


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


@dataclass(frozen=True)
class DCConfig:
    """What identifies a provisioned domain."""

    workdir: Path
    realm: str = "LAB.EXAMPLE"
    domain: str = "LAB"
    admin_password: str = LAB_ADMIN_PASSWORD

    @property
    def dns_domain(self) -> str:
        return self.realm.lower()

    @property
    def base_dn(self) -> str:
        return ",".join(f"DC={part}" for part in self.dns_domain.split("."))

    @property
    def dc_fqdn(self) -> str:
        return f"{DC_HOST_NAME.lower()}.{self.dns_domain}"

    @property
    def admin_dn(self) -> str:
        return f"CN=Administrator,CN=Users,{self.base_dn}"

    @property
    def target_dir(self) -> Path:
        return self.workdir / "samba"

    @property
    def smb_conf(self) -> Path:
        return self.target_dir / "etc" / "smb.conf"

    @property
    def run_dir(self) -> Path:
        return self.workdir / "run"

    @property
    def log_dir(self) -> Path:
        return self.workdir / "log"

    @property
    def tls_dir(self) -> Path:
        return self.workdir / "tls"

    @property
    def keytab_dir(self) -> Path:
        return self.workdir / "keytabs"

    @property
    def krb5_conf(self) -> Path:
        return self.workdir / "krb5.conf"

    @property
    def ca_path(self) -> Path:
        return self.tls_dir / "ca.pem"

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "samba.pid"


def _path_options(cfg: DCConfig) -> dict[str, str]:
    return {
        "interfaces": DC_ADDRESS,
        "bind interfaces only": "yes",
        "pid directory": str(cfg.run_dir),
        "log file": str(cfg.log_dir / "samba.log"),
        "ncalrpc dir": str(cfg.run_dir / "ncalrpc"),
        "winbindd socket directory": str(cfg.run_dir / "winbindd"),
        "ntp signd socket directory": str(cfg.run_dir / "ntp_signd"),
    }


def _smb_conf_text(cfg: DCConfig) -> str:
    target = cfg.target_dir
    options = {
        "netbios name": DC_HOST_NAME,
        "realm": cfg.realm,
        "workgroup": cfg.domain,
        "server role": "active directory domain controller",
        "private dir": str(target / "private"),
        "lock directory": str(target),
        "state directory": str(target / "state"),
        "cache directory": str(target / "cache"),
        "binddns dir": str(target / "bind-dns"),
        **_path_options(cfg),
        "server services": "ldap, kdc",
        "dns update command": "/bin/true",
        "spn update command": "/bin/true",
        "ldap server require strong auth": "allow_sasl_over_tls",
        "tls enabled": "yes",
        "tls keyfile": str(cfg.tls_dir / "dc.key"),
        "tls certfile": str(cfg.tls_dir / "dc.pem"),
        "tls cafile": str(cfg.ca_path),
        "log level": "1",
        "ldb:nosync": "true",  # a throwaway database: skip fsync (Samba's own selftest does)
    }
    lines = ["# written by hvlm_lab.samba.dc", "[global]"]
    lines += [f"\t{key} = {value}" for key, value in options.items()]
    return "\n".join(lines) + "\n"


def _krb5_conf_text(cfg: DCConfig) -> str:
    realm, dns = cfg.realm, cfg.dns_domain
    return (
        "[libdefaults]\n"
        f"\tdefault_realm = {realm}\n"
        "\tdns_lookup_realm = false\n\tdns_lookup_kdc = false\n"
        "\trdns = false\n\tdns_canonicalize_hostname = false\n\tforwardable = true\n"
        "\tudp_preference_limit = 1\n"
        "[realms]\n"
        f"\t{realm} = {{\n\t\tkdc = {DC_ADDRESS}\n\t\tadmin_server = {DC_ADDRESS}\n\t}}\n"
        "[domain_realm]\n"
        f"\t.{dns} = {realm}\n\t{dns} = {realm}\n"
    )


def _run(argv: Sequence[str], step: str, env: Mapping[str, str] | None = None,
         check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        list(argv), capture_output=True, text=True, env=dict(env) if env is not None else None,
        timeout=timeout, check=False,
    )
    if check and proc.returncode != 0:
        raise SambaError(f"{step} failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return proc


def _provision_into(cfg: DCConfig) -> None:
    empty = cfg.workdir / "empty-smb.conf"
    empty.write_text("")
    argv = [
        "samba-tool", "domain", "provision", "-s", str(empty),
        f"--targetdir={cfg.target_dir}", f"--realm={cfg.realm}", f"--domain={cfg.domain}",
        f"--host-name={DC_HOST_NAME}", f"--host-ip={DC_ADDRESS}", "--server-role=dc",
        "--dns-backend=SAMBA_INTERNAL", f"--adminpass={cfg.admin_password}",
    ]
    argv += [f"--option={key} = {value}" for key, value in _path_options(cfg).items()]
    _run(argv, "samba-tool domain provision", timeout=300)
    empty.unlink()
    # The DC's own SPNs (ldap/dc1...: SASL GSSAPI needs them) are normally added by samba at
    # start-up, in the background; the lab turns that off and adds them here, once, offline.
    cfg.smb_conf.write_text(_smb_conf_text(cfg))
    _run([_which("samba_spnupdate") or "samba_spnupdate", "-s", str(cfg.smb_conf)],
         "samba_spnupdate")


def _template_key(cfg: DCConfig) -> str:
    version = _run(["samba", "--version"], "samba --version").stdout.strip()
    raw = "\0".join([version, cfg.realm, cfg.domain, cfg.admin_password])
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def _from_template(cfg: DCConfig, template_dir: Path) -> None:
    cached = template_dir / _template_key(cfg)
    if not cached.is_dir():
        scratch = DCConfig(template_dir / f".build-{os.getpid()}-{time.monotonic_ns()}",
                           cfg.realm, cfg.domain, cfg.admin_password)
        scratch.workdir.mkdir(parents=True)
        _provision_into(scratch)
        with contextlib.suppress(OSError):  # atomic: a concurrent builder may have won the race
            scratch.target_dir.rename(cached)
        shutil.rmtree(scratch.workdir, ignore_errors=True)
    shutil.copytree(cached, cfg.target_dir, symlinks=True)


def _write_tls(cfg: DCConfig, ca: LabCA) -> None:
    cfg.tls_dir.mkdir(parents=True, exist_ok=True)
    ca.issue(cfg.tls_dir, "dc", [cfg.dc_fqdn, DC_HOST_NAME.lower()], [DC_ADDRESS])
    shutil.copyfile(ca.cert_path, cfg.ca_path)


def _port_open(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((DC_ADDRESS, port), timeout=timeout):
            return True
    except OSError:
        return False


def _tls_ok(cfg: DCConfig) -> bool:
    ctx = ssl.create_default_context(cafile=str(cfg.ca_path))
    try:
        with (socket.create_connection((DC_ADDRESS, 636), timeout=1) as raw,
              ctx.wrap_socket(raw, server_hostname=cfg.dc_fqdn)):
            return True
    except (OSError, ssl.SSLError):
        return False


def _root_dse_ok() -> bool:
    server = ldap3.Server(DC_ADDRESS, port=389, get_info=ldap3.NONE, connect_timeout=1)
    try:
        conn = ldap3.Connection(server, auto_bind=True, receive_timeout=2)
        ok = bool(conn.search("", "(objectClass=*)", ldap3.BASE,
                              attributes=["defaultNamingContext"]))
        conn.unbind()
        return ok
    except ldap3.core.exceptions.LDAPException:
        return False


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
        "msDS-SupportedEncryptionTypes": str(_ENCTYPES_AES_RC4),
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
        if cfg.target_dir.exists():
            raise SambaError(f"{cfg.target_dir} already holds a domain")
        for directory in (cfg.workdir, cfg.run_dir, cfg.log_dir, cfg.keytab_dir):
            directory.mkdir(parents=True, exist_ok=True)
        if template_dir is not None:
            _from_template(cfg, Path(template_dir).resolve())
        else:
            _provision_into(cfg)
        _write_tls(cfg, ca)
        cfg.smb_conf.write_text(_smb_conf_text(cfg))
        cfg.krb5_conf.write_text(_krb5_conf_text(cfg))
        dc = cls(cfg)
        dc._save_state()
        return dc

    @classmethod
    def attach(cls, workdir: Path) -> SambaDC:
        """The DC provisioned in `workdir` by another process (reads its state file)."""
        state = json.loads((Path(workdir) / _STATE_FILE).read_text())
        cfg = DCConfig(Path(state["workdir"]), state["realm"], state["domain"],
                       state["admin_password"])
        return cls(cfg, pid=state.get("pid"))

    def _save_state(self) -> None:
        cfg = self.config
        state = {"workdir": str(cfg.workdir), "realm": cfg.realm, "domain": cfg.domain,
                 "admin_password": cfg.admin_password, "pid": self.pid,
                 "ca": str(cfg.ca_path), "krb5_conf": str(cfg.krb5_conf),
                 "ldaps": self.ldaps_url, "dc_fqdn": cfg.dc_fqdn}
        path = cfg.workdir / _STATE_FILE
        path.write_text(json.dumps(state, indent=2) + "\n")
        path.chmod(0o600)

    def start(self, timeout: float = 60.0) -> float:
        """Start `samba` in the background; return the seconds it took to become ready."""
        busy = [port for port in PORTS if _port_open(port, 0.2)]
        if busy:
            raise SambaError(
                f"ports {busy} on {DC_ADDRESS} are taken: one DC per network namespace "
                "(run inside `unshare --net sh -c 'ip link set lo up && ...'`)"
            )
        cfg = self.config
        started = time.monotonic()
        self._log = cfg.log_dir / "samba.out"
        with open(self._log, "ab") as log:
            proc = subprocess.Popen(
                [_which("samba") or "samba", "-s", str(cfg.smb_conf), "--foreground",
                 "--no-process-group", "-M", "single", "--debug-stdout"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid = proc.pid
        self._save_state()
        self._wait_ready(proc, started + timeout)
        return time.monotonic() - started

    def _wait_ready(self, proc: subprocess.Popen[bytes], deadline: float) -> None:
        checks: list[Callable[[], bool]] = [
            _root_dse_ok, lambda: _port_open(88), lambda: _tls_ok(self.config)]
        while checks:
            if proc.poll() is not None:
                raise SambaError(f"samba exited with {proc.returncode}: see {self._log}")
            if time.monotonic() > deadline:
                self.stop()
                raise SambaError(f"samba not ready in time: see {self._log}")
            if checks[0]():
                checks.pop(0)
            else:
                time.sleep(0.05)

    def running(self) -> bool:
        if self.pid is None:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        return _is_samba(self.pid)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM to the PID we started; wait until it is gone and nothing listens."""
        pid = self.pid
        if pid is not None and self.running():
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
                while _alive(pid):
                    time.sleep(0.05)
        self.pid = None
        self._save_state()
        deadline = time.monotonic() + timeout
        while any(_port_open(port, 0.1) for port in PORTS) and time.monotonic() < deadline:
            time.sleep(0.05)

    def __enter__(self) -> SambaDC:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- client-side facts -------------------------------------------------------------------
    @property
    def ldap_url(self) -> str:
        return f"ldap://{DC_ADDRESS}"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://{DC_ADDRESS}"

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
        server = ldap3.Server(DC_ADDRESS, port=636, use_ssl=True, tls=tls, get_info=ldap3.NONE)
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
        _run(["samba-tool", "domain", "exportkeytab", str(target), f"--principal={principal}",
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
        kinit = _run(["kinit", "-f", "-k", "-t", str(keytab), principal], "kinit", env,
                     check=False, timeout=30)
        if kinit.returncode != 0:
            return S4UResult(False, f"kinit: {kinit.stderr.strip()}")
        kvno = _run(["kvno", "-k", str(keytab), "-I", impersonate, "-P", target_spn],
                    "kvno", env, check=False, timeout=30)
        ccache.unlink(missing_ok=True)
        return S4UResult(kvno.returncode == 0, (kvno.stdout + kvno.stderr).strip())


def _alive(pid: int) -> bool:
    try:
        waited, _status = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _is_samba(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"samba" in cmdline.split(b"\0", 1)[0]
