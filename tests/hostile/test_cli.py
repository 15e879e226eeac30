"""`hvlm validate` on the hostile corpus, as an operator runs it: a subprocess with no network.

Each run happens in a fresh network namespace whose loopback is DOWN (`unshare --net`, when the
kernel lets us), and with an audit hook (PYTHONPATH sitecustomize) that records every socket
event: the assertion is that there is none, not merely that connections failed. The whole corpus
goes through one process (a start costs ~0.7 s of CPU); if a file crashes it, the crashing file is
recorded and the rest go through a new process, so one bug does not hide the others.
"""

from __future__ import annotations

import os
import pty
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.hostile.expectations import (
    EXAMPLE,
    Case,
    check,
    corpus_cases,
    terminal_unsafe,
    write_generated,
)

HVLM = Path(sys.executable).with_name("hvlm")
AUDIT_HOOK = """\
import os, sys

_LOG = os.environ.get("HVLM_TEST_SOCKET_LOG")


def _hook(event, args):
    if _LOG and event.startswith("socket."):
        with open(_LOG, "a", encoding="utf-8") as log:
            log.write(f"{event} {args!r}\\n")


sys.addaudithook(_hook)
"""


def _can_unshare() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode == 0


UNSHARE = ["unshare", "--net"] if _can_unshare() else []
# Audit events that reach for another machine (or a resolver): none may happen.
CONTACT = (
    "socket.connect",
    "socket.sendto",
    "socket.sendmsg",
    "socket.getaddrinfo",
    "socket.gethostbyname",
    "socket.gethostbyaddr",
    "socket.getnameinfo",
)


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str
    socket_events: list[str]

    @property
    def contacts(self) -> list[str]:
        return [e for e in self.socket_events if e.startswith(CONTACT)]


@dataclass(frozen=True)
class Outcome:
    """What the batch run said about one file."""

    lines: list[str]  # stderr lines of this file, text after `FILE:`
    said_valid: bool
    crash: str = ""  # the traceback, when this file crashed hvlm


