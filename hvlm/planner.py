"""The planner: desired state (hvlm.model) + observed state (hvlm.state) -> Plan (hvlm.plan). Pure.

Pipeline position: `hvlm plan` / `hvlm apply` read the hosts (hvlm.hosts) and the directory
(hvlm.directory), then call `build_plan`; the renderers show the result and the applier executes it.
This module imports neither pypsrp nor ldap3 and does no I/O.

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
- Every target a change is computed from gets a fingerprint (hvlm.plan) for stale-plan refusal.
Cost: O(hosts x peers x services); hosts are looked up through a dict, never by scanning, and each
peer's delegation values are built once (bench/plan_10k.py).

Public: `build_plan`; `current_fingerprints` (apply PLANFILE, after re-reading);
`settings_from_plan` (a saved plan's host changes as hvlm.hosts.commands.host_commands input);
`host_changes` (one host's phase-2 changes).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hvlm import __version__
from hvlm.errors import HvlmError
from hvlm.findings import (
    TICKETS_NOT_REFRESHED,
    Finding,
    computer_account_missing,
    directory_unread,
    finding_order,
    host_unread,
    no_incoming_network,
    not_domain_joined,
    read_warnings,
    stranded,
    unconstrained_delegation,
)
from hvlm.model import (
    UAC_TRUSTED_TO_AUTH_FOR_DELEGATION,
    DelegationService,
    HostSpec,
    IPNetwork,
    Manifest,
    MigrationNetwork,
    MigrationSettings,
    delegation_targets,
    manifest_names,
    owned_value,
)
from hvlm.plan import (
    Action,
    Address,
    Change,
    FieldValue,
    Kind,
    ManifestRef,
    Part,
    Phase,
    Plan,
    Target,
    account_fingerprint,
    host_fingerprint,
    target_key,
)
from hvlm.settings import BY_KEY, HOST_SETTINGS, HostSetting
from hvlm.state import DelegationState, DirectoryState, HostState, MigrationState, ObservedNetwork

DELEGATION_ATTRIBUTE = "allowedToDelegateTo"


_PeerValues = tuple[tuple[str, ...], tuple[str, ...]]  # values toward a peer, and lower-cased


@dataclass(frozen=True)
class _Context:
    manifest: Manifest
    index: Mapping[str, HostSpec]  # by upper-cased name
    names: frozenset[str]  # every manifest host's short name and FQDN, lower-cased
    selected: frozenset[str] | None  # upper-cased keys, None = all
    selected_names: frozenset[str]  # short names and FQDNs of the selected hosts, lower-cased
    # values toward each peer for one service set, built once: services -> peer name -> values
    toward: dict[tuple[DelegationService, ...], dict[str, _PeerValues]] = \
        field(default_factory=dict)
    # fingerprints of the observed objects the changes are computed from: target -> sha256
    targets: dict[str, str] = field(default_factory=dict)

    def is_selected(self, spec: HostSpec) -> bool:
        return self.selected is None or spec.key in self.selected


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
    ctx = _context(manifest, selection)
    hosts = {key.upper(): state for key, state in hosts.items()}
    errors = {key.upper(): error for key, error in (host_errors or {}).items()}
    found: list[Finding] = list(findings)
    on_hosts, unread = _host_phase(ctx, hosts, errors, found)
    added, pruned, touched = _directory_phases(ctx, directory, directory_error, found)
    tickets = _ticket_phase(ctx, touched, unread, found) if refresh_tickets else []
    changes = (*added, *on_hosts, *pruned, *tickets)
    return Plan(
        manifest=ManifestRef(manifest.name, manifest.source, manifest.digest),
        changes=changes,
        findings=tuple(sorted(set(found), key=finding_order)),
        targets=tuple(Target(address, fp) for address, fp in ctx.targets.items()),
        unread_hosts=tuple(unread),
        directory_read=directory is not None,
        selection=None if ctx.selected is None else tuple(sorted(ctx.selected)),
        refresh_tickets=refresh_tickets,
        hvlm_version=__version__,
    )


def _context(manifest: Manifest, selection: Collection[str] | None) -> _Context:
    index = {spec.key: spec for spec in manifest.hosts}
    selected: frozenset[str] | None = None
    selected_names: frozenset[str] = manifest_names(manifest)
    if selection is not None:
        selected = frozenset(name.upper() for name in selection)
        unknown = sorted(selected - index.keys())
        if unknown:
            raise HvlmError(f"--host {', '.join(unknown)}: not a host of the manifest")
        chosen = [index[key] for key in selected]
        selected_names = frozenset(n for s in chosen for n in (s.name.lower(), s.fqdn.lower()))
    return _Context(manifest, index, manifest_names(manifest), selected, selected_names)


# --- phase 2: hosts -------------------------------------------------------------------------------


def _host_phase(
    ctx: _Context, hosts: Mapping[str, HostState], errors: Mapping[str, str], found: list[Finding]
) -> tuple[list[Change], list[str]]:
    changes: list[Change] = []
    unread: list[str] = []
    for spec in ctx.manifest.hosts:
        if not ctx.is_selected(spec):
            continue
        state = hosts.get(spec.key)
        if state is None or spec.key in errors:
            unread.append(spec.name)
            found.append(host_unread(spec, errors.get(spec.key, "")))
            continue
        found.extend(_host_findings(spec, state))
        planned = host_changes(spec, state.migration)
        if _stranded(spec, state.migration):
            found.append(no_incoming_network(spec, refused=bool(planned)))
        if planned:
            ctx.targets[str(Address(Kind.HOST, spec.name))] = host_fingerprint(state.migration)
        changes.extend(planned)
    return changes, unread


def _stranded(spec: HostSpec, observed: MigrationState) -> bool:
    """Would the host end enabled, not on any network, with no network listed?"""
    wanted = spec.migration
    return stranded(
        observed.enabled if wanted.enabled is None else wanted.enabled,
        observed.use_any_network if wanted.use_any_network is None else wanted.use_any_network,
        observed.networks if wanted.networks is None else wanted.networks,
    )


def _host_findings(spec: HostSpec, state: HostState) -> list[Finding]:
    """What the planner reports of a read host (hvlm.findings: the rules check shares)."""
    found = list(read_warnings(spec, state.read_warnings))
    outside = not_domain_joined(spec, state.facts)
    if outside is not None:
        found.append(outside)
    return found


def host_changes(spec: HostSpec, observed: MigrationState) -> list[Change]:
    """The changes of one host, in order: settings, networks added or changed, networks removed."""
    changes: list[Change] = []
    settings = _migration_change(spec, observed)
    if settings is not None:
        changes.append(settings)
    changes.extend(_network_changes(spec, observed))
    return changes


def _migration_change(spec: HostSpec, observed: MigrationState) -> Change | None:
    """One change holding every declared setting (hvlm.settings) that differs from the host."""
    wanted = spec.migration
    differ: list[tuple[HostSetting, object, object]] = []
    for setting in HOST_SETTINGS:
        want = getattr(wanted, setting.attr)
        if want is not None:
            have = getattr(observed, setting.attr)
            if want != have:
                differ.append((setting, want, have))
    if not differ:
        return None
    return Change(
        str(Address(Kind.HOST, spec.name, Part.MIGRATION)), Phase.HOST, Action.UPDATE, spec.name,
        f"differs from the manifest: {', '.join(s.key for s, _, _ in differ)}",
        {s.key: s.plain(have) for s, _, have in differ},
        {s.key: s.plain(want) for s, want, _ in differ},
    )


def _network_key(subnet: IPNetwork) -> tuple[int, int, int]:
    return subnet.version, int(subnet.network_address), subnet.prefixlen


def _same_networks(
    wanted: tuple[MigrationNetwork, ...], current: tuple[ObservedNetwork, ...]
) -> bool:
    """The common case, cheaply: the host lists exactly the declared networks, in order."""
    return len(wanted) == len(current) and all(
        w.subnet == c.subnet and w.priority in (None, c.priority)
        for w, c in zip(wanted, current, strict=True)
    )


def _network_changes(spec: HostSpec, observed: MigrationState) -> list[Change]:
    wanted = spec.migration.networks
    if wanted is None or _same_networks(wanted, observed.networks):
        return []
    current = {net.subnet: net.priority for net in observed.networks}
    changes: list[Change] = []
    for net in wanted:
        if net.subnet in current and net.priority in (None, current[net.subnet]):
            continue
        text = str(net.subnet)
        address = str(Address(Kind.HOST, spec.name, Part.NETWORK, net.subnet))
        after: dict[str, FieldValue] = {"subnet": text, "priority": net.priority}
        if net.subnet not in current:
            changes.append(Change(address, Phase.HOST, Action.CREATE, spec.name,
                                  "declared in the manifest, missing on the host", None, after))
            continue
        before: dict[str, FieldValue] = {"subnet": text, "priority": current[net.subnet]}
        have = current[net.subnet]
        shown = "unset" if have is None else str(have)
        reason = f"priority {shown} on the host, the manifest wants {net.priority}"
        changes.append(Change(address, Phase.HOST, Action.UPDATE, spec.name, reason,
                              before, after))
    if current:
        changes.extend(_removed_networks(spec, current, wanted))
    return changes


def _removed_networks(
    spec: HostSpec, current: dict[IPNetwork, int | None], wanted: tuple[MigrationNetwork, ...]
) -> list[Change]:
    declared = {net.subnet for net in wanted}
    return [
        Change(str(Address(Kind.HOST, spec.name, Part.NETWORK, subnet)), Phase.HOST,
               Action.DELETE, spec.name,
               "on the host, not in the manifest's list of networks",
               {"subnet": str(subnet), "priority": current[subnet]}, None)
        for subnet in sorted(current.keys() - declared, key=_network_key)
    ]


def settings_from_plan(changes: Iterable[Change], observed: MigrationState) -> MigrationSettings:
    """The desired settings that make hvlm.hosts.commands.host_commands do exactly these host
    changes (one host's phase-2 changes): how `apply PLANFILE` executes a saved plan, not the
    manifest. Fields without a change stay None (unmanaged); networks are listed only when a
    network changes: the changed ones in plan order, then the host's untouched ones."""
    fields: dict[str, Any] = {}
    listed: list[MigrationNetwork] = []
    dropped: set[IPNetwork] = set()
    for change in changes:
        where = change.where
        if where.part is Part.MIGRATION and change.after:
            for name, value in change.after.items():
                setting = BY_KEY[name]
                fields[setting.attr] = setting.typed(value)
        elif where.part is Part.NETWORK and where.subnet is not None:
            subnet = where.subnet
            dropped.add(subnet)
            if change.action is not Action.DELETE:
                priority = (change.after or {}).get("priority")
                listed.append(MigrationNetwork(subnet, priority if isinstance(priority, int)
                                               and not isinstance(priority, bool) else None))
    if dropped:
        kept = [MigrationNetwork(n.subnet, n.priority) for n in observed.networks
                if n.subnet not in dropped]
        fields["networks"] = (*listed, *kept)
    return MigrationSettings(**fields)


# --- phases 1 and 3: the directory -----------------------------------------------------------


def _directory_phases(
    ctx: _Context, directory: DirectoryState | None, error: str | None, found: list[Finding]
) -> tuple[list[Change], list[Change], list[str]]:
    """(additions, removals, names of hosts whose account changes)."""
    managed = [s for s in ctx.manifest.hosts if s.migration.authentication is not None]
    if directory is None:
        if any(s.uses_kerberos and ctx.is_selected(s) for s in managed):
            found.append(directory_unread(error))
        return [], [], []
    accounts = {a.name.upper(): a for a in directory.accounts}
    added: list[Change] = []
    pruned: list[Change] = []
    touched: list[str] = []
    for spec in managed:
        account = accounts.get(spec.key)
        if account is None:
            if ctx.is_selected(spec):
                found.append(computer_account_missing(spec, spec.uses_kerberos))
            continue
        unconstrained = unconstrained_delegation(spec, account)
        if ctx.is_selected(spec) and unconstrained is not None:
            found.append(unconstrained)
        adds, removes = _account_changes(ctx, spec, account)
        added.extend(adds)
        pruned.extend(removes)
        if adds or removes:
            touched.append(spec.name)
            ctx.targets[str(Address(Kind.DIRECTORY, spec.name))] = account_fingerprint(account)
    return added, pruned, touched


def _target_name(value: str) -> str:
    target = value.partition("/")[2]
    return target.split(":", 1)[0].split("/", 1)[0].lower()


def _desired_values(ctx: _Context, spec: HostSpec) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """hvlm.model.desired_delegation (and the same values lower-cased), each peer's values built
    once for the whole fleet."""
    if not spec.uses_kerberos:
        return (), ()
    services = spec.delegation.services
    toward = ctx.toward.setdefault(services, {})
    values: list[str] = []
    lowered: list[str] = []
    for name in spec.peers:
        cached = toward.get(name)
        if cached is None:
            peer = ctx.index.get(name.upper())
            if peer is None:
                raise HvlmError(f"host {spec.name}: peer {name} is not a host of the manifest")
            targets = delegation_targets(peer, services)
            cached = toward[name] = (targets, tuple(v.lower() for v in targets))
        values.extend(cached[0])
        lowered.extend(cached[1])
    return tuple(values), tuple(lowered)


def _account_changes(
    ctx: _Context, spec: HostSpec, account: DelegationState
) -> tuple[list[Change], list[Change]]:
    selected = ctx.is_selected(spec)
    desired, lowered = _desired_values(ctx, spec)
    stored = account.allowed_to_delegate_to
    add = _missing_values(ctx, selected, desired, lowered, stored)
    delete: list[str] = []
    if ctx.manifest.prune_delegation:
        delete = _stale_values(ctx, selected, desired, lowered, stored)
    transition = _transition(spec, account) if selected else None
    return _delegation_changes(spec, account, add, delete, transition)


def _missing_values(
    ctx: _Context, selected: bool, desired: tuple[str, ...], lowered: tuple[str, ...],
    stored: tuple[str, ...],
) -> list[str]:
    """Desired values with no case variant stored (exact matches first: the common case)."""
    exact = set(stored)
    if all(v in exact for v in desired):
        return []
    have = {v.lower() for v in stored}
    missing = {low: v for v, low in zip(desired, lowered, strict=True) if low not in have}
    add = list(missing.values())  # one value per case-insensitive key, in the manifest's order
    if not selected:
        add = [v for v in add if _target_name(v) in ctx.selected_names]
    return add


def _stale_values(
    ctx: _Context, selected: bool, desired: tuple[str, ...], lowered: tuple[str, ...],
    stored: tuple[str, ...],
) -> list[str]:
    """hvlm's own stored values that no desired value matches, case-insensitively."""
    undesired = set(stored).difference(desired)
    candidates = [
        v for v in stored
        if v in undesired and owned_value(v, ctx.names)
        and (selected or _target_name(v) in ctx.selected_names)
    ]
    if not candidates:
        return []
    wanted = set(lowered)
    return [v for v in candidates if v.lower() not in wanted]


def _transition(spec: HostSpec, account: DelegationState) -> bool | None:
    """The protocol-transition bit to set (True/False), None when nothing to do."""
    wanted = spec.delegation.protocol_transition
    if not spec.uses_kerberos or wanted is None or wanted == account.protocol_transition:
        return None
    return wanted


def _delegation_changes(
    spec: HostSpec, account: DelegationState, add: list[str], delete: list[str],
    transition: bool | None,
) -> tuple[list[Change], list[Change]]:
    adds: list[Change] = []
    removes: list[Change] = []
    values = tuple(account.allowed_to_delegate_to)
    address = str(Address(Kind.DIRECTORY, spec.name, Part.DELEGATION))
    if add:
        after = values + tuple(add)
        reason = (f"{spec.name} migrates with Kerberos to {len(spec.peers)} peer(s): "
                  f"{len(add)} value(s) missing")
        adds.append(Change(address, Phase.DIRECTORY_ADD,
                           Action.CREATE if not values else Action.UPDATE, spec.name, reason,
                           {DELEGATION_ATTRIBUTE: values}, {DELEGATION_ATTRIBUTE: after},
                           add=tuple(add)))
        values = after
    if delete:
        gone = set(delete)
        after = tuple(v for v in values if v not in gone)
        reason = f"prune.delegation: hvlm's values toward hosts that are not {spec.name}'s peers"
        removes.append(Change(str(Address(Kind.DIRECTORY, spec.name, Part.DELEGATION_PRUNE)),
                              Phase.DIRECTORY_PRUNE, Action.DELETE,
                              spec.name, reason, {DELEGATION_ATTRIBUTE: values},
                              {DELEGATION_ATTRIBUTE: after}, delete=tuple(delete)))
    if transition is not None:
        change = _transition_change(spec, account, transition)
        (adds if transition else removes).append(change)
    return adds, removes


def _transition_change(spec: HostSpec, account: DelegationState, wanted: bool) -> Change:
    uac = account.user_account_control
    new = uac | UAC_TRUSTED_TO_AUTH_FOR_DELEGATION if wanted else \
        uac & ~UAC_TRUSTED_TO_AUTH_FOR_DELEGATION
    phase = Phase.DIRECTORY_ADD if wanted else Phase.DIRECTORY_PRUNE
    reason = ("delegation.protocolTransition: "
              f"{'true' if wanted else 'false'} (\"use any authentication protocol\")")
    return Change(
        str(Address(Kind.DIRECTORY, spec.name, Part.PROTOCOL_TRANSITION)), phase, Action.UPDATE,
        spec.name, reason,
        {"protocolTransition": not wanted, "userAccountControl": uac},
        {"protocolTransition": wanted, "userAccountControl": new},
    )


# --- phase 4: tickets, and fingerprints --------------------------------------------------------


def _ticket_phase(
    ctx: _Context, touched: Iterable[str], unread: Sequence[str], found: list[Finding]
) -> list[Change]:
    changes: list[Change] = []
    for name in touched:
        spec = ctx.index[name.upper()]
        if not ctx.is_selected(spec):
            found.append(TICKETS_NOT_REFRESHED.make(f"host/{spec.name}", name=spec.name))
        elif spec.name not in unread:
            changes.append(Change(
                str(Address(Kind.HOST, spec.name, Part.TICKETS)), Phase.TICKETS, Action.UPDATE,
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
