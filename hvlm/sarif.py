"""SARIF 2.1.0: findings and manifest diagnostics for code scanning, located on the manifest. Pure.

Pipeline position: a renderer beside hvlm.render, last before the user. `hvlm check --format
sarif` and `hvlm validate --format sarif` print one SARIF log on stdout; a CI uploads it (GitHub
code scanning, Azure DevOps SARIF viewer, GitLab), so each result appears on the manifest line of
the host, group or setting it is about.

- One rule per finding code (hvlm.findings.CATALOGUE: id = code, level from its severity, help =
  its fix); validation diagnostics are the `manifest` rule.
- Each finding is located by its subject: `host/NAME` and `directory/NAME` on the host's entry
  in `hosts`, a pair `A->B` on a group holding both (else on A), `directory` on the directory
  section; a diagnostic keeps its own file, line and column.
- A per-VM finding (hvlm.readiness) lists all its VMs in `properties.vms`; it is located on the
  group that pairs its two hosts, as every pair finding.
- Texts are the findings' own (already one line); SARIF viewers render them, never execute them.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hvlm.errors import Diagnostic, Severity
from hvlm.findings import CATALOGUE, MANIFEST, Finding

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_VERSION = "2.1.0"
INFORMATION_URI = "https://github.com/hvlm/hvlm"
Position = tuple[int, int]  # 1-based line, column
_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning"}


def artifact_uri(file: str) -> str:
    """The manifest as a repository-relative URI when it lies under the working directory."""
    path = Path(file)
    with contextlib.suppress(ValueError, OSError):
        path = path.resolve().relative_to(Path.cwd().resolve())
    return path.as_posix()


@dataclass(frozen=True)
class ManifestLocator:
    """Where a finding's subject is declared: from the manifest's data and its YAML positions
    (hvlm.yamlsafe.Loaded.positions: document path -> (line, column))."""

    file: str
    data: Mapping[str, Any]
    positions: Mapping[tuple[str | int, ...], Position]

    def locate(self, subject: str) -> Position:
        kind, _, name = subject.partition("/")
        if kind in ("host", "directory") and name:
            return self._host(name.split("/", 1)[0]) or self._at(("directory",)) or (1, 1)
        if subject == "directory":
            return self._at(("directory",)) or (1, 1)
        for arrow in ("<->", "->"):  # a pair: "HV01->HV02" (names may hold '-')
            a, sep, b = subject.partition(arrow)
            if sep and a and b:
                return self._group(a.strip(), b.strip()) or self._host(a.strip()) or (1, 1)
        return (1, 1)

    def _at(self, path: tuple[str | int, ...]) -> Position | None:
        return self.positions.get(path)

    def _host(self, name: str) -> Position | None:
        for i, host in enumerate(_entries(self.data.get("hosts"))):
            if str(host.get("name", "")).upper() == name.upper():
                return self._at(("hosts", i, "name")) or self._at(("hosts", i))
        return None

    def _group(self, a: str, b: str) -> Position | None:
        wanted = {a.upper(), b.upper()}
        for j, group in enumerate(_entries(self.data.get("groups"))):
            members = {str(m).upper() for m in group.get("hosts", ()) if isinstance(m, str)}
            if wanted <= members:
                return self._at(("groups", j, "name")) or self._at(("groups", j))
        return None


def _entries(value: object) -> list[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def sarif_log(
    findings: Sequence[Finding],
    locator: ManifestLocator | None,
    diagnostics: Sequence[Diagnostic] = (),
    *,
    version: str,
) -> dict[str, Any]:
    """One SARIF log, one run: the results of `diagnostics` (validation) then `findings`."""
    results = [_diagnostic_result(d) for d in diagnostics]
    results += [_finding_result(f, locator) for f in findings]
    codes = list(dict.fromkeys(r["ruleId"] for r in results))
    index = {code: i for i, code in enumerate(codes)}
    for result in results:
        result["ruleIndex"] = index[result["ruleId"]]
    return {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [{
            "tool": {"driver": {
                "name": "hvlm",
                "version": version,
                "informationUri": INFORMATION_URI,
                "rules": [_rule(code) for code in codes],
            }},
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    }


def _rule(code: str) -> dict[str, Any]:
    kind = CATALOGUE.get(code, MANIFEST)
    summary = re.sub(r"\{[a-z_]+\}", "…", kind.message) if kind is not MANIFEST \
        else "the manifest does not validate, or validates with a warning"
    rule: dict[str, Any] = {
        "id": code,
        "name": "".join(part.capitalize() for part in code.split("-")),
        "shortDescription": {"text": summary},
        "defaultConfiguration": {"level": _LEVEL[kind.severity]},
        "properties": {"tags": ["hyper-v", "live-migration"]},
    }
    if kind.fix:
        rule["help"] = {"text": re.sub(r"\{[a-z_]+\}", "…", kind.fix)}
    return rule


def _region(position: Position) -> dict[str, int]:
    line, column = position
    return {"startLine": max(1, line), "startColumn": max(1, column)}


def _location(file: str, position: Position) -> dict[str, Any]:
    return {"physicalLocation": {
        "artifactLocation": {"uri": artifact_uri(file)},
        "region": _region(position),
    }}


def _finding_result(finding: Finding, locator: ManifestLocator | None) -> dict[str, Any]:
    text = finding.message
    if finding.fix:
        text += f" Fix: {finding.fix}"
    result: dict[str, Any] = {
        "ruleId": finding.code,
        "level": _LEVEL[finding.severity],
        "message": {"text": text},
        "properties": {"subject": finding.subject, "fix": finding.fix,
                       "evidence": finding.evidence},
        "partialFingerprints": {"hvlmSubject/v1": f"{finding.code}:{finding.subject}"},
    }
    if finding.vms:
        result["properties"]["vms"] = list(finding.vms)
    if locator is not None:
        result["locations"] = [_location(locator.file, locator.locate(finding.subject))]
        result["locations"][0]["logicalLocations"] = [
            {"name": finding.subject, "kind": "resource"}]
    return result


def _diagnostic_result(diagnostic: Diagnostic) -> dict[str, Any]:
    position = (diagnostic.line or 1, diagnostic.column or 1)
    return {
        "ruleId": MANIFEST.code,
        "level": _LEVEL[diagnostic.severity],
        "message": {"text": f"{diagnostic.path}: {diagnostic.message}" if diagnostic.path
                    else diagnostic.message},
        "locations": [_location(diagnostic.file, position)],
        "properties": {"path": diagnostic.path},
    }

