"""A crash is visible: hvlm's one-line internal error, the tests' helpers, and CI's lint step.

An unexpected exception exits 1 like a handled error, so exit codes alone cannot tell them apart:
hvlm prints `internal error: TYPE: ... (this is a bug in hvlm; --log-level debug shows the
traceback)`, and every helper that runs the CLI in the tests refuses output holding "Traceback".
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.helpers import CliResult, assert_no_traceback

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "prod-east.yaml"
# `hvlm validate` with a bug planted in the manifest loader, as a real `python -m hvlm` process
BUGGY = (
    "import sys, hvlm.manifest\n"
    "def broken(*args, **kwargs):\n"
    "    raise ZeroDivisionError('planted bug')\n"
    "hvlm.manifest.load_manifest = broken\n"
    "from hvlm.cli import main\n"
    "main(sys.argv[1:])\n"
)


def run_buggy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", BUGGY, *args], cwd=ROOT, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=120, check=False)


def test_an_unexpected_exception_is_one_internal_error_line_and_exit_1() -> None:
    proc = run_buggy("validate", str(EXAMPLE))
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        "internal error: ZeroDivisionError: planted bug (this is a bug in hvlm; "
        "--log-level debug shows the traceback)"
    ]


def test_debug_shows_the_traceback_of_an_internal_error() -> None:
    proc = run_buggy("--log-level", "debug", "validate", str(EXAMPLE))
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stderr and "planted bug" in proc.stderr
    assert proc.stderr.rstrip().splitlines()[-1].startswith("internal error: ZeroDivisionError")


def test_control_the_same_command_without_the_bug_is_valid() -> None:
    proc = subprocess.run([sys.executable, "-m", "hvlm", "validate", str(EXAMPLE)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0 and "valid" in proc.stdout, proc.stderr


def test_the_helpers_refuse_a_traceback() -> None:
    crash = "Traceback (most recent call last):\n  File ...\nKeyError: 'x'\n"
    with pytest.raises(AssertionError, match="hvlm crashed"):
        CliResult(1, "", crash)
    with pytest.raises(AssertionError):
        assert_no_traceback(b"", crash.encode())
    assert CliResult(1, "", crash, traceback_expected=True).code == 1
    assert CliResult(1, "", "error: HV01: read: refused\n").code == 1


def test_ci_runs_the_linters_and_fails_on_findings() -> None:
    """`.ci/run` runs `make lint` (ruff, mypy --strict, lint-imports) and `make test`, and exits
    non-zero when either does."""
    script = (ROOT / ".ci" / "run").read_text()
    assert "make lint || status=$?" in script and "make test || status=$?" in script
    assert 'exit "$status"' in script
    makefile = (ROOT / "Makefile").read_text()
    lint = makefile[makefile.index("\nlint:"):].split("\n\n")[0]
    for tool in ("ruff check hvlm hvlm_lab tests bench", "mypy --strict hvlm hvlm_lab",
                 "lint-imports"):
        assert tool in lint, lint
