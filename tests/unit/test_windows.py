"""hvlm (the product, not the lab) installs and runs on Windows, where admins work.

- Its dependencies, base and the `kerberos` extra, resolve to Windows wheels only (no build, no
  MIT Kerberos: gssapi is off Windows, winkerberos and pyspnego's SSPI on it) for every Python
  version it supports: `uv pip compile --python-platform x86_64-pc-windows-msvc --only-binary
  :all:` (pip's `download --platform` does not evaluate markers for the target). It asks PyPI.
- Its modules use no POSIX-only API (an AST scan, following import aliases), except in a branch
  that provably runs off Windows (`if sys.platform != "win32":`, `os.name == "posix"`, the `else`
  of a Windows test) or an import under `except ImportError`.
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


WINDOWS_PLATFORMS = ("win32",)  # sys.platform on Windows (CPython: always "win32")
WINDOWS_OS_NAMES = ("nt",)  # os.name on Windows


def _platform_text(node: ast.expr, aliases: dict[str, str]) -> str | None:
    """'sys.platform' / 'os.name' when `node` reads one of them (under any import alias)."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        module = aliases.get(node.value.id)
        text = f"{module}.{node.attr}"
        if text in ("sys.platform", "os.name"):
            return text
    return None


def _windows_when(source: str, value: str) -> bool:
    return value in (WINDOWS_PLATFORMS if source == "sys.platform" else WINDOWS_OS_NAMES)


def off_windows(test: ast.expr, aliases: dict[str, str]) -> bool | None:
    """True: `test` holds only off Windows (its branch cannot run there); False: only on Windows
    (its `else` cannot); None: anything else, which guards nothing."""
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        inner = off_windows(test.operand, aliases)
        return None if inner is None else not inner
    if isinstance(test, ast.BoolOp):
        parts = [off_windows(v, aliases) for v in test.values]
        conclusive = isinstance(test.op, ast.And)
        if conclusive in parts:  # and: one off-Windows operand; or: one on-Windows operand
            return conclusive
        return parts[0] if all(p == parts[0] for p in parts) and parts[0] is not None else None
    if isinstance(test, ast.Call) and isinstance(test.func, ast.Attribute) \
            and test.func.attr == "startswith" and len(test.args) == 1 \
            and isinstance(test.args[0], ast.Constant) and isinstance(test.args[0].value, str):
        source = _platform_text(test.func.value, aliases)
        if source is None:
            return None
        prefix = test.args[0].value
        return not any(w.startswith(prefix) for w in WINDOWS_PLATFORMS + WINDOWS_OS_NAMES)
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1):
        return None
    source = _platform_text(test.left, aliases)
    right = test.comparators[0]
    if source is None:
        return None
    op = test.ops[0]
    if isinstance(right, ast.Constant) and isinstance(right.value, str):
        values = [right.value]
    elif isinstance(right, (ast.Tuple, ast.List, ast.Set)) and all(
            isinstance(e, ast.Constant) and isinstance(e.value, str) for e in right.elts):
        values = [e.value for e in right.elts]  # type: ignore[attr-defined]
    else:
        return None
    windows = [_windows_when(source, v) for v in values]
    if isinstance(op, (ast.Eq, ast.In)):
        return False if all(windows) else (True if not any(windows) else None)
    if isinstance(op, (ast.NotEq, ast.NotIn)):
        return True if any(windows) else None
    return None


