"""The client side of `make bench`: one measurement in a process of its own, one JSON line out.

Where it sits: `bench.fleet` (the parent) starts a lab in one process and runs this module in
another (`python -m bench.client MODE LABDIR ...`), so the client's CPU time (time.process_time
over all its threads) and the lab's are measured apart and never share a GIL. Imports happen
before the clock starts: a figure is the work of the mode, not the interpreter's start-up.

Modes (all against the lab in LABDIR, with the credentials of LABDIR/env):
  plan         the real `hvlm plan LABDIR/manifest.yaml --parallelism P` (hvlm.cli in-process,
               stdout captured): manifest, fleet read, directory search, planner, rendering;
  read-hvlm    hvlm's fleet read only (hvlm.reconcile: open_fleet + Fleet.read_hosts + close);
  read-pypsrp  a bare pypsrp 0.9.1 script doing the same: same statements in one pipeline, same
               auth (Basic over HTTPS, the lab CA), same thread pool; pypsrp's defaults otherwise;
  apply        the real apply path (hvlm.reconcile: observe, plan, apply_plan with verification),
               timed per stage, with the LDAP operations hvlm's directory session sent.

Output: {"mode", "hosts", "wall_seconds", "cpu_seconds", ...} on stdout; logs stay on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

MODES = ("plan", "read-hvlm", "read-pypsrp", "apply")


@dataclass(frozen=True)
class Clock:
    """Wall and process CPU time at one instant."""

    wall: float = field(default_factory=time.perf_counter)
    cpu: float = field(default_factory=time.process_time)
    main: float = field(default_factory=time.thread_time)

    def since(self) -> dict[str, float]:
        """Wall, process CPU, and the CPU of the calling thread alone: in `plan` that is all but
        the host sessions (which run in worker threads): manifest, planner, findings, output."""
        return {
            "wall_seconds": round(time.perf_counter() - self.wall, 4),
            "cpu_seconds": round(time.process_time() - self.cpu, 4),
            "main_thread_cpu_seconds": round(time.thread_time() - self.main, 4),
        }


def preload() -> None:
    """Import what every mode uses, so that no clock counts an import."""
    for module in ("hvlm.backends", "hvlm.cli", "hvlm.cli.plan", "hvlm.reconcile",
                   "hvlm_lab.cli", "pypsrp.powershell", "pypsrp.wsman"):
        importlib.import_module(module)


def lab_env(labdir: Path) -> dict[str, str]:
    from hvlm_lab.runner.files import read_env

    return read_env(labdir)


# -- modes ----------------------------------------------------------------------------------------


def run_plan(labdir: Path, parallelism: int) -> dict[str, Any]:
    """`hvlm plan MANIFEST --parallelism P` through hvlm's own CLI entry point, in-process."""
    from hvlm.cli import main

    out = io.StringIO()
    clock = Clock()
    code = 0
    with contextlib.redirect_stdout(out):
        try:
            main(["plan", str(labdir / "manifest.yaml"), "--parallelism", str(parallelism),
                  "--no-color"])
        except SystemExit as exc:
            code = int(exc.code or 0)
    result = clock.since()
    summary = [line for line in out.getvalue().splitlines() if line.startswith(("Plan:", "No "))]
    return {**result, "exit_code": code, "summary": summary[-1] if summary else ""}


def run_read_hvlm(labdir: Path, parallelism: int) -> dict[str, Any]:
    """hvlm's fleet read (what `plan` does before planning), sessions closed at the end."""
    from hvlm.manifest import load_manifest
    from hvlm.reconcile import open_fleet

    manifest = load_manifest(labdir / "manifest.yaml").manifest
    clock = Clock()
    with open_fleet(manifest, parallelism) as fleet:
        states, errors = fleet.read_hosts(list(manifest.hosts))
    return {**clock.since(), "read": len(states), "failed": len(errors),
            "errors": sorted(errors.values())[:3]}


def run_read_pypsrp(labdir: Path, parallelism: int) -> dict[str, Any]:
    """The same read written as a plain pypsrp user would: WSMan, RunspacePool, PowerShell."""
    from pypsrp.powershell import PowerShell, RunspacePool
    from pypsrp.wsman import WSMan

    from hvlm.hosts.commands import READ_STATEMENTS  # the statements only (plain data)
    from hvlm_lab.runner.files import read_info

    info = read_info(labdir)
    assert info is not None
    env = lab_env(labdir)
    # pypsrp takes a CA path for cert_validation (documented) but annotates it as bool.
    options: dict[str, Any] = {"username": env["HVLM_WINRM_USER"], "ssl": True, "auth": "basic",
                               "password": env["HVLM_WINRM_PASSWORD"], "cert_validation": info.ca}

    def read(host: Any) -> int:
        wsman = WSMan(host.host, port=host.port, **options)
        with wsman, RunspacePool(wsman) as pool:
            ps = PowerShell(pool)
            for statement in READ_STATEMENTS:
                ps.add_cmdlet(statement.cmdlet)
                for name, value in statement.parameters:
                    ps.add_parameter(name, value)
                ps.add_statement()
            ps.invoke()
            if ps.had_errors or ps.streams.error:
                raise RuntimeError(f"{host.name}: {ps.streams.error}")
            return len(ps.output)

    clock = Clock()
    failed, errors = _pooled(read, list(info.hosts), parallelism)
    return {**clock.since(), "read": len(info.hosts) - failed, "failed": failed,
            "errors": errors[:3]}


