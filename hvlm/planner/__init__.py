"""The planner: desired state (hvlm.model) + observed state (hvlm.state) -> Plan (hvlm.plan). Pure.

Pipeline position: manifest -> model -> (host state, directory state) -> **plan** -> apply ->
verify. The reconciler (hvlm.reconcile) reads the hosts (hvlm.hosts) and the directory
(hvlm.directory), then calls `build_plan`; the renderers show the result and the applier executes
it. This package imports neither pypsrp nor ldap3 and does no I/O. Modules: hvlm.planner.hosts
(phase 2), hvlm.planner.delegation (phases 1 and 3), hvlm.planner.context (what they share);
phase 4 (tickets) and the fingerprints are here.

Rules (issue 6):
- Only declared fields are compared (None in the model = unmanaged); subnets as parsed networks;
  delegation values case-insensitively (an existing case variant satisfies a desired value).
- Networks: when the manifest declares a list, entries not listed are deleted after the additions
  (useAnyNetwork: true declares none, so the list is left alone); a None priority accepts any.
  The same rules as hvlm.hosts.commands.host_commands, which turns a host's changes into cmdlets.
- Delegation is managed only for hosts whose authentication is declared: Kerberos hosts get a value
  per peer, service and name form; CredSSP hosts want none (so pruning removes hvlm's old values).
  Protocol transition is managed for Kerberos hosts only. 0x00080000 is never planned: a finding.
- Order: directory additions, host changes, pruned values (and protocol transition turned off), then
  optional ticket refresh on hosts whose account changed.
- Selection (`--host`): host changes and tickets only for the selected hosts; their own accounts
  fully, and on every other account only the values toward a selected host (both directions).
- Unread hosts get no host changes, a finding, and are listed in `Plan.unread_hosts`.
- Findings: the planner reports the codes hvlm.findings assigns to it (unread hosts and directory,
  read warnings, not-domain-joined, no-incoming-network, computer accounts, tickets); check in
  planned mode, passed in as `findings`, reports the rest: each problem once.
- Every target a change is computed from gets a fingerprint (hvlm.plan) for stale-plan refusal,
  and so do the accounts a switch to Kerberos depends on, even when the plan changes none of
  them: the switched host's (its delegation) and its peers' (the SPNs that delegation names).
Cost: O(hosts x peers x services); hosts are looked up through a dict, never by scanning, and each
peer's delegation values are built once (bench/plan_10k.py).

Public: `build_plan`; `current_fingerprints` (apply PLANFILE, after re-reading);
`settings_from_plan` (a saved plan's host changes as hvlm.hosts.commands.host_commands input);
`host_changes` (one host's phase-2 changes).
"""

from __future__ import annotations

import gc
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager

from hvlm import __version__
from hvlm.findings import TICKETS_NOT_REFRESHED, Finding, finding_order
from hvlm.model import Manifest
from hvlm.plan import (
    DELEGATION_ATTRIBUTE,
    Action,
    Address,
    Change,
    GroupRef,
    Kind,
    ManifestRef,
    Part,
    Phase,
    Plan,
    Target,
    account_fingerprint,
    address_text,
    host_fingerprint,
    target_key,
    to_kerberos,
)
from hvlm.planner.context import Context, make_context
from hvlm.planner.delegation import directory_phases
from hvlm.planner.hosts import host_changes, host_phase, settings_from_plan
from hvlm.state import DirectoryState, HostState

__all__ = [
    "DELEGATION_ATTRIBUTE", "build_plan", "current_fingerprints", "host_changes",
    "settings_from_plan",
]