class Validator:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        (workdir / "hook").mkdir(exist_ok=True)
        (workdir / "hook" / "sitecustomize.py").write_text(AUDIT_HOOK)
        self.runs = 0

    def env(self, log: Path) -> dict[str, str]:
        hook = str(self.workdir / "hook")
        return {**os.environ, "PYTHONPATH": hook, "HVLM_TEST_SOCKET_LOG": str(log)}

    def run(self, paths: list[Path], isolate_crashes: bool = False) -> Run:
        """`hvlm validate PATHS`; a traceback fails the test, unless `isolate_crashes` (the
        batch: it finds the file that crashed, reported by its own test)."""
        self.runs += 1
        log = self.workdir / f"sockets-{self.runs}.log"
        proc = subprocess.run(
            [*UNSHARE, str(HVLM), "validate", *map(str, paths)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            env=self.env(log),
            timeout=120,
        )
        events = log.read_text().splitlines() if log.exists() else []
        if not isolate_crashes:
            assert b"Traceback" not in proc.stdout + proc.stderr, proc.stderr[-3000:]
        return Run(
            proc.returncode,
            proc.stdout.decode("utf-8", "replace"),
            proc.stderr.decode("utf-8", "replace"),
            events,
        )

    def run_on_terminal(self, paths: list[Path]) -> tuple[int, bytes]:
        """stderr on a pseudo-terminal, as in an operator's shell; returns (exit code, output)."""
        primary, secondary = pty.openpty()
        try:
            proc = subprocess.Popen(
                [*UNSHARE, str(HVLM), "validate", *map(str, paths)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=secondary,
                env=self.env(self.workdir / "sockets-tty.log"),
            )
            os.close(secondary)
            output = _drain(primary)
            assert b"Traceback" not in output, output[-3000:]
            return proc.wait(timeout=120), output
        finally:
            os.close(primary)


def _split(run: Run, paths: list[Path]) -> dict[Path, Outcome]:
    lines: dict[Path, list[str]] = {p: [] for p in paths}
    for line in run.stderr.split("\n"):  # not splitlines(): a CR inside a line must show
        owner = next((p for p in paths if line.startswith(f"{p}:")), None)
        if owner is not None:
            lines[owner].append(line[len(str(owner)) + 1 :])
    valid = {p for p in paths if f"{p}: valid" in run.stdout}
    return {p: Outcome(lines[p], p in valid) for p in paths}


@dataclass(frozen=True)
class Batch:
    outcomes: dict[Path, Outcome]
    runs: list[Run]


@pytest.fixture(scope="module")
def validator(tmp_path_factory: pytest.TempPathFactory) -> Validator:
    return Validator(tmp_path_factory.mktemp("hostile-cli"))


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> list[Case]:
    return write_generated(tmp_path_factory.mktemp("generated"))


@pytest.fixture(scope="module")
def batch(validator: Validator, generated: list[Case]) -> Batch:
    remaining = [c.path for c in corpus_cases() + generated]
    outcomes: dict[Path, Outcome] = {}
    runs = []
    while remaining:
        run = validator.run(remaining, isolate_crashes=True)
        runs.append(run)
        split = _split(run, remaining)
        if "Traceback" not in run.stderr:
            outcomes.update(split)
            break
        crashed = next(
            (i for i, p in enumerate(remaining) if not split[p].lines and not split[p].said_valid),
            len(remaining) - 1,
        )
        outcomes.update({p: split[p] for p in remaining[:crashed]})
        tail = run.stderr[run.stderr.find("Traceback") :]
        outcomes[remaining[crashed]] = Outcome([], False, crash=tail[-1500:])
        remaining = remaining[crashed + 1 :]
    return Batch(outcomes, runs)


def _all_cases(generated: list[Case]) -> Iterator[Case]:
    yield from corpus_cases()
    yield from generated


CASES = corpus_cases()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_validate_reports_each_file_with_located_lines(batch: Batch, case: Case) -> None:
    outcome = batch.outcomes[case.path]
    assert not outcome.crash, f"hvlm validate crashed on {case.name}:\n{outcome.crash}"
    assert not outcome.said_valid, f"{case.name} reported valid"
    assert check(case, outcome.lines) == [], outcome.lines


def test_validate_refuses_a_file_over_one_mebibyte(batch: Batch, generated: list[Case]) -> None:
    (case,) = generated
    outcome = batch.outcomes[case.path]
    assert not outcome.crash, outcome.crash
    assert check(case, outcome.lines) == [], outcome.lines


def test_validate_exits_1_without_traceback_or_contact(batch: Batch) -> None:
    for run in batch.runs:
        assert run.returncode == 1, run.stderr[-2000:]
        assert "Traceback" not in run.stderr, run.stderr[-3000:]
        assert run.contacts == [], run.contacts[:5]


def test_no_secret_value_anywhere_in_the_output(batch: Batch) -> None:
    secrets = {secret for case in CASES for secret in case.expected.never}
    assert len(secrets) >= 10
    for run in batch.runs:
        leaked = sorted(s for s in secrets if s in run.stdout or s in run.stderr)
        assert leaked == [], leaked


def test_validate_prints_nothing_but_diagnostics(batch: Batch, generated: list[Case]) -> None:
    """Every stderr line belongs to a file (no stray log line, no half of a broken line)."""
    paths = [str(c.path) for c in _all_cases(generated)]
    for run in batch.runs:
        if "Traceback" in run.stderr:
            continue  # reported by the crash and traceback tests
        for line in run.stderr.removesuffix("\n").split("\n"):
            assert any(line.startswith(f"{p}:") for p in paths), ascii(line[:300])


@pytest.mark.parametrize(
    "name", ["alias-bomb-seq.yaml", "secret-password.yaml", "tag-python-object.yaml"]
)
def test_one_hostile_file_alone_exits_1(validator: Validator, name: str) -> None:
    (case,) = [c for c in CASES if c.name == name]
    run = validator.run([case.path])
    assert run.returncode == 1, run.stderr
    assert run.contacts == []
    assert "Traceback" not in run.stderr
    assert check(case, _split(run, [case.path])[case.path].lines) == []


def test_a_valid_manifest_exits_0_with_no_socket(validator: Validator) -> None:
    """Control: the harness (namespace, audit hook) lets a good manifest through."""
    run = validator.run([EXAMPLE])
    assert run.returncode == 0, run.stderr
    assert f"{EXAMPLE}: valid" in run.stdout
    assert run.contacts == []


def test_validate_opens_no_socket_at_all(validator: Validator) -> None:
    """`hvlm validate` needs no socket. Today the CLI imports every backend at start
    (hvlm.cli.plan -> reconcile -> hosts -> requests -> urllib3), and urllib3 probes IPv6 at
    import by binding a socket to ::1. Harmless, but it is network code on a path that must
    have none (and ~0.4 s of start-up per run)."""
    run = validator.run([EXAMPLE])
    assert run.returncode == 0, run.stderr
    assert run.socket_events == []


def test_audit_hook_sees_a_socket(validator: Validator) -> None:
    """Control: the hook really records socket use (so an empty log means something)."""
    log = validator.workdir / "probe.log"
    code = "import socket; socket.socket().close()"
    subprocess.run(
        [*UNSHARE, sys.executable, "-c", code], env=validator.env(log), check=True, timeout=60
    )
    assert "socket.__new__" in log.read_text()


def test_diagnostics_on_a_terminal_carry_no_escape_sequence(validator: Validator) -> None:
    """click strips ANSI only when stderr is not a terminal; an operator's terminal is one."""
    names = ["ansi-key.yaml", "ansi-name-long.yaml", "ansi-dup-key.yaml", "cr-key.yaml"]
    paths = [c.path for c in CASES if c.name in names]
    returncode, output = validator.run_on_terminal(paths)
    assert returncode == 1
    text = output.decode("utf-8", "replace").replace("\r\n", "\n")  # the tty's ONLCR
    assert text.count("\n") >= len(paths), text
    unsafe = [line for line in text.split("\n") if terminal_unsafe(line)]
    assert unsafe == [], [ascii(line[:200]) for line in unsafe]


def _drain(fd: int) -> bytes:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the other side is closed and everything was read
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)
