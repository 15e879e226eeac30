"""Shared helpers of the reconciler acceptance tests and the fault suite (the CLI against the lab).

Where it sits: tests only. `LabFleet` is a lab in-process (simulated Hyper-V hosts served by
`LabServer`, computer accounts on the session's Samba DC) plus a manifest for it; `hvlm()` runs
the real CLI as a subprocess (`python -m hvlm`, credentials in the environment), so exit codes,
stdout and stderr are what an operator or a pipeline sees. Effects are asserted on the lab itself:
`HyperVHost.snapshot()` for hosts, LDAP reads as Administrator for accounts (uSNChanged counts
modifies), `LabServer.stats()` for WSMan requests and cmdlets.
Directory faults: tests/integration/ldap_fault_proxy.py.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import ldap3
from click.testing import CliRunner

from hvlm.cli import main
from hvlm_lab.hyperv.config import (
    AuthenticationType,
    MigrationNetwork,
    MigrationState,
    PerformanceOption,
    server_2022,
)
from hvlm_lab.hyperv.host import HyperVHost
from hvlm_lab.pki import LabCA
from hvlm_lab.samba.dc import LAB_ADMIN_PASSWORD, UAC_WORKSTATION_TRUST_ACCOUNT, SambaDC
from hvlm_lab.wsman.server import Credentials, FaultSpec, LabEndpointConfig, LabServer

REPO = Path(__file__).resolve().parents[2]
WINRM_USER, WINRM_PASSWORD = "hvadmin", "Lab-WinRM-Pass-1!"
LDAP_USER = "Administrator@LAB.EXAMPLE"
DOMAIN = "lab.example"
SUBNET, OLD_SUBNET = "192.168.10.0/24", "10.99.0.0/16"
MIGRATION = "Microsoft Virtual System Migration Service"
UNRELATED = "MSSQLSvc/sql01.lab.example:1433"
# Requests of one host during an apply with changes (Basic): Create, Receive (open), Command,
# Receive (read), Command, Receive (write), Command, Receive (verify), Delete.
BEFORE_WRITE, BEFORE_VERIFY = 4, 6

WANTED = MigrationState(
    enabled=True,
    authentication=AuthenticationType.Kerberos,
    performance=PerformanceOption.SMB,
    networks=(MigrationNetwork.parse(SUBNET, 0),),
)
FRESH = MigrationState()  # a new Hyper-V host: disabled, CredSSP, Compression, no network
ENABLED_OLD = MigrationState(enabled=True, networks=(MigrationNetwork.parse(OLD_SUBNET, 0),))


def values_toward(peer: str) -> set[str]:
    """hvlm's delegation values toward `peer` (both services, short and FQDN forms)."""
    fqdn = f"{peer.lower()}.{DOMAIN}"
    return {f"{MIGRATION}/{peer}", f"{MIGRATION}/{fqdn}", f"cifs/{peer}", f"cifs/{fqdn}"}


def lower(values: Iterable[str]) -> set[str]:
    return {v.lower() for v in values}


@dataclass(frozen=True)
class CliResult:
    code: int
    stdout: str
    stderr: str
    traceback_expected: bool = False  # only a test that passes --log-level debug to see one

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def __str__(self) -> str:  # shown by pytest when an assertion on a result fails
        return f"exit {self.code}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"

    def __post_init__(self) -> None:
        if not self.traceback_expected:
            assert_no_traceback(self.stdout, self.stderr)


def assert_no_traceback(*outputs: str | bytes) -> None:
    """Every CLI run in the tests: a crash never passes as a handled error (exit 1 is both).

    hvlm prints a traceback only with --log-level debug, which no helper passes; a test that
    wants one asks for it and reads the output itself.
    """
    for output in outputs:
        text = output.decode("utf-8", "replace") if isinstance(output, bytes) else output
        assert "Traceback" not in text, f"hvlm crashed:\n{text[-3000:]}"


def check_errors(report: str) -> int:
    """The error count in `hvlm check`'s human or JSON report (its summary)."""
    if report.lstrip().startswith("{"):
        return int(json.loads(report)["summary"]["errors"])
    if "Check: no findings" in report:
        return 0
    match = re.search(r"Check: (\d+) error\(s\)", report)
    assert match, f"no check summary in:\n{report}"
    return int(match.group(1))


@dataclass(frozen=True)
class Account:
    values: frozenset[str]
    uac: int
    usn: int


@dataclass
class ManifestOptions:
    """What varies between the tests' manifests (the rest is the lab's realistic target)."""

    group: Sequence[str] | None = None  # None: every host
    prune: bool = False
    retries: int = 0
    timeouts: tuple[float, float, float] = (2, 3, 2)  # connect, read, operation seconds
    ldap_port: int = 636
    ldap_timeout: int = 3
    ldap_ca: Path | None = None  # None: the DC's CA


