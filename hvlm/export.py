"""Brownfield: the manifest of a fleet as it is (`hvlm export INVENTORY`). Pure.

Pipeline position: the pipeline backwards (host and directory state -> manifest), beside the
planner. `hvlm export` (hvlm.cli) loads an inventory (a manifest, or a minimal one with only
`directory`, `connection` and `hosts`), observes it exactly as `hvlm plan` does
(hvlm.reconcile.Fleet.observe), and `export_document` turns the observation into a manifest
document; `dump_manifest` writes it as YAML. The result is valid (`hvlm validate`) and `hvlm plan`
on it reports no change. How:

- every migration setting is written, so each is managed and equal to what the host has; the
  most common value of each field goes to `defaults`, the others stay as per-host overrides;
- incoming networks: a host on "any network" gets `useAnyNetwork: true`; a host with a list gets
  its `networks` (with their priorities); a host with neither gets `useAnyNetwork: false` (its
  empty list is then not managed), and then no network setting goes to `defaults`;
- groups are the maximal cliques of MUTUAL delegation: A and B are linked when A's account holds
  BOTH name forms of B's migration service and B's holds both of A's. Cliques (not merely connected
  components) because a group makes every member a peer of every other; a link with one name form
  only is left out, since plan would add the other form. A group whose members equal an inventory
  group keeps its name. Each Kerberos host's `delegation.services` are those it already delegates
  to all of its peers (both forms); `protocolTransition` is the account's bit;
- `directory`, `connection`, `metadata` and each host's name/fqdn/address/connection are copied
  from the inventory as written; `prune` is left out (false), so nothing is ever deleted.

A host that cannot be read, or a directory that cannot, makes export fail: a partial manifest
would make the next plan change what it did not see.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

import yaml

from hvlm.errors import HvlmError
from hvlm.model import AuthenticationType, DelegationService, HostSpec, Manifest
from hvlm.settings import HOST_SETTINGS
from hvlm.state import DelegationState, MigrationState, ObservationLike

_SERVICES = (DelegationService.MIGRATION, DelegationService.CIFS)
_NETWORK = "network"  # the pseudo-field holding useAnyNetwork / networks together


class ExportError(HvlmError):
    """The fleet could not be exported as it is (a host or the directory unread...)."""


def export_document(
    inventory: Mapping[str, Any],
    manifest: Manifest,
    observation: ObservationLike,
    selection: Sequence[str] = (),
) -> dict[str, Any]:
    """The manifest document of the observed fleet (`inventory` is the raw inventory document)."""
    wanted = {name.upper() for name in selection}
    specs = [s for s in manifest.hosts if not wanted or s.key in wanted]
    states = _read_states(specs, observation)
    accounts = _accounts(specs, manifest, observation, states)
    groups = _groups(specs, accounts, inventory)
    peers = _peers(groups, {s.key: s for s in specs})
    migration = {s.key: _migration_fields(states[s.key]) for s in specs}
    delegation = {s.key: _delegation_fields(states[s.key], accounts.get(s.key),
                                            peers.get(s.key, []))
                  for s in specs}
    mig_defaults = _factor(migration.values(), never={_NETWORK: ("none",)})
    del_defaults = _factor(delegation.values())
    raw_hosts = {str(h["name"]).upper(): h for h in inventory["hosts"]}
    document: dict[str, Any] = {
        "apiVersion": "hvlm/v1",
        "kind": "LiveMigrationConfig",
        "metadata": _plain(inventory["metadata"]),
    }
    for section in ("directory", "connection"):
        if section in inventory:
            document[section] = _plain(inventory[section])
    defaults = {"migration": _migration_yaml(mig_defaults)}
    if del_defaults:
        defaults["delegation"] = _delegation_yaml(del_defaults)
    document["defaults"] = defaults
    document["hosts"] = [
        _host_entry(raw_hosts[s.key], migration[s.key], mig_defaults, delegation[s.key],
                    del_defaults)
        for s in specs
    ]
    if groups:
        document["groups"] = [{"name": name, "hosts": list(members)} for name, members in groups]
    return document


# --- observation -------------------------------------------------------------------------------


def _read_states(
    specs: Sequence[HostSpec], observation: ObservationLike
) -> dict[str, MigrationState]:
    errors = observation.host_errors
    unread = [s for s in specs if s.key not in observation.hosts or s.key in errors]
    if unread:
        details = "; ".join(f"{s.name}: {errors.get(s.key, 'not read')}"
                            for s in unread[:5])
        raise ExportError(
            f"{len(unread)} host(s) could not be read ({details}); nothing exported "
            "(export the others with --host)"
        )
    return {s.key: observation.hosts[s.key].migration for s in specs}


def _accounts(
    specs: Sequence[HostSpec], manifest: Manifest, observation: ObservationLike,
    states: Mapping[str, MigrationState],
) -> dict[str, DelegationState]:
    if manifest.directory is None:
        kerberos = [s.name for s in specs
                    if states[s.key].authentication is AuthenticationType.KERBEROS]
        if kerberos:
            raise ExportError(
                f"{', '.join(kerberos[:5])} migrate(s) with Kerberos: the inventory needs a "
                "directory section so that their delegation can be exported"
            )
        return {}
    if observation.directory is None:
        raise ExportError(
            f"the directory could not be read ({observation.directory_error or 'no state'}); "
            "nothing exported"
        )
    found = {s.key: observation.directory.account(s.name) for s in specs}
    return {key: account for key, account in found.items() if account is not None}


# --- groups: maximal cliques of mutual delegation ------------------------------------------------


def _delegates(account: DelegationState | None, target: HostSpec,
               service: DelegationService) -> bool:
    """Does the account hold both name forms of `service` on `target` (case-insensitively)?"""
    return account is not None and all(
        account.has_value(f"{service.spn_class}/{name}") for name in (target.name, target.fqdn)
    )


def _links(
    specs: Sequence[HostSpec], accounts: Mapping[str, DelegationState]
) -> dict[str, set[str]]:
    links: dict[str, set[str]] = {s.key: set() for s in specs}
    for i, a in enumerate(specs):
        for b in specs[i + 1:]:
            if _delegates(accounts.get(a.key), b, DelegationService.MIGRATION) and \
                    _delegates(accounts.get(b.key), a, DelegationService.MIGRATION):
                links[a.key].add(b.key)
                links[b.key].add(a.key)
    return links


def _cliques(links: Mapping[str, set[str]], order: Mapping[str, int]) -> list[tuple[str, ...]]:
    """Maximal cliques of at least two hosts (Bron-Kerbosch with a pivot), in manifest order."""
    found: list[tuple[str, ...]] = []

    def expand(clique: set[str], candidates: set[str], excluded: set[str]) -> None:
        if not candidates and not excluded:
            if len(clique) > 1:
                found.append(tuple(sorted(clique, key=order.__getitem__)))
            return
        pivot = max(candidates | excluded, key=lambda k: len(links[k] & candidates))
        for key in sorted(candidates - links[pivot], key=order.__getitem__):
            expand(clique | {key}, candidates & links[key], excluded & links[key])
            candidates = candidates - {key}
            excluded = excluded | {key}

    expand(set(), {k for k, linked in links.items() if linked}, set())
    return sorted(found, key=lambda members: [order[k] for k in members])


def _groups(
    specs: Sequence[HostSpec], accounts: Mapping[str, DelegationState],
    inventory: Mapping[str, Any],
) -> list[tuple[str, tuple[str, ...]]]:
    order = {s.key: i for i, s in enumerate(specs)}
    names = {s.key: s.name for s in specs}
    known = {frozenset(str(h).upper() for h in g["hosts"]): str(g["name"])
             for g in inventory.get("groups", [])}
    taken = set(known.values())
    groups: list[tuple[str, tuple[str, ...]]] = []
    counter = 0
    for members in _cliques(_links(specs, accounts), order):
        name = known.get(frozenset(members))
        while name is None or name in {g[0] for g in groups}:
            counter += 1
            name = f"delegation-{counter}" if f"delegation-{counter}" not in taken else None
        groups.append((name, tuple(names[k] for k in members)))
    return groups


def _peers(
    groups: Sequence[tuple[str, tuple[str, ...]]], index: Mapping[str, HostSpec]
) -> dict[str, list[HostSpec]]:
    """Every host's peers, as the manifest will resolve them (the union over its groups)."""
    peers: dict[str, list[HostSpec]] = {}
    for _, members in groups:
        for member in members:
            known = peers.setdefault(member.upper(), [])
            known.extend(index[m.upper()] for m in members
                         if m.upper() != member.upper() and index[m.upper()] not in known)
    return peers


