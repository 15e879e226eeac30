"""A whole lab: simulated Hyper-V hosts (WSMan/PSRP) plus a Samba AD DC, started and stopped as one.

Part of the lab, not the reconcile pipeline. `hvlm lab up/status/down/stats` (`cli.py`), the
pytest fixtures (tests/conftest.py), `make demo` and the benchmarks start labs through this module.
It assembles the parts: `wsman.LabServer` (the hosts' endpoints), `hyperv.HyperVHost` (the hosts'
state), `samba.SambaDC` (the directory) and `pki.LabCA`; then it writes the files described in
`runner/files.py` (lab.json, manifest.yaml, env).

Python API (in-process: the hosts are served by a thread of the calling process)::

    lab = Lab.start(workdir, hosts=3, latency_ms=0, faults={"HV02": FaultSpec(hang=True)},
                    directory=True, host_configs=None)
    # more keywords: dc=SambaDC (reuse a running DC), ca=LabCA, subnet="192.168.10.0/24",
    # template_dir=Path (provisioned-domain cache), transport=Transport.HTTP_NEGOTIATE
    lab.manifest_path      # DIR/manifest.yaml (passes `hvlm validate`)
    lab.env                # {"HVLM_WINRM_USER": ..., "HVLM_LDAP_PASSWORD": ..., "KRB5_CONFIG": ...}
    lab.server             # the LabServer: endpoint(name), stats(name), set_fault(name, spec)
    lab.dc                 # the SambaDC (None without a directory)
    lab.hosts["HV01"]      # the HyperVHost (its state, for assertions)
    lab.stats()            # {"hosts": {name: counters}, "directory": {...} | None}
    lab.reset_stats()
    lab.stop()             # idempotent; nothing left listening (the DC too, if the lab started it)

The same lab in its own process (benchmarks; `hvlm lab up`):
`hvlm_lab.runner.process.start_process(...)`.

What a lab is, by default (`hosts=N`): hosts HV01..HVnn (HV001.. from 100 hosts), Windows Server
2022, in the domain lab.example, fresh (migration disabled, CredSSP, Compression, 2/2, no networks),
each owning .11, .12... in 192.168.10.0/24 (10.10.0.0/16 beyond 244 hosts), Basic over HTTPS with a
certificate from the lab CA (DIR/ca.pem), one port each on 127.0.0.1; user `labadmin` with a random
password (`transport=Transport.HTTP_NEGOTIATE`: plain HTTP, NTLM with message encryption
instead; the manifest then says transport http, auth ntlm). With the directory: a Samba DC for
LAB.EXAMPLE (DIR/dc) holding a computer account for every host in the domain, created as Windows
would (enabled, dNSHostName, HOST/ and migration SPNs).
`host_configs` replaces the default hosts (mixed fleets: `server_2025(...)`, `part_of_domain=False`
-> no computer account, `hyperv_installed=False`...); `dc=` reuses a running DC instead of
starting one (the lab then neither provisions nor stops it; accounts that exist are left alone).

The manifest (DIR/manifest.yaml) is a realistic first target: migration enabled, Kerberos,
Compression, 2/2, the lab subnet at priority 0, delegation [migration, cifs] (protocol
transition by default, not written), every host in one group, connection https + basic +
certValidation: DIR/ca.pem, each host's `address: 127.0.0.1:PORT`; directory lab.example at
ldaps://dc1.lab.example (address 127.0.0.1), auth simple. Without a directory the manifest has
no directory, no delegation and no `authentication` (the schema forbids Kerberos without a
directory; CredSSP would draw a warning): the hosts keep the authentication type they have.

Faults: `faults` maps host names to `FaultSpec`s; `latency_ms` applies to every host whose spec has
no latency of its own. Directory counters: `highest_committed_usn` and `changed_computers` (the
computer accounts changed since the last reset, by uSNChanged: any write to the object counts).
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import os
import secrets
import shutil
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import ldap3

from hvlm_lab.hyperv.config import CredentialGuard, LabHostConfig, fleet
from hvlm_lab.hyperv.host import HyperVHost
from hvlm_lab.pki import LabCA
from hvlm_lab.runner.files import (
    DC_ADDRESS,
    DC_URL,
    LAB_DOMAIN,
    LAB_JSON,
    DirectoryInfo,
    HostInfo,
    LabError,
    LabInfo,
    ReplicaInfo,
    check_fault_hosts,
    owner_alive,
    read_info,
    write_env,
    write_info,
    write_manifest,
)
from hvlm_lab.runner.inventory import Inventory, apply_inventory
from hvlm_lab.samba import dc as samba
from hvlm_lab.samba.pair import PAIR_FILE, DCPair
from hvlm_lab.wsman.server import Credentials, FaultSpec, LabEndpointConfig, LabServer, Transport

__all__ = ["Lab", "LabError", "LabOptions", "Transport", "default_subnet", "directory_stats"]

WINRM_USER = "labadmin"
LDAP_USER = f"Administrator@{LAB_DOMAIN}"
SMALL_SUBNET, LARGE_SUBNET = "192.168.10.0/24", "10.10.0.0/16"
_BASELINE_FILE = "directory-usn"
# What a lab directory may hold from an earlier lab that is no longer running.
_STALE = ("dc", "wsman", LAB_JSON)


def default_subnet(count: int) -> str:
    """192.168.10.0/24 while .11 onwards fits, else 10.10.0.0/16."""
    return SMALL_SUBNET if count <= 244 else LARGE_SUBNET


def template_dir() -> Path:
    """Where provisioned domains are cached: $HVLM_SAMBA_TEMPLATES or ~/.cache/hvlm/samba."""
    if os.environ.get("HVLM_SAMBA_TEMPLATES"):
        return Path(os.environ["HVLM_SAMBA_TEMPLATES"])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "hvlm" / "samba-templates"


@dataclasses.dataclass(frozen=True)
class LabOptions:
    """Everything that decides what a lab is (also sent to a lab process)."""

    hosts: int = 3
    latency_ms: float = 0.0
    faults: Mapping[str, FaultSpec] = dataclasses.field(default_factory=dict)
    directory: bool = True
    host_configs: tuple[LabHostConfig, ...] | None = None
    subnet: str | None = None
    template_dir: Path | None = None
    winrm_user: str = WINRM_USER
    winrm_password: str | None = None  # None: a random one
    transport: Transport = Transport.HTTPS_BASIC
    credential_guard: tuple[str, ...] = ()  # hosts that run Credential Guard (--credential-guard)
    dcs: int = 1  # 2: a second DC replicating with the first (`hvlm lab up --dcs 2`)
    # the DC a host reports using (Win32_NTDomain), e.g. {"HV02": "dc2"} (--host-dc); else dc1
    host_dc: Mapping[str, str] = dataclasses.field(default_factory=dict)
    # switches, processor and VMs per host (--inventory FILE, runner/inventory.py)
    inventory: Inventory = dataclasses.field(default_factory=dict)

    def configs(self) -> tuple[LabHostConfig, ...]:
        configs = self._with_host_dc(self._with_credential_guard(self._configs()))
        return apply_inventory(configs, self.inventory)

    def _with_host_dc(self, configs: tuple[LabHostConfig, ...]) -> tuple[LabHostConfig, ...]:
        """The DC each host reports (Win32_NTDomain): dc1 unless --host-dc NAME=dcN says."""
        if self.dcs not in (1, 2):
            raise LabError(f"--dcs {self.dcs}: the lab runs one or two DCs")
        chosen = {name.upper(): dc.lower().split(".")[0] for name, dc in self.host_dc.items()}
        unknown = set(chosen) - {c.name.upper() for c in configs}
        if unknown:
            raise LabError(f"--host-dc names no lab host: {', '.join(sorted(unknown))}")
        valid = [f"dc{n}" for n in range(1, self.dcs + 1)]
        wrong = sorted(f"{h}={dc}" for h, dc in chosen.items() if dc not in valid)
        if wrong:
            raise LabError(f"--host-dc {', '.join(wrong)}: this lab's DCs are "
                           f"{', '.join(valid)} (--dcs {self.dcs})")
        return tuple(dataclasses.replace(c, domain_controller=f"{chosen[c.name.upper()]}."
                                         f"{LAB_DOMAIN}")
                     if c.name.upper() in chosen else c for c in configs)

    def _configs(self) -> tuple[LabHostConfig, ...]:
        if self.host_configs is not None:
            if not self.host_configs:
                raise LabError("a lab needs at least one host")
            return tuple(self.host_configs)
        if self.hosts < 1:
            raise LabError("a lab needs at least one host")
        return fleet(self.hosts, migration_subnet=self.lab_subnet(), domain=LAB_DOMAIN)

    def _with_credential_guard(self, configs: tuple[LabHostConfig, ...]
                               ) -> tuple[LabHostConfig, ...]:
        wanted = {name.upper() for name in self.credential_guard}
        unknown = wanted - {c.name.upper() for c in configs}
        if unknown:
            raise LabError(f"--credential-guard names no lab host: {', '.join(sorted(unknown))}")
        return tuple(dataclasses.replace(c, credential_guard=CredentialGuard.RUNNING)
                     if c.name.upper() in wanted else c for c in configs)

    def lab_subnet(self) -> str:
        """The manifest's migration subnet: given, else that of the first configured address."""
        if self.subnet:
            return self.subnet
        for config in self.host_configs or ():
            if config.addresses:
                return str(config.addresses[0].interface.network)
        return default_subnet(self.hosts)

    def fault_for(self, name: str) -> FaultSpec:
        spec = self.faults.get(name, FaultSpec())
        if spec.latency_ms == 0 and self.latency_ms:
            spec = dataclasses.replace(spec, latency_ms=float(self.latency_ms))
        return spec


