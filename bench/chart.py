"""The chart of `make bench`: fleet plan wall time against fleet size, next to the lower bounds.

Where it sits: `bench.__main__` calls `draw(results, path)` after the measurements, with the rows
of `bench.fleet.plan_series`. matplotlib is the only dependency of the benchmarks beyond hvlm's
own (the `bench` extra); without it `draw` raises ChartError with the command that installs it,
and the table and results.json are still written.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


class ChartError(RuntimeError):
    """The chart could not be drawn (matplotlib missing); the message says how to fix it."""


def _pyplot() -> Any:
    try:
        import matplotlib
    except ModuleNotFoundError as exc:
        raise ChartError(
            "the chart needs matplotlib, which is not installed: "
            "`.venv/bin/pip install -e '.[bench]'` (or `pip install matplotlib`), "
            "then run `make bench` again"
        ) from exc
    matplotlib.use("Agg")  # files only: no display on a CI machine
    import matplotlib.pyplot as plt

    return plt


def draw(rows: Sequence[dict[str, Any]], path: Path, *, latency_ms: float, parallelism: int,
         note: str = "") -> Path:
    """Plot wall time, the latency lower bound and the CPU floor per fleet size; save a PNG."""
    plt = _pyplot()
    rows = sorted((r for r in rows if not r.get("pinned")), key=lambda r: r["hosts"])
    sizes = [r["hosts"] for r in rows]
    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=110)
    ax.plot(sizes, [r["wall_seconds"] for r in rows], "o-", color="tab:blue",
            label="hvlm plan, wall time")
    ax.plot(sizes, [r["cpu_floor_seconds"] for r in rows], "s--", color="tab:orange",
            label="CPU floor (client + lab on this machine)")
    ax.plot(sizes, [r["lower_bound_seconds"] for r in rows], "^:", color="tab:green",
            label=f"latency lower bound (waves x requests x {latency_ms:g} ms)")
    for row in rows:
        ax.annotate(f"{row['ratio']:.0f}x bound", (row["hosts"], row["wall_seconds"]),
                    textcoords="offset points", xytext=(4, 6), fontsize=8, color="tab:blue")
    ax.set_xlabel("lab hosts")
    ax.set_ylabel("seconds")
    ax.set_title(f"hvlm plan: wall time against fleet size (parallelism {parallelism}, "
                 f"{latency_ms:g} ms per request)", fontsize=10)
    ax.set_xticks(sizes)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    if note:
        fig.text(0.01, 0.01, note, fontsize=7, color="dimgray")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
