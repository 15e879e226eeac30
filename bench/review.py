"""Benchmark: plans people review at fleet size (issue 20): Markdown size and human line count.

Where it sits: part of `make bench` (section `review`); pure, like bench.plan_10k, whose fleet
shape it uses (racks of 16, both services, both name forms; every host and account fresh, so a
first plan changes everything). For each size it builds the plan with the real planner and
renders it with hvlm.render: the Markdown a pull request gets (`hvlm plan --format markdown`,
default budget) and the human summary (`hvlm plan`), and times the summary, then both
renderings of it (the summary is computed once per plan: hvlm.summary keeps the last one, as the
CLI's printed and saved plan share it).
Targets: Markdown <= 60,000 characters at every size; the human summary <= 100 lines for a fleet
whose hosts all get the same change. `issue20_targets(results)` gives bench.__main__ its rows.

    python -m bench.review [--sizes 16,200,1000,10000] [--json]
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from typing import Any

from bench.plan_10k import fleet_manifest, observed
from bench.report import target_row
from hvlm.planner import build_plan
from hvlm.render import MARKDOWN_BUDGET, render
from hvlm.summary import summarize

SIZES = (16, 200, 1_000, 10_000)
HUMAN_LINES = 100


def measure(hosts: int, rack: int = 16) -> dict[str, Any]:
    manifest = fleet_manifest(hosts, rack)
    states, directory = observed(manifest, "fresh")
    plan = build_plan(manifest, states, directory, refresh_tickets=True)
    gc.collect()
    start = time.perf_counter()
    summary = summarize(plan)
    summary_seconds = time.perf_counter() - start
    start = time.perf_counter()
    markdown = render(plan, "markdown")
    markdown_seconds = time.perf_counter() - start
    start = time.perf_counter()
    human = render(plan, "human")
    human_seconds = time.perf_counter() - start
    add, change, delete = plan.summary()
    return {
        "hosts": hosts, "rack": rack, "changes": len(plan.changes),
        "add": add, "change": change, "delete": delete,
        "summary_entries": len(summary.entries),
        "markdown_chars": len(markdown),
        "markdown_states_totals": f"Plan: {add} to add, {change} to change, {delete} to delete."
        in markdown,
        "human_lines": len(human.splitlines()),
        "summary_seconds": round(summary_seconds, 3),
        "markdown_seconds": round(markdown_seconds, 3),
        "human_seconds": round(human_seconds, 3),
    }


def run(sizes: tuple[int, ...] = SIZES) -> dict[str, Any]:
    return {"budget": MARKDOWN_BUDGET, "results": [measure(n) for n in sizes]}



def issue20_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    review = results.get("review") or {}
    rows = review.get("results") or []
    md_figure = "Markdown plan (first plan, racks of 16), largest of the sizes, characters"
    human_figure = "human summary of a uniform fleet (every host the same change), most lines"
    if not rows:
        why = "TODO: run the review section"
        return [target_row(md_figure, None, MARKDOWN_BUDGET, "", why),
                target_row(human_figure, None, HUMAN_LINES, "", why)]
    each_md = ", ".join(f"{r['hosts']:,}: {r['markdown_chars']:,}" for r in rows)
    each_human = ", ".join(f"{r['hosts']:,}: {r['human_lines']}" for r in rows)
    totals = all(r["markdown_states_totals"] for r in rows)
    slowest = max(rows, key=lambda r: r["hosts"])
    return [
        target_row(md_figure, max(r["markdown_chars"] for r in rows), MARKDOWN_BUDGET, "",
             f"{each_md}; states the plan's totals: {'yes' if totals else 'NO'}; "
             f"{slowest['hosts']:,} hosts: summary {slowest['summary_seconds']} s, then the "
             f"Markdown {slowest['markdown_seconds']} s (it renders the summary, computed once)"),
        target_row(human_figure, max(r["human_lines"] for r in rows), HUMAN_LINES, "",
             f"{each_human}; summary of {slowest['hosts']:,} hosts in "
             f"{slowest['summary_seconds']} s"),
    ]


def table(report: dict[str, Any]) -> str:
    lines = [f"plans for review (first plans, Markdown budget {report['budget']:,})",
             f"{'hosts':>7} {'changes':>8} {'entries':>8} {'markdown':>9} {'human lines':>12} "
             f"{'summary s':>10} {'md s':>6} {'human s':>8}"]
    for r in report["results"]:
        lines.append(f"{r['hosts']:>7} {r['changes']:>8} {r['summary_entries']:>8} "
                     f"{r['markdown_chars']:>9} {r['human_lines']:>12} {r['summary_seconds']:>10} "
                     f"{r['markdown_seconds']:>6} {r['human_seconds']:>8}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report = run(tuple(int(s) for s in args.sizes.split(",") if s))
    print(json.dumps(report, indent=2) if args.json else table(report))


if __name__ == "__main__":
    main()