class Lab:
    """A started lab: hosts served in-process, the DC as a child process (or reused)."""

    def __init__(self, info: LabInfo, server: LabServer, hosts: dict[str, HyperVHost],
                 dc: samba.SambaDC | None, env: dict[str, str], pair: DCPair | None = None,
                 ) -> None:
        self.info = info
        self.server = server
        self.hosts = hosts
        self.dc = dc  # with two DCs: the first (pair.dc1)
        self.pair = pair  # `--dcs 2`: both DCs
        self.env = env
        self._stopped = False

    # --- start ----------------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        workdir: Path,
        *,
        hosts: int = 3,
        latency_ms: float = 0.0,
        faults: Mapping[str, FaultSpec] | None = None,
        directory: bool = True,
        host_configs: Sequence[LabHostConfig] | None = None,
        dc: samba.SambaDC | None = None,
        ca: LabCA | None = None,
        subnet: str | None = None,
        template_dir: Path | None = None,
        transport: Transport = Transport.HTTPS_BASIC,
        mode: str = "in-process",
    ) -> Lab:
        """Start every part; returns when all answer. `dc` reuses a running DC (not stopped)."""
        options = LabOptions(
            hosts=hosts, latency_ms=latency_ms, faults=dict(faults or {}),
            directory=directory or dc is not None,
            host_configs=tuple(host_configs) if host_configs is not None else None,
            subnet=subnet, template_dir=template_dir, transport=transport,
        )
        return cls.start_with(Path(workdir), options, dc=dc, ca=ca, mode=mode)

    @classmethod
    def start_with(cls, workdir: Path, options: LabOptions, *, dc: samba.SambaDC | None = None,
                   ca: LabCA | None = None, mode: str = "in-process") -> Lab:
        workdir = _prepare(workdir)
        configs = options.configs()
        check_fault_hosts(options.faults, [c.name for c in configs])
        ca = ca or LabCA.create(workdir)
        password = options.winrm_password or _random_password()
        owned_dc = options.directory and dc is None
        if options.dcs == 2 and not owned_dc:
            raise LabError("--dcs 2 needs a directory the lab starts itself")
        pair: DCPair | None = None
        with ThreadPoolExecutor(1, thread_name_prefix="hvlm-lab-dc") as pool:
            dc_future = pool.submit(_start_dc, workdir, ca, options) if owned_dc else None
            lab_hosts = {c.name: HyperVHost(c) for c in configs}
            server = _start_server(workdir, ca, configs, lab_hosts, options, password, dc_future)
            try:
                if dc_future is not None:
                    dc, pair = dc_future.result()
            except BaseException:
                server.stop()  # the DC did not start: leave no host listening either
                raise
        try:
            if dc is not None:
                _add_accounts(dc, configs)
            if pair is not None:
                pair.replicate_now()  # DC2 holds the accounts before anyone reads them there
            info = _info(workdir, mode, ca, server, configs, options, dc, owned_dc, pair)
            env = _env(options.winrm_user, password, dc, info)
            lab = cls(info, server, lab_hosts, dc, env, pair)
            lab._write_files()
        except BaseException:
            server.stop()
            _stop_directory(dc if owned_dc else None, pair)
            raise
        return lab

    def _write_files(self) -> None:
        workdir = Path(self.info.workdir)
        write_env(workdir, self.env)
        write_manifest(self.info)
        if self.dc is not None:
            self._save_baseline(_highest_usn(self.dc))
        write_info(self.info)

    # --- inspection -----------------------------------------------------------------------------

    @property
    def workdir(self) -> Path:
        return Path(self.info.workdir)

    @property
    def manifest_path(self) -> Path:
        return Path(self.info.manifest)

    @property
    def env_path(self) -> Path:
        return Path(self.info.env)

    @property
    def ca_path(self) -> Path:
        return Path(self.info.ca)

    def stats(self) -> dict[str, Any]:
        """{"hosts": {name: counters}, "directory": {...} | None} (JSON-able)."""
        directory = directory_stats(self.dc, self._baseline()) if self.dc is not None else None
        return {"hosts": self.server.stats(), "directory": directory}

    def reset_stats(self) -> None:
        self.server.reset_stats()
        if self.dc is not None:
            self._save_baseline(_highest_usn(self.dc))

    def _baseline(self) -> int:
        return read_baseline(self.workdir)

    def _save_baseline(self, usn: int) -> None:
        (self.workdir / _BASELINE_FILE).write_text(f"{usn}\n")

    # --- stop -----------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop the hosts, and the DC when this lab started it. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        try:
            self.server.stop()
        finally:
            if self.dc is not None and self.info.directory and self.info.directory.owned:
                _stop_directory(self.dc, self.pair, remove=self.info.mode != "process")

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- helpers ------------------------------------------------------------------------------------


