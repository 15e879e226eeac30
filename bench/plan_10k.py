"""Benchmark: pure planning of a 10,000-host fleet (no I/O): wall time and peak memory.

Where it sits: part of `make bench` (issue 8); it exercises hvlm.planner alone, with the manifest
model and the observed state built in memory, so the figure is the planner's own cost.

Fleet shape (a choice, see the issue): hosts live-migrate within racks of 16, so each Kerberos host
has 15 peers -> 15 x 2 services x 2 name forms = 60 delegation values per computer account
(600,000 in all). A single group of 10,000 peers would mean 10^8 values, which no real directory
holds. Scenarios:
  fresh      every host as installed (migration off, CredSSP, no network) and empty accounts: every
             host and account changes (10,000 host + 20,000 network/settings + 20,000 directory);
  drift      a converged fleet where 1% of hosts and accounts drifted;
  converged  everything already true: the plan is empty (the steady state of a GitOps pipeline).
Time: best of --repeat runs, wall (time.perf_counter) and CPU (time.process_time: less
sensitive to other load on a shared machine), tracemalloc off. Memory: peak traced allocation of
one more run under tracemalloc (inputs excluded: they are built before tracing starts).

    python bench/plan_10k.py [--hosts N] [--rack N] [--repeat N] [--json]
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import json
import time
import tracemalloc
from typing import Any

from hvlm.model import (
    UAC_TRUSTED_TO_AUTH_FOR_DELEGATION,
    AuthenticationType,
    ConnectionSpec,
    DelegationSettings,
    Group,
    HostSpec,
    Manifest,
    MigrationNetwork,
    MigrationSettings,
    PerformanceOption,
    desired_delegation,
)
from hvlm.plan import Plan
from hvlm.planner import build_plan
from hvlm.state import DelegationState, DirectoryState, HostState, MigrationState, ObservedNetwork

DOMAIN = "corp.example.com"
SUBNET = ipaddress.ip_network("192.168.10.0/24")
WORKSTATION_TRUST_ACCOUNT = 0x1000


def fleet_manifest(hosts: int, rack: int) -> Manifest:
    names = [f"HV{i:05d}" for i in range(hosts)]
    racks = [names[i:i + rack] for i in range(0, hosts, rack)]
    migration = MigrationSettings(
        enabled=True, authentication=AuthenticationType.KERBEROS,
        performance=PerformanceOption.SMB, max_virtual_machine_migrations=2,
        max_storage_migrations=2, use_any_network=False,
        networks=(MigrationNetwork(SUBNET, 0),),
    )
    delegation = DelegationSettings(protocol_transition=True)
    specs = []
    for members in racks:
        for name in members:
            fqdn = f"{name.lower()}.{DOMAIN}"
            specs.append(HostSpec(
                name, fqdn, ConnectionSpec(fqdn, 5986), migration, delegation,
                tuple(p for p in members if p != name),
            ))
    groups = tuple(Group(f"rack-{i}", tuple(m)) for i, m in enumerate(racks))
    return Manifest("bench", tuple(specs), groups, None, True, "bench", "0" * 64)


def _fresh_host(name: str) -> HostState:
    return HostState(name, MigrationState(False, AuthenticationType.CREDSSP,
                                          PerformanceOption.COMPRESSION, 2, 2, False))


def _converged_host(name: str) -> HostState:
    return HostState(name, MigrationState(True, AuthenticationType.KERBEROS, PerformanceOption.SMB,
                                          2, 2, False, (ObservedNetwork(SUBNET, 0),)))


def _account(spec: HostSpec, values: tuple[str, ...], uac: int) -> DelegationState:
    return DelegationState(spec.name, f"CN={spec.name},CN=Computers,DC=corp,DC=example,DC=com",
                           f"{spec.name}$", spec.fqdn, (f"HOST/{spec.name}",), uac, values)


def observed(manifest: Manifest, scenario: str) -> tuple[dict[str, HostState], DirectoryState]:
    index = {spec.key: spec for spec in manifest.hosts}
    hosts: dict[str, HostState] = {}
    accounts = []
    for i, spec in enumerate(manifest.hosts):
        drifted = scenario == "fresh" or (scenario == "drift" and i % 100 == 0)
        hosts[spec.key] = (_fresh_host if drifted else _converged_host)(spec.name)
        if drifted:
            accounts.append(_account(spec, ("MSSQLSvc/sql01:1433",), WORKSTATION_TRUST_ACCOUNT))
        else:
            peers = tuple(index[p.upper()] for p in spec.peers)
            values = (*desired_delegation(spec, peers), "MSSQLSvc/sql01:1433")
            uac = WORKSTATION_TRUST_ACCOUNT | UAC_TRUSTED_TO_AUTH_FOR_DELEGATION
            accounts.append(_account(spec, values, uac))
    return hosts, DirectoryState(tuple(accounts))


def measure(manifest: Manifest, scenario: str, repeat: int) -> dict[str, Any]:
    hosts, directory = observed(manifest, scenario)
    best = best_cpu = float("inf")
    plan: Plan | None = None
    for _ in range(repeat):
        gc.collect()
        start, start_cpu = time.perf_counter(), time.process_time()
        plan = build_plan(manifest, hosts, directory, refresh_tickets=True)
        best = min(best, time.perf_counter() - start)
        best_cpu = min(best_cpu, time.process_time() - start_cpu)
    assert plan is not None
    del plan
    gc.collect()
    tracemalloc.start()
    plan = build_plan(manifest, hosts, directory, refresh_tickets=True)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    add, change, delete = plan.summary()
    return {
        "scenario": scenario,
        "hosts": len(manifest.hosts),
        "changes": len(plan.changes),
        "add": add, "change": change, "delete": delete,
        "seconds": round(best, 4),
        "cpu_seconds": round(best_cpu, 4),
        "peak_mib": round(peak / 2**20, 1),
    }


def run(hosts: int = 10_000, rack: int = 16, repeat: int = 3) -> dict[str, Any]:
    manifest = fleet_manifest(hosts, rack)
    values = sum(len(s.peers) for s in manifest.hosts) * 4
    results = [measure(manifest, s, repeat) for s in ("fresh", "drift", "converged")]
    return {"benchmark": "plan_10k", "hosts": hosts, "rack": rack,
            "delegation_values": values, "results": results}


def table(report: dict[str, Any]) -> str:
    lines = [f"pure planning: {report['hosts']} hosts, racks of {report['rack']} "
             f"({report['delegation_values']} desired delegation values)",
             f"{'scenario':<10} {'changes':>8} {'add/change/delete':>20} {'wall (s)':>9} "
             f"{'cpu (s)':>8} {'peak MiB':>9}"]
    for r in report["results"]:
        counts = f"{r['add']}/{r['change']}/{r['delete']}"
        lines.append(f"{r['scenario']:<10} {r['changes']:>8} {counts:>20} {r['seconds']:>9.3f} "
                     f"{r['cpu_seconds']:>8.3f} {r['peak_mib']:>9.1f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--rack", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    report = run(args.hosts, args.rack, args.repeat)
    print(json.dumps(report, indent=2) if args.json else table(report))


if __name__ == "__main__":
    main()
