"""`hvlm lab up/status/stats/down`: simulated Hyper-V hosts and a Samba AD DC, from a shell.

Part of the lab; `hvlm lab` (hvlm.cli.lab) adds this group when the lab's extra is installed. The
commands are thin: `runner/process.py` does the work, `runner/files.py` documents the files.

    hvlm lab up --dir DIR [--hosts N] [--latency-ms L] [--faults FILE] [--no-directory]
                [--transport https|http] [--timeout S] [--dcs 1|2] [--host-dc HOST=dcN ...]
                [--inventory FILE]
        Starts the lab in the background; returns once every part answers. Writes DIR/lab.json
        (endpoints, PIDs, CA path, control URL), DIR/manifest.yaml (passes `hvlm validate`) and
        DIR/env (export lines: HVLM_WINRM_USER, HVLM_WINRM_PASSWORD, HVLM_LDAP_USER,
        HVLM_LDAP_PASSWORD, KRB5_CONFIG, HVLM_LAB_DIR, HVLM_LAB_CONTROL_URL; no LDAP/Kerberos
        ones with --no-directory). --faults FILE: per-host faults, YAML or JSON (runner/files.py);
        --inventory FILE: each host's switches, processor and VMs (runner/inventory.py).
    hvlm lab status --dir DIR [--format human|json]    exit 0 when every part is up, 1 otherwise
    hvlm lab stats --dir DIR [--host NAME] [--reset]   JSON counters on stdout (then reset them)
    hvlm lab down --dir DIR        stops what `up` started, by PID; exit 1 if anything still
                                   listens; idempotent (a second `down` is a success)
    hvlm lab replication --dir DIR pause|resume|now
        With --dcs 2: stop / restart inbound replication on dc2 (DISABLE_INBOUND_REPL, as
        `repadmin /options dc2 +DISABLE_INBOUND_REPL` on Windows), or make dc2 pull from dc1 now.

Two DCs (`--dcs 2`): dc1.lab.example on 127.0.0.1 and dc2.lab.example on 127.0.0.2, one domain,
replicating (DRS); both in the manifest's directory.servers. Samba listens only on addresses lo
has, so `up` adds 127.0.0.2/8 to lo when it is missing (it says so; `down` removes it): run the
lab in its own network namespace (`unshare --net`) to leave the machine's lo alone.
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
@click.option("--dcs", type=click.IntRange(1, 2), default=1, show_default=True,
              help="Domain controllers: 2 adds dc2 (127.0.0.2), replicating with dc1.")
@click.option("--host-dc", "host_dc", multiple=True, metavar="HOST=dcN",
              help="The DC this host uses (Win32_NTDomain), e.g. HV02=dc2; default dc1. "
              "Repeatable.")
@click.option("--inventory", "inventory_file", type=click.Path(dir_okay=False, path_type=Path),
              help="YAML: {HOST: {switches, processor, vms}} (format: runner/inventory.py).")
def up(workdir: Path, count: int, latency_ms: float, faults_file: Path | None,
       no_directory: bool, transport: str, timeout: float,
       credential_guard: tuple[str, ...] = (), dcs: int = 1,
       host_dc: tuple[str, ...] = (), inventory_file: Path | None = None) -> None:
    """Start a lab in the background; return when every part answers."""
    from hvlm_lab.runner.files import LabError, load_faults
    from hvlm_lab.runner.inventory import load_inventory
    from hvlm_lab.runner.lab import LabOptions
    from hvlm_lab.runner.process import spawn
    from hvlm_lab.wsman.server import Transport

    try:
        faults = load_faults(faults_file) if faults_file else {}
        inventory = load_inventory(inventory_file) if inventory_file else {}
        chosen = dict(_host_dc(item) for item in host_dc)
        options = LabOptions(hosts=count, latency_ms=latency_ms, faults=faults,
                             directory=not no_directory, credential_guard=credential_guard,
                             dcs=dcs, host_dc=chosen, inventory=inventory,
                             transport=Transport.HTTPS_BASIC if transport == "https"
                             else Transport.HTTP_NEGOTIATE)
        options.configs()  # a host the inventory names that the lab has not: refused here
        started = spawn(workdir, options, timeout)
    except LabError as exc:
        raise click.ClickException(str(exc)) from exc
    _echo_started(started)


def _host_dc(item: str) -> tuple[str, str]:
    host, sep, dc = item.partition("=")
    if not sep or not host.strip() or not dc.strip():
        raise click.BadParameter(f"{item!r}: expected HOST=dcN, e.g. HV02=dc2",
                                 param_hint="--host-dc")
    return host.strip(), dc.strip()


def _echo_started(started: LabProcess) -> None:
    info = started.info
    first, last = info.hosts[0], info.hosts[-1]
    span = first.name if first is last else f"{first.name}..{last.name}"
    click.echo(f"lab up in {info.workdir} (pid {info.pid}): {len(info.hosts)} hosts {span} "
               f"on 127.0.0.1, migration subnet {info.subnet}")
    if info.directory is not None:
        click.echo(f"directory: {info.directory.url} at {info.directory.address} "
                   f"(realm {info.directory.realm}, pid {info.directory.pid})")
        for replica in info.directory.replicas:
            click.echo(f"directory: {replica.url} at {replica.address} (replicating with "
                       f"{info.directory.url}, pid {replica.pid})")
        for address in info.directory.added_addresses:
            click.echo(f"loopback: added {address}/8 to lo (Samba listens only on addresses an "
                       "interface has); `hvlm lab down` removes it")
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


@lab.command("replication")
@DIR_OPTION
@click.argument("action", type=click.Choice(["pause", "resume", "now"]))
def replication_command(workdir: Path, action: str) -> None:
    """Pause or resume inbound replication on dc2, or make dc2 pull from dc1 now (--dcs 2)."""
    from hvlm_lab.runner.files import LabError, read_info
    from hvlm_lab.samba.config import SambaError
    from hvlm_lab.samba.pair import DCPair

    try:
        info = read_info(workdir)
        if info is None or info.directory is None or not info.directory.pair:
            raise LabError(f"no two-DC lab in {workdir} (`hvlm lab up --dcs 2`)")
        pair = DCPair.attach(Path(info.directory.pair))
        {"pause": pair.pause_inbound, "resume": pair.resume_inbound,
         "now": pair.replicate_now}[action]()
    except (LabError, SambaError, OSError, ValueError) as exc:
        raise click.ClickException(f"lab replication {action}: {exc}") from exc
    done = {"pause": "dc2 no longer pulls changes from dc1 (DISABLE_INBOUND_REPL)",
            "resume": "dc2 pulls changes again (at the next notification or periodic pull)",
            "now": "dc2 pulled the domain partition from dc1"}
    click.echo(f"lab replication: {done[action]}")


__all__ = ["LAB_REQUIREMENTS", "lab"]