def build_plan(
    manifest: Manifest,
    hosts: Mapping[str, HostState],
    directory: DirectoryState | None,
    *,
    selection: Collection[str] | None = None,
    refresh_tickets: bool = False,
    host_errors: Mapping[str, str] | None = None,
    directory_error: str | None = None,
    findings: Sequence[Finding] = (),
) -> Plan:
    """Plan the changes that make the observed state match the manifest.

    `hosts` and `host_errors` are keyed by host name (any case); a selected host found in neither
    is reported as not read. `findings` (e.g. validation warnings) are carried into the plan.
    """
    with _no_cycle_collection():
        return _build_plan(manifest, hosts, directory, selection, refresh_tickets, host_errors,
                           directory_error, findings)


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Planning allocates a few objects per delegation value and change (300,000 containers for
    10,000 fresh hosts) and none of them in a reference cycle: refcounting frees them all. The
    cycle collector would still run hundreds of times meanwhile, the full passes walking the
    caller's whole heap (the manifest and the observed state): about a fifth of the planning
    time of a 10,000-host fleet (bench/plan_10k.py). So it waits until the plan is built.
    Process-wide, hence restored only by whoever turned it off (nested or concurrent calls)."""
    enabled = gc.isenabled()
    if enabled:
        gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _build_plan(
    manifest: Manifest,
    hosts: Mapping[str, HostState],
    directory: DirectoryState | None,
    selection: Collection[str] | None,
    refresh_tickets: bool,
    host_errors: Mapping[str, str] | None,
    directory_error: str | None,
    findings: Sequence[Finding],
) -> Plan:
    ctx = make_context(manifest, selection)
    hosts = {key.upper(): state for key, state in hosts.items()}
    errors = {key.upper(): error for key, error in (host_errors or {}).items()}
    found: list[Finding] = list(findings)
    on_hosts, unread = host_phase(ctx, hosts, errors, found)
    switching = {c.host.upper() for c in on_hosts if to_kerberos(c)}
    added, pruned, touched = directory_phases(ctx, directory, directory_error, found, switching)
    tickets = ticket_phase(ctx, touched, unread, found) if refresh_tickets else []
    changes = (*added, *on_hosts, *pruned, *tickets)
    return Plan(
        manifest=ManifestRef(manifest.name, manifest.source, manifest.digest),
        changes=changes,
        findings=tuple(sorted(set(found), key=finding_order)),
        targets=tuple([Target(address, fp) for address, fp in ctx.targets.items()]),
        unread_hosts=tuple(unread),
        directory_read=directory is not None,
        selection=None if ctx.selected is None else tuple(sorted(ctx.selected)),
        refresh_tickets=refresh_tickets,
        hvlm_version=__version__,
        fleet=tuple(spec.name for spec in manifest.hosts),
        groups=tuple(GroupRef(g.name, g.hosts) for g in manifest.groups),
    )


# --- phase 4: tickets, and fingerprints --------------------------------------------------------


def ticket_phase(
    ctx: Context, touched: Iterable[str], unread: Sequence[str], found: list[Finding]
) -> list[Change]:
    changes: list[Change] = []
    for name in touched:
        spec = ctx.index[name.upper()]
        if not ctx.is_selected(spec):
            found.append(TICKETS_NOT_REFRESHED.make(f"host/{spec.name}", name=spec.name))
        elif spec.name not in unread:
            changes.append(Change(
                address_text(Kind.HOST, spec.name, Part.TICKETS), Phase.TICKETS, Action.UPDATE,
                spec.name,
                f"the delegation of {spec.name} changes: purge the computer's Kerberos tickets "
                "(klist purge -li 0x3e7) so it takes effect",
            ))
    return changes


def current_fingerprints(
    hosts: Mapping[str, HostState], directory: DirectoryState | None
) -> dict[str, str]:
    """Fingerprints of everything re-read, by `target_key` (for `hvlm.plan.stale_targets`).

    `hosts` is keyed by host name (any case), as `build_plan` takes it.
    """
    result = {target_key(Address(Kind.HOST, key)): host_fingerprint(s.migration)
              for key, s in hosts.items()}
    for account in directory.accounts if directory else ():
        result[target_key(Address(Kind.DIRECTORY, account.name))] = account_fingerprint(account)
    return result
