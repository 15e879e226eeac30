"""What identifies one lab domain controller: constants, `DCConfig`, smb.conf/krb5.conf text.

Part of the lab (not the reconcile pipeline): the Samba AD DC that `hvlm lab up` and the tests run
against. The package's other modules build on this one: provision.py (the domain on disk),
process.py (the `samba` process) and dc.py (`SambaDC` and its test API). Nothing here runs a
server; `run_tool` and `available` only wrap the Samba/MIT command-line tools.

Every per-DC fact (workdir, realm, host name, address, every path) is a field or property of a
`DCConfig`, so a second DC is a second `DCConfig`. The smb.conf written here keeps every
pid/log/socket/lock/state directory inside the workdir: nothing lands in /var/lib/samba or
/run/samba. Only the ldap and kdc services run (no DNS server, no dynamic DNS/SPN updates, no
SMB); `ldap server require strong auth = allow_sasl_over_tls` allows SASL GSSAPI over LDAPS. The
krb5.conf is a client configuration (kdc = the DC's address, rdns = false,
dns_canonicalize_hostname = false, forwardable = true) for KRB5_CONFIG.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# userAccountControl bits (MicrosoftDocs a-useraccountcontrol.md)
UAC_ACCOUNTDISABLE = 0x00000002
UAC_NORMAL_ACCOUNT = 0x00000200
UAC_WORKSTATION_TRUST_ACCOUNT = 0x00001000
UAC_TRUSTED_FOR_DELEGATION = 0x00080000
UAC_PROTOCOL_TRANSITION = 0x01000000  # TRUSTED_TO_AUTH_FOR_DELEGATION

MIGRATION_SPN_CLASS = "Microsoft Virtual System Migration Service"
DC_HOST_NAME = "DC1"  # the default DC's NetBIOS name
DC_ADDRESS = "127.0.0.1"  # the default DC's address
PORTS = (389, 636, 88)  # fixed by Samba: one DC per address
ENCTYPES_AES_RC4 = 0x1C  # what a joined Windows computer advertises: RC4, AES128, AES256
TOOLS = ("samba", "samba-tool", "kinit", "kvno")
STATE_FILE = "samba-dc.json"
# A throwaway lab's well-known passwords (never production: the DC listens on loopback only).
LAB_ADMIN_PASSWORD = "Lab-Admin-Pass-1!"  # noqa: S105
LAB_MACHINE_PASSWORD = "Lab-Machine-Pass-1!"  # noqa: S105


# A replicating DC (LAB.md "Two replicating Samba DCs"): DRS and KCC, its own DNS (the partner is
# found by <ntds-guid>._msdcs), the prefork model with one child (-M single cannot reach its own
# KDC), change notification within ~1 s, a periodic pull every 10 s.
REPLICATION_OPTIONS = {
    "server services": "rpc, ldap, cldap, kdc, drepl, kcc, dns",
    "prefork children": "1",
    "dreplsrv:notify_interval": "1",
    "dreplsrv:periodic_interval": "10",
    "tls verify peer": "ca_and_name",
}


class SambaError(RuntimeError):
    """A lab directory step failed; the message names the step and carries the tool's output."""


def available() -> bool:
    """True when Samba AD DC and the MIT Kerberos client tools are installed."""
    return all(which(tool) for tool in TOOLS)


def which(tool: str) -> str | None:
    """The tool's path, also looking in the sbin directories a non-root PATH may lack."""
    return shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")


def with_names(names_dir: Path | None, argv: Sequence[str]) -> list[str]:
    """`argv` in a private mount namespace whose /etc/hosts and /etc/resolv.conf come from
    `names_dir` (the pair's names: dc1/dc2.<domain>), or `argv` itself without one. Only the
    Samba processes see them; the caller's namespace is left alone."""
    if names_dir is None:
        return list(argv)
    script = (f'mount --bind "{names_dir}/hosts" /etc/hosts && '
              f'mount --bind "{names_dir}/resolv.conf" /etc/resolv.conf && exec "$@"')
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *argv]


