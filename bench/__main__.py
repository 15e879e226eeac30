"""`python -m bench` (`make bench`): every benchmark of issue 8 in one run; table, JSON, chart.

Where it sits: the entry point of the `bench` package (see bench/__init__.py). Sections, in order:
  planning    pure planning of 10,000 hosts: time and peak memory (bench.plan_10k);
  plan        `hvlm plan` on labs of 50, 200 and 500 hosts (20 ms per request, parallelism 50):
              wall time, WSMan requests per host, ratio to the latency lower bound, the CPU of
              each side; at 200 hosts once more with the lab and the client on separate cores;
  cpu         client CPU per host: hvlm's fleet read against a bare pypsrp script (ratio);
  apply       apply with changes on 200 hosts with the lab's Samba DC: requests per host, LDAP
              operations in all; then plan again (no changes expected).
Writes bench/results.json and bench/plan-wall-time.png; prints the table on stdout, progress on
stderr. Exit 1 if a section failed or the chart could not be drawn (the rest is still written).

    python -m bench [--sizes 50,200,500] [--latency-ms 20] [--parallelism 50]
                    [--apply-hosts 200] [--only plan,cpu,apply,planning] [--out bench]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import structlog

from bench import chart, fleet, report

SECTIONS = ("planning", "plan", "cpu", "apply")
HERE = Path(__file__).resolve().parent


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="50,200,500", help="fleet sizes of the plan series")
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--parallelism", type=int, default=50)
    parser.add_argument("--cpu-hosts", type=int, default=100,
                        help="hosts of the client-CPU comparison")
    parser.add_argument("--apply-hosts", type=int, default=200)
    parser.add_argument("--planning-hosts", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3, help="best of N for pure planning")
    parser.add_argument("--only", default=",".join(SECTIONS), help="sections to run")
    parser.add_argument("--out", type=Path, default=HERE, help="where results go")
    args = parser.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(",") if s]
    args.only = [s for s in args.only.split(",") if s]
    unknown = set(args.only) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; known: {', '.join(SECTIONS)}")
    return args


def _machine() -> dict[str, Any]:
    return {
        "cores": fleet.cores(),
        "python": platform.python_version(),
        "pypsrp": metadata.version("pypsrp"),
        "psrpcore": metadata.version("psrpcore"),
        "load_before": _load(),
        "started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def _sections(args: argparse.Namespace) -> dict[str, Callable[[], Any]]:
    pinned_at = 200 if 200 in args.sizes else None

    def planning() -> Any:
        from bench.plan_10k import run

        fleet.progress(f"pure planning of {args.planning_hosts} hosts")
        return run(args.planning_hosts, 16, args.repeat)

    return {
        "planning": planning,
        "plan": lambda: fleet.plan_series(args.sizes, args.latency_ms, args.parallelism,
                                          pinned_at),
        "cpu": lambda: fleet.client_cpu(args.cpu_hosts, args.latency_ms, args.parallelism),
        "apply": lambda: fleet.apply_run(args.apply_hosts, args.latency_ms, args.parallelism),
    }


def _draw(results: dict[str, Any], out: Path, args: argparse.Namespace) -> None:
    if not results.get("plan"):
        return
    machine = results["machine"]
    note = (f"{machine['cores']} cores shared by client and lab; load average "
            f"{machine['load_before']} at start; {machine['started_at']}")
    try:
        path = chart.draw(results["plan"], out / "plan-wall-time.png",
                          latency_ms=args.latency_ms, parallelism=args.parallelism, note=note)
    except chart.ChartError as exc:
        results["chart_error"] = str(exc)
        return
    results["chart"] = str(path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd())
                           else path)


def main(argv: Sequence[str] | None = None) -> int:
    args = _arguments(argv)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    started = time.perf_counter()
    results: dict[str, Any] = {
        "format": 1,
        "machine": _machine(),
        "settings": {"latency_ms": args.latency_ms, "parallelism": args.parallelism,
                     "sizes": args.sizes},
        "errors": {},
        "section_seconds": {},
    }
    keys = {"planning": "planning", "plan": "plan", "cpu": "client_cpu", "apply": "apply"}
    for name, run in _sections(args).items():
        if name not in args.only:
            continue
        began = time.perf_counter()
        try:
            results[keys[name]] = run()
        except (fleet.BenchError, OSError, RuntimeError) as exc:
            results["errors"][name] = str(exc)
            fleet.progress(f"{name} FAILED: {exc}")
        results["section_seconds"][name] = round(time.perf_counter() - began, 1)
    results["machine"]["load_after"] = _load()
    results["seconds"] = round(time.perf_counter() - started, 1)
    _draw(results, args.out, args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(report.table(results))
    for name, error in results["errors"].items():
        print(f"bench: section {name} failed: {error}", file=sys.stderr)
    if results.get("chart_error"):
        print(f"bench: {results['chart_error']}", file=sys.stderr)
    return 1 if results["errors"] or results.get("chart_error") else 0


if __name__ == "__main__":
    sys.exit(main())
