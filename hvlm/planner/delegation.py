"""The planner's directory phases: constrained delegation and protocol transition per account.

Pipeline position: plan stage (model + directory state -> **directory changes**), called by
hvlm.planner.build_plan: values added first (phase directory-add), hvlm's stale values removed
last (phase directory-prune). Pure: imports no ldap3.
"""

from __future__ import annotations

from collections.abc import Collection
from itertools import chain

from hvlm.errors import HvlmError
from hvlm.findings import (
    Finding,
    computer_account_missing,
    directory_unread,
    unconstrained_delegation,
)
from hvlm.model import (
    UAC_TRUSTED_TO_AUTH_FOR_DELEGATION,
    HostSpec,
    delegation_targets,
    owned_value,
    spn_host,
)
from hvlm.plan import (
    DELEGATION_ATTRIBUTE,
    Action,
    Change,
    Kind,
    Part,
    Phase,
    account_fingerprint,
    address_text,
)
from hvlm.planner.context import Context, PeerValues
from hvlm.state import DelegationState, DirectoryState


def directory_phases(
    ctx: Context, directory: DirectoryState | None, error: str | None, found: list[Finding],
    switching: Collection[str] = (),
) -> tuple[list[Change], list[Change], list[str]]:
    """(additions, removals, names of hosts whose account changes). Targets: every account that
    changes, and those a Kerberos switch depends on (`switching`: keys of the hosts the plan
    switches to Kerberos, hvlm.plan's switches_to_kerberos; see `_switch_targets`)."""
    managed = [s for s in ctx.manifest.hosts if s.migration.authentication is not None]
    if directory is None:
        if any(s.uses_kerberos and ctx.is_selected(s) for s in managed):
            found.append(directory_unread(error))
        return [], [], []
    accounts = {a.name.upper(): a for a in directory.accounts}
    added: list[Change] = []
    pruned: list[Change] = []
    touched: list[str] = []
    targeted: set[str] = set()
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
            targeted.add(spec.key)
            ctx.targets[address_text(Kind.DIRECTORY, spec.name)] = account_fingerprint(account)
    if switching:
        _switch_targets(ctx, accounts, accounts.keys() - targeted, switching)
    return added, pruned, touched


def _switch_targets(ctx: Context, accounts: dict[str, DelegationState], pending: set[str],
                    switching: Collection[str]) -> None:
    """A host switched to Kerberos migrates out with its own delegation, whose values name its
    peers' SPNs: the switch depends on its account and its peers' (the fingerprint covers their
    delegation, SPNs and dNSHostName) even when the plan changes none of them. `pending`: keys
    of the accounts that are not targets yet (none, in a fresh fleet)."""
    for key in switching:
        if not pending:
            return
        spec = ctx.index[key]
        for name in (spec.name, *spec.peers):
            wanted = name.upper()
            if wanted in pending:
                pending.discard(wanted)
                address = address_text(Kind.DIRECTORY, ctx.index[wanted].name)
                ctx.targets[address] = account_fingerprint(accounts[wanted])


def _desired_values(ctx: Context, spec: HostSpec) -> list[PeerValues]:
    """hvlm.model.desired_delegation, peer by peer (each peer's values, and the same by their
    lower-cased form, built once for the whole fleet): the values are these peers' in order."""
    if not spec.uses_kerberos:
        return []
    services = spec.delegation.services
    toward = ctx.toward.setdefault(services, {})
    try:
        return [toward[name] for name in spec.peers]
    except KeyError:  # a peer seen for the first time
        pass
    for name in spec.peers:
        if name not in toward:
            peer = ctx.index.get(name.upper())
            if peer is None:
                raise HvlmError(f"host {spec.name}: peer {name} is not a host of the manifest")
            targets = delegation_targets(peer, services)
            toward[name] = (targets, {v.lower(): v for v in targets})
    return [toward[name] for name in spec.peers]


def _account_changes(
    ctx: Context, spec: HostSpec, account: DelegationState
) -> tuple[list[Change], list[Change]]:
    selected = ctx.is_selected(spec)
    desired = _desired_values(ctx, spec)
    stored = account.allowed_to_delegate_to
    exact = set(stored)
    add = _missing_values(ctx, selected, desired, stored, exact)
    delete: list[str] = []
    if ctx.manifest.prune_delegation:
        delete = _stale_values(ctx, selected, desired, stored, exact)
    transition = _transition(spec, account) if selected else None
    if not add and not delete and transition is None:
        return [], []
    return _delegation_changes(spec, account, add, delete, transition)