def _prepare(workdir: Path) -> Path:
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    previous = read_info(workdir)
    if previous is not None and owner_alive(previous) and previous.pid != os.getpid():
        raise LabError(f"a lab is already running in {workdir} (pid {previous.pid}): "
                       f"`hvlm lab down --dir {workdir}` first")
    left = leftover_dc(workdir)
    if left is not None:
        raise LabError(f"the DC of an earlier lab in {workdir} still runs (pid {left.pid}): "
                           f"`hvlm lab down --dir {workdir}` first")
    for name in _STALE:
        path = workdir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    return workdir


def leftover_dc(workdir: Path) -> samba.SambaDC | None:
    """The DC a lab started in DIR/dc, if it still runs (e.g. its lab process was killed)."""
    left = leftover_dcs(workdir)
    return left[0] if left else None


def leftover_dcs(workdir: Path) -> list[samba.SambaDC]:
    """Every DC a lab started in DIR/dc (one, or the two of --dcs 2) that still runs."""
    try:
        if (workdir / "dc" / PAIR_FILE).exists():
            pair = DCPair.attach(workdir / "dc")
            dcs = [pair.dc1, pair.dc2]
        else:
            dcs = [samba.SambaDC.attach(workdir / "dc")]
    except (OSError, ValueError, KeyError):
        return []
    return [dc for dc in dcs if dc.running()]


