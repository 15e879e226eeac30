"""What every `hvlm` command shares: the exit codes and the fleet options.

Pipeline position: the CLI layer only (hvlm.cli and its command modules). One definition each:
a command that reads the fleet takes `--host` and `--parallelism` from here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:  # hvlm.findings loads the model and state: not needed to start a command
    from hvlm.errors import Diagnostic
    from hvlm.findings import Finding

EXIT_OK = 0  # success; plan: no changes
EXIT_ERROR = 1  # any error: bad input, unreadable hosts, a failed apply, an error finding
EXIT_CHANGES = 2  # plan --detailed-exitcode: changes present
EXIT_INTERRUPTED = 130  # Ctrl-C / aborted prompt

F = TypeVar("F", bound=Callable[..., Any])


def fleet_selection(fn: F) -> F:
    """--host NAME (repeatable) and --parallelism N: which hosts, and how many at once."""
    fn = click.option(
        "--host",
        "hosts",
        multiple=True,
        metavar="NAME",
        help="Only this host (repeatable); its computer account and pairs are included.",
    )(fn)
    fn = click.option(
        "--parallelism",
        type=click.IntRange(1, 512),
        default=16,
        show_default=True,
        help="Hosts read (and written) at once.",
    )(fn)
    return fn


def color_option(fn: F) -> F:
    return click.option(
        "--color/--no-color",
        default=None,
        help="Colour the human format (default: when stdout is a TTY).",
    )(fn)


def format_option(*choices: str, what: str) -> Callable[[F], F]:
    def decorate(fn: F) -> F:
        return click.option(
            "--format",
            "fmt",
            type=click.Choice(list(choices)),
            default=choices[0],
            show_default=True,
            help=f"{what} on stdout.",
        )(fn)

    return decorate


def echo_diagnostics(diagnostics: Sequence[Diagnostic]) -> None:
    """Manifest errors and warnings, one located line each, on stderr."""
    for diagnostic in diagnostics:
        click.echo(str(diagnostic), err=True)


def sarif_document(
    manifest: str, findings: Sequence[Finding] = (), diagnostics: Sequence[Diagnostic] = ()
) -> dict[str, Any]:
    """A SARIF log of `findings` located on `manifest`'s lines, plus `diagnostics` (validation)."""
    from hvlm import __version__
    from hvlm.sarif import ManifestLocator, sarif_log
    from hvlm.yamlsafe import load_yaml

    locator = None
    try:
        with open(manifest, "rb") as handle:
            loaded, _ = load_yaml(handle.read(), manifest)
    except OSError:
        loaded = None
    if loaded is not None and isinstance(loaded.data, dict):
        locator = ManifestLocator(manifest, loaded.data, loaded.positions)
    return sarif_log(findings, locator, diagnostics, version=__version__)


def use_color(color: bool | None) -> bool:
    import sys

    return sys.stdout.isatty() if color is None else color


def review_options(fn: F) -> F:
    """How a plan is shown to people: the summary (default) or every change; Markdown's size."""
    fn = click.option(
        "--markdown-budget", type=click.IntRange(min=2_000), default=None, metavar="CHARS",
        help="Most characters of the Markdown plan (default 60,000: one GitHub comment with "
        "room to spare); detail that does not fit is left out whole, with a note.",
    )(fn)
    return click.option(
        "--full", is_flag=True,
        help="List every change and delegation value after the summary (human; the Markdown "
        "lists them whenever they fit its budget).",
    )(fn)

