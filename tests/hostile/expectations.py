"""The hostile-input corpus and what every diagnostic about it must look like. Test support.

Sits beside the hostile suite (tests/hostile/test_*.py), which feeds the same corpus to
`hvlm.manifest.parse_manifest` in-process and to `hvlm validate` in a subprocess.

Each `corpus/NAME.yaml` has a sidecar `corpus/NAME.expect`:
  - one line per expected diagnostic, in output order: the text after `FILE:` (so it starts with
    `LINE:COL: `); `...` separates fragments that must appear in order, the first one a prefix;
  - `!never TEXT`: TEXT (a secret value, say) must appear in no diagnostic;
  - `#` comments and blank lines are ignored.
Beyond the listed lines, every diagnostic must be located (LINE and COL >= 1), fit on one bounded
line, and carry no terminal control sequence or bidi override (a manifest must not be able to
repaint the operator's terminal). A file too big to commit is written at test time.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "corpus"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "prod-east.yaml"
MAX_LINE = 1000  # a diagnostic is for a human: bounded whatever the input
HUGE_NAME = "generated-huge.yaml"  # > 1 MiB, written by write_generated()
_LOCATED = re.compile(r"^([1-9]\d*):([1-9]\d*): ")
_BIDI = (
    {"\u061c", "\u200e", "\u200f"}
    | {chr(c) for c in range(0x202A, 0x202F)}
    | {chr(c) for c in range(0x2066, 0x206A)}
)


@dataclass(frozen=True)
class Expected:
    lines: tuple[str, ...]
    never: tuple[str, ...]


@dataclass(frozen=True)
class Case:
    path: Path
    expected: Expected

    @property
    def name(self) -> str:
        return self.path.name


def parse_expect(text: str) -> Expected:
    lines: list[str] = []
    never: list[str] = []
    for raw in text.splitlines():
        if not raw.strip() or raw.startswith("#"):
            continue
        if raw.startswith("!never "):
            never.append(raw.removeprefix("!never "))
        else:
            lines.append(raw)
    return Expected(tuple(lines), tuple(never))


def corpus_cases() -> list[Case]:
    cases = []
    for path in sorted(CORPUS.glob("*.yaml")):
        sidecar = path.with_suffix(".expect")
        cases.append(Case(path, parse_expect(sidecar.read_text(encoding="utf-8"))))
    return cases


def huge_bytes() -> bytes:
    """A valid manifest padded past the 1 MiB limit with a comment (1 MiB + 64 bytes)."""
    body = EXAMPLE.read_bytes()
    return body + b"#" + b"x" * (1024 * 1024 + 62 - len(body)) + b"\n"


def write_generated(directory: Path) -> list[Case]:
    """Cases too big to commit, written into `directory`."""
    huge = directory / HUGE_NAME
    huge.write_bytes(huge_bytes())
    return [Case(huge, Expected(("1:1: ...1048576",), ()))]


def matches(pattern: str, actual: str) -> bool:
    first, *rest = pattern.split("...")
    if not actual.startswith(first):
        return False
    position = len(first)
    for fragment in rest:
        found = actual.find(fragment, position)
        if found < 0:
            return False
        position = found + len(fragment)
    return True


def terminal_unsafe(text: str) -> list[str]:
    """Characters a terminal would act on: C0/C1 controls (ESC, CR, BS, CSI...) and bidi overrides."""
    return sorted({c for c in text if unicodedata.category(c) == "Cc" or c in _BIDI}, key=ord)


def line_problems(line: str, expected: Expected) -> list[str]:
    """What is wrong with one diagnostic line (the text after `FILE:`), whatever the case."""
    problems = []
    shown = ascii(line[:160])
    if not _LOCATED.match(line):
        problems.append(f"not located as LINE:COL (both >= 1): {shown}")
    if len(line) > MAX_LINE:
        problems.append(f"line of {len(line)} characters (limit {MAX_LINE}): {shown}")
    if unsafe := terminal_unsafe(line):
        problems.append(f"terminal control characters {[hex(ord(c)) for c in unsafe]}: {shown}")
    problems += [f"secret value {secret!r} echoed" for secret in expected.never if secret in line]
    return problems


def check(case: Case, lines: list[str]) -> list[str]:
    """Every difference between the diagnostics of `case` (text after `FILE:`) and its sidecar."""
    want = case.expected.lines
    problems = []
    if len(lines) != len(want):
        problems.append(f"{len(lines)} diagnostics, expected {len(want)}")
    for index, (pattern, line) in enumerate(zip(want, lines, strict=False)):
        if not matches(pattern, line):
            problems.append(f"diagnostic {index}: {line[:200]!a} does not match {pattern!r}")
    for line in lines:
        problems += line_problems(line, case.expected)
    return problems
