"""A lab in its own process: start it in the background, find it again, inspect it, stop it by PID.

Part of the lab. `hvlm lab up/status/stats/down` (`cli.py`) and the benchmarks use this module;
the background process runs `python -m hvlm_lab serve DIR` (`__main__.py` -> `serve`), which
starts a `runner.Lab` and serves it until SIGTERM/SIGINT.

    proc = start_process(workdir, hosts=200, latency_ms=20, directory=False)  # returns when up
    proc.info.hosts[0].port; proc.env; proc.manifest_path
    proc.stats(); proc.reset_stats(); proc.set_fault("HV002", FaultSpec(hang=True))
    proc.stop()                 # = down(workdir): nothing left listening

    status(workdir)             # LabStatus: is every part up (process, control, hosts, directory)?
    down(workdir)               # DownReport: idempotent; stops the DC by PID even when the lab
                                # process was killed

Start-up handshake: the parent sends the pickled `LabOptions` on the child's stdin; the child
answers one line on stdout, "ready" or "error: ...", then closes it; its stderr goes to DIR/lab.log.
The child runs in its own session, so closing the terminal or Ctrl-C there does not stop it.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hvlm_lab.runner.files import (
    LOG_FILE,
    DirectoryInfo,
    LabError,
    LabInfo,
    ReplicaInfo,
    is_lab_process,
    owner_alive,
    pid_alive,
    read_env,
    read_info,
)
from hvlm_lab.runner.lab import (
    Lab,
    LabOptions,
    directory_stats,
    leftover_dcs,
    read_baseline,
    reset_baseline,
)
from hvlm_lab.samba import dc as samba
from hvlm_lab.samba.pair import remove_loopback
from hvlm_lab.wsman.control import LabControlClient
from hvlm_lab.wsman.faults import FaultSpec
from hvlm_lab.wsman.server import Transport

__all__ = ["DownReport", "LabProcess", "LabStatus", "PartStatus", "down", "serve",
           "start_process", "status"]

READY = "ready"
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


# --- the parent side --------------------------------------------------------------------------


def start_process(workdir: Path, *, hosts: int = 3, latency_ms: float = 0.0,
                  faults: dict[str, FaultSpec] | None = None, directory: bool = True,
                  host_configs: Any = None, subnet: str | None = None,
                  template_dir: Path | None = None, transport: Transport = Transport.HTTPS_BASIC,
                  timeout: float = 300.0) -> LabProcess:
    """Start a lab in a background process; return once every part answers."""
    options = LabOptions(
        hosts=hosts, latency_ms=latency_ms, faults=dict(faults or {}), directory=directory,
        host_configs=tuple(host_configs) if host_configs is not None else None,
        subnet=subnet, template_dir=template_dir, transport=transport,
    )
    return spawn(Path(workdir), options, timeout)


def spawn(workdir: Path, options: LabOptions, timeout: float = 300.0) -> LabProcess:
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / LOG_FILE
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hvlm_lab", "serve", str(workdir)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
            start_new_session=True, close_fds=True,
        )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(pickle.dumps(options))
    proc.stdin.close()
    answer = _read_answer(proc.stdout.fileno(), time.monotonic() + timeout)
    proc.stdout.close()
    if answer != READY:
        _abort(proc)
        reason = answer or f"the lab process exited with {proc.returncode}"
        raise LabError(f"lab did not start: {reason}\n{_tail(log_path)}")
    lab = LabProcess.attach(workdir, proc)
    state = status(workdir)
    if not state.up:
        lab.stop()
        raise LabError(f"lab started but does not answer: {state.summary()}")
    return lab


def _read_answer(fd: int, deadline: float) -> str:
    """The child's one line (without newline); "" if it exits or the deadline passes first."""
    data = b""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while b"\n" not in data and (left := deadline - time.monotonic()) > 0:
            if not selector.select(left):
                break
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            data += chunk
    return data.split(b"\n", 1)[0].decode(errors="replace").strip() if b"\n" in data else ""


