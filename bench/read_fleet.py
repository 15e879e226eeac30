"""Benchmark: read a lab fleet through hvlm's host sessions, against the latency lower bound.

Where it sits: a standalone companion of `make bench` (issue 8), against a lab of plain
LabServer hosts without a directory. It exercises hvlm's fleet read as `hvlm plan` does it:
hvlm.reconcile's open_fleet + Fleet.read_hosts (one HostSession, so one pool and ONE pipeline,
per host; a thread pool of --parallelism workers) and the sessions' close, all inside the
clock, against the lab's simulated hosts, which run in a separate process (the lab's event loop
must not share this process's GIL).

Lower bound: every host costs R sequential WSMan requests (R measured with the lab's counters:
5 with Basic), each delayed by the lab's added latency L; with P workers the fleet needs
ceil(N / P) waves, so no client can finish before ceil(N / P) x R x L. The report gives the wall
time, that bound and their ratio (issue 4's target: under 2 at N=200, L=20 ms, P=50).

A second floor is CPU: pypsrp's client work (TLS, CLIXML serialisation, fragment parsing) runs
under one GIL, the lab's server work on one event loop, and both share the machine's cores, so
neither can finish before max(client CPU, lab CPU, (client + lab CPU) / cores). The report
measures both (client process time, the lab process's utime+stime) so the wall time can be read
against the floor that actually binds on this machine.

    python bench/read_fleet.py [--hosts 200] [--latency-ms 20] [--parallelism 50] [--json]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

USER, PASSWORD = "benchadmin", "Bench-Pass-1!"  # lab-only credentials of a throwaway lab


def serve(workdir: Path, hosts: int, latency_ms: float) -> None:
    """Child process: start the lab, print its endpoints as one JSON line, run until stdin ends."""
    from hvlm_lab.hyperv.host import HyperVHost, server_2022
    from hvlm_lab.pki import LabCA
    from hvlm_lab.wsman.server import Credentials, FaultSpec, LabEndpointConfig, LabServer

    ca = LabCA.create(workdir / "ca")
    configs = [
        LabEndpointConfig(
            f"HV{i:03d}",
            HyperVHost(server_2022(f"HV{i:03d}", [f"192.168.{i // 250}.{i % 250 + 1}/16"])),
            Credentials(USER, PASSWORD),
            faults=FaultSpec(latency_ms=latency_ms),
        )
        for i in range(1, hosts + 1)
    ]
    with LabServer(configs, ca, workdir / "lab") as lab:
        info = {
            "endpoints": lab.endpoints_json(),
            "ca": str(lab.ca_path),
            "control": lab.control_url,
        }
        print(json.dumps(info), flush=True)
        sys.stdin.read()


def measure(hosts: int, latency_ms: float, parallelism: int) -> dict[str, Any]:
    from hvlm.hosts.session import Credentials as ClientCredentials
    from hvlm.hosts.session import HostSession
    from hvlm.model import (
        ConnectionSpec,
        DelegationSettings,
        DirectorySpec,
        HostSpec,
        Manifest,
        MigrationSettings,
        Transport,
        WinRMAuth,
    )
    from hvlm.reconcile import open_fleet
    from hvlm_lab.wsman.control import LabControlClient

    with tempfile.TemporaryDirectory(prefix="hvlm-bench-") as tmp:
        child = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--serve",
                tmp,
                "--hosts",
                str(hosts),
                "--latency-ms",
                str(latency_ms),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout is not None
            info = json.loads(child.stdout.readline())
            specs = [
                HostSpec(
                    name,
                    f"{name.lower()}.lab.example",
                    ConnectionSpec(
                        ep["host"], ep["port"], Transport.HTTPS, WinRMAuth.BASIC, info["ca"]
                    ),
                    MigrationSettings(),
                    DelegationSettings(),
                )
                for name, ep in sorted(info["endpoints"].items())
            ]
            credentials = ClientCredentials(USER, PASSWORD)

            def open_host(spec: HostSpec) -> HostSession:  # hvlm.backends', with credentials
                session = HostSession(spec, credentials)
                session.open()
                return session

            def no_directory(spec: DirectorySpec) -> Any:
                raise AssertionError("this benchmark reads hosts only")

            manifest = Manifest("bench", tuple(specs))
            control = LabControlClient(info["control"])
            control.reset()
            lab_cpu0, cpu0 = _process_cpu(child.pid), time.process_time()
            start = time.perf_counter()
            with open_fleet(manifest, parallelism, progress=False, open_host=open_host,
                            open_directory=no_directory) as fleet:
                _, errors = fleet.read_hosts(specs)
            wall = time.perf_counter() - start
            client_cpu = time.process_time() - cpu0
            lab_cpu = _process_cpu(child.pid) - lab_cpu0
            stats = control.stats()
        finally:
            if child.stdin is not None:
                child.stdin.close()
            child.wait(60)
    failures = [errors[name] for name in sorted(errors)]
    per_host = sorted({s["wsman_requests"] for s in stats.values()})
    requests = max(per_host)
    waves = math.ceil(hosts / parallelism)
    bound = waves * requests * latency_ms / 1000
    cores = len(os.sched_getaffinity(0))
    cpu_floor = max(client_cpu, lab_cpu, (client_cpu + lab_cpu) / cores)
    return {
        "hosts": hosts,
        "latency_ms": latency_ms,
        "parallelism": parallelism,
        "wsman_requests_per_host": per_host,
        "waves": waves,
        "wall_seconds": round(wall, 3),
        "lower_bound_seconds": round(bound, 3),
        "ratio": round(wall / bound, 2) if bound else None,
        "client_cpu_ms_per_host": round(client_cpu / hosts * 1000, 1),
        "lab_cpu_ms_per_host": round(lab_cpu / hosts * 1000, 1),
        "cores": cores,
        "cpu_floor_seconds": round(cpu_floor, 3),
        "ratio_to_binding_floor": round(wall / max(bound, cpu_floor), 2),
        "failures": failures[:5],
        "failed_hosts": len(failures),
    }


def _process_cpu(pid: int) -> float:
    """utime + stime of a process, in seconds (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--parallelism", type=int, default=50)
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.hosts, args.latency_ms)
        return
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    result = measure(args.hosts, args.latency_ms, args.parallelism)
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"read_fleet: {result['hosts']} hosts, {result['latency_ms']:g} ms latency, "
        f"parallelism {result['parallelism']}"
    )
    print(f"  WSMan requests per host : {result['wsman_requests_per_host']}")
    print(f"  wall time               : {result['wall_seconds']:.3f} s")
    print(
        f"  lower bound             : {result['lower_bound_seconds']:.3f} s "
        f"({result['waves']} waves x {max(result['wsman_requests_per_host'])} requests x "
        f"{result['latency_ms']:g} ms)"
    )
    print(f"  ratio                   : {result['ratio']}")
    print(
        f"  CPU per host            : client {result['client_cpu_ms_per_host']} ms, "
        f"lab {result['lab_cpu_ms_per_host']} ms"
    )
    print(
        f"  CPU floor               : {result['cpu_floor_seconds']:.3f} s "
        f"(one GIL, one lab event loop, {result['cores']} cores shared)"
    )
    print(f"  ratio to binding floor  : {result['ratio_to_binding_floor']}")
    if result["failed_hosts"]:
        print(f"  FAILED hosts            : {result['failed_hosts']} {result['failures']}")


if __name__ == "__main__":
    main()
