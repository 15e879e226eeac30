"""Provisioning a lab domain controller's files: the domain database, its TLS files, its configs.

Part of the lab (not the reconcile pipeline); dc.py's `SambaDC.provision` calls
`provision_domain`. Nothing here starts a server (process.py does).

The domain is provisioned into a private targetdir (`samba-tool domain provision --targetdir`)
with every path option pointing into the workdir, so nothing lands in /var/lib/samba. The DC's
own SPNs (ldap/dc1...: SASL GSSAPI needs them) are normally added by samba at start-up, in the
background; the lab turns that off and adds them here, once, offline (`samba_spnupdate`).

Provisioning is the slow part (~5-8 s). With a template_dir, a provisioned copy is kept per
(samba version, realm, domain, password[, host name, address]) and copied next time: the
provisioned tree holds no absolute path, because config.py writes smb.conf per workdir.
TLS uses a certificate issued by the lab CA with SANs <host>.<dns domain>, <host> and the DC's
address, so clients validate against `ca_path` by IP and by name.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import shutil
import time
from pathlib import Path

from hvlm_lab.pki import LabCA
from hvlm_lab.samba.config import (
    DC_ADDRESS,
    DC_HOST_NAME,
    DCConfig,
    SambaError,
    krb5_conf_text,
    path_options,
    run_tool,
    smb_conf_text,
    which,
)


def provision_domain(cfg: DCConfig, ca: LabCA, template_dir: Path | None = None) -> None:
    """Create everything the DC of `cfg` needs on disk (its workdir must not hold a domain yet)."""
    if cfg.target_dir.exists():
        raise SambaError(f"{cfg.target_dir} already holds a domain")
    for directory in (cfg.workdir, cfg.run_dir, cfg.log_dir, cfg.keytab_dir):
        directory.mkdir(parents=True, exist_ok=True)
    if template_dir is not None:
        from_template(cfg, Path(template_dir).resolve())
    else:
        provision_into(cfg)
    write_tls(cfg, ca)
    write_configs(cfg)


def write_configs(cfg: DCConfig) -> None:
    """(Re)write the server's smb.conf and the clients' krb5.conf for this workdir."""
    cfg.smb_conf.write_text(smb_conf_text(cfg))
    cfg.krb5_conf.write_text(krb5_conf_text(cfg))


def provision_into(cfg: DCConfig) -> None:
    """`samba-tool domain provision` into cfg.target_dir, then the DC's own SPNs, offline."""
    empty = cfg.workdir / "empty-smb.conf"
    empty.write_text("")
    argv = [
        "samba-tool", "domain", "provision", "-s", str(empty),
        f"--targetdir={cfg.target_dir}", f"--realm={cfg.realm}", f"--domain={cfg.domain}",
        f"--host-name={cfg.host_name}", f"--host-ip={cfg.address}", "--server-role=dc",
        "--dns-backend=SAMBA_INTERNAL", f"--adminpass={cfg.admin_password}",
    ]
    argv += [f"--option={key} = {value}" for key, value in path_options(cfg).items()]
    run_tool(argv, "samba-tool domain provision", timeout=300)
    empty.unlink()
    cfg.smb_conf.write_text(smb_conf_text(cfg))
    run_tool([which("samba_spnupdate") or "samba_spnupdate", "-s", str(cfg.smb_conf)],
             "samba_spnupdate")


def template_key(cfg: DCConfig) -> str:
    """Which cached provisioning fits `cfg` (the default DC keeps the key it always had)."""
    version = run_tool(["samba", "--version"], "samba --version").stdout.strip()
    parts = [version, cfg.realm, cfg.domain, cfg.admin_password]
    if (cfg.host_name, cfg.address) != (DC_HOST_NAME, DC_ADDRESS):
        parts += [cfg.host_name, cfg.address]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def from_template(cfg: DCConfig, template_dir: Path) -> None:
    """Copy a cached provisioning into cfg.target_dir, building the cache first if missing."""
    cached = template_dir / template_key(cfg)
    if not cached.is_dir():
        scratch = dataclasses.replace(
            cfg, workdir=template_dir / f".build-{os.getpid()}-{time.monotonic_ns()}")
        scratch.workdir.mkdir(parents=True)
        provision_into(scratch)
        with contextlib.suppress(OSError):  # atomic: a concurrent builder may have won the race
            scratch.target_dir.rename(cached)
        shutil.rmtree(scratch.workdir, ignore_errors=True)
    shutil.copytree(cached, cfg.target_dir, symlinks=True)


def write_tls(cfg: DCConfig, ca: LabCA) -> None:
    """The DC's key and certificate (issued by the lab CA) and a copy of the CA certificate."""
    cfg.tls_dir.mkdir(parents=True, exist_ok=True)
    ca.issue(cfg.tls_dir, "dc", [cfg.dc_fqdn, cfg.host_name.lower()], [cfg.address])
    shutil.copyfile(ca.cert_path, cfg.ca_path)