def run_tool(argv: Sequence[str], step: str, env: Mapping[str, str] | None = None,
             check: bool = True, timeout: float = 120, names_dir: Path | None = None,
             ) -> subprocess.CompletedProcess[str]:
    """Run a command-line tool to completion; with `check`, a non-zero exit is a SambaError."""
    proc = subprocess.run(
        with_names(names_dir, argv), capture_output=True, text=True,
        env=dict(env) if env is not None else None, timeout=timeout, check=False,
    )
    if check and proc.returncode != 0:
        raise SambaError(f"{step} failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return proc


@dataclass(frozen=True)
class DCConfig:
    """What identifies one domain controller: its domain, its name and address, its workdir."""

    workdir: Path
    realm: str = "LAB.EXAMPLE"
    domain: str = "LAB"
    admin_password: str = LAB_ADMIN_PASSWORD
    host_name: str = DC_HOST_NAME
    address: str = DC_ADDRESS
    # A DC of a replicating pair (pair.py): DRS services, the prefork model, private name files.
    replicating: bool = False
    names_dir: Path | None = None  # hosts + resolv.conf bind-mounted for this DC's processes

    @property
    def dns_domain(self) -> str:
        return self.realm.lower()

    @property
    def base_dn(self) -> str:
        return ",".join(f"DC={part}" for part in self.dns_domain.split("."))

    @property
    def dc_fqdn(self) -> str:
        return f"{self.host_name.lower()}.{self.dns_domain}"

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

    @property
    def state_file(self) -> Path:
        return self.workdir / STATE_FILE


def path_options(cfg: DCConfig) -> dict[str, str]:
    """The smb.conf options that keep the server on its address and its files in the workdir."""
    return {
        "interfaces": cfg.address,
        "bind interfaces only": "yes",
        "pid directory": str(cfg.run_dir),
        "log file": str(cfg.log_dir / "samba.log"),
        "ncalrpc dir": str(cfg.run_dir / "ncalrpc"),
        "winbindd socket directory": str(cfg.run_dir / "winbindd"),
        "ntp signd socket directory": str(cfg.run_dir / "ntp_signd"),
    }


def smb_conf_text(cfg: DCConfig) -> str:
    """The server's smb.conf (absolute paths: written per workdir, never kept in a template)."""
    target = cfg.target_dir
    options = {
        "netbios name": cfg.host_name,
        "realm": cfg.realm,
        "workgroup": cfg.domain,
        "server role": "active directory domain controller",
        "private dir": str(target / "private"),
        "lock directory": str(target),
        "state directory": str(target / "state"),
        "cache directory": str(target / "cache"),
        "binddns dir": str(target / "bind-dns"),
        **path_options(cfg),
        "server services": "ldap, kdc",
        **(REPLICATION_OPTIONS if cfg.replicating else {}),
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
    lines = ["# written by hvlm_lab.samba", "[global]"]
    lines += [f"\t{key} = {value}" for key, value in options.items()]
    return "\n".join(lines) + "\n"


def krb5_conf_text(cfg: DCConfig) -> str:
    """A client krb5.conf pointing at this DC's KDC (for KRB5_CONFIG)."""
    realm, dns, kdc = cfg.realm, cfg.dns_domain, cfg.address
    return (
        "[libdefaults]\n"
        f"\tdefault_realm = {realm}\n"
        "\tdns_lookup_realm = false\n\tdns_lookup_kdc = false\n"
        "\trdns = false\n\tdns_canonicalize_hostname = false\n\tforwardable = true\n"
        "\tudp_preference_limit = 1\n"
        "[realms]\n"
        f"\t{realm} = {{\n\t\tkdc = {kdc}\n\t\tadmin_server = {kdc}\n\t}}\n"
        "[domain_realm]\n"
        f"\t.{dns} = {realm}\n\t{dns} = {realm}\n"
    )
