"""The parent side of `make bench`: labs in their own processes, clients in theirs, side by side.

Where it sits: `bench.__main__` calls the functions below; each starts a lab with
hvlm_lab.runner.process.start_process (the hosts' event loop in a process of its own), runs one or
more `bench.client` processes against it, and reads the lab's counters through its control
channel (WSMan requests per host) and, with a directory, the computer accounts written.

CPU: the client reports its own process time; the lab's is the utime + stime of its process
(/proc/PID/stat, all threads) over the same interval. With `pin`, the lab's threads are bound to
CPU 0 and the client to CPU 1, so each side has one core and the wall time can be read against
max(client CPU, lab CPU).

Lower bound (issue 8): every host costs R WSMan requests in sequence, each delayed by the lab's
latency L; P hosts are served at once, so no client can finish before ceil(N / P) x R x L.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hvlm_lab.runner.process import LabProcess, start_process

ROOT = Path(__file__).resolve().parent.parent
CLIENT_TIMEOUT = 600.0


class BenchError(RuntimeError):
    """A measurement could not be taken (the lab or a client failed); the message says which."""


@dataclass(frozen=True)
class Sample:
    """One client run against one lab, with the lab's side of the same interval."""

    mode: str
    hosts: int
    client: dict[str, Any]  # what bench.client printed
    process_wall_seconds: float  # the client process from exec to exit (Python start included)
    lab_cpu_seconds: float
    requests: dict[str, float]  # WSMan requests per host: min / max / mean

    @property
    def wall(self) -> float:
        return float(self.client["wall_seconds"])

    @property
    def cpu(self) -> float:
        return float(self.client["cpu_seconds"])


def process_cpu(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu(pid: int) -> float:
    """CPU seconds of `pid` and its living descendants (a Samba DC forks helpers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            total += process_cpu(current)
        except OSError:  # ended meanwhile
            continue
        todo.extend(children.get(current, []))
    return total


def cores() -> int:
    return len(os.sched_getaffinity(0))


def pin_process(pid: int, cpu: int) -> None:
    """Bind every thread of `pid` to `cpu` (sched_setaffinity binds one thread at a time)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            os.sched_setaffinity(int(task.name), {cpu})
        except ProcessLookupError:  # a thread that ended meanwhile
            continue


def unpin_process(pid: int) -> None:
    every = set(range(os.cpu_count() or 1))
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            os.sched_setaffinity(int(task.name), every)
        except ProcessLookupError:
            continue


@contextmanager
def lab(hosts: int, latency_ms: float, directory: bool) -> Iterator[LabProcess]:
    """A lab process in a fresh temporary directory; stopped (by PID) on the way out."""
    with tempfile.TemporaryDirectory(prefix="hvlm-bench-") as tmp:
        started = start_process(Path(tmp) / "lab", hosts=hosts, latency_ms=latency_ms,
                                directory=directory)
        try:
            yield started
        finally:
            started.stop()


def host_requests(running: LabProcess) -> dict[str, float]:
    counts = [int(c["wsman_requests"]) for c in running.control.stats().values()]
    return {"min": min(counts), "max": max(counts), "mean": round(statistics.fmean(counts), 2)}


def run_client(running: LabProcess, mode: str, parallelism: int, pin: bool = False) -> Sample:
    """One `python -m bench.client MODE` against `running`, counters reset just before."""
    command = [sys.executable, "-m", "bench.client", mode, str(running.workdir),
               "--parallelism", str(parallelism)]
    if pin:
        pin_process(running.pid, 0)
        command += ["--cpu", "1"]
    running.control.reset()
    lab_cpu = process_cpu(running.pid)
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                              timeout=CLIENT_TIMEOUT, check=False)
    finally:
        if pin:
            unpin_process(running.pid)
    process_wall = time.perf_counter() - start
    lab_cpu = process_cpu(running.pid) - lab_cpu
    if done.returncode != 0 or not done.stdout.strip():
        tail = "\n".join(done.stderr.splitlines()[-15:])
        raise BenchError(f"bench.client {mode} exited {done.returncode}:\n{tail}")
    client = json.loads(done.stdout.strip().splitlines()[-1])
    return Sample(mode, len(running.info.hosts), client, round(process_wall, 3),
                  round(lab_cpu, 3), host_requests(running))


