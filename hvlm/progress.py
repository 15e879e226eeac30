"""Progress of a fleet operation: a rich bar on a TTY, one structlog line per host otherwise.

Used by hvlm.reconcile (its fleet reads, for plan, apply, check and export); writes to stderr, so
stdout carries only results. No backend imports.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import structlog

log = structlog.get_logger(__name__)

Progress = Callable[[str, bool], None]  # (host name, ok) after each host


@contextmanager
def host_progress(label: str, total: int, enabled: bool | None) -> Iterator[Progress]:
    """A rich progress bar on a TTY; otherwise a structured line per finished host."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        done = 0

        def line(host: str, ok: bool) -> None:
            nonlocal done
            done += 1
            log.info(f"{label} host", host=host, ok=ok, done=done, total=total)

        yield line
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    columns = ("{task.description}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, transient=True, console=Console(stderr=True)) as bar:
        task = bar.add_task(f"{label} hosts", total=total)

        def advance(host: str, ok: bool) -> None:
            bar.update(task, advance=1, description=f"{label} hosts (last: {host})")

        yield advance


@contextmanager
def replication_progress(total: int, enabled: bool | None) -> Iterator[Callable[[int, int], None]]:
    """A bar of the DCs that hold the written delegation (apply's wait for replication) on a
    TTY; otherwise nothing here (the wait logs a line per round itself)."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield lambda agreeing, of: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    columns = ("{task.description}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, transient=True, console=Console(stderr=True)) as bar:
        task = bar.add_task("waiting for replication (DCs agreeing)", total=total)

        def update(agreeing: int, of: int) -> None:
            bar.update(task, completed=agreeing, total=of)

        yield update
