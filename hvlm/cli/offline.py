"""`hvlm validate` and `hvlm schema`: what runs without contacting anything.

Pipeline position: top (registered by hvlm.cli); only the manifest stage (hvlm.manifest).
"""

from __future__ import annotations

import json
import sys

import click

from hvlm.cli.options import EXIT_ERROR, EXIT_OK, echo_diagnostics, format_option, sarif_document
from hvlm.errors import Diagnostic, ManifestError
from hvlm.manifest import SCHEMA_FILE, load_manifest, schema_text


@click.command()
@click.argument("manifests", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--strict", is_flag=True, help="Treat warnings as errors.")
@format_option("human", "sarif", what="Diagnostics (sarif: SARIF 2.1.0; human: on stderr)")
def validate(manifests: tuple[str, ...], strict: bool, fmt: str) -> None:
    """Check manifests without contacting anything. Exit 1 on any error."""
    failed = False
    found: list[Diagnostic] = []
    for path in manifests:
        try:
            result = load_manifest(path)
        except ManifestError as exc:
            found += exc.diagnostics
            if fmt == "human":
                echo_diagnostics(exc.diagnostics)
            failed = True
            continue
        found += result.warnings
        if fmt != "human":
            failed |= strict and bool(result.warnings)
            continue
        echo_diagnostics(result.warnings)
        failed |= strict and bool(result.warnings)
        hosts = len(result.manifest.hosts)
        click.echo(
            f"{path}: valid ({hosts} host{'s' if hosts != 1 else ''}, "
            f"{len(result.warnings)} warning{'s' if len(result.warnings) != 1 else ''})"
        )
    if fmt == "sarif":
        click.echo(json.dumps(sarif_document(manifests[0], diagnostics=found), indent=2))
    sys.exit(EXIT_ERROR if failed else EXIT_OK)


@click.command()
@click.option(
    "--plan",
    "which",
    flag_value="plan.v2.schema.json",
    help="Print the JSON plan format's schema instead.",
)
@click.option(
    "--manifest",
    "which",
    flag_value=SCHEMA_FILE,
    default=True,
    help="Print the manifest schema (default).",
)
def schema(which: str) -> None:
    """Print a JSON Schema (draft 2020-12). Editors: `# yaml-language-server: $schema=...`."""
    click.echo(schema_text(which), nl=False)
