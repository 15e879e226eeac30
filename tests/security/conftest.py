"""Fixtures and helpers of the security suite (issue 8, part 4).

Where it sits: tests only. Each test module starts its own lab in-process (`LabServer`: simulated
Hyper-V hosts over real WSMan/PSRP) next to the session's Samba AD DC (tests.lab.samba_fixtures:
one DC per process, so run under `tests/isolated.sh`), and runs the real CLI as a subprocess
(`python -m hvlm`), so every byte hvlm writes (stdout, stderr, files) can be inspected.

- `hvlm(args, env, cwd)` -> `Run` (bytes, exit code); `hvlm_all([...])` runs independent ones
  at once; `clean_env(**extra)` is os.environ without any HVLM_*, KRB5* or NTLM variable, plus
  `extra`: what hvlm sees is exactly what a test gives it. `hvlm(..., hosts_file=F)` runs it in a
  private mount namespace where F is /etc/hosts (lab names resolve to 127.0.0.1 for hvlm only).
- `manifest(...)` writes a manifest (YAML) for lab hosts; `LabHost` says how one host is reached.
- `domain_admin(dc, name, password)` creates a dedicated Domain Admins member (the right to
  write delegation), so a test can own a unique, known secret.
- `lab_host(name, credentials, ...)` is a LabEndpointConfig for a fresh Windows Server 2022 host.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ldap3
import yaml

from hvlm_lab.hyperv.config import server_2022
from hvlm_lab.hyperv.host import HyperVHost
from hvlm_lab.samba.dc import SambaDC
from hvlm_lab.wsman.server import Credentials, FaultSpec, LabEndpointConfig, LabServer, Transport

REPO = Path(__file__).resolve().parents[2]
DOMAIN = "lab.example"
REALM = "LAB.EXAMPLE"
DC_URL = "ldaps://dc1.lab.example"
SUBNET = "192.168.10.0/24"
_ENV_PREFIXES = ("HVLM_", "KRB5", "NTLM_USER_FILE")


def unique_secret(label: str) -> str:
    """A password nobody else uses (upper, lower, digit, symbol: Samba's complexity rules)."""
    return f"Zx-{label}-{secrets.token_hex(12)}-Q7!"


@dataclass(frozen=True)
class Run:
    args: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: bytes
    seconds: float = 0.0  # wall time (diagnostics only: no test asserts on it)

    @property
    def text(self) -> str:
        """stdout and stderr, decoded, for assertion messages."""
        out = self.stdout.decode(errors="replace")
        err = self.stderr.decode(errors="replace")
        head = f"$ hvlm {' '.join(self.args)} -> {self.returncode} ({self.seconds:.1f} s)"
        return f"{head}\n{out}\n{err}"


def clean_env(**extra: str) -> dict[str, str]:
    """os.environ without HVLM_*, KRB5* or NTLM variables, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_ENV_PREFIXES)}
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


def hvlm(
    args: Sequence[str],
    env: Mapping[str, str],
    cwd: Path,
    timeout: float = 90,
    hosts_file: Path | None = None,
) -> Run:
    """The real CLI in a subprocess (no TTY: JSON logs unless --log-format says otherwise).

    `hosts_file`: run it in a private mount namespace where that file is /etc/hosts, so lab
    names (hv01.lab.example) resolve to 127.0.0.1 for hvlm only, as DNS would in production.
    """
    argv = [sys.executable, "-m", "hvlm", *args]
    if hosts_file is not None:
        script = 'mount --bind "$0" /etc/hosts && exec "$@"'
        argv = ["unshare", "--mount", "sh", "-c", script, str(hosts_file), *argv]
    started = time.monotonic()
    proc = subprocess.run(
        argv,
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        check=False,
    )
    seconds = time.monotonic() - started
    run = Run(tuple(args), proc.returncode, proc.stdout, proc.stderr, seconds)
    # a crash exits 1 like a handled error: it must never pass as one (no test passes a debug
    # traceback on purpose here: --log-level debug prints one only for an internal error)
    assert b"Traceback" not in proc.stdout + proc.stderr, f"hvlm crashed:\n{run.text[-3000:]}"
    return run


def hvlm_all(calls: Sequence[tuple[Sequence[str], Mapping[str, str], Path]]) -> list[Run]:
    """Independent runs at once (each `hvlm(args, env, cwd)`), results in the calls' order."""
    with ThreadPoolExecutor(max_workers=len(calls) or 1) as pool:
        return list(pool.map(lambda call: hvlm(*call), calls))


@dataclass(frozen=True)
class LabHost:
    """One host of a manifest: its name, where hvlm connects, and connection overrides."""

    name: str
    address: str | None = None  # NAME, IP, NAME:PORT; None: connect to the FQDN
    connection: Mapping[str, Any] = field(default_factory=dict)


def host_entry(lab: LabServer, name: str, **connection: Any) -> LabHost:
    """The host as reached at 127.0.0.1:PORT (its FQDN stays name.lab.example)."""
    address, port, _scheme = lab.endpoint(name)
    return LabHost(name, f"{address}:{port}", connection)


def manifest(
    path: Path,
    hosts: Sequence[LabHost],
    connection: Mapping[str, Any],
    directory: Mapping[str, Any] | None,
    groups: Sequence[Sequence[str]] = (),
) -> Path:
    """A manifest where hosts migrate with Kerberos within `groups` (default: one, all hosts)."""
    doc: dict[str, Any] = {
        "apiVersion": "hvlm/v1",
        "kind": "LiveMigrationConfig",
        "metadata": {"name": "security"},
        "connection": dict(connection),
        "defaults": {
            "migration": {
                "enabled": True,
                "authentication": "Kerberos",
                "performance": "SMB",
                "networks": [{"subnet": SUBNET, "priority": 0}],
            },
            "delegation": {"services": ["migration", "cifs"], "protocolTransition": True},
        },
        "hosts": [_host_doc(h) for h in hosts],
        "groups": [
            {"name": f"group{i}", "hosts": list(names)}
            for i, names in enumerate(groups or [[h.name for h in hosts]])
        ],
    }
    if directory is not None:
        doc["directory"] = {"domain": DOMAIN, **directory}
    else:
        doc["defaults"]["migration"]["authentication"] = "CredSSP"
        del doc["defaults"]["delegation"]
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _host_doc(host: LabHost) -> dict[str, Any]:
    doc: dict[str, Any] = {"name": host.name, "fqdn": f"{host.name.lower()}.{DOMAIN}"}
    if host.address is not None:
        doc["address"] = host.address
    if host.connection:
        doc["connection"] = dict(host.connection)
    return doc


def hosts_file(path: Path, names: Sequence[str]) -> Path:
    """An /etc/hosts mapping each name to 127.0.0.1 (see `hvlm(hosts_file=...)`)."""
    path.write_text(f"127.0.0.1 localhost\n127.0.0.1 {' '.join(names)}\n")
    return path


def lab_host(
    name: str,
    credentials: Credentials,
    transport: Transport = Transport.HTTPS_BASIC,
    *,
    kerberos: bool = False,
    faults: FaultSpec | None = None,
) -> LabEndpointConfig:
    """A fresh simulated Windows Server 2022 Hyper-V host owning an address in SUBNET."""
    index = int("".join(c for c in name if c.isdigit()) or "1")
    return LabEndpointConfig(
        name,
        HyperVHost(server_2022(name, [f"192.168.10.{10 + index}/24"])),
        credentials,
        transport=transport,
        kerberos=kerberos,
        faults=faults or FaultSpec(),
    )


def domain_admin(dc: SambaDC, name: str, password: str) -> str:
    """A new user in Domain Admins (SeEnableDelegationPrivilege); returns its UPN."""
    dn = dc.add_user(name, password)
    with dc.admin_connection() as conn:
        conn.modify(
            f"CN=Domain Admins,CN=Users,{dc.base_dn}",
            {"member": [(ldap3.MODIFY_ADD, [dn])]},
        )
        assert conn.result["result"] == 0, conn.result
    return f"{name}@{REALM}"


def delegation_of(dc: SambaDC, name: str) -> list[str]:
    return sorted(v.lower() for v in dc.read_computer(name)["msDS-AllowedToDelegateTo"])
