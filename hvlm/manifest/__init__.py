"""Manifest loading: YAML bytes -> validated, resolved `hvlm.model.Manifest`. Pure (reads one file).

Pipeline position: the first stage (**manifest** -> model -> host and directory state -> plan ->
apply -> verify); the CLI calls it before anything is contacted. `load_manifest()` returns the
model plus warnings, or raises `ManifestError` carrying every problem found, each located as
FILE:LINE:COL: path: message.
Three passes, each stopping the pipeline only after reporting everything it found:
  1. hvlm.yamlsafe: bounded YAML parsing with positions and duplicate-key detection;
  2. the JSON Schema in schemas/manifest.v1.schema.json (types, ranges, unknown fields);
  3. semantics the schema cannot say (subnets, names, references, secrets), then resolution.
Modules: hvlm.manifest.validation (secrets, schema), hvlm.manifest.semantics (pass 3),
hvlm.manifest.resolution (the model).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path as FsPath

from hvlm import model as m
from hvlm.errors import Diagnostic, ManifestError, Severity
from hvlm.manifest.resolution import resolve
from hvlm.manifest.semantics import check_semantics, dns_name_problem, parse_subnet, refused_subnet
from hvlm.manifest.validation import (
    SCHEMA_FILE,
    Located,
    check_schema,
    check_secrets,
    kind_name,
    schema_text,
)
from hvlm.yamlsafe import load_yaml

__all__ = [
    "SCHEMA_FILE", "LoadResult", "dns_name_problem", "load_manifest", "parse_manifest",
    "parse_subnet", "refused_subnet", "schema_text",
]


@dataclass(frozen=True)
class LoadResult:
    manifest: m.Manifest
    warnings: tuple[Diagnostic, ...]


def load_manifest(path: str | FsPath) -> LoadResult:
    file = str(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(8 * 1024 * 1024 + 1)
    except OSError as exc:
        raise ManifestError(
            [Diagnostic(Severity.ERROR, f"cannot read: {exc.strerror}", file)]
        ) from None
    return parse_manifest(raw, file)


def parse_manifest(raw: bytes, file: str = "<input>") -> LoadResult:
    loaded, problems = load_yaml(raw, file)
    if loaded is None:
        raise ManifestError(problems)
    diag = Located(file, loaded)
    if not isinstance(loaded.data, dict):
        diag.add((), f"expected a mapping (apiVersion, kind, ...), found {kind_name(loaded.data)}")
        raise ManifestError(diag.items)
    secret_paths = check_secrets(loaded.data, (), diag)
    check_schema(loaded.data, diag, secret_paths)
    check_semantics(loaded.data, diag, tolerant=bool(diag.errors))
    if diag.errors:
        raise ManifestError(diag.sorted())
    manifest = resolve(loaded.data, file, hashlib.sha256(raw).hexdigest())
    return LoadResult(manifest, tuple(diag.sorted()))
