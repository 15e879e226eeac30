"""The `hvlm` command: parses arguments, configures logging, runs a stage, sets the exit code.

Top of the pipeline (manifest -> model -> observed state -> plan -> apply -> verify). Every
HvlmError becomes one line on stderr and exit 1; stdout carries only results (plans, JSON, schema).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import NoReturn

import click

from hvlm import __version__
from hvlm.errors import Diagnostic, HvlmError, ManifestError, Severity
from hvlm.logs import configure
from hvlm.manifest import SCHEMA_FILE, load_manifest, schema_text

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2


def _echo_diagnostics(diagnostics: Sequence[Diagnostic]) -> None:
    for diagnostic in diagnostics:
        click.echo(str(diagnostic), err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hvlm")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="warning",
    show_default=True,
    help="Log verbosity (logs go to stderr).",
)
@click.option(
    "--log-format",
    type=click.Choice(["auto", "console", "json"]),
    default="auto",
    show_default=True,
    help="auto: console on a TTY, JSON lines otherwise.",
)
def cli(log_level: str, log_format: str) -> None:
    """Declarative live-migration setup for non-clustered Hyper-V hosts.

    Credentials never go in the manifest: HVLM_WINRM_USER / HVLM_WINRM_PASSWORD for hosts,
    HVLM_LDAP_USER / HVLM_LDAP_PASSWORD for the directory, or a Kerberos ticket cache.
    """
    configure(log_level, log_format)  # type: ignore[arg-type]


@cli.command()
@click.argument("manifests", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--strict", is_flag=True, help="Treat warnings as errors.")
def validate(manifests: tuple[str, ...], strict: bool) -> None:
    """Check manifests without contacting anything. Exit 1 on any error."""
    failed = False
    for path in manifests:
        try:
            result = load_manifest(path)
        except ManifestError as exc:
            _echo_diagnostics(exc.diagnostics)
            failed = True
            continue
        _echo_diagnostics(result.warnings)
        failed |= strict and bool(result.warnings)
        hosts = len(result.manifest.hosts)
        click.echo(
            f"{path}: valid ({hosts} host{'s' if hosts != 1 else ''}, "
            f"{len(result.warnings)} warning{'s' if len(result.warnings) != 1 else ''})"
        )
    sys.exit(EXIT_ERROR if failed else EXIT_OK)


@cli.command()
@click.option(
    "--plan",
    "which",
    flag_value="plan.v1.schema.json",
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


def _register_subcommands() -> None:
    """plan/apply/check/export live in their own modules; `lab` only with its extra installed."""
    from hvlm.commands import register

    register(cli)
    try:
        from hvlm_lab.cli import register as register_lab
    except ModuleNotFoundError as exc:  # `pip install hvlm` without the [lab] extra
        if exc.name is not None and exc.name.startswith("hvlm") and exc.name != "hvlm_lab.cli":
            raise
        return
    register_lab(cli)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    _register_subcommands()
    try:
        cli.main(args=list(argv) if argv is not None else None, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(EXIT_ERROR)
    except ManifestError as exc:
        _echo_diagnostics(exc.diagnostics)
        sys.exit(EXIT_ERROR)
    except HvlmError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    sys.exit(EXIT_OK)


__all__ = ["EXIT_CHANGES", "EXIT_ERROR", "EXIT_OK", "Severity", "cli", "main"]
