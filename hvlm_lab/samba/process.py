"""The `samba` server process of one lab DC: start it, probe its readiness, stop it by PID.

Part of the lab (not the reconcile pipeline); dc.py's `SambaDC.start/stop/running` call these
helpers, each of which takes the `DCConfig` (or the PID) of the DC it acts on.

The server runs in the foreground of its own session with `-M single`, its output appended to
log/samba.out. It is ready when the rootDSE answers on 389, TCP 88 accepts, and TLS on 636
validates against the lab CA by the DC's name. Samba's ports are fixed (389/636/88): one DC per
address, and the default address is 127.0.0.1, so one default DC per network namespace; run
tests that start one inside `unshare --net sh -c 'ip link set lo up && ...'`.
Stopping sends SIGTERM (then SIGKILL) to the PID that was started, only if that PID is still a
samba process, and waits until nothing listens on the DC's ports.
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import ldap3

from hvlm_lab.samba.config import PORTS, DCConfig, SambaError, which, with_names


def port_open(cfg: DCConfig, port: int, timeout: float = 0.5) -> bool:
    """Does something accept TCP connections on the DC's address and `port`?"""
    try:
        with socket.create_connection((cfg.address, port), timeout=timeout):
            return True
    except OSError:
        return False


def busy_ports(cfg: DCConfig) -> list[int]:
    """The DC's ports that something already listens on."""
    return [port for port in PORTS if port_open(cfg, port, 0.2)]


def tls_ok(cfg: DCConfig) -> bool:
    """Does LDAPS on 636 present a certificate valid for the DC's name under the lab CA?"""
    ctx = ssl.create_default_context(cafile=str(cfg.ca_path))
    try:
        with (socket.create_connection((cfg.address, 636), timeout=1) as raw,
              ctx.wrap_socket(raw, server_hostname=cfg.dc_fqdn)):
            return True
    except (OSError, ssl.SSLError):
        return False


def root_dse_ok(cfg: DCConfig) -> bool:
    """Does an anonymous LDAP search of the rootDSE on 389 answer?"""
    server = ldap3.Server(cfg.address, port=389, get_info=ldap3.NONE, connect_timeout=1)
    try:
        conn = ldap3.Connection(server, auto_bind=True, receive_timeout=2)
        ok = bool(conn.search("", "(objectClass=*)", ldap3.BASE,
                              attributes=["defaultNamingContext"]))
        conn.unbind()
        return ok
    except ldap3.core.exceptions.LDAPException:
        return False


def spawn(cfg: DCConfig, log: Path) -> subprocess.Popen[bytes]:
    """Start `samba` for `cfg` in the background (its own session), output appended to `log`."""
    busy = busy_ports(cfg)
    if busy:
        raise SambaError(
            f"ports {busy} on {cfg.address} are taken: one DC per network namespace "
            "(run inside `unshare --net sh -c 'ip link set lo up && ...'`)"
        )
    with open(log, "ab") as out:
        # a replicating DC runs the prefork model: `-M single` cannot reach its own KDC (LAB.md)
        model = [] if cfg.replicating else ["-M", "single"]
        argv = [which("samba") or "samba", "-s", str(cfg.smb_conf), "--foreground",
                "--no-process-group", *model, "--debug-stdout"]
        return subprocess.Popen(
            with_names(cfg.names_dir, argv),
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_ready(cfg: DCConfig, proc: subprocess.Popen[bytes], deadline: float, log: Path) -> None:
    """Return once the server answers LDAP, Kerberos and LDAPS; SambaError if it exits or is late.

    On SambaError the process may still run: the caller stops it.
    """
    checks: list[Callable[[], bool]] = [
        lambda: root_dse_ok(cfg), lambda: port_open(cfg, 88), lambda: tls_ok(cfg)]
    while checks:
        if proc.poll() is not None:
            raise SambaError(f"samba exited with {proc.returncode}: see {log}")
        if time.monotonic() > deadline:
            raise SambaError(f"samba not ready in time: see {log}")
        if checks[0]():
            checks.pop(0)
        else:
            time.sleep(0.05)


def running(pid: int | None) -> bool:
    """Is `pid` a live samba process?"""
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return is_samba(pid)


def terminate(pid: int, timeout: float) -> None:
    """SIGTERM `pid` if it is a live samba process; SIGKILL after `timeout`; wait until gone."""
    if not running(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive(pid):
        os.kill(pid, signal.SIGKILL)
        while alive(pid):
            time.sleep(0.05)


def wait_ports_free(cfg: DCConfig, timeout: float) -> None:
    """Wait (at most `timeout`) until nothing listens on the DC's ports."""
    deadline = time.monotonic() + timeout
    while any(port_open(cfg, port, 0.1) for port in PORTS) and time.monotonic() < deadline:
        time.sleep(0.05)


def alive(pid: int) -> bool:
    """Is `pid` still there (reaping it first when it is our exited child)?"""
    try:
        waited, _status = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def is_samba(pid: int) -> bool:
    """Is `pid` running the samba binary (not a recycled PID)?"""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"samba" in cmdline.split(b"\0", 1)[0]
