"""hvlm (the product, not the lab) installs and runs on Windows, where admins work.

- Its dependencies, base and the `kerberos` extra, resolve to Windows wheels only (no build, no
  MIT Kerberos: gssapi is off Windows, winkerberos and pyspnego's SSPI on it) for every Python
  version it supports: `uv pip compile --python-platform x86_64-pc-windows-msvc --only-binary
  :all:` (pip's `download --platform` does not evaluate markers for the target). It asks PyPI.
- Its modules use no POSIX-only API (an AST scan), unless under a `sys.platform`/`os.name` test
  or an `except ImportError`.
- The directory session says what carries SASL GSSAPI (gssapi, else winkerberos), and refuses a
  Kerberos bind in one clear line when neither is installed.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import tomllib

from tests.netns import outer_netns

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
UV = Path(sys.executable).with_name("uv")
# CPython minor versions released so far from requires-python's floor (3.15 has no wheels yet)
NEWEST = (3, 14)
WINDOWS = "x86_64-pc-windows-msvc"


def supported_versions() -> list[str]:
    floor = re.fullmatch(r">=\s*3\.(\d+)", PYPROJECT["project"]["requires-python"].strip())
    assert floor, "requires-python is not '>=3.N': update supported_versions()"
    return [f"3.{minor}" for minor in range(int(floor.group(1)), NEWEST[1] + 1)]


def requirements() -> list[str]:
    return [*PYPROJECT["project"]["dependencies"],
            *PYPROJECT["project"]["optional-dependencies"]["kerberos"]]


# --- the dependencies resolve to Windows wheels ------------------------------------------------

def uv_compile(requirements: Path, python: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """`uv pip compile` for Windows x86-64, wheels only, against PyPI (no local config)."""
    assert UV.exists(), "uv is missing: pip install -e '.[dev]'"
    command: Sequence[str] = [
        str(UV), "pip", "compile", str(requirements), "--python-platform", WINDOWS,
        "--only-binary", ":all:", "--python-version", python, "--no-header", "--no-annotate",
        "--quiet", "--no-config", *extra]  # uv's default index
    with outer_netns():
        return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


def test_the_kerberos_extra_is_gssapi_off_windows_and_sspi_on_it() -> None:
    kerberos = PYPROJECT["project"]["optional-dependencies"]["kerberos"]
    marked = {r.split(";")[0].split("==")[0].strip(): r.split(";", 1)[1].strip() for r in kerberos}
    assert marked["gssapi"] == "sys_platform != 'win32'"
    assert marked["pyspnego[kerberos]"] == "sys_platform != 'win32'"
    assert marked["winkerberos"] == "sys_platform == 'win32'"
    dev = PYPROJECT["project"]["optional-dependencies"]["dev"]
    assert "uv==0.13.8" in dev


@pytest.fixture(scope="module")
def requirements_in(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("windows") / "requirements.in"
    path.write_text("\n".join(requirements()) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("python", supported_versions())
def test_dependencies_resolve_to_windows_wheels_only(requirements_in: Path, python: str) -> None:
    proc = uv_compile(requirements_in, python)
    assert proc.returncode == 0, proc.stderr[-3000:]
    resolved = {line.split("==")[0].lower() for line in proc.stdout.splitlines() if "==" in line}
    assert {"winkerberos", "pyspnego", "sspilib", "pypsrp", "ldap3"} <= resolved, proc.stdout
    assert not {"gssapi", "krb5"} & resolved, proc.stdout  # nothing that needs MIT Kerberos


def test_control_an_unbuildable_requirement_is_refused(requirements_in: Path) -> None:
    """Control, the check can fail: krb5 (pyspnego's Kerberos helper off Windows) ships no
    Windows wheel, so it cannot resolve for Windows with binaries only."""
    path = requirements_in.with_name("posix.in")
    path.write_text("pyyaml==6.0.4\nkrb5==0.10.0\n", encoding="utf-8")
    proc = uv_compile(path, supported_versions()[0])
    assert proc.returncode != 0 and "krb5" in proc.stderr, proc.stdout + proc.stderr


# --- no POSIX-only API in the product ----------------------------------------------------------

POSIX_MODULES = {"fcntl", "pwd", "grp", "termios", "tty", "pty", "resource", "posix", "syslog",
                 "crypt", "spwd", "curses", "readline", "posixpath"}
POSIX_NAMES = {
    "os": {"fork", "forkpty", "setsid", "getsid", "setpgid", "getpgid", "setpgrp", "killpg",
           "getuid", "geteuid", "getgid", "getegid", "setuid", "setgid", "seteuid", "setegid",
           "getgroups", "chown", "lchown", "fchown", "mkfifo", "mknod", "openpty", "nice",
           "wait3", "wait4", "getloadavg", "sysconf", "uname", "sync", "posix_spawn",
           "sched_setaffinity", "sched_getaffinity", "pipe2", "getpriority", "setpriority"},
    "signal": {"SIGKILL", "SIGHUP", "SIGQUIT", "SIGALRM", "SIGUSR1", "SIGUSR2", "SIGCHLD",
               "SIGPIPE", "SIGSTOP", "SIGCONT", "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGWINCH",
               "alarm", "setitimer", "getitimer", "pause", "pthread_kill", "pthread_sigmask",
               "siginterrupt", "sigwait", "sigpending"},
    "socket": {"AF_UNIX", "socketpair_unix"},
    "select": {"epoll", "poll", "kqueue"},
    "time": {"tzset", "clock_gettime_ns"},
}


def _guarded(test: ast.expr) -> bool:
    text = ast.unparse(test)
    return "sys.platform" in text or "os.name" in text


class PosixUse(ast.NodeVisitor):
    """Where a module uses a POSIX-only module or name outside a platform guard."""

    def __init__(self) -> None:
        self.found: list[str] = []
        self.guards = 0

    def visit_If(self, node: ast.If) -> None:
        guarded = _guarded(node.test)
        self.guards += guarded
        self.generic_visit(node)
        self.guards -= guarded

    def visit_IfExp(self, node: ast.IfExp) -> None:
        self.visit_If(node)  # type: ignore[arg-type]

    def visit_Try(self, node: ast.Try) -> None:
        optional = any(h.type is not None and "ImportError" in ast.unparse(h.type)
                       for h in node.handlers)
        self.guards += optional
        for child in node.body:
            self.visit(child)
        self.guards -= optional
        for part in (*node.handlers, *node.orelse, *node.finalbody):
            self.visit(part)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._module(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        self._module(module, node)
        for alias in node.names:
            if alias.name in POSIX_NAMES.get(module, ()):
                self._report(f"from {module} import {alias.name}", node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if isinstance(node.value, ast.Name) and node.attr in POSIX_NAMES.get(node.value.id, ()):
            self._report(f"{node.value.id}.{node.attr}", node)
        self.generic_visit(node)

    def _module(self, name: str, node: ast.stmt) -> None:
        if name.split(".")[0] in POSIX_MODULES:
            self._report(f"import {name}", node)

    def _report(self, what: str, node: ast.AST) -> None:
        if not self.guards:
            self.found.append(f"{getattr(node, 'lineno', 0)}: {what}")


def posix_uses(source: str) -> list[str]:
    visitor = PosixUse()
    visitor.visit(ast.parse(source))
    return visitor.found


def product_modules() -> Iterator[Path]:
    yield from sorted((ROOT / "hvlm").rglob("*.py"))


def test_the_product_uses_no_posix_only_api() -> None:
    found = [f"{path.relative_to(ROOT)}:{use}" for path in product_modules()
             for use in posix_uses(path.read_text(encoding="utf-8"))]
    assert found == []
    assert len(list(product_modules())) > 30  # the scan saw the product


def test_control_the_scan_finds_posix_uses_and_honours_guards() -> None:
    planted = (
        "import os, signal, fcntl\n"
        "from os import setsid\n"
        "os.kill(pid, signal.SIGKILL)\n"
        "uid = os.getuid()\n"
        "if sys.platform != 'win32':\n"
        "    os.killpg(1, signal.SIGHUP)\n"
        "try:\n"
        "    import termios\n"
        "except ImportError:\n"
        "    termios = None\n"
        "signal.signal(signal.SIGINT, handler)\n"
    )
    assert posix_uses(planted) == [
        "1: import fcntl", "2: from os import setsid", "3: signal.SIGKILL", "4: os.getuid"]


# --- the directory session says what carries Kerberos -----------------------------------------


def test_sasl_kerberos_backend_prefers_gssapi_then_winkerberos(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.util

    from hvlm.directory import session

    real = importlib.util.find_spec

    def only(*present: str) -> None:
        monkeypatch.setattr(importlib.util, "find_spec",
                            lambda name, *a: real("json") if name in present else None)

    only("gssapi", "winkerberos")
    assert session.sasl_kerberos_backend() == "gssapi"  # as ldap3 picks: gssapi first
    only("winkerberos")  # Windows with the kerberos extra
    assert session.sasl_kerberos_backend() == "winkerberos"
    only()
    assert session.sasl_kerberos_backend() is None


def test_a_kerberos_bind_without_a_backend_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from hvlm.directory import session
    from hvlm.errors import DirectoryError
    from hvlm.model import DirectoryAuth, DirectoryServer, DirectorySpec

    monkeypatch.setattr(session, "sasl_kerberos_backend", lambda: None)
    spec = DirectorySpec(domain="corp.example.com",
                         servers=(DirectoryServer("ldaps://dc01.corp.example.com", "dc01.corp.example.com", 636, True),),
                         auth=DirectoryAuth.KERBEROS)
    directory = session.DirectorySession(spec)
    with pytest.raises(DirectoryError) as caught:
        directory._connection(spec.servers[0])
    assert "neither is installed" in str(caught.value)
    assert 'pip install "hvlm[kerberos]"' in caught.value.hint
