"""The `hvlm` command: parses arguments, configures logging, runs a stage, sets the exit code.

Top of the pipeline (manifest -> model -> observed state -> plan -> apply -> verify). The
commands live in this package: `validate`/`schema` (offline), `plan`/`apply` (plan), `check`/
`export` (check_export), `lab` (the only door to hvlm_lab). Exit codes and the shared options:
hvlm.cli.options.

Errors: an HvlmError (bad input, unreachable host, refused plan...) is one line on stderr and
exit 1. Any other exception is a bug in hvlm: one line `internal error: ...` on stderr, exit 1,
and the traceback only with `--log-level debug`. stdout carries only results.
"""

from __future__ import annotations

import importlib
import itertools
import sys
from collections.abc import Sequence
from typing import NoReturn

import click

from hvlm import __version__
from hvlm.cli.options import (
    EXIT_CHANGES,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    echo_diagnostics,
)
from hvlm.errors import HvlmError, ManifestError, Severity, inert

_debug = False  # --log-level debug: an internal error shows its traceback

# Each command is imported only when it runs (or for --help): `hvlm validate` never loads the
# reconciler, the backends (pypsrp, ldap3, requests) or structlog (issue 16: start-up time).
# name -> (module, attribute); `lab` is resolved by hvlm.cli.lab (the group, or the install hint).
COMMANDS = {
    "validate": ("hvlm.cli.offline", "validate"),
    "schema": ("hvlm.cli.offline", "schema"),
    "plan": ("hvlm.cli.plan", "plan"),
    "apply": ("hvlm.cli.plan", "apply"),
    "show": ("hvlm.cli.show", "show"),
    "check": ("hvlm.cli.check_export", "check"),
    "export": ("hvlm.cli.check_export", "export"),
    "lab": ("hvlm.cli.lab", "lab_command"),
}
# Commands that contact nothing and log nothing: structlog is not even imported for them.
OFFLINE = frozenset({"validate", "schema", "show"})


class _LazyGroup(click.Group):
    """A click group whose commands (COMMANDS) are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            module, attr = COMMANDS[cmd_name]
            found = getattr(importlib.import_module(module), attr)
            command = found() if attr == "lab_command" else found
            self.add_command(command, cmd_name)
        return self.commands.get(cmd_name)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
    global _debug
    _debug = log_level == "debug"
    if click.get_current_context().invoked_subcommand in OFFLINE:
        return
    from hvlm.logs import configure

    configure(log_level, log_format)  # type: ignore[arg-type]


def _internal_error(exc: BaseException) -> NoReturn:
    """A bug in hvlm (not a handled error): say so in one line; the traceback only in debug."""
    if _debug:
        import traceback

        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    text = inert(" ".join(str(exc).split()))[:300]
    click.echo(f"internal error: {type(exc).__name__}: {text} (this is a bug in hvlm; "
               "--log-level debug shows the traceback)", err=True)
    sys.exit(EXIT_ERROR)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    global _debug
    args = list(argv) if argv is not None else sys.argv[1:]
    # before click parses (a command module that fails to import): the same rule, read by hand
    _debug = "--log-level=debug" in args or any(
        a == "--log-level" and b == "debug" for a, b in itertools.pairwise(args))
    try:
        cli.main(args=args, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(EXIT_ERROR)
    except ManifestError as exc:
        echo_diagnostics(exc.diagnostics)
        sys.exit(EXIT_ERROR)
    except HvlmError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except SystemExit:
        raise
    except Exception as exc:
        _internal_error(exc)
    sys.exit(EXIT_OK)


__all__ = ["EXIT_CHANGES", "EXIT_ERROR", "EXIT_OK", "Severity", "cli", "main"]
