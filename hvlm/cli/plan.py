"""`hvlm plan` and `hvlm apply`: the CLI face of the reconciler.

Pipeline position: top (registered by hvlm.cli); loads the manifest (hvlm.manifest), observes and
applies through hvlm.reconcile, renders with hvlm.render. Exit codes (hvlm.cli.options): 0 ok /
no changes, 1 error (or anything failed), 2 changes present (`plan --detailed-exitcode`).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import structlog

from hvlm.check import Mode, check_fleet
from hvlm.cli.options import (
    EXIT_CHANGES,
    EXIT_ERROR,
    EXIT_OK,
    F,
    color_option,
    fleet_selection,
    format_option,
    review_options,
)
from hvlm.cli.show import show_plan
from hvlm.errors import HvlmError, PlanFileError, inert
from hvlm.findings import finding_document
from hvlm.manifest import LoadResult, load_manifest
from hvlm.plan import (
    Address,
    Finding,
    Kind,
    Plan,
    plan_from_document,
    plan_to_document,
    stale_targets,
    switches_to_kerberos,
)
from hvlm.planner import current_fingerprints
from hvlm.reconcile import (
    UNREAD_CODES,
    ApplyReport,
    Fleet,
    Observation,
    Outcome,
    apply_plan,
    open_fleet,
)
from hvlm.reconcile import plan_fleet as _plan_fleet
from hvlm.render import render as render_plan

log = structlog.get_logger("hvlm.cli")


def _plan_options(fn: F) -> F:
    """The options plan and apply share, besides --host/--parallelism."""
    fn = click.option(
        "--refresh-tickets",
        is_flag=True,
        help="After delegation changes, purge the SYSTEM Kerberos tickets on the "
        "hosts concerned (klist purge -li 0x3e7).",
    )(fn)
    fn = format_option("human", "json", "markdown", what="Plan output")(fn)
    return review_options(color_option(fn))


def _load(path: str) -> LoadResult:
    result = load_manifest(path)
    for warning in result.warnings:
        click.echo(str(warning), err=True)
    return result


def _observe_and_plan(
    fleet: Fleet, loaded: LoadResult, hosts: Sequence[str], refresh_tickets: bool
) -> tuple[Observation, Plan]:
    fleet.selected(hosts)  # unknown --host names fail before any connection
    observation = fleet.observe(hosts)
    findings = [Finding.from_diagnostic(w) for w in loaded.warnings]
    # preflight findings as the fleet will be after apply (codes the planner reports are left out)
    findings += check_fleet(fleet.manifest, observation, selection=hosts, mode=Mode.PLANNED)
    plan = _plan_fleet(
        fleet, observation, selection=hosts, refresh_tickets=refresh_tickets, findings=findings
    )
    return observation, plan


def _write_plan(text: str, out: str) -> None:
    """The plan file: the text `--format json` prints (render_plan(plan, "json"))."""
    target = Path(out)
    fd, tmp = tempfile.mkstemp(prefix=".hvlm-plan-", dir=target.parent or Path("."))
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, target)


def _incomplete(plan: Plan) -> bool:
    return any(f.code in UNREAD_CODES for f in plan.findings)


@click.command()
@click.argument("manifest", type=click.Path(dir_okay=False))
@fleet_selection
@_plan_options
@click.option("--out", type=click.Path(dir_okay=False), help="Save the plan for `hvlm apply FILE`.")
@click.option(
    "--detailed-exitcode", is_flag=True, help="Exit 0: no changes, 1: error, 2: changes present."
)
def plan(
    manifest: str,
    hosts: tuple[str, ...],
    parallelism: int,
    refresh_tickets: bool,
    fmt: str,
    color: bool | None,
    full: bool,
    markdown_budget: int | None,
    out: str | None,
    detailed_exitcode: bool,
) -> None:
    """Read every host and computer account, show what apply would change."""
    loaded = _load(manifest)
    with open_fleet(loaded.manifest, parallelism) as fleet:
        _, the_plan = _observe_and_plan(fleet, loaded, hosts, refresh_tickets)
    shown = show_plan(the_plan, fmt, color, full, markdown_budget)
    if out:  # a plan printed as JSON is not serialised twice
        _write_plan(shown if fmt == "json" else render_plan(the_plan, "json"), out)
        log.info("plan saved", path=out)
        if sys.stderr.isatty():
            click.echo(f"plan saved to {out}", err=True)
    if _incomplete(the_plan):
        sys.exit(EXIT_ERROR)
    sys.exit(EXIT_CHANGES if detailed_exitcode and the_plan.has_changes else EXIT_OK)


def _plan_document(path: str) -> dict[str, Any] | None:
    """A saved plan is a JSON object with format_version (read whole: a 10,000-host plan is
    ~22 MB); anything else (None) is a manifest."""
    try:
        raw = Path(path).read_bytes()
        if raw.lstrip()[:1] != b"{":
            return None
        document = json.loads(raw)
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) and "format_version" in document else None


def _confirm(auto_approve: bool) -> None:
    if auto_approve:
        return
    if not sys.stdin.isatty():
        raise HvlmError("refusing to apply without --auto-approve: not on a terminal")
    answer = click.prompt(
        "Apply these changes? Only 'yes' is accepted", default="", show_default=False, err=True
    )
    if answer.strip() != "yes":
        raise HvlmError("apply cancelled")


def _report(report: ApplyReport, fmt: str, applied: Plan) -> None:
    """The apply report. JSON: one document on stdout holding the plan and every outcome."""
    if fmt == "json":
        click.echo(
            json.dumps(
                {
                    "ok": report.ok,
                    "plan": plan_to_document(applied),
                    "results": [
                        {
                            "address": r.change.address,
                            "outcome": r.outcome.value,
                            "detail": r.detail,
                        }
                        for r in report.results
                    ],
                    "drift": list(report.drift),
                    "unread": list(report.unread),
                    "findings": [finding_document(f) for f in report.findings],
                },
                indent=2,
            )
        )
        return
    err = fmt != "human"  # markdown keeps stdout for the plan
    for result in report.results:
        line = f"{result.outcome.value:>8}  {result.change.address}"
        click.echo(inert(f"{line}  {result.detail}" if result.detail else line), err=err)
    for line in report.drift:
        click.echo(inert(f"   drift  {line}"), err=err)
    for line in report.unread:
        click.echo(inert(f"  unread  {line}"), err=err)
    for finding in report.findings:
        click.echo(inert(f"   {finding.severity.value}  {finding.code}  {finding.subject}: "
                         f"{finding.message}"), err=err)
    counts = {o: sum(1 for r in report.results if r.outcome is o) for o in Outcome}
    click.echo(
        f"Apply {'complete' if report.ok else 'FAILED'}: {counts[Outcome.APPLIED]} applied, "
        f"{counts[Outcome.FAILED]} failed, {counts[Outcome.SKIPPED]} skipped, "
        f"{len(report.drift)} still differing, {len(report.unread)} not read.",
        err=fmt != "human",
    )


def observe_for_saved_plan(fleet: Fleet, saved: Plan) -> Observation:
    """What `apply PLANFILE` reads again: the hosts the plan touches, and the directory when the
    plan changes it or switches a host to Kerberos (apply switches no host whose delegation it
    has not seen)."""
    targets = [Address.parse(t.address) for t in saved.targets]
    touched = sorted({a.host for a in targets if a.kind is Kind.HOST})
    host_states, host_errors = fleet.read_hosts([fleet.manifest.host(h) for h in touched])
    directory, directory_error = (None, None)
    if switches_to_kerberos(saved.changes) or any(a.kind is Kind.DIRECTORY for a in targets):
        directory, directory_error = fleet.read_directory(fleet.manifest.hosts)
    return Observation(host_states, host_errors, directory, directory_error)


def _load_plan_file(path: str, document: dict[str, Any]) -> tuple[Plan, LoadResult]:
    saved = plan_from_document(document, path)
    if not saved.manifest.source:
        raise PlanFileError(f"{path}: the plan does not name its manifest")
    loaded = _load(saved.manifest.source)
    if loaded.manifest.digest != saved.manifest.digest:
        raise PlanFileError(
            f"{path}: stale plan: {saved.manifest.source} changed since it was "
            "planned; run hvlm plan again"
        )
    return saved, loaded


def _refuse_if_stale(saved: Plan, observation: Observation, path: str) -> None:
    current: dict[str, str | None] = dict(
        current_fingerprints(observation.hosts, observation.directory)
    )
    stale = stale_targets(saved, current)
    if stale:
        raise PlanFileError(
            f"{path}: stale plan: {', '.join(stale[:5])} changed since it was "
            "planned; nothing was changed; run hvlm plan again"
        )


@click.command()
@click.argument("source", metavar="MANIFEST|PLANFILE", type=click.Path(dir_okay=False))
@fleet_selection
@_plan_options
@click.option("--auto-approve", is_flag=True, help="Apply without asking (required off a TTY).")
@click.option(
    "--replication-timeout", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
    help="How long to wait for written delegation to reach every DC the hosts use before "
    "switching them to Kerberos (default: directory.replicationTimeoutSeconds, 300).",
)
def apply(
    source: str,
    hosts: tuple[str, ...],
    parallelism: int,
    refresh_tickets: bool,
    fmt: str,
    color: bool | None,
    full: bool,
    markdown_budget: int | None,
    auto_approve: bool,
    replication_timeout: float | None,
) -> None:
    """Apply a manifest (plan, show, confirm, apply) or exactly a saved plan; then verify."""
    document = _plan_document(source)
    if document is not None:
        saved, loaded = _load_plan_file(source, document)
        with open_fleet(loaded.manifest, parallelism) as fleet:
            observation = observe_for_saved_plan(fleet, saved)
            _refuse_if_stale(saved, observation, source)
            if fmt != "json":
                show_plan(saved, fmt, color, full, markdown_budget)
            the_plan = saved
            report = apply_plan(fleet, saved, observation, replication_timeout)
    else:
        loaded = _load(source)
        with open_fleet(loaded.manifest, parallelism) as fleet:
            observation, the_plan = _observe_and_plan(fleet, loaded, hosts, refresh_tickets)
            if fmt != "json" or not the_plan.has_changes:
                show_plan(the_plan, fmt, color, full, markdown_budget)
            if not the_plan.has_changes:
                sys.exit(EXIT_ERROR if _incomplete(the_plan) else EXIT_OK)
            _confirm(auto_approve)
            report = apply_plan(fleet, the_plan, observation, replication_timeout)
    _report(report, fmt, the_plan)
    sys.exit(EXIT_OK if report.ok else EXIT_ERROR)
