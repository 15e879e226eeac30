"""The files a lab leaves in its directory: lab.json, manifest.yaml, env (and the faults file).

Part of the lab (see `runner/lab.py`, which writes them when a lab starts, and `runner/process.py`,
which reads them to stop, inspect or steer a lab from another process). Pure apart from reading and
writing these files: no sockets, no processes.

DIR/lab.json (format 1)::

    {"format": 1, "mode": "process" | "in-process", "pid": <the process serving the hosts>,
     "workdir": DIR, "started_at": ISO-8601, "ca": DIR/ca.pem, "control_url": "http://127.0.0.1:P",
     "manifest": DIR/manifest.yaml, "env": DIR/env, "subnet": "192.168.10.0/24",
     "hosts": [{"name": "HV01", "fqdn": "hv01.lab.example", "host": "127.0.0.1", "port": 40001,
                "scheme": "https", "migration_address": "192.168.10.11/24", "in_domain": true}],
     "directory": null | {"owned": true, "pid": <samba>, "workdir": DIR/dc,
                          "url": "ldaps://dc1.lab.example", "address": "127.0.0.1",
                          "ports": [389, 636, 88], "ca": ..., "krb5_conf": DIR/dc/krb5.conf,
                          "realm": "LAB.EXAMPLE",
                          # `hvlm lab up --dcs 2`: the second DC, replicating with the first
                          "replicas": [{"url": "ldaps://dc2.lab.example", "address": "127.0.0.2",
                                        "workdir": DIR/dc/dc2, "pid": <samba>}],
                          "pair": DIR/dc (samba-pair.json), "added_addresses": ["127.0.0.2"]}}
    (replicas and added_addresses are empty, pair null, in a one-DC lab; added_addresses lists
    what `up` added to lo, which `down` removes.)

DIR/env: `export NAME='value'` lines (see `ENV_VARIABLES`), mode 0600.

Faults file (`hvlm lab up --faults FILE`, YAML or JSON): a mapping from host name to the fields of
`hvlm_lab.wsman.faults.FaultSpec`; `cmdlet_faults` is a list of `CmdletFault` fields::

    HV02:
      latency_ms: 200                 # overrides --latency-ms for this host
      drop_after_requests: 6          # drop the connection of every request after the 6th
      drop_once: true                 # ... only the first such request (a transient fault)
      http_500_on_cmdlet: Set-VMHost
      cmdlet_faults:
        - {cmdlet: Add-VMMigrationNetwork, message: "Access is denied.", terminating: true}
    HV03: {hang: true}                # never answers (client timeouts)
    HV04: {refuse_auth: true}         # 401 whatever the credentials
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hvlm_lab.wsman.faults import FaultSpec

FORMAT = 1
LAB_JSON, MANIFEST_YAML, ENV_FILE, LOG_FILE = "lab.json", "manifest.yaml", "env", "lab.log"
DC_URL, DC_ADDRESS = "ldaps://dc1.lab.example", "127.0.0.1"
LAB_DOMAIN = "lab.example"
# What DIR/env exports (the directory ones only when the lab has a directory).
ENV_VARIABLES = (
    "HVLM_WINRM_USER",  # the hosts' account (Basic over HTTPS)
    "HVLM_WINRM_PASSWORD",
    "HVLM_LDAP_USER",  # a Domain Admin of LAB.EXAMPLE (may write delegation)
    "HVLM_LDAP_PASSWORD",
    "KRB5_CONFIG",  # a krb5.conf whose KDC is the lab's DC
    "HVLM_LAB_DIR",  # this lab's directory
    "HVLM_LAB_CONTROL_URL",  # the control channel (stats, reset, faults)
)


class LabError(RuntimeError):
    """A lab could not be started, reached or stopped; the message says which part and why."""


@dataclass(frozen=True)
class HostInfo:
    """One simulated host as lab.json records it."""

    name: str
    fqdn: str
    host: str
    port: int
    scheme: str
    migration_address: str
    in_domain: bool = True

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class ReplicaInfo:
    """Another DC of the lab's domain (`hvlm lab up --dcs 2`), replicating with the first."""

    url: str
    address: str
    workdir: str
    pid: int | None