def _random_password() -> str:
    return f"Lab-{secrets.token_urlsafe(12)}-1!"


def _stop_directory(dc: samba.SambaDC | None, pair: DCPair | None, remove: bool = True) -> None:
    """Stop the lab's DC, or both DCs and (`remove`) the loopback addresses added for them (a
    lab process leaves them to `hvlm lab down`, which says what it removes)."""
    if pair is not None:
        try:
            pair.stop()
        finally:
            if remove:
                pair.remove_addresses()
    elif dc is not None:
        dc.stop()


def _start_dc(workdir: Path, ca: LabCA, options: LabOptions
              ) -> tuple[samba.SambaDC, DCPair | None]:
    if not samba.available():
        raise LabError(
            "the lab's directory needs Samba AD DC and MIT Kerberos tools (samba, samba-tool, "
            "kinit, kvno): apt-get install samba samba-ad-dc samba-ad-provision winbind "
            "krb5-user ldb-tools smbclient (or start the lab with --no-directory)")
    templates = options.template_dir or template_dir()
    templates.mkdir(parents=True, exist_ok=True)
    if options.dcs == 2:
        pair = DCPair.create(workdir / "dc", ca=ca, template_dir=templates)
        return pair.dc1, pair
    dc = samba.SambaDC.provision(workdir / "dc", ca=ca, template_dir=templates)
    dc.start()
    return dc, None