@dataclass
class LabFleet:
    """Simulated hosts + their computer accounts + a manifest naming them all."""

    dc: SambaDC
    server: LabServer
    hosts: dict[str, HyperVHost]
    workdir: Path
    ldap_password: str = LAB_ADMIN_PASSWORD
    ldap_user: str = LDAP_USER
    options: ManifestOptions = field(default_factory=ManifestOptions)
    in_process: bool = True  # False: every CLI run is a new `python -m hvlm` process

    @property
    def names(self) -> list[str]:
        return list(self.hosts)

    @property
    def manifest(self) -> Path:
        return self.workdir / "manifest.yaml"

    # --- the manifest and the CLI ---------------------------------------------------------------
    def write_manifest(self, options: ManifestOptions | None = None) -> Path:
        self.options = options or ManifestOptions()
        self.manifest.write_text(manifest_text(self, self.options), encoding="utf-8")
        return self.manifest

    def env(self) -> dict[str, str]:
        env = dict(os.environ, HVLM_WINRM_USER=WINRM_USER, HVLM_WINRM_PASSWORD=WINRM_PASSWORD)
        env.update(HVLM_LDAP_USER=self.ldap_user, HVLM_LDAP_PASSWORD=self.ldap_password)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        return env

    def hvlm(self, *args: str, timeout: float = 90) -> CliResult:
        if self.in_process:
            return hvlm_in_process(self.env(), *args)
        return hvlm(self.env(), *args, timeout=timeout)

    def apply(self, *extra: str) -> CliResult:
        return self.hvlm("apply", str(self.manifest), "--auto-approve", *extra)

    def plan(self, *extra: str) -> CliResult:
        return self.hvlm("plan", str(self.manifest), "--detailed-exitcode", *extra)

    # --- hosts ------------------------------------------------------------------------------------
    def state(self, name: str) -> MigrationState:
        return self.hosts[name].snapshot()

    def states(self) -> dict[str, MigrationState]:
        return {name: host.snapshot() for name, host in self.hosts.items()}

    def cmdlets(self, name: str) -> list[str]:
        return [str(c["command"]) for c in self.server.stats(name)["cmdlets"]]

    def writes(self, name: str | None = None) -> list[str]:
        """Every cmdlet that is not a read (Get-*), in order; of one host or of all."""
        names = [name] if name else self.names
        return [c for n in names for c in self.cmdlets(n) if not c.lower().startswith("get-")]

    def wsman_requests(self, name: str) -> int:
        return int(self.server.stats(name)["wsman_requests"])

    def fault(self, spec: FaultSpec, *names: str) -> None:
        for name in names:
            self.server.set_fault(name, spec)

    def clear_faults(self) -> None:
        self.fault(FaultSpec(), *self.names)

    # --- directory --------------------------------------------------------------------------------
    def account(self, name: str) -> Account:
        return read_account(self.dc, name)

    def accounts(self) -> dict[str, Account]:
        return {name: self.account(name) for name in self.names}

    def reset(self, states: dict[str, MigrationState], seed: Sequence[str] = (UNRELATED,)) -> None:
        """Hosts back to `states`, accounts back to `seed` only and no protocol transition."""
        self.clear_faults()
        for name, state in states.items():
            self.hosts[name].set_state(state)
        for name in self.names:
            reset_account(self.dc, name, seed)
        self.server.reset_stats()

    def converged(self) -> bool:
        """Every host as the manifest wants it and every account holding its peers' values."""
        group = list(self.options.group or self.names)
        for name in self.names:
            peers = [p for p in group if p != name] if name in group else []
            wanted = set().union(*(values_toward(p) for p in peers))
            if self.state(name) != WANTED or not lower(wanted) <= lower(self.account(name).values):
                return False
        return True