@dataclass(frozen=True)
class DirectoryInfo:
    """The lab's domain controller; `owned` is False when the lab reuses a DC it did not start."""

    owned: bool
    pid: int | None
    workdir: str
    ca: str
    krb5_conf: str
    url: str = DC_URL
    address: str = DC_ADDRESS
    ports: tuple[int, ...] = (389, 636, 88)
    realm: str = "LAB.EXAMPLE"
    replicas: tuple[ReplicaInfo, ...] = ()
    pair: str | None = None  # the DCPair's directory (samba-pair.json) with --dcs 2
    added_addresses: tuple[str, ...] = ()  # added to lo by `up`, removed by `down`

    @property
    def servers(self) -> list[tuple[str, str]]:
        """(url, address) of every DC, the first one first."""
        return [(self.url, self.address), *((r.url, r.address) for r in self.replicas)]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DirectoryInfo:
        return cls(**{**data, "ports": tuple(data["ports"]),
                      "replicas": tuple(ReplicaInfo(**r) for r in data.get("replicas", ())),
                      "added_addresses": tuple(data.get("added_addresses", ()))})


@dataclass(frozen=True)
class LabInfo:
    """The content of DIR/lab.json."""

    workdir: str
    mode: str
    pid: int
    ca: str
    control_url: str | None
    subnet: str
    hosts: tuple[HostInfo, ...]
    directory: DirectoryInfo | None
    started_at: str = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc).isoformat())
    format: int = FORMAT

    @property
    def manifest(self) -> str:
        return str(Path(self.workdir) / MANIFEST_YAML)

    @property
    def env(self) -> str:
        return str(Path(self.workdir) / ENV_FILE)

    def host(self, name: str) -> HostInfo:
        for info in self.hosts:
            if info.name.lower() == name.lower():
                return info
        raise KeyError(f"no lab host named {name!r}")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(manifest=self.manifest, env=self.env)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LabInfo:
        if data.get("format") != FORMAT:
            raise LabError(f"lab.json format {data.get('format')!r} is not {FORMAT}")
        directory = data.get("directory")
        return cls(
            workdir=data["workdir"], mode=data["mode"], pid=data["pid"], ca=data["ca"],
            control_url=data.get("control_url"), subnet=data["subnet"],
            hosts=tuple(HostInfo(**h) for h in data["hosts"]),
            directory=DirectoryInfo.from_json(directory) if directory else None,
            started_at=data["started_at"],
        )


def write_info(info: LabInfo) -> Path:
    path = Path(info.workdir) / LAB_JSON
    _write_atomic(path, json.dumps(info.to_json(), indent=2) + "\n")
    return path


def read_info(workdir: Path) -> LabInfo | None:
    """The lab recorded in `workdir`, or None when no lab was ever started there."""
    path = Path(workdir) / LAB_JSON
    if not path.exists():
        return None
    try:
        return LabInfo.from_json(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError) as exc:
        raise LabError(f"{path}: not a lab.json written by hvlm: {exc}") from exc


# --- is the lab's process alive? ----------------------------------------------------------------


def pid_alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:  # our own child that exited: reap it
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_lab_process(pid: int, workdir: str) -> bool:
    """Is `pid` alive and the `python -m hvlm_lab serve WORKDIR` we started (not a reused PID)?"""
    if not pid_alive(pid):
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"hvlm_lab" in argv and b"serve" in argv and workdir.encode() in argv


def owner_alive(info: LabInfo) -> bool:
    """Is the process serving the lab's hosts still there?"""
    if info.mode == "process":
        return is_lab_process(info.pid, info.workdir)
    return pid_alive(info.pid)


# --- the manifest ------------------------------------------------------------------------------