def _pooled(fn: Callable[[Any], object], items: Sequence[Any], workers: int
            ) -> tuple[int, list[str]]:
    errors: list[str] = []
    with ThreadPoolExecutor(workers) as pool:
        for future in [pool.submit(fn, item) for item in items]:
            try:
                future.result()
            except Exception as exc:  # counted and shown: the bench reports failed hosts
                errors.append(f"{type(exc).__name__}: {exc}")
    return len(errors), errors


def run_apply(labdir: Path, parallelism: int) -> dict[str, Any]:
    """The apply path of `hvlm apply MANIFEST --auto-approve`, stage by stage."""
    from hvlm.backends import default_directory_opener
    from hvlm.manifest import load_manifest
    from hvlm.model import DirectorySpec
    from hvlm.reconcile import apply_plan, open_fleet, plan_fleet

    opened: list[Any] = []
    ldap_cpu = [0.0]  # CPU of the calling thread inside the directory session (LDAP)

    def open_directory(spec: DirectorySpec) -> Any:
        directory = default_directory_opener(spec)
        opened.append(directory)  # keep it: its session counts the LDAP operations it sent
        return _Timed(directory, ldap_cpu)

    manifest = load_manifest(labdir / "manifest.yaml").manifest
    clock = Clock()
    with open_fleet(manifest, parallelism, open_directory=open_directory) as fleet:
        observation = fleet.observe()
        plan = plan_fleet(fleet, observation)
        planned = clock.since()
        report = apply_plan(fleet, plan, observation)  # host writes + verification read
        applied = clock.since()
    counts: dict[str, int] = {}
    for result in report.results:
        counts[result.outcome.value] = counts.get(result.outcome.value, 0) + 1
    ldap = [vars(d.session.counters) for d in opened]
    # the CPU of each stage: observe + plan (pools opened, one read per host, the directory
    # search, the planner), then apply + verify (LDAP modifies, one write pipeline and one
    # verification read per host), then the sessions' close
    stages = {"observe_plan": planned["cpu_seconds"],
              "apply_verify": round(applied["cpu_seconds"] - planned["cpu_seconds"], 4)}
    total = clock.since()
    stages["close"] = round(total["cpu_seconds"] - applied["cpu_seconds"], 4)
    return {**total, "plan_wall_seconds": planned["wall_seconds"], "stage_cpu_seconds": stages,
            "ldap_cpu_seconds": round(ldap_cpu[0], 4),
            "changes": len(plan.changes), "outcomes": counts, "drift": len(report.drift),
            "ok": report.ok, "ldap": _sum_counters(ldap), "ldap_sessions": len(ldap),
            "failures": [r.detail for r in report.results if r.detail][:3]}


class _Timed:
    """A directory session whose read / modify calls add their thread CPU time to `total`."""

    def __init__(self, inner: Any, total: list[float]) -> None:
        self._inner = inner
        self._total = total

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if name not in ("read", "modify") or not callable(attribute):
            return attribute

        def timed(*args: Any, **kwargs: Any) -> Any:
            began = time.thread_time()
            try:
                return attribute(*args, **kwargs)
            finally:
                self._total[0] += time.thread_time() - began

        return timed


def _sum_counters(counters: Sequence[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for one in counters:
        for key, value in one.items():
            total[key] = total.get(key, 0) + value
    return total


def profiled(run: Callable[[], dict[str, Any]], top: int) -> dict[str, Any]:
    """run() with cProfile in the calling thread and in every thread started meanwhile (the host
    sessions run in worker threads), timed by each thread's CPU clock (time waiting for a host is
    not counted); the merged top functions by own CPU time, then hvlm's own functions by
    cumulative CPU time, go to stderr."""
    import cProfile
    import pstats
    import threading

    profiles: list[cProfile.Profile] = []
    thread_run = threading.Thread.run

    def run_profiled(thread: threading.Thread) -> None:
        profile = cProfile.Profile(time.thread_time)
        profiles.append(profile)
        profile.enable()
        try:
            thread_run(thread)
        finally:
            profile.disable()

    threading.Thread.run = run_profiled  # type: ignore[method-assign]
    main = cProfile.Profile(time.thread_time)
    main.enable()
    try:
        result = run()
    finally:
        main.disable()
        threading.Thread.run = thread_run  # type: ignore[method-assign]
    stats = pstats.Stats(main, stream=sys.stderr)
    for profile in profiles:
        stats.add(profile)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(r"/hvlm/", top)
    return result


RUNNERS: dict[str, Callable[[Path, int], dict[str, Any]]] = {
    "plan": run_plan,
    "read-hvlm": run_read_hvlm,
    "read-pypsrp": run_read_pypsrp,
    "apply": run_apply,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.client")
    parser.add_argument("mode", choices=MODES)
    parser.add_argument("labdir", type=Path)
    parser.add_argument("--parallelism", type=int, default=50)
    parser.add_argument("--cpu", type=int, help="pin this process to one CPU (Linux)")
    parser.add_argument("--profile", type=int, metavar="N",
                        help="profile every thread (cProfile); the top N functions by own time "
                             "go to stderr (figures then include the profiler's overhead)")
    args = parser.parse_args(argv)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})  # before any thread starts: they inherit it
    os.environ.update(lab_env(args.labdir))
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    preload()
    if args.profile:
        result = profiled(lambda: RUNNERS[args.mode](args.labdir, args.parallelism), args.profile)
    else:
        result = RUNNERS[args.mode](args.labdir, args.parallelism)
    print(json.dumps({"mode": args.mode, **result}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
