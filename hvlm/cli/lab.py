"""`hvlm lab`: the one place where the product reaches the lab (hvlm_lab, the `lab` extra).

Pipeline position: none (the lab is what the pipeline is tested against). When the lab or its
requirements are missing, `hvlm lab` still exists and says how to install them.
"""

from __future__ import annotations

import importlib.util

import click

from hvlm.cli.options import EXIT_ERROR

INSTALL_HINT = (
    "the lab is not installed: pip install 'hvlm[lab]' (its directory also needs Samba: "
    "apt-get install samba samba-ad-dc samba-ad-provision winbind krb5-user ldb-tools)"
)


@click.command("lab", context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def lab_missing(args: tuple[str, ...]) -> None:
    """Simulated Hyper-V hosts and a Samba AD DC (needs the `lab` extra)."""
    click.echo(f"error: {INSTALL_HINT}", err=True)
    raise SystemExit(EXIT_ERROR)


def lab_command() -> click.Command:
    """`hvlm lab`: the real group when the lab and its extra are there, else the hint (hvlm.cli
    calls this only when `lab` runs, or for --help)."""
    if importlib.util.find_spec("hvlm_lab") is None:
        return lab_missing
    from hvlm_lab.cli import LAB_REQUIREMENTS, lab

    if all(importlib.util.find_spec(name) is not None for name in LAB_REQUIREMENTS):
        return lab
    return lab_missing