def manifest_document(info: LabInfo) -> dict[str, Any]:
    """A realistic first target for this lab (see the module docstring of runner/lab.py)."""
    names = [h.name for h in info.hosts]
    migration: dict[str, Any] = {"enabled": True}
    if info.directory is not None:
        migration["authentication"] = "Kerberos"
    migration.update(
        performance="Compression", maxVirtualMachineMigrations=2, maxStorageMigrations=2,
        networks=[{"subnet": info.subnet, "priority": 0}],
    )
    defaults: dict[str, Any] = {"migration": migration}
    doc: dict[str, Any] = {
        "apiVersion": "hvlm/v1",
        "kind": "LiveMigrationConfig",
        "metadata": {"name": "lab", "description": f"hvlm lab in {info.workdir}"},
    }
    if info.directory is not None:
        doc["directory"] = {
            "domain": LAB_DOMAIN,
            "servers": [{"url": url, "address": address}
                        for url, address in info.directory.servers],
            "auth": "simple",
            "certValidation": info.directory.ca,
        }
        # protocolTransition is not written: true by default for Kerberos hosts (issue 11).
        defaults["delegation"] = {"services": ["migration", "cifs"]}
    if all(h.scheme == "http" for h in info.hosts):  # NTLM with message encryption
        doc["connection"] = {"transport": "http", "auth": "ntlm"}
    else:
        doc["connection"] = {"transport": "https", "auth": "basic", "certValidation": info.ca}
    doc["defaults"] = defaults
    doc["hosts"] = [{"name": h.name, "fqdn": h.fqdn, "address": h.address} for h in info.hosts]
    if len(names) >= 2:
        doc["groups"] = [{"name": "lab", "hosts": names}]
    return doc


def write_manifest(info: LabInfo) -> Path:
    header = (
        "# Written by `hvlm lab up`: a first target for this lab (hvlm validate accepts it).\n"
        "# Credentials are in the env file next to it: set -a; . ./env; set +a\n"
    )
    body = yaml.safe_dump(manifest_document(info), sort_keys=False, default_flow_style=False,
                          width=100)
    path = Path(info.manifest)
    _write_atomic(path, header + body)
    return path


# --- the env file ------------------------------------------------------------------------------


def env_text(env: Mapping[str, str]) -> str:
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in env.items())


def write_env(workdir: Path, env: Mapping[str, str]) -> Path:
    path = Path(workdir) / ENV_FILE
    _write_atomic(path, env_text(env), mode=0o600)
    return path


def read_env(workdir: Path) -> dict[str, str]:
    """The variables of DIR/env (as a shell would set them)."""
    env: dict[str, str] = {}
    for line in (Path(workdir) / ENV_FILE).read_text().splitlines():
        words = shlex.split(line)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            name, _, value = words[1].partition("=")
            env[name] = value
    return env


# --- the faults file ---------------------------------------------------------------------------


def parse_faults(data: object, source: str = "faults") -> dict[str, FaultSpec]:
    """{host: FaultSpec fields} -> {host: FaultSpec}; every problem names the host and the field."""
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise LabError(f"{source}: expected a mapping of host name -> faults")
    faults: dict[str, FaultSpec] = {}
    for host, spec in data.items():
        if not isinstance(spec, Mapping):
            raise LabError(f"{source}: {host}: expected a mapping of FaultSpec fields")
        try:
            faults[str(host)] = FaultSpec.from_json(spec)
        except (TypeError, ValueError) as exc:
            raise LabError(f"{source}: {host}: {exc}") from exc
    return faults


def load_faults(path: Path) -> dict[str, FaultSpec]:
    """Read a faults file (YAML or JSON)."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise LabError(f"cannot read faults file {path}: {exc}") from exc
    return parse_faults(data, str(path))


def check_fault_hosts(faults: Mapping[str, FaultSpec], names: Sequence[str]) -> None:
    unknown = sorted(set(faults) - set(names))
    if unknown:
        raise LabError(f"faults name unknown hosts: {', '.join(unknown)} (lab hosts: "
                       f"{', '.join(names[:5])}{'...' if len(names) > 5 else ''})")


def _write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    scratch = path.with_name(f".{path.name}.tmp")
    scratch.write_text(text)
    scratch.chmod(mode)
    scratch.replace(path)
