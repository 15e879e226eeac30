"""`hvlm check` and `hvlm export`: read the fleet as plan does, then judge it or write it down.

Pipeline position: top (registered by hvlm.cli); reads through hvlm.reconcile, judges with
hvlm.check (findings) or describes with hvlm.export (a manifest of the fleet as it is).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from hvlm.cli.options import (
    EXIT_ERROR,
    EXIT_OK,
    color_option,
    fleet_selection,
    format_option,
    sarif_document,
    use_color,
)
from hvlm.errors import ManifestError
from hvlm.model import Manifest


@click.command()
@click.argument("manifest", type=click.Path(dir_okay=False))
@fleet_selection
@format_option("human", "json", "markdown", "sarif", what="Findings output (sarif: SARIF 2.1.0)")
@color_option
def check(
    manifest: str, hosts: tuple[str, ...], parallelism: int, fmt: str, color: bool | None
) -> None:
    """Preflight: read the fleet (as plan does) and report what will break a migration.

    Exit 0 when no finding is an error, 1 otherwise.
    """
    from hvlm.check import check_fleet, has_errors
    from hvlm.manifest import load_manifest
    from hvlm.reconcile import open_fleet
    from hvlm.render import render_findings

    loaded = load_manifest(manifest)
    for warning in loaded.warnings:
        click.echo(str(warning), err=True)
    with open_fleet(loaded.manifest, parallelism) as fleet:
        specs = fleet.selected(hosts)
        observation = fleet.observe(hosts)
    findings = check_fleet(loaded.manifest, observation, selection=hosts)
    if fmt == "sarif":
        click.echo(json.dumps(sarif_document(manifest, findings, loaded.warnings), indent=2))
    else:
        click.echo(render_findings(findings, len(specs), color=use_color(color), fmt=fmt,
                                   manifest=loaded.manifest), nl=False)
    sys.exit(EXIT_ERROR if has_errors(findings) else EXIT_OK)


def _load_inventory(path: str) -> tuple[dict[str, Any], Manifest]:
    from hvlm.manifest import load_manifest
    from hvlm.yamlsafe import load_yaml

    loaded = load_manifest(path)
    with open(path, "rb") as handle:
        raw, problems = load_yaml(handle.read(), path)
    if raw is None or not isinstance(raw.data, dict):
        raise ManifestError(problems)
    return raw.data, loaded.manifest


@click.command()
@click.argument("inventory", type=click.Path(dir_okay=False))
@fleet_selection
def export(inventory: str, hosts: tuple[str, ...], parallelism: int) -> None:
    """Write the manifest of the fleet as it is (YAML on stdout).

    INVENTORY is a manifest, or a minimal one holding only directory, connection and hosts.
    """
    from hvlm.export import dump_manifest, export_document
    from hvlm.reconcile import open_fleet

    data, manifest = _load_inventory(inventory)
    with open_fleet(manifest, parallelism) as fleet:
        fleet.selected(hosts)
        observation = fleet.observe(hosts)
    document = export_document(data, manifest, observation, hosts)
    click.echo(dump_manifest(document, inventory), nl=False)