# --- fields and factoring ------------------------------------------------------------------------

Fields = dict[str, Hashable]


def _migration_fields(state: MigrationState) -> Fields:
    network: Hashable
    if state.use_any_network:
        network = ("any",)
    elif state.networks:
        nets = sorted(state.networks, key=lambda n: (n.priority is None, n.priority or 0,
                                                     n.subnet.version,
                                                     int(n.subnet.network_address)))
        network = ("list", tuple((str(n.subnet), n.priority) for n in nets))
    else:
        network = ("none",)
    fields: Fields = {s.key: s.plain(getattr(state, s.attr)) for s in HOST_SETTINGS
                      if not s.with_networks}
    fields[_NETWORK] = network
    return fields


def _delegation_fields(
    state: MigrationState, account: DelegationState | None, peers: Sequence[HostSpec]
) -> Fields:
    """Only what matters for this host: services and protocol transition of a Kerberos host."""
    if state.authentication is not AuthenticationType.KERBEROS or account is None:
        return {}
    fields: Fields = {"protocolTransition": account.protocol_transition}
    if peers:
        fields["services"] = tuple(
            service.value for service in _SERVICES
            if all(_delegates(account, peer, service) for peer in peers)
        )
    return fields


def _factor(rows: Iterable[Fields], never: Mapping[str, Hashable] | None = None) -> Fields:
    """The most common value of each field (first seen wins a tie). A field any row holds a
    `never` value in is not factored out (that value cannot be overridden over a default)."""
    rows = list(rows)
    counts: dict[str, Counter[Hashable]] = {}
    for row in rows:
        for key, value in row.items():
            counts.setdefault(key, Counter())[value] += 1
    blocked = {k for k, v in (never or {}).items() if any(row.get(k) == v for row in rows)}
    return {key: c.most_common(1)[0][0] for key, c in counts.items() if key not in blocked}