def lower_bound(hosts: int, parallelism: int, requests: float, latency_ms: float) -> float:
    return math.ceil(hosts / parallelism) * requests * latency_ms / 1000


def plan_figures(sample: Sample, parallelism: int, latency_ms: float) -> dict[str, Any]:
    """A plan sample as issue 8 asks for it, with the CPU that bounds it on this machine."""
    requests = sample.requests["max"]
    bound = lower_bound(sample.hosts, parallelism, requests, latency_ms)
    client_cpu, lab_cpu = sample.cpu, sample.lab_cpu_seconds
    cpu_floor = max(client_cpu, lab_cpu, (client_cpu + lab_cpu) / cores())
    return {
        "hosts": sample.hosts,
        "wall_seconds": round(sample.wall, 3),
        "process_wall_seconds": sample.process_wall_seconds,
        "requests_per_host": sample.requests,
        "lower_bound_seconds": round(bound, 3),
        "ratio": round(sample.wall / bound, 2),
        "client_cpu_seconds": round(client_cpu, 3),
        "lab_cpu_seconds": round(lab_cpu, 3),
        "client_cpu_ms_per_host": round(client_cpu / sample.hosts * 1000, 1),
        "client_main_thread_cpu_seconds": sample.client.get("main_thread_cpu_seconds"),
        "lab_cpu_ms_per_host": round(lab_cpu / sample.hosts * 1000, 1),
        "cpu_floor_seconds": round(cpu_floor, 3),
        # share of the machine's cores that client + lab used over the wall time: well under 1
        # while the wall time is far above the CPU floor means other load took the cores
        "cores_used": round((client_cpu + lab_cpu) / (sample.wall * cores()), 2),
        "ratio_to_cpu_floor": round(sample.wall / cpu_floor, 2) if cpu_floor else None,
        "summary": sample.client.get("summary", ""),
        "exit_code": sample.client.get("exit_code"),
    }


def plan_series(sizes: list[int], latency_ms: float, parallelism: int, pinned_at: int | None
                ) -> list[dict[str, Any]]:
    """`hvlm plan` on labs of each size; at `pinned_at` hosts, once more with pinned sides."""
    rows: list[dict[str, Any]] = []
    for size in sizes:
        with lab(size, latency_ms, directory=False) as running:
            sample = run_client(running, "plan", parallelism)
            rows.append({"pinned": False, **plan_figures(sample, parallelism, latency_ms)})
            if size == pinned_at and cores() >= 2:
                sample = run_client(running, "plan", parallelism, pin=True)
                rows.append({"pinned": True, **plan_figures(sample, parallelism, latency_ms)})
        progress(f"plan {size} hosts: {rows[-1]['wall_seconds']} s")
    return rows


def client_cpu(hosts: int, latency_ms: float, parallelism: int, rounds: int = 3
               ) -> dict[str, Any]:
    """hvlm's fleet read against a bare pypsrp script on the same lab, interleaved `rounds`
    times (hvlm, bare, hvlm, bare...); each side's figure is its least CPU (the least disturbed
    by other load on a shared machine)."""
    samples: dict[str, list[Sample]] = {"hvlm": [], "pypsrp": []}
    with lab(hosts, latency_ms, directory=False) as running:
        for _ in range(rounds):
            samples["hvlm"].append(run_client(running, "read-hvlm", parallelism))
            samples["pypsrp"].append(run_client(running, "read-pypsrp", parallelism))
    _check_reads(*samples["hvlm"], *samples["pypsrp"])
    best = {name: min(runs, key=lambda s: s.cpu) for name, runs in samples.items()}
    figures = {name: {**_read_figures(sample),
                      "cpu_seconds_all_rounds": [round(s.cpu, 3) for s in samples[name]]}
               for name, sample in best.items()}
    hvlm, bare = best["hvlm"], best["pypsrp"]
    ratio = hvlm.cpu / bare.cpu if bare.cpu else None
    progress(f"client CPU: hvlm {hvlm.cpu:.2f} s, bare pypsrp {bare.cpu:.2f} s")
    return {"hosts": hosts, "latency_ms": latency_ms, "parallelism": parallelism,
            "rounds": rounds, **figures, "ratio": round(ratio, 2) if ratio else None}