def hvlm(env: dict[str, str], *args: str, timeout: float = 90) -> CliResult:
    proc = subprocess.run(
        [sys.executable, "-m", "hvlm", "--log-format", "json", *args], env=env, cwd=REPO,
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, check=False,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def hvlm_in_process(env: dict[str, str], *args: str, traceback_expected: bool = False) -> CliResult:
    """The same entry point as the `hvlm` script (hvlm.cli.main), in this process.

    A new interpreter costs seconds on a loaded 2-core machine; the exit code, stdout and stderr
    are the same. Stdin is not a terminal. Not thread-safe (it swaps sys.stdout/stderr).
    """
    runner = CliRunner()
    with runner.isolation(env=env) as (stdout, stderr, _):
        try:
            main(["--log-format", "json", *args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return CliResult(code, stdout.getvalue().decode(), stderr.getvalue().decode(),
                     traceback_expected)


def manifest_text(fleet: LabFleet, o: ManifestOptions) -> str:
    ca = fleet.server.ca_path
    connect, read, operation = o.timeouts
    lines = [
        "apiVersion: hvlm/v1", "kind: LiveMigrationConfig", "metadata: {name: lab-tests}",
        "directory:", f"  domain: {DOMAIN}",
        f"  servers: [{{url: 'ldaps://dc1.{DOMAIN}:{o.ldap_port}', address: 127.0.0.1}}]",
        "  auth: simple", f"  certValidation: {o.ldap_ca or fleet.dc.ca_path}",
        f"  baseDN: '{fleet.dc.base_dn}'",
        f"  timeoutSeconds: {o.ldap_timeout}",
        "connection:", "  transport: https", "  auth: basic", f"  certValidation: {ca}",
        f"  retries: {o.retries}",
        f"  timeouts: {{connectSeconds: {connect}, readSeconds: {read}, "
        f"operationSeconds: {operation}}}",
        "defaults:", "  migration:", "    enabled: true", "    authentication: Kerberos",
        "    performance: SMB", f"    networks: [{{subnet: {SUBNET}, priority: 0}}]",
        "  delegation: {services: [migration, cifs], protocolTransition: true}", "hosts:",
    ]
    for name in fleet.names:
        endpoint = fleet.server.endpoint(name)
        lines.append(f"  - {{name: {name}, address: '{endpoint.host}:{endpoint.port}'}}")
    group = list(o.group or fleet.names)
    lines.append(f"groups: [{{name: tested, hosts: [{', '.join(group)}]}}]")
    lines.append(f"prune: {{delegation: {'true' if o.prune else 'false'}}}")
    return "\n".join(lines) + "\n"


@contextmanager
def lab_fleet(dc: SambaDC, workdir: Path, names: Sequence[str]) -> Iterator[LabFleet]:
    """Start simulated hosts `names` (fresh) and create their computer accounts (UNRELATED seeded)."""
    workdir.mkdir(parents=True, exist_ok=True)
    ca = LabCA.create(workdir / "ca")
    hosts = {n: HyperVHost(server_2022(n, [f"192.168.10.{11 + i}/24"], domain=DOMAIN))
             for i, n in enumerate(names)}
    configs = [LabEndpointConfig(n, h, Credentials(WINRM_USER, WINRM_PASSWORD))
               for n, h in hosts.items()]
    dc.add_computers(names)
    for name in names:
        dc.seed_delegation(name, [UNRELATED])
    with LabServer(configs, ca, workdir / "lab", control_port=None) as server:
        fleet = LabFleet(dc, server, hosts, workdir)
        fleet.write_manifest()
        yield fleet


# --- the directory, read and reset as Administrator -------------------------------------------------


def read_account(dc: SambaDC, name: str) -> Account:
    with dc.admin_connection() as conn:
        conn.search(dc.computer_dn(name), "(objectClass=computer)", ldap3.BASE,
                    attributes=["msDS-AllowedToDelegateTo", "userAccountControl", "uSNChanged"])
        raw = conn.response[0]["raw_attributes"]
    values = frozenset(v.decode() for v in raw.get("msDS-AllowedToDelegateTo", []))
    return Account(values, int(raw["userAccountControl"][0]), int(raw["uSNChanged"][0]))


def reset_account(dc: SambaDC, name: str, values: Sequence[str]) -> None:
    changes: dict[str, list[tuple[str, list[object]]]] = {
        "msDS-AllowedToDelegateTo": [(ldap3.MODIFY_REPLACE, list(values))],
        "userAccountControl": [(ldap3.MODIFY_REPLACE, [str(UAC_WORKSTATION_TRUST_ACCOUNT)])],
    }
    with dc.admin_connection() as conn:
        conn.modify(dc.computer_dn(name), changes)
        assert conn.result["result"] == 0, conn.result


# --- faults that start mid-session ----------------------------------------------------------------


@contextmanager
def fault_after(fleet: LabFleet, names: Sequence[str], requests: int, spec: FaultSpec,
                slow_ms: float = 150) -> Iterator[None]:
    """`spec` on `names` once each has received `requests` requests (its read done, say).

    Until then every request of those hosts is answered `slow_ms` late, which leaves the watcher
    ample time to switch the fault on before the next request arrives (the server counts a
    request when it arrives, then waits, then answers).
    """
    fleet.fault(FaultSpec(latency_ms=slow_ms), *names)
    stop = threading.Event()

    def watch(name: str) -> None:
        while not stop.is_set():
            if fleet.server.stats(name)["http_requests"] >= requests:
                fleet.server.set_fault(name, spec)
                return
            time.sleep(0.005)

    threads = [threading.Thread(target=watch, args=(n,), daemon=True) for n in names]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join(5)
