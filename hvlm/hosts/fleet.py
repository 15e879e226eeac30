"""Many hosts at once: a thread pool over host sessions, with progress.

Pipeline position: `hvlm plan` / `check` / `export` read the fleet here (`read_fleet`), `hvlm
apply` changes it (`apply_fleet`); each worker thread owns its host's session (pypsrp is
synchronous and a WSMan object must not be shared across threads). A slow or dead host only
occupies its own worker until its timeouts expire: its error becomes that host's result, the
others go on. Progress: a rich bar on a TTY, one structlog line per host otherwise (stderr).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
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
from hvlm.progress import host_progress
from hvlm.state import HostState

log = structlog.get_logger(__name__)

_R = TypeVar("_R")


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
        host_progress(label, len(hosts), progress) as tick,
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
