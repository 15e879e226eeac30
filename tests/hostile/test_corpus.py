"""Hostile-input corpus, in-process: every broken or malicious manifest gives exactly its located
diagnostics (tests/hostile/corpus/*.expect), never another exception, in bounded memory.

Feeds `hvlm.manifest.parse_manifest` (and through it `hvlm.yamlsafe`) the files of corpus/; the
same files go through the `hvlm validate` command in test_cli.py.
"""

from __future__ import annotations

import re
import tracemalloc
from dataclasses import replace
from pathlib import Path

import pytest

from hvlm import yamlsafe
from hvlm.errors import ManifestError
from hvlm.manifest import parse_manifest
from tests.hostile.expectations import (
    EXAMPLE,
    Case,
    check,
    corpus_cases,
    huge_bytes,
    parse_expect,
)

CASES = corpus_cases()
BOM = b"\xef\xbb\xbf"
PEAK_LIMIT = 50 * 1024 * 1024
# Files whose danger is expansion (aliases, merges) or nesting: their memory peak is measured.
BOMBS = [
    "alias-bomb-map.yaml",
    "alias-bomb-seq.yaml",
    "alias-recursive.yaml",
    "merge-bomb.yaml",
    "deep-block-map.yaml",
    "deep-block-seq.yaml",
    "deep-flow-map.yaml",
    "deep-flow-seq.yaml",
]


def diagnostics_of(raw: bytes, file: str) -> list[str]:
    """The diagnostics parse_manifest raises, each as the text after `FILE:`."""
    with pytest.raises(ManifestError) as info:
        parse_manifest(raw, file)
    lines = [str(d) for d in info.value.diagnostics]
    assert all(line.startswith(f"{file}:") for line in lines), lines
    return [line[len(file) + 1 :] for line in lines]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_corpus_file_gives_its_located_diagnostics(case: Case) -> None:
    """Bombs and deep nesting are also measured: tracemalloc's peak stays under 50 MB."""
    measure = case.name in BOMBS
    if measure:
        tracemalloc.start()
    try:
        lines = diagnostics_of(case.path.read_bytes(), case.name)
        peak = tracemalloc.get_traced_memory()[1] if measure else 0
    finally:
        if measure:
            tracemalloc.stop()
    assert check(case, lines) == [], lines
    assert peak < PEAK_LIMIT, f"{case.name}: peak {peak / 1e6:.1f} MB"


def test_corpus_covers_every_file_with_a_sidecar() -> None:
    corpus = Path(CASES[0].path).parent
    sidecars = {p.stem for p in corpus.glob("*.expect")}
    assert sidecars == {c.path.stem for c in CASES}
    assert all(c.expected.lines for c in CASES), "a sidecar without an expected line"
    assert set(BOMBS) <= {c.name for c in CASES}


def test_file_over_one_mebibyte_is_refused_before_parsing() -> None:
    raw = huge_bytes()
    assert len(raw) > 1024 * 1024
    tracemalloc.start()
    try:
        lines = diagnostics_of(raw, "huge.yaml")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    case = Case(Path("huge.yaml"), parse_expect("1:1: ...1048576\n"))
    assert check(case, lines) == [], lines
    assert peak < 8 * len(raw), f"peak {peak} bytes for a file refused by its size"


def test_node_limit_is_enforced_while_composing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A file under 1 MiB can hold ~500,000 scalars (`[0,0,0,...]`). Composing all of them before
    counting took minutes and ~340 MB here; the cap must stop composition itself. Shown with a
    small cap: the document exceeds it long before the syntax error at its very end."""
    monkeypatch.setattr(yamlsafe, "MAX_NODES", 1000)
    raw = b"a: [" + b"0," * 3000 + b"\n"  # unterminated: a syntax error only at the end
    lines = diagnostics_of(raw, "flood.yaml")
    assert len(lines) == 1 and "more than 1000 nodes" in lines[0], lines


def test_a_utf8_bom_manifest_loads_as_the_same_manifest() -> None:
    """Control (the harness does not merely reject everything), and a UTF-8 byte order mark
    (Notepad's) changes nothing but the file's digest: same model, same warnings, and a broken
    file's diagnostics at the same places."""
    plain = parse_manifest(EXAMPLE.read_bytes(), "prod-east.yaml")
    bom = parse_manifest(BOM + EXAMPLE.read_bytes(), "prod-east.yaml")
    assert len(plain.manifest.hosts) >= 2
    assert bom.manifest.digest != plain.manifest.digest  # the bytes differ: a plan must know
    assert replace(bom.manifest, digest=plain.manifest.digest) == plain.manifest
    assert bom.warnings == plain.warnings
    broken = ("syntax-undefined-alias.yaml", "dup-key-host.yaml", "control-raw-del.yaml")
    for case in [c for c in CASES if c.name in broken]:
        raw = case.path.read_bytes()
        assert diagnostics_of(BOM + raw, case.name) == diagnostics_of(raw, case.name), case.name


def test_every_sidecar_line_names_the_problem() -> None:
    """A location alone would pass with any message: each expected line carries words too."""
    bare = [
        (c.name, line) for c in CASES for line in c.expected.lines
        if not re.sub(r"^\d+:\d+: ", "", line).strip(" .")
    ]
    assert bare == []


def test_merge_key_overridden_by_an_explicit_key_is_not_a_duplicate() -> None:
    """YAML merge keys (<<) are how YAML users share settings; an explicit key overrides a merged
    one by definition (yaml.org/type/merge). Today the merged and the explicit key are reported as
    `duplicate key 'name' (YAML would silently keep the last one)`, which is false on both counts.
    (If merges are to be refused instead, say so: "merge keys (<<) are not supported".)"""
    raw = (
        b"apiVersion: hvlm/v1\nkind: LiveMigrationConfig\nmetadata: {name: merge}\n"
        b"directory: {domain: corp.example.com, servers: ['ldaps://dc01.corp.example.com']}\n"
        b"hosts:\n"
        b"  - &std {name: HV01, connection: {transport: https, port: 5987}}\n"
        b"  - {<<: *std, name: HV02}\n"
    )
    result = parse_manifest(raw, "merge.yaml")
    hosts = {h.name: h for h in result.manifest.hosts}
    assert set(hosts) == {"HV01", "HV02"}
    assert hosts["HV02"].connection.port == 5987