class PosixUse(ast.NodeVisitor):
    """Where a module uses a POSIX-only module or name in code that may run on Windows.

    Runs off Windows, so allowed: the branch of `if sys.platform != "win32":` / `if os.name ==
    "posix":` (and `startswith("linux")`...), the `else` of a Windows test, the same in a
    conditional expression; an import inside `try: ... except ImportError`. Modules are followed
    under any alias (`import os as o`, `from os import getuid as uid`, `getattr(os, "getuid")`).
    """

    def __init__(self) -> None:
        self.found: list[str] = []
        self.guards = 0  # inside code that runs only off Windows
        self.optional_imports = 0  # inside try/except ImportError
        self.aliases: dict[str, str] = {"os": "os", "sys": "sys", "signal": "signal",
                                        "socket": "socket", "select": "select", "time": "time"}

    def _branches(self, test: ast.expr, body: list[ast.AST], orelse: list[ast.AST]) -> None:
        self.visit(test)
        kind = off_windows(test, self.aliases)
        for branch, guarded in ((body, kind is True), (orelse, kind is False)):
            self.guards += guarded
            for child in branch:
                self.visit(child)
            self.guards -= guarded

    def visit_If(self, node: ast.If) -> None:
        self._branches(node.test, list(node.body), list(node.orelse))

    def visit_IfExp(self, node: ast.IfExp) -> None:
        self._branches(node.test, [node.body], [node.orelse])

    def visit_Try(self, node: ast.Try) -> None:
        optional = any(h.type is not None and "ImportError" in ast.unparse(h.type)
                       for h in node.handlers)
        self.optional_imports += optional
        for child in node.body:
            self.visit(child)
        self.optional_imports -= optional
        for part in (*node.handlers, *node.orelse, *node.finalbody):
            self.visit(part)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.asname:
                self.aliases[alias.asname] = alias.name
            self._module(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        self._module(module, node)
        for alias in node.names:
            if alias.name in POSIX_NAMES.get(module, ()):
                self._report(f"from {module} import {alias.name}", node, importing=True)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if isinstance(node.value, ast.Name):
            module = self.aliases.get(node.value.id, "")
            if node.attr in POSIX_NAMES.get(module, ()):
                self._report(f"{module}.{node.attr}", node)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func, args = node.func, node.args
        if isinstance(func, ast.Name) and func.id == "getattr" and len(args) >= 2 \
                and isinstance(args[0], ast.Name) and isinstance(args[1], ast.Constant):
            module = self.aliases.get(args[0].id, "")
            if args[1].value in POSIX_NAMES.get(module, ()):
                self._report(f"{module}.{args[1].value}", node)
        self.generic_visit(node)

    def _module(self, name: str, node: ast.stmt) -> None:
        if name.split(".")[0] in POSIX_MODULES:
            self._report(f"import {name}", node, importing=True)

    def _report(self, what: str, node: ast.AST, importing: bool = False) -> None:
        if not self.guards and not (importing and self.optional_imports):
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


# Each: (source, what the scan must find). A guard is only a test that provably holds off Windows.
SCAN_CASES = {
    "an alias of os": ("import os as o\nuid = o.getuid()\n", ["2: os.getuid"]),
    "an alias of signal": ("import signal as sig\nsig.alarm(1)\n", ["2: signal.alarm"]),
    "a name imported under another name": ("from os import getuid as uid\n",
                                            ["1: from os import getuid"]),
    "getattr of a POSIX name": ("import os\ngetattr(os, 'getuid')()\n", ["2: os.getuid"]),
    "the Windows branch": ("import os, sys\nif sys.platform == 'win32':\n    os.getuid()\n",
                           ["3: os.getuid"]),
    "the else of an off-Windows test": (
        "import os, sys\nif sys.platform != 'win32':\n    pass\nelse:\n    os.getuid()\n",
        ["5: os.getuid"]),
    "os.name == 'nt'": ("import os\nif os.name == 'nt':\n    os.setsid()\n", ["3: os.setsid"]),
    "any other platform test": (
        "import os, sys\nif 'linux' in sys.platform or flag:\n    os.getuid()\n",
        ["3: os.getuid"]),
    "an or with a Windows test": (
        "import os, sys\nif sys.platform != 'win32' or flag:\n    os.getuid()\n",
        ["3: os.getuid"]),
    "a Windows conditional expression": (
        "import os, sys\nuid = os.getuid() if sys.platform == 'win32' else 0\n",
        ["2: os.getuid"]),
    "a call (not an import) under except ImportError": (
        "import os\ntry:\n    os.getuid()\nexcept ImportError:\n    pass\n", ["3: os.getuid"]),
    "the test itself": ("import os, sys\nif os.getuid() and sys.platform != 'win32':\n    pass\n",
                        ["2: os.getuid"]),
    # what provably runs off Windows: nothing found
    "the else of a Windows test": (
        "import os, sys\nif sys.platform == 'win32':\n    pass\nelse:\n    os.getuid()\n", []),
    "os.name == 'posix'": ("import os\nif os.name == 'posix':\n    os.getuid()\n", []),
    "os.name != 'nt'": ("import os\nif os.name != 'nt':\n    os.getuid()\n", []),
    "not a Windows test": (
        "import os, sys\nif not sys.platform == 'win32':\n    os.getuid()\n", []),
    "startswith('linux')": (
        "import os, sys\nif sys.platform.startswith('linux'):\n    os.getuid()\n", []),
    "an and with an off-Windows test": (
        "import os, sys\nif flag and sys.platform != 'win32':\n    os.getuid()\n", []),
    "a platform tuple without win32": (
        "import os, sys\nif sys.platform in ('linux', 'darwin'):\n    os.getuid()\n", []),
    "an aliased sys": ("import os, sys as _s\nif _s.platform != 'win32':\n    os.getuid()\n",
                       []),
    "an off-Windows conditional expression": (
        "import os, sys\nuid = os.getuid() if sys.platform != 'win32' else 0\n", []),
}


@pytest.mark.parametrize(("source", "found"), SCAN_CASES.values(), ids=SCAN_CASES.keys())
def test_the_scan_judges_each_branch_and_alias(source: str, found: list[str]) -> None:
    assert posix_uses(source) == found


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
