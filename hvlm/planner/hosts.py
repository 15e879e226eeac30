"""The planner's host phase: a host's declared settings and networks against what it has. Pure.

Pipeline position: plan stage (model + host state -> **host changes**), called by
hvlm.planner.build_plan; hvlm.hosts.commands turns the changes into cmdlets, and
`settings_from_plan` turns a saved plan's changes back into its input. Settings come from the one
table hvlm.settings.HOST_SETTINGS; findings from hvlm.findings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from hvlm.findings import (
    Finding,
    host_unread,
    no_incoming_network,
    not_domain_joined,
    read_warnings,
    stranded,
)
from hvlm.model import (
    HostSpec,
    IPNetwork,
    MigrationNetwork,
    MigrationSettings,
)
from hvlm.plan import (
    Action,
    Address,
    Change,
    FieldValue,
    Kind,
    Part,
    Phase,
    host_fingerprint,
)
from hvlm.planner.context import Context
from hvlm.settings import BY_KEY, HOST_SETTINGS, HostSetting
from hvlm.state import HostState, MigrationState, ObservedNetwork


def host_phase(
    ctx: Context, hosts: Mapping[str, HostState], errors: Mapping[str, str], found: list[Finding]
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
