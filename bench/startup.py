"""Benchmark: `hvlm validate examples/prod-east.yaml`, the whole process (issue 16: <= 0.25 s).

Where it sits: part of `make bench`; bench.__main__ takes the row from `issue16_targets(results)`,
which runs `run()` when the results hold no `startup` section yet (and records it there).
What is timed: a fresh `python -m hvlm validate examples/prod-east.yaml` process, from spawn to
exit (interpreter start, imports, validation, output), --runs times after one warm-up run (the
.pyc files exist); the figure is the least wall time, as hyperfine's `min`, since load from other
processes on a shared machine only ever adds. CPU: user + system of the child, from getrusage.
`import_ms`: the slowest top-level imports of one more run under `-X importtime` (cumulative,
inflated by the tracing itself: for finding the culprit, not for the target). The unit test
tests/unit/test_startup_imports.py keeps the reason (no backend, reconciler or structlog loaded).

    python bench/startup.py [--runs N] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = "examples/prod-east.yaml"
VALIDATE_SECONDS = 0.25  # issue 16
COMMAND = (sys.executable, "-m", "hvlm", "validate", EXAMPLE)


def _once() -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(COMMAND, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def _imports(top: int = 8) -> dict[str, float]:
    """Cumulative import time (ms) of the top-level imports, slowest first."""
    out = subprocess.run((sys.executable, "-X", "importtime", *COMMAND[1:]), cwd=ROOT,
                         check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True)
    found: dict[str, float] = {}
    for line in out.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \| ( *)(\S+)$", line)
        if match and len(match.group(2)) <= 1:  # the process's own imports (depth 0)
            found[match.group(3)] = round(int(match.group(1)) / 1000, 1)
    return dict(sorted(found.items(), key=lambda kv: -kv[1])[:top])


def run(runs: int = 10) -> dict[str, Any]:
    _once()  # warm-up: .pyc files and the page cache
    walls, cpus = zip(*(_once() for _ in range(runs)), strict=True)
    ordered = sorted(walls)
    return {
        "benchmark": "startup",
        "command": f"python -m hvlm validate {EXAMPLE}",
        "runs": runs,
        "seconds": round(ordered[0], 4),
        "median_seconds": round(ordered[len(ordered) // 2], 4),
        "cpu_seconds": round(min(cpus), 4),
        "load": "/".join(f"{x:.1f}" for x in os.getloadavg()),
        "import_ms": _imports(),
    }


def issue16_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """bench.__main__'s row for `hvlm validate` (measured here when results has no `startup`)."""
    if "startup" not in results:
        results["startup"] = run()
    figure = results["startup"]
    measured = figure["seconds"]
    return [{
        "figure": "`hvlm validate` on the example: whole process wall time",
        "measured": measured, "target": f"<= {VALIDATE_SECONDS:g} s", "limit": VALIDATE_SECONDS,
        "unit": " s", "met": bool(measured <= VALIDATE_SECONDS),
        "note": (f"least of {figure['runs']} runs (median {figure['median_seconds']} s, CPU "
                 f"{figure['cpu_seconds']} s, load {figure['load']}); slowest imports (ms, "
                 f"-X importtime): {figure['import_ms']}"),
    }]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    report = run(args.runs)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{report['command']}: {report['seconds']:.3f} s (least of {report['runs']}; median "
          f"{report['median_seconds']:.3f} s; CPU {report['cpu_seconds']:.3f} s; load "
          f"{report['load']}); target <= {VALIDATE_SECONDS} s")
    print("slowest imports (ms, cumulative, under -X importtime):", report["import_ms"])


if __name__ == "__main__":
    main()