def _check_reads(*samples: Sample) -> None:
    for sample in samples:
        if sample.client.get("failed"):
            raise BenchError(f"{sample.mode}: {sample.client['failed']} hosts failed: "
                             f"{sample.client.get('errors')}")


def _read_figures(sample: Sample) -> dict[str, Any]:
    return {
        "wall_seconds": round(sample.wall, 3),
        "cpu_seconds": round(sample.cpu, 3),
        "cpu_ms_per_host": round(sample.cpu / sample.hosts * 1000, 1),
        "lab_cpu_ms_per_host": round(sample.lab_cpu_seconds / sample.hosts * 1000, 1),
        "requests_per_host": sample.requests,
    }


def apply_run(hosts: int, latency_ms: float, parallelism: int) -> dict[str, Any]:
    """A fresh lab with its directory: apply (every host and account changes), then plan again."""
    start = time.perf_counter()
    with lab(hosts, latency_ms, directory=True) as running:
        lab_start = time.perf_counter() - start
        running.reset_stats()
        dc_cpu = _directory_cpu(running)
        applied = run_client(running, "apply", parallelism)
        dc_cpu = _directory_cpu(running) - dc_cpu
        written = running.stats()["directory"]["changed_computers"]
        again = run_client(running, "plan", parallelism)
    client = applied.client
    if not client["ok"]:
        raise BenchError(f"apply failed: {client['outcomes']} {client['failures']}")
    progress(f"apply {hosts} hosts: {applied.wall:.1f} s; plan again: {again.client['summary']}")
    ldap = client["ldap"]
    return {
        "hosts": hosts, "latency_ms": latency_ms, "parallelism": parallelism,
        "lab_start_seconds": round(lab_start, 1),
        "changes": client["changes"], "outcomes": client["outcomes"],
        "wall_seconds": round(applied.wall, 3),
        "plan_part_seconds": client["plan_wall_seconds"],
        "client_cpu_seconds": round(applied.cpu, 3),
        "client_cpu_ms_per_host": round(applied.cpu / hosts * 1000, 1),
        "client_stage_cpu_seconds": client.get("stage_cpu_seconds", {}),
        # of the client's CPU: the directory session (ldap3 + pyasn1: every delegation value of
        # the lab's one peer group, so it grows with hosts x hosts) and the rest (host sessions,
        # planner, verification)
        "client_ldap_cpu_ms_per_host": round(client.get("ldap_cpu_seconds", 0.0) / hosts * 1000,
                                             1),
        "client_non_ldap_cpu_ms_per_host": round(
            (applied.cpu - client.get("ldap_cpu_seconds", 0.0)) / hosts * 1000, 1),
        "lab_cpu_seconds": applied.lab_cpu_seconds,
        "directory_cpu_seconds": round(dc_cpu, 3),
        "requests_per_host": applied.requests,
        "ldap_operations": sum(ldap.values()) - ldap.get("searches", 0),
        "ldap": ldap,
        "computer_accounts_written": len(written),
        "replan": {"summary": again.client["summary"], "wall_seconds": round(again.wall, 3),
                   "requests_per_host": again.requests},
    }


def _directory_cpu(running: LabProcess) -> float:
    directory = running.info.directory
    return tree_cpu(directory.pid) if directory is not None and directory.pid else 0.0


def progress(line: str) -> None:
    print(f"bench: {line}", file=sys.stderr, flush=True)
