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

    def open_directory(spec: DirectorySpec) -> Any:
        directory = default_directory_opener(spec)
        opened.append(directory)  # keep it: its session counts the LDAP operations it sent
        return directory

    manifest = load_manifest(labdir / "manifest.yaml").manifest
    clock = Clock()
    with open_fleet(manifest, parallelism, open_directory=open_directory) as fleet:
        observation = fleet.observe()
        plan = plan_fleet(fleet, observation)
        planned = clock.since()
        report = apply_plan(fleet, plan, observation)
    counts: dict[str, int] = {}
    for result in report.results:
        counts[result.outcome.value] = counts.get(result.outcome.value, 0) + 1
    ldap = [vars(d.session.counters) for d in opened]
    return {**clock.since(), "plan_wall_seconds": planned["wall_seconds"],
            "changes": len(plan.changes), "outcomes": counts, "drift": len(report.drift),
            "ok": report.ok, "ldap": _sum_counters(ldap), "ldap_sessions": len(ldap),
            "failures": [r.detail for r in report.results if r.detail][:3]}


def _sum_counters(counters: Sequence[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for one in counters:
        for key, value in one.items():
            total[key] = total.get(key, 0) + value
    return total


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
    args = parser.parse_args(argv)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})  # before any thread starts: they inherit it
    os.environ.update(lab_env(args.labdir))
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    preload()
    result = RUNNERS[args.mode](args.labdir, args.parallelism)
    print(json.dumps({"mode": args.mode, **result}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
