"""`hvlm show PLANFILE`: a saved plan rendered again, contacting nothing (as `terraform show`).

Pipeline position: top (registered by hvlm.cli as an offline command: no backend, no logging).
Reads a plan file (hvlm.plan) and prints it with `show_plan`, the one function `hvlm plan` and
`hvlm apply` print a plan with: the same plan gives the same bytes, so `hvlm show plan.json
--format markdown` of a pipeline's artifact is the comment its pull request got, and `--format
json` is the plan file again. A file that is not a plan of this hvlm is one line, exit 1.
"""

from __future__ import annotations

from pathlib import Path

import click

from hvlm.cli.options import color_option, format_option, review_options, use_color
from hvlm.errors import PlanFileError
from hvlm.plan import Plan, loads_plan
from hvlm.render import render


def show_plan(plan: Plan, fmt: str, color: bool | None, full: bool = False,
              budget: int | None = None) -> str:
    """The plan on stdout, as `hvlm plan`, `hvlm apply` and `hvlm show` print it; returns the
    text. `color=` on echo too: click strips escape sequences off a TTY otherwise, and
    `--color` asked for them."""
    colored = use_color(color)
    text = render(plan, fmt, color=colored, full=full, budget=budget)
    click.echo(text, nl=False, color=colored)
    return text


def read_plan_file(path: str) -> Plan:
    """A saved plan, validated field by field (hvlm.plan.loads_plan); PlanFileError otherwise."""
    return loads_plan(_read(path), path)


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise PlanFileError(f"{path}: cannot read: {exc.strerror}") from None


@click.command()
@click.argument("planfile", type=click.Path(dir_okay=False))
@format_option("human", "json", "markdown", what="The plan")
@review_options
@color_option
def show(planfile: str, fmt: str, color: bool | None, full: bool,
         markdown_budget: int | None) -> None:
    """Show a saved plan (`hvlm plan --out FILE`) without contacting anything."""
    if fmt == "json":  # the file itself, as it was written (once it reads as a plan)
        raw = _read(planfile)
        loads_plan(raw, planfile)
        click.echo(raw.decode("utf-8"), nl=False)
        return
    show_plan(read_plan_file(planfile), fmt, color, full, markdown_budget)
