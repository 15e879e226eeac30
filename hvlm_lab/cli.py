"""`hvlm lab up/status/stats/down`: simulated Hyper-V hosts and a Samba AD DC, from a shell.

Part of the lab; `hvlm lab` (hvlm.cli.lab) adds this group when the lab's extra is installed. The
commands are thin: `runner/process.py` does the work, `runner/files.py` documents the files.

    hvlm lab up --dir DIR [--hosts N] [--latency-ms L] [--faults FILE] [--no-directory]
                [--transport https|http] [--timeout S]
        Starts the lab in the background; returns once every part answers. Writes DIR/lab.json
        (endpoints, PIDs, CA path, control URL), DIR/manifest.yaml (passes `hvlm validate`) and
        DIR/env (export lines: HVLM_WINRM_USER, HVLM_WINRM_PASSWORD, HVLM_LDAP_USER,
        HVLM_LDAP_PASSWORD, KRB5_CONFIG, HVLM_LAB_DIR, HVLM_LAB_CONTROL_URL; no LDAP/Kerberos
        ones with --no-directory). FILE: per-host faults, YAML or JSON (runner/files.py).
    hvlm lab status --dir DIR [--format human|json]    exit 0 when every part is up, 1 otherwise
    hvlm lab stats --dir DIR [--host NAME] [--reset]   JSON counters on stdout (then reset them)
    hvlm lab down --dir DIR        stops what `up` started, by PID; exit 1 if anything still
                                   listens; idempotent (a second `down` is a success)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:  # the lab's modules load only when a `lab` command runs (hvlm starts fast)
    from hvlm_lab.runner.process import LabProcess

# What the lab needs beyond hvlm itself (the `lab` extra): without it, no `lab` command.
LAB_REQUIREMENTS = ("psrpcore",)

DIR_OPTION = click.option(
    "--dir", "workdir", required=True, type=click.Path(file_okay=False, path_type=Path),
    help="The lab's directory (lab.json, manifest.yaml, env, the DC's files).")


@click.group("lab")
def lab() -> None:
    """Simulated Hyper-V hosts (real WinRM/PSRP on loopback) and a real Samba AD DC."""


@lab.command()
@DIR_OPTION
@click.option("--hosts", "count", type=click.IntRange(1, 5000), default=3, show_default=True,
              help="How many simulated hosts (HV01, HV02...).")
@click.option("--latency-ms", type=click.FloatRange(0, 60000), default=0.0, show_default=True,
              help="Added latency per HTTP request, every host.")
@click.option("--faults", "faults_file", type=click.Path(dir_okay=False, exists=True,
                                                         path_type=Path),
              help="YAML/JSON: {HOST: {latency_ms, drop_after_requests, hang, ...}}.")
@click.option("--no-directory", is_flag=True, help="No Samba DC (no Kerberos in the manifest).")
@click.option("--transport", type=click.Choice(["https", "http"]), default="https",
              show_default=True,
              help="https: Basic over TLS (lab CA); http: NTLM with message encryption.")
@click.option("--timeout", type=click.FloatRange(1, 3600), default=300.0, show_default=True,
              help="Seconds to wait for every part to answer.")
@click.option("--credential-guard", "credential_guard", multiple=True, metavar="NAME",
              help="This host runs Credential Guard (Win32_DeviceGuard); repeatable.")
def up(workdir: Path, count: int, latency_ms: float, faults_file: Path | None,
       no_directory: bool, transport: str, timeout: float,
       credential_guard: tuple[str, ...] = ()) -> None:
    """Start a lab in the background; return when every part answers."""
    from hvlm_lab.runner.files import LabError, load_faults
    from hvlm_lab.runner.lab import LabOptions
    from hvlm_lab.runner.process import spawn
    from hvlm_lab.wsman.server import Transport

    try:
        faults = load_faults(faults_file) if faults_file else {}
        options = LabOptions(hosts=count, latency_ms=latency_ms, faults=faults,
                             directory=not no_directory, credential_guard=credential_guard,
                             transport=Transport.HTTPS_BASIC if transport == "https"
                             else Transport.HTTP_NEGOTIATE)
        started = spawn(workdir, options, timeout)
    except LabError as exc:
        raise click.ClickException(str(exc)) from exc
    _echo_started(started)


def _echo_started(started: LabProcess) -> None:
    info = started.info
    first, last = info.hosts[0], info.hosts[-1]
    span = first.name if first is last else f"{first.name}..{last.name}"
    click.echo(f"lab up in {info.workdir} (pid {info.pid}): {len(info.hosts)} hosts {span} "
               f"on 127.0.0.1, migration subnet {info.subnet}")
    if info.directory is not None:
        click.echo(f"directory: {info.directory.url} at {info.directory.address} "
                   f"(realm {info.directory.realm}, pid {info.directory.pid})")
    click.echo(f"manifest: {info.manifest}")
    click.echo(f"credentials: set -a; . {info.env}; set +a")


@lab.command("status")
@DIR_OPTION
@click.option("--format", "fmt", type=click.Choice(["human", "json"]), default="human",
              show_default=True)
def status_command(workdir: Path, fmt: str) -> None:
    """Is every part up? Exit 0 if so, 1 otherwise."""
    from hvlm_lab.runner.files import LabError
    from hvlm_lab.runner.process import status

    try:
        state = status(workdir)
    except LabError as exc:
        raise click.ClickException(str(exc)) from exc
    if fmt == "json":
        click.echo(json.dumps(state.to_json(), indent=2))
    else:
        for part in state.parts:
            click.echo(f"{part.name:<10} {'up' if part.up else 'DOWN':<5} {part.detail}")
    raise SystemExit(0 if state.up else 1)


@lab.command()
@DIR_OPTION
@click.option("--host", help="Only this host's counters.")
@click.option("--reset", is_flag=True, help="Reset the counters after printing them.")
def stats(workdir: Path, host: str | None, reset: bool) -> None:
    """Print the lab's counters as JSON: {"hosts": {...}, "directory": {...}}."""
    from hvlm_lab.runner.files import LabError
    from hvlm_lab.runner.process import LabProcess

    try:
        running = LabProcess.attach(workdir)
        counters = running.stats(host)
        if reset:
            running.reset_stats()
    except (LabError, RuntimeError, OSError) as exc:
        raise click.ClickException(f"lab stats: {exc}") from exc
    click.echo(json.dumps(counters, indent=2, sort_keys=True))


@lab.command("down")
@DIR_OPTION
def down_command(workdir: Path) -> None:
    """Stop what `hvlm lab up` started (by PID); nothing is left listening."""
    from hvlm_lab.runner.files import LabError
    from hvlm_lab.runner.process import down

    try:
        report = down(workdir)
    except LabError as exc:
        raise click.ClickException(str(exc)) from exc
    for line in (*(f"stopped {s}" for s in report.stopped), *report.notes):
        click.echo(f"lab down: {line}")
    if not report.ok:
        raise click.ClickException(f"still listening: {', '.join(report.listening)}")


__all__ = ["LAB_REQUIREMENTS", "lab"]