def _abort(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return f"(last lines of {path}:)\n" + "\n".join(text) if text else ""


class LabProcess:
    """A lab served by another process, found through its lab.json."""

    def __init__(self, info: LabInfo, env: dict[str, str],
                 proc: subprocess.Popen[bytes] | None = None) -> None:
        self.info = info
        self.env = env
        self._proc = proc

    @classmethod
    def attach(cls, workdir: Path, proc: subprocess.Popen[bytes] | None = None) -> LabProcess:
        info = read_info(Path(workdir))
        if info is None:
            raise LabError(f"no lab in {workdir} (no lab.json): `hvlm lab up --dir {workdir}`")
        return cls(info, read_env(Path(workdir)), proc)

    @property
    def workdir(self) -> Path:
        return Path(self.info.workdir)

    @property
    def pid(self) -> int:
        return self.info.pid

    @property
    def manifest_path(self) -> Path:
        return Path(self.info.manifest)

    @property
    def ca_path(self) -> Path:
        return Path(self.info.ca)

    @property
    def control(self) -> LabControlClient:
        if not self.info.control_url:
            raise LabError(f"the lab in {self.workdir} has no control channel")
        return LabControlClient(self.info.control_url)

    def stats(self, host: str | None = None) -> dict[str, Any]:
        """{"hosts": {name: counters}, "directory": {...} | None}; one host's counters with host."""
        if host is not None:
            return self.control.stats(host)
        directory = None
        if self.info.directory is not None:
            dc = samba.SambaDC.attach(Path(self.info.directory.workdir))
            directory = directory_stats(dc, read_baseline(self.workdir))
        return {"hosts": self.control.stats(), "directory": directory}

    def reset_stats(self) -> None:
        self.control.reset()
        if self.info.directory is not None:
            reset_baseline(self.workdir, samba.SambaDC.attach(Path(self.info.directory.workdir)))

    def set_fault(self, host: str, spec: FaultSpec) -> FaultSpec:
        return self.control.set_fault(host, spec)

    def stop(self) -> DownReport:
        report = down(self.workdir)
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(5)
        return report

    def __enter__(self) -> LabProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- status and down ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PartStatus:
    name: str  # process | control | hosts | directory
    up: bool
    detail: str


@dataclass(frozen=True)
class LabStatus:
    workdir: str
    parts: tuple[PartStatus, ...]

    @property
    def up(self) -> bool:
        return bool(self.parts) and all(p.up for p in self.parts)

    def summary(self) -> str:
        return "; ".join(f"{p.name} {'up' if p.up else 'DOWN'} ({p.detail})" for p in self.parts)

    def to_json(self) -> dict[str, Any]:
        return {"workdir": self.workdir, "up": self.up,
                "parts": {p.name: {"up": p.up, "detail": p.detail} for p in self.parts}}


def status(workdir: Path) -> LabStatus:
    """Is every part of the lab in `workdir` up? (TCP connects on loopback, PID checks.)"""
    info = read_info(Path(workdir))
    if info is None:
        return LabStatus(str(workdir), (PartStatus("lab", False, f"no lab.json in {workdir}"),))
    alive = owner_alive(info)
    parts = [PartStatus("process", alive, f"{info.mode}, pid {info.pid}")]
    parts.append(_control_status(info))
    down_hosts = [h.name for h in info.hosts if not _listening(h.port)]
    parts.append(PartStatus(
        "hosts", not down_hosts,
        f"{len(info.hosts) - len(down_hosts)}/{len(info.hosts)} listening"
        + (f"; not listening: {', '.join(down_hosts[:10])}" if down_hosts else "")))
    if info.directory is not None:
        parts.append(_directory_status(info))
        parts += [_replica_status(info.directory, replica) for replica in info.directory.replicas]
    return LabStatus(info.workdir, tuple(parts))


def _control_status(info: LabInfo) -> PartStatus:
    if not info.control_url:
        return PartStatus("control", False, "no control channel")
    try:
        LabControlClient(info.control_url, timeout=5).endpoints()
    except (OSError, RuntimeError, ValueError) as exc:
        return PartStatus("control", False, f"{info.control_url}: {exc}")
    return PartStatus("control", True, info.control_url)


def _directory_status(info: LabInfo) -> PartStatus:
    assert info.directory is not None
    directory = info.directory
    return _dc_status("directory", directory.url, directory.address, directory.workdir,
                      directory.ports)


def _replica_status(directory: DirectoryInfo, replica: ReplicaInfo) -> PartStatus:
    """The second DC of `--dcs 2` (part "directory-dc2"): its ports and its samba process."""
    name = replica.url.removeprefix("ldaps://").split(".")[0]
    return _dc_status(f"directory-{name}", replica.url, replica.address, replica.workdir,
                      directory.ports)


def _dc_status(part: str, url: str, address: str, workdir: str | Path,
               ports: Sequence[int]) -> PartStatus:
    """One DC: up when its samba process runs and every port listens on its address."""
    closed = [port for port in ports if not _listening(port, address)]
    dc = samba.SambaDC.attach(Path(workdir))
    running = dc.running()
    detail = f"{url} at {address}, pid {dc.pid}"
    if closed:
        detail += f"; ports not listening: {closed}"
    if not running:
        detail += "; samba not running"
    return PartStatus(part, running and not closed, detail)


@dataclass(frozen=True)
class DownReport:
    stopped: tuple[str, ...]
    listening: tuple[str, ...]  # what still answers afterwards (empty on success)
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.listening


def down(workdir: Path, timeout: float = 30.0) -> DownReport:
    """Stop what the lab in `workdir` started, by PID; wait until nothing it used listens."""
    info = read_info(Path(workdir))
    if info is None:
        return _down_orphan_dc(Path(workdir), timeout)
    stopped: list[str] = []
    notes: list[str] = []
    if info.mode == "process" and is_lab_process(info.pid, info.workdir):
        _terminate(info.pid, timeout)
        stopped.append(f"lab process {info.pid}")
    elif info.mode != "process" and pid_alive(info.pid):
        notes.append(f"an in-process lab of pid {info.pid}: stop it from that process")
    if info.directory is not None and info.directory.owned:
        workdirs = [info.directory.workdir, *(r.workdir for r in info.directory.replicas)]
        for dc in (samba.SambaDC.attach(Path(w)) for w in reversed(workdirs)):
            if dc.running():
                stopped.append(f"samba {dc.pid}")
                dc.stop(timeout)
        for address in info.directory.added_addresses:  # what `up` added to lo
            if remove_loopback(address):
                notes.append(f"removed {address}/8 from lo (added by `hvlm lab up --dcs 2`)")
    listening = _wait_closed(info, time.monotonic() + timeout)
    if not stopped and not listening:
        notes.append("already stopped")
    return DownReport(tuple(stopped), tuple(listening), tuple(notes))


def _down_orphan_dc(workdir: Path, timeout: float) -> DownReport:
    """No lab.json (a start that failed half-way): stop the DCs it may have left in DIR/dc."""
    stopped = []
    for dc in leftover_dcs(workdir):
        stopped.append(f"samba {dc.pid}")
        dc.stop(timeout)
    if stopped:
        return DownReport(tuple(stopped), ())
    return DownReport((), (), (f"no lab in {workdir}",))


def _addresses(info: LabInfo) -> list[tuple[str, str, int]]:
    """(what, address, port) of every listener the lab owns."""
    found = [(f"host {h.name}", h.host, h.port) for h in info.hosts]
    if info.control_url:
        host, _, port = info.control_url.removeprefix("http://").partition(":")
        found.append(("control", host, int(port)))
    if info.directory is not None and info.directory.owned:
        found += [("directory", address, p) for _, address in info.directory.servers
                  for p in info.directory.ports]
    return found


def _wait_closed(info: LabInfo, deadline: float) -> list[str]:
    while True:
        open_ = [f"{what} {host}:{port}" for what, host, port in _addresses(info)
                 if _listening(port, host)]
        if not open_ or time.monotonic() > deadline:
            return open_
        time.sleep(0.1)


def _listening(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _terminate(pid: int, timeout: float) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        while pid_alive(pid):
            time.sleep(0.05)


# --- the child side -------------------------------------------------------------------------------


def serve(workdir: Path) -> int:
    """`python -m hvlm_lab serve DIR`: start the lab, answer "ready", serve until SIGTERM/SIGINT."""
    stop = threading.Event()
    for signum in _STOP_SIGNALS:
        signal.signal(signum, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    options = pickle.loads(sys.stdin.buffer.read())  # noqa: S301  (our parent, through a pipe)
    if not isinstance(options, LabOptions):
        return _answer("error: expected LabOptions on stdin", 2)
    try:
        lab = Lab.start_with(workdir, options, mode="process")
    except (LabError, samba.SambaError) as exc:  # a refusal or a known failure: its own words
        print(f"lab not started: {exc}", file=sys.stderr, flush=True)
        return _answer(f"error: {exc}".replace("\n", " "), 1)
    except Exception as exc:  # a bug in the lab: the traceback goes to lab.log
        traceback.print_exc()
        return _answer(f"error: {exc}".replace("\n", " "), 1)
    try:
        _answer(READY, 0)
        print(f"lab serving {workdir} (pid {os.getpid()})", file=sys.stderr, flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        lab.stop()
        print(f"lab stopped {workdir}", file=sys.stderr, flush=True)
    return 0


def _answer(line: str, code: int) -> int:
    """The one line for the parent; then stdout is /dev/null (the parent stopped reading)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return code
