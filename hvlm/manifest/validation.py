"""Manifest validation, passes 1b and 2: literal secrets, then the JSON Schema. Pure.

Pipeline position: inside the first stage (manifest -> model). hvlm.manifest.parse_manifest runs
hvlm.yamlsafe (pass 1), then `check_secrets` and `check_schema` here, then the semantic checks
(hvlm.manifest.semantics), collecting every problem as a located Diagnostic (`Located`).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterator
from functools import lru_cache
from importlib import resources
from pathlib import Path as FsPath
from typing import Any

import jsonschema

from hvlm.errors import Diagnostic, Severity
from hvlm.yamlsafe import Loaded, Path, format_path

SCHEMA_FILE = "manifest.v1.schema.json"
_SECRET_KEY = re.compile(
    r"pass(word|wd)?|secret|token|credential|api[-_]?key|private[-_]?key", re.IGNORECASE
)


def schema_text(name: str = SCHEMA_FILE) -> str:
    """The JSON Schema shipped in the package (falls back to the checkout's schemas/ folder)."""
    packaged = resources.files("hvlm") / "schemas" / name
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    return (FsPath(__file__).resolve().parents[2] / "schemas" / name).read_text(encoding="utf-8")


@lru_cache(maxsize=4)
def _validator(name: str = SCHEMA_FILE) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads(schema_text(name)))


class Located:
    """Builds Diagnostics located by document path."""

    def __init__(self, file: str, loaded: Loaded) -> None:
        self.file, self.loaded = file, loaded
        self.items: list[Diagnostic] = []

    def add(
        self, path: Path, message: str, severity: Severity = Severity.ERROR, at_key: bool = False
    ) -> None:
        positions = self.loaded.key_positions if at_key else self.loaded.positions
        probe = path
        while probe not in positions and probe:
            probe = probe[:-1]
        line, col = positions.get(probe, (0, 0))
        self.items.append(Diagnostic(severity, message, self.file, line, col, format_path(path)))

    def has_error(self, path: Path) -> bool:
        """Did an earlier pass already report this very value? (one problem, one line)"""
        where = format_path(path)
        return any(d.path == where and d.severity is Severity.ERROR for d in self.items)

    def sorted(self) -> list[Diagnostic]:
        return sorted(self.items, key=lambda d: (d.line, d.column))

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity is Severity.ERROR]


def kind_name(value: Any) -> str:
    return {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        int: "a number",
        float: "a number",
        bool: "a boolean",
        type(None): "nothing",
    }.get(type(value), type(value).__name__)


# --- pass 1b: secrets ---------------------------------------------------------------------------


def check_secrets(data: Any, path: Path, diag: Located) -> list[Path]:
    found: list[Path] = []
    if isinstance(data, dict):
        for key, value in data.items():
            if _SECRET_KEY.search(key):
                diag.add(
                    path + (key,),
                    "literal secret in the manifest: credentials come from "
                    "environment variables (HVLM_WINRM_*, HVLM_LDAP_*) or Kerberos",
                    at_key=True,
                )
                found.append(path + (key,))
            else:
                found += check_secrets(value, path + (key,), diag)
    elif isinstance(data, list):
        for i, item in enumerate(data):
            found += check_secrets(item, path + (i,), diag)
    return found


# --- pass 2: schema -----------------------------------------------------------------------------


def check_schema(data: dict[str, Any], diag: Located, skip: list[Path]) -> None:
    errors = sorted(_validator().iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    for error in errors:
        path: Path = tuple(error.absolute_path)
        if any(path[: len(s)] == s for s in skip):
            continue
        for sub_path, message, at_key in _explain(error, path):
            if any(sub_path[: len(s)] == s for s in skip):
                continue
            diag.add(sub_path, message, at_key=at_key)


def _explain(error: jsonschema.ValidationError, path: Path) -> Iterator[tuple[Path, str, bool]]:
    kind = error.validator
    if kind == "additionalProperties" and isinstance(error.instance, dict):
        properties = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
        allowed = sorted(properties)
        for key in error.instance:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = (
                    f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(allowed)})"
                )
                yield path + (key,), f"unknown field {_short(key)}{hint}", True
        return
    if kind == "required":
        yield path, f"missing required field {error.message.split(' is a required')[0]}", False
    elif kind == "const":
        yield path, f"must be '{error.validator_value}', found {_short(error.instance)}", False
    elif kind == "enum":
        choices = " | ".join(str(v) for v in list(error.validator_value))  # type: ignore[arg-type]
        yield path, f"must be one of {choices}; found {_short(error.instance)}", False
    elif kind == "type":
        yield (
            path,
            f"must be {_type_name(error.validator_value)}, found {kind_name(error.instance)}",
            False,
        )
    elif kind == "oneOf" and "certValidation" in map(str, path):
        yield path, "must be true, false or a path to a CA bundle", False
    elif kind == "oneOf":
        yield (
            path,
            "must be an LDAP URL string or a mapping with 'url' (and optional 'address')",
            False,
        )
    elif kind == "pattern":
        yield (
            path,
            f"{_short(error.instance)} does not match the required form {error.validator_value}",
            False,
        )
    elif kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        yield (
            path,
            f"{_short(error.instance)} is out of range ({kind} {error.validator_value})",
            False,
        )
    elif kind in _SIZE_RULES:
        yield path, _SIZE_RULES[kind].format(n=error.validator_value), False
    elif isinstance(error.instance, (dict, list)):
        yield path, f"{kind_name(error.instance)} that fails the '{kind}' rule of the schema", False
    else:
        yield path, f"{_short(error.instance)} fails the '{kind}' rule of the schema", False


_SIZE_RULES = {
    "minItems": "must have at least {n} item(s)",
    "maxItems": "must have at most {n} items",
    "uniqueItems": "has duplicate items",
    "minLength": "must be at least {n} character(s)",
    "maxLength": "must be at most {n} characters",
    "minProperties": "must have at least {n} field(s)",
}


def _type_name(value: Any) -> str:
    names = {
        "object": "a mapping",
        "array": "a list",
        "string": "a string",
        "integer": "an integer",
        "number": "a number",
        "boolean": "true or false",
    }
    return names.get(str(value), str(value))


def _short(value: Any) -> str:
    """A value for a message: scalars shortened; containers only named (they may hold secrets)."""
    if isinstance(value, (dict, list)):
        return kind_name(value)
    if isinstance(value, int) and abs(value) > 10**30:
        return f"a {len(str(abs(value))) if abs(value) < 10**4000 else 'huge'}-digit number"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