def _missing_values(
    ctx: Context, selected: bool, desired: list[PeerValues], stored: tuple[str, ...],
    exact: set[str],
) -> list[str]:
    """Desired values with no case variant stored (exact matches first: the common case), listed
    by service and name form, then peer (every peer's first value, then every peer's second...):
    the plan file states such a list compactly (hvlm.plan.value_runs)."""
    if exact.issuperset(chain.from_iterable([values for values, _ in desired])):
        return []
    # one value per case-insensitive key, none that a stored one matches
    missing: dict[str, str] = {}
    for _, by_lower in desired:
        missing.update(by_lower)
    for value in stored:
        missing.pop(value.lower(), None)
    width = len(desired[0][0])  # values per peer: the same for every peer of this account
    if len(missing) == width * len(desired):  # none stored (the usual case): peer by peer
        found = list(missing.values())
        add = [value for i in range(width) for value in found[i::width]]
    else:  # by service and name form, then peer: each peer's first value, then second...
        by_slot = chain.from_iterable(zip(*[values for values, _ in desired], strict=True))
        add = [v for v in (missing.pop(t.lower(), None) for t in by_slot) if v is not None]
    if not selected:
        add = [v for v in add if spn_host(v) in ctx.selected_names]
    return add


def _stale_values(
    ctx: Context, selected: bool, desired: list[PeerValues], stored: tuple[str, ...],
    exact: set[str],
) -> list[str]:
    """hvlm's own stored values that no desired value matches, case-insensitively."""
    undesired = exact.difference(chain.from_iterable([values for values, _ in desired]))
    if not undesired:
        return []
    candidates = [
        v for v in stored
        if v in undesired and owned_value(v, ctx.names)
        and (selected or spn_host(v) in ctx.selected_names)
    ]
    if not candidates:
        return []
    wanted = set(chain.from_iterable([by_lower for _, by_lower in desired]))
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
    if add:
        address = address_text(Kind.DIRECTORY, spec.name, Part.DELEGATION)
        added = tuple(add)
        after = values + added
        reason = (f"{spec.name} migrates with Kerberos to {len(spec.peers)} peer(s): "
                  f"{len(add)} value(s) missing")
        adds.append(Change(address, Phase.DIRECTORY_ADD,
                           Action.CREATE if not values else Action.UPDATE, spec.name, reason,
                           {DELEGATION_ATTRIBUTE: values}, {DELEGATION_ATTRIBUTE: after},
                           add=added))
        values = after
    if delete:
        gone = set(delete)
        after = tuple(v for v in values if v not in gone)
        values = after + tuple(delete)  # the values kept, then those deleted (hvlm.plan's _kept)
        reason = f"prune.delegation: hvlm's values toward hosts that are not {spec.name}'s peers"
        removes.append(Change(address_text(Kind.DIRECTORY, spec.name, Part.DELEGATION_PRUNE),
                              Phase.DIRECTORY_PRUNE, Action.DELETE,
                              spec.name, reason, {DELEGATION_ATTRIBUTE: values},
                              {DELEGATION_ATTRIBUTE: after}, delete=tuple(delete)))
    if transition is not None:
        change = _transition_change(spec, account, transition)
        (adds if transition else removes).append(change)
    return adds, removes


_TRANSITION_REASON = {
    wanted: ("delegation.protocolTransition: "
             f"{'true' if wanted else 'false'} (\"use any authentication protocol\")")
    for wanted in (True, False)
}


def _transition_change(spec: HostSpec, account: DelegationState, wanted: bool) -> Change:
    uac = account.user_account_control
    new = uac | UAC_TRUSTED_TO_AUTH_FOR_DELEGATION if wanted else \
        uac & ~UAC_TRUSTED_TO_AUTH_FOR_DELEGATION
    phase = Phase.DIRECTORY_ADD if wanted else Phase.DIRECTORY_PRUNE
    return Change(
        address_text(Kind.DIRECTORY, spec.name, Part.PROTOCOL_TRANSITION), phase, Action.UPDATE,
        spec.name, _TRANSITION_REASON[wanted],
        {"protocolTransition": not wanted, "userAccountControl": uac},
        {"protocolTransition": wanted, "userAccountControl": new},
    )
