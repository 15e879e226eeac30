"""Many hosts at once: a thread pool over host sessions, with progress.

Pipeline position: `hvlm plan` / `check` / `export` read the fleet here (`read_fleet`), `hvlm
apply` changes it (`apply_fleet`); each worker thread owns its host's session (pypsrp is
synchronous and a WSMan object must not be shared across threads). A slow or dead host only
occupies its own worker until its timeouts expire: its error becomes that host's result, the
others go on. Progress: a rich bar on a TTY, one structlog line per host otherwise (stderr).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from typing import TypeVar

import structlog

from hvlm.errors import HostError, HvlmError
from hvlm.hosts.errors import map_exception
from hvlm.hosts.session import (
    Credentials,
    HostChangeReport,
    StepsFor,
    change_host,
    desired_steps,
    read_host,
)
from hvlm.model import HostSpec
from hvlm.state import HostState

log = structlog.get_logger(__name__)

_R = TypeVar("_R")
Progress = Callable[[str, bool], None]  # (host name, ok) after each host


def read_fleet(
    hosts: Sequence[HostSpec],
    parallelism: int = 16,
    *,
    credentials: Credentials | None = None,
    progress: bool | None = None,
) -> dict[str, HostState | HostError]:
    """Read every host once (one pool, one pipeline each): name -> HostState or its HostError."""
    return _run_all(
        hosts, lambda spec: read_host(spec, credentials), parallelism, "reading", progress
    )


def apply_fleet(
    hosts: Sequence[HostSpec],
    parallelism: int = 16,
    *,
    steps_for: StepsFor = desired_steps,
    credentials: Credentials | None = None,
    progress: bool | None = None,
) -> dict[str, HostChangeReport | HostError]:
    """Read, change and verify every host (one pool each): name -> report or its HostError."""
    return _run_all(
        hosts,
        lambda spec: change_host(spec, steps_for, credentials),
        parallelism,
        "applying",
        progress,
    )


def _run_all(
    hosts: Sequence[HostSpec],
    work: Callable[[HostSpec], _R],
    parallelism: int,
    label: str,
    progress: bool | None,
) -> dict[str, _R | HostError]:
    results: dict[str, _R | HostError] = {}
    if not hosts:
        return results
    workers = max(1, min(parallelism, len(hosts)))
    with (
        _progress(label, len(hosts), progress) as tick,
        ThreadPoolExecutor(workers, thread_name_prefix="hvlm-host") as pool,
    ):
        futures: dict[Future[_R], HostSpec] = {pool.submit(work, spec): spec for spec in hosts}
        for future in as_completed(futures):
            spec = futures[future]
            value = _outcome(future, spec)
            results[spec.name] = value
            tick(spec.name, not isinstance(value, HostError))
    return {spec.name: results[spec.name] for spec in hosts}


def _outcome(future: Future[_R], spec: HostSpec) -> _R | HostError:
    try:
        return future.result()
    except HostError as error:
        return error
    except HvlmError as error:  # e.g. CredentialsMissing, UnsafeHostChange
        return HostError(spec.name, "prepare", str(error))
    except Exception as exc:  # one host's surprise must not sink the fleet
        return map_exception(exc, spec.name, "internal", spec.connection)


@contextmanager
def _progress(label: str, total: int, enabled: bool | None) -> Iterator[Progress]:
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