def _migration_yaml(fields: Fields) -> dict[str, Any]:
    out: dict[str, Any] = {k: v for k, v in fields.items() if k != _NETWORK}
    network = fields.get(_NETWORK)
    if isinstance(network, tuple) and network:
        if network[0] == "any":
            out["useAnyNetwork"] = True
        elif network[0] == "none":
            out["useAnyNetwork"] = False
        else:
            # An unset priority (no Metric on the host) is left unmanaged: no `priority` key.
            out["networks"] = [{"subnet": s} if p is None else {"subnet": s, "priority": p}
                               for s, p in network[1]]
    return out


def _delegation_yaml(fields: Fields) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "services" in fields and isinstance(fields["services"], tuple):
        out["services"] = list(fields["services"])
    if "protocolTransition" in fields:
        out["protocolTransition"] = fields["protocolTransition"]
    return out


def _overrides(fields: Fields, defaults: Fields) -> Fields:
    return {k: v for k, v in fields.items() if k not in defaults or defaults[k] != v}


def _host_entry(
    raw: Mapping[str, Any], migration: Fields, mig_defaults: Fields, delegation: Fields,
    del_defaults: Fields,
) -> dict[str, Any]:
    entry = {k: _plain(raw[k]) for k in ("name", "fqdn", "address", "connection") if k in raw}
    mig = _migration_yaml(_overrides(migration, mig_defaults))
    if mig:
        entry["migration"] = mig
    dele = _delegation_yaml(_overrides(delegation, del_defaults))
    if dele:
        entry["delegation"] = dele
    return entry


def _plain(value: Any) -> Any:
    """A deep copy made of fresh dicts and lists (no YAML anchors, no shared objects)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# --- YAML ----------------------------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump_manifest(document: Mapping[str, Any], source: str = "") -> str:
    header = "# Exported by `hvlm export`" + (f" from {source}" if source else "") + \
        ": the fleet as it is.\n# `hvlm plan` on this file reports no change.\n"
    body = yaml.dump(dict(document), Dumper=_Dumper, sort_keys=False, default_flow_style=False,
                     allow_unicode=True, width=100)
    return header + body
