"""The planner's host phase: a host's declared settings and networks against what it has. Pure.

Pipeline position: plan stage (model + host state -> **host changes**), called by
hvlm.planner.build_plan; hvlm.hosts.commands turns the changes into cmdlets, and
`settings_from_plan` turns a saved plan's changes back into its input. Settings come from the one
table hvlm.settings.HOST_SETTINGS; findings from hvlm.findings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

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
    Change,
    FieldValue,
    Kind,
    Part,
    Phase,
    address_text,
    host_fingerprint,
)
from hvlm.planner.context import Context
from hvlm.settings import BY_KEY, HOST_SETTINGS, HostSetting, PlainValue
from hvlm.state import HostState, MigrationState, ObservedNetwork


def host_phase(
    ctx: Context, hosts: Mapping[str, HostState], errors: Mapping[str, str], found: list[Finding]
) -> tuple[list[Change], list[str]]:
    changes: list[Change] = []
    unread: list[str] = []
    declared: dict[int, _Declared] = {}  # by id(): the manifest holds every MigrationSettings
    for spec in ctx.manifest.hosts:
        key = spec.key
        if ctx.selected is not None and key not in ctx.selected:
            continue
        state = hosts.get(key)
        if state is None or key in errors:
            unread.append(spec.name)
            found.append(host_unread(spec, errors.get(key, "")))
            continue
        if state.read_warnings:
            found.extend(read_warnings(spec, state.read_warnings))
        if state.facts.part_of_domain is False:
            outside = not_domain_joined(spec, state.facts)
            if outside is not None:
                found.append(outside)
        wanted = spec.migration
        rows = declared.get(id(wanted))
        if rows is None:
            rows = declared[id(wanted)] = _declared(wanted)
        observed = state.migration
        planned = _host_changes(spec, observed, rows)
        if _stranded(spec, observed):
            found.append(no_incoming_network(spec, refused=bool(planned)))
        if planned:
            ctx.targets[address_text(Kind.HOST, spec.name)] = host_fingerprint(observed)
            changes.extend(planned)
    return changes, unread


class _Declared(NamedTuple):
    """A MigrationSettings prepared once per plan (hosts share it): its declared settings as
    (row, attr, wanted value, its plain form), and its networks with their text."""

    rows: tuple[tuple[HostSetting, str, object, PlainValue], ...]
    networks: tuple[tuple[MigrationNetwork, str], ...] | None


def _declared(wanted: MigrationSettings) -> _Declared:
    rows = []
    for setting in HOST_SETTINGS:
        want = getattr(wanted, setting.attr)
        if want is not None:
            rows.append((setting, setting.attr, want, setting.plain(want)))
    networks = None if wanted.networks is None else \
        tuple((net, str(net.subnet)) for net in wanted.networks)
    return _Declared(tuple(rows), networks)


def _stranded(spec: HostSpec, observed: MigrationState) -> bool:
    """Would the host end enabled, not on any network, with no network listed?"""
    wanted = spec.migration
    return stranded(
        observed.enabled if wanted.enabled is None else wanted.enabled,
        observed.use_any_network if wanted.use_any_network is None else wanted.use_any_network,
        observed.networks if wanted.networks is None else wanted.networks,
    )


def host_changes(spec: HostSpec, observed: MigrationState) -> list[Change]:
    """The changes of one host, in order: settings, networks added or changed, networks removed."""
    return _host_changes(spec, observed, _declared(spec.migration))


def _host_changes(spec: HostSpec, observed: MigrationState, declared: _Declared) -> list[Change]:
    changes: list[Change] = []
    settings = _migration_change(spec, observed, declared)
    if settings is not None:
        changes.append(settings)
    wanted = spec.migration.networks
    if declared.networks is not None and wanted is not None \
            and not _same_networks(wanted, observed.networks):
        changes.extend(_network_changes(spec, observed, declared.networks))
    return changes


def _migration_change(spec: HostSpec, observed: MigrationState, declared: _Declared
                      ) -> Change | None:
    """One change holding every declared setting (hvlm.settings) that differs from the host."""
    differ = [(setting, plain, have) for setting, attr, want, plain in declared.rows
              if (have := getattr(observed, attr)) != want]
    if not differ:
        return None
    return Change(
        address_text(Kind.HOST, spec.name, Part.MIGRATION), Phase.HOST, Action.UPDATE, spec.name,
        f"differs from the manifest: {', '.join(s.key for s, _, _ in differ)}",
        {s.key: s.plain(have) for s, _, have in differ},
        {s.key: plain for s, plain, _ in differ},
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


def _network_changes(
    spec: HostSpec, observed: MigrationState, wanted: tuple[tuple[MigrationNetwork, str], ...]
) -> list[Change]:
    current = {net.subnet: net.priority for net in observed.networks}
    changes: list[Change] = []
    for net, text in wanted:
        known = bool(current) and net.subnet in current
        if known and net.priority in (None, current[net.subnet]):
            continue
        address = address_text(Kind.HOST, spec.name, Part.NETWORK, text)
        after: dict[str, FieldValue] = {"subnet": text, "priority": net.priority}
        if not known:
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
        changes.extend(_removed_networks(spec, current, tuple(net for net, _ in wanted)))
    return changes


def _removed_networks(
    spec: HostSpec, current: dict[IPNetwork, int | None], wanted: tuple[MigrationNetwork, ...]
) -> list[Change]:
    declared = {net.subnet for net in wanted}
    return [
        Change(address_text(Kind.HOST, spec.name, Part.NETWORK, subnet), Phase.HOST,
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