def _start_server(workdir: Path, ca: LabCA, configs: Sequence[LabHostConfig],
                  hosts: Mapping[str, HyperVHost], options: LabOptions, password: str,
                  dc_future: Future[tuple[samba.SambaDC, DCPair | None]] | None) -> LabServer:
    credentials = Credentials(options.winrm_user, password)
    endpoints = [
        LabEndpointConfig(c.name, hosts[c.name], credentials, options.transport, fqdn=_fqdn(c),
                          faults=options.fault_for(c.name))
        for c in configs
    ]
    server = LabServer(endpoints, ca, workdir / "wsman")
    try:
        server.start()
    except BaseException:
        if dc_future is not None:  # do not leave a DC behind
            _stop_quietly(dc_future)
        raise
    return server


def _stop_quietly(dc_future: Future[tuple[samba.SambaDC, DCPair | None]]) -> None:
    with contextlib.suppress(Exception):  # the server's error is the one to report
        _stop_directory(*dc_future.result())


def _fqdn(config: LabHostConfig) -> str:
    return f"{config.name.lower()}.{LAB_DOMAIN}"


def _add_accounts(dc: samba.SambaDC, configs: Sequence[LabHostConfig]) -> None:
    """A computer account for every host in the domain, unless one exists already."""
    wanted = [c for c in configs if c.part_of_domain and c.domain.lower() == LAB_DOMAIN]
    existing = _existing_accounts(dc)
    dc.add_computers(
        samba.Computer(c.name, fqdn=_fqdn(c))
        for c in wanted if f"{c.name.upper()}$" not in existing
    )


def _existing_accounts(dc: samba.SambaDC) -> set[str]:
    with dc.admin_connection() as conn:
        entries = conn.extend.standard.paged_search(
            dc.base_dn, "(objectClass=computer)", attributes=["sAMAccountName"], generator=False)
        return {name.upper() for name in _account_names(entries)}


def _account_names(entries: list[dict[str, Any]]) -> list[str]:
    """sAMAccountName of each entry of a search result (raw: no schema was read)."""
    return [value.decode() for e in entries if e.get("type") == "searchResEntry"
            for value in e["raw_attributes"].get("sAMAccountName", [])]


def _migration_address(config: LabHostConfig, subnet: str) -> str:
    network = ipaddress.ip_network(subnet)
    inside = [a for a in config.addresses if a.interface.ip in network]
    chosen = inside or list(config.addresses)
    return str(chosen[0].interface) if chosen else ""


def _info(workdir: Path, mode: str, ca: LabCA, server: LabServer,
          configs: Sequence[LabHostConfig], options: LabOptions, dc: samba.SambaDC | None,
          owned_dc: bool, pair: DCPair | None = None) -> LabInfo:
    subnet = options.lab_subnet()
    hosts = tuple(
        HostInfo(c.name, _fqdn(c), *server.endpoint(c.name),
                 migration_address=_migration_address(c, subnet), in_domain=c.part_of_domain)
        for c in configs
    )
    directory = None
    if dc is not None:
        directory = DirectoryInfo(
            owned=owned_dc, pid=dc.pid, workdir=str(dc.config.workdir),
            ca=str(ca.cert_path if owned_dc else dc.ca_path),
            krb5_conf=str(dc.krb5_conf), url=DC_URL, address=DC_ADDRESS,
            ports=samba.PORTS, realm=dc.config.realm,
            replicas=(ReplicaInfo(f"ldaps://{pair.dc2.config.dc_fqdn}", pair.dc2.config.address,
                                  str(pair.dc2.config.workdir), pair.dc2.pid),) if pair else (),
            pair=str(pair.workdir) if pair else None,
            added_addresses=pair.added_addresses if pair else (),
        )
    return LabInfo(workdir=str(workdir), mode=mode, pid=os.getpid(), ca=str(ca.cert_path),
                   control_url=server.control_url, subnet=subnet, hosts=hosts,
                   directory=directory)


def _env(user: str, password: str, dc: samba.SambaDC | None, info: LabInfo) -> dict[str, str]:
    env = {"HVLM_WINRM_USER": user, "HVLM_WINRM_PASSWORD": password}
    if dc is not None:
        env.update(HVLM_LDAP_USER=LDAP_USER, HVLM_LDAP_PASSWORD=dc.config.admin_password,
                   KRB5_CONFIG=str(dc.krb5_conf))
    env["HVLM_LAB_DIR"] = info.workdir
    if info.control_url:
        env["HVLM_LAB_CONTROL_URL"] = info.control_url
    return env


# --- directory counters ---------------------------------------------------------------------------


def read_baseline(workdir: Path) -> int:
    path = Path(workdir) / _BASELINE_FILE
    return int(path.read_text().strip()) if path.exists() else 0


def reset_baseline(workdir: Path, dc: samba.SambaDC) -> None:
    (Path(workdir) / _BASELINE_FILE).write_text(f"{_highest_usn(dc)}\n")


def _highest_usn(dc: samba.SambaDC) -> int:
    with dc.admin_connection() as conn:
        conn.search("", "(objectClass=*)", ldap3.BASE, attributes=["highestCommittedUSN"])
        return int(conn.response[0]["raw_attributes"]["highestCommittedUSN"][0])


def directory_stats(dc: samba.SambaDC, since_usn: int) -> dict[str, Any]:
    """The DC's highest USN and the computer accounts written since `since_usn`."""
    with dc.admin_connection() as conn:
        conn.search("", "(objectClass=*)", ldap3.BASE, attributes=["highestCommittedUSN"])
        usn = int(conn.response[0]["raw_attributes"]["highestCommittedUSN"][0])
        entries = conn.extend.standard.paged_search(
            dc.base_dn, f"(&(objectClass=computer)(uSNChanged>={since_usn + 1}))",
            attributes=["sAMAccountName"], generator=False)
        changed = sorted(name.rstrip("$") for name in _account_names(entries))
    return {"highest_committed_usn": usn, "since_usn": since_usn, "changed_computers": changed}
