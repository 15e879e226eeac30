"""Pure directory logic: the search filter, the parser of search results, the modify builder.

Pipeline position: hvlm.directory.session sends what `search_filter` builds and feeds the raw
entries it gets back to `parse_accounts` (-> hvlm.state.DirectoryState, consumed by the planner);
for a write it sends the changes `build_modify` computes. No I/O here: every function is tested
from recorded values, without a directory.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ldap3.utils.conv import escape_filter_chars

from hvlm.model import (
    UAC_TRUSTED_FOR_DELEGATION,
    UAC_TRUSTED_TO_AUTH_FOR_DELEGATION,
    host_spns,
)
from hvlm.state import DelegationState, DirectoryState, SpnHolder

DELEGATE_TO = "msDS-AllowedToDelegateTo"
UAC = "userAccountControl"
ATTRIBUTES = ("sAMAccountName", "dNSHostName", "servicePrincipalName", UAC, DELEGATE_TO)

RawAttributes = Mapping[str, Sequence[bytes]]


@dataclass(frozen=True)
class RawEntry:
    """One search result entry as LDAP returned it (values undecoded)."""

    dn: str
    attributes: RawAttributes


def account_name(host: str) -> str:
    """The sAMAccountName of a host's computer account: NAME$ (upper case, as Windows writes it)."""
    return f"{host.upper()}$"


def search_filter(hosts: Sequence[str]) -> str:
    """One filter for every host: computers whose sAMAccountName is one of NAME$ (escaped)."""
    if not hosts:
        raise ValueError("no host to search for")
    terms = "".join(f"(sAMAccountName={escape_filter_chars(account_name(h))})" for h in hosts)
    return f"(&(objectCategory=computer)(|{terms}))"


def _text(values: Sequence[bytes]) -> tuple[str, ...]:
    return tuple(v.decode("utf-8", errors="replace") for v in values)


def _first(attributes: RawAttributes, name: str) -> str:
    values = _attribute(attributes, name)
    return values[0] if values else ""


def _attribute(attributes: RawAttributes, name: str) -> tuple[str, ...]:
    """Attribute names are case-insensitive in LDAP: look them up so."""
    wanted = name.lower()
    for key, values in attributes.items():
        if key.lower() == wanted:
            return _text(values)
    return ()


def parse_account(host: str, entry: RawEntry) -> DelegationState:
    attrs = entry.attributes
    uac = _first(attrs, UAC)
    return DelegationState(
        name=host,
        dn=entry.dn,
        sam_account_name=_first(attrs, "sAMAccountName"),
        dns_host_name=_first(attrs, "dNSHostName"),
        service_principal_names=_attribute(attrs, "servicePrincipalName"),
        user_account_control=int(uac) if uac.lstrip("-").isdigit() else 0,
        allowed_to_delegate_to=_attribute(attrs, DELEGATE_TO),
    )


def parse_accounts(hosts: Sequence[str], entries: Iterable[RawEntry], server: str = ""
                   ) -> DirectoryState:
    """Match entries to the manifest's hosts by sAMAccountName; hosts without one are missing."""
    by_account = {account_name(h): h for h in hosts}
    found: dict[str, DelegationState] = {}
    for entry in entries:
        sam = _first(entry.attributes, "sAMAccountName").upper()
        host = by_account.get(sam)
        if host is not None and host.upper() not in found:
            found[host.upper()] = parse_account(host, entry)
    accounts = tuple(found[h.upper()] for h in hosts if h.upper() in found)
    missing = tuple(h for h in hosts if h.upper() not in found)
    return DirectoryState(accounts=accounts, missing=missing, server=server)


# --- SPNs: one more search for the whole fleet ------------------------------------------------


def fleet_spns(hosts: Iterable[tuple[str, str]]) -> tuple[str, ...]:
    """Every host's SPNs, (name, fqdn) pairs in, without case-insensitive repeats."""
    seen: dict[str, str] = {}
    for name, fqdn in hosts:
        for spn in host_spns(name, fqdn):
            seen.setdefault(spn.lower(), spn)
    return tuple(seen.values())


def spn_filter(spns: Sequence[str]) -> str:
    """One filter for the fleet: any object holding one of `spns` (escaped)."""
    if not spns:
        raise ValueError("no SPN to search for")
    terms = "".join(f"(servicePrincipalName={escape_filter_chars(s)})" for s in spns)
    return f"(|{terms})"


def parse_spn_holders(spns: Sequence[str], entries: Iterable[RawEntry]) -> tuple[SpnHolder, ...]:
    """Each entry that holds one of `spns`, with only those of its SPNs."""
    wanted = {s.lower() for s in spns}
    holders: list[SpnHolder] = []
    for entry in entries:
        held = tuple(s for s in _attribute(entry.attributes, "servicePrincipalName")
                     if s.lower() in wanted)
        if held:
            holders.append(SpnHolder(entry.dn, _first(entry.attributes, "sAMAccountName"), held))
    return tuple(holders)


# --- writes ----------------------------------------------------------------------------------

ADD, DELETE = "MODIFY_ADD", "MODIFY_DELETE"


@dataclass(frozen=True)
class ModifyRequest:
    """What one LDAP modify of one computer object carries. Never a replace."""

    dn: str
    add_values: tuple[str, ...] = ()
    delete_values: tuple[str, ...] = ()
    uac_before: int | None = None  # the guard: this exact value is deleted...
    uac_after: int | None = None  # ...and this one added, in the same modify

    @property
    def empty(self) -> bool:
        return not (self.add_values or self.delete_values or self.uac_after is not None)

    def changes(self) -> dict[str, list[tuple[str, list[str]]]]:
        """ldap3's `changes` argument (operation names; the session maps them to ldap3's)."""
        out: dict[str, list[tuple[str, list[str]]]] = {}
        ops: list[tuple[str, list[str]]] = []
        if self.delete_values:
            ops.append((DELETE, list(self.delete_values)))
        if self.add_values:
            ops.append((ADD, list(self.add_values)))
        if ops:
            out[DELEGATE_TO] = ops
        if self.uac_after is not None and self.uac_before is not None:
            out[UAC] = [(DELETE, [str(self.uac_before)]), (ADD, [str(self.uac_after)])]
        return out


def _present(values: Iterable[str]) -> dict[str, str]:
    """Lower-cased value -> the value as stored (the first one seen)."""
    stored: dict[str, str] = {}
    for value in values:
        stored.setdefault(value.lower(), value)
    return stored


def build_modify(account: DelegationState, add: Iterable[str] = (), delete: Iterable[str] = (),
                 protocol_transition: bool | None = None) -> ModifyRequest:
    """The modify that makes `account` hold `add`, not hold `delete`, and carry the wanted bit.

    Values compare case-insensitively (as the KDC does): a value already present in any case is
    not added again; a deleted value is deleted in every case form it is stored under. A value
    both added and deleted is added. The UAC bit is a guarded read-modify-write of the value read;
    0x00080000 (unconstrained delegation) is never set, and left as found.
    """
    stored = _present(account.allowed_to_delegate_to)
    adds = _present(v for v in add if v.lower() not in stored)
    wanted = set(adds) | {v.lower() for v in add}
    doomed = {v.lower() for v in delete} - wanted
    deletes = tuple(v for v in account.allowed_to_delegate_to if v.lower() in doomed)
    before = account.user_account_control
    after = _uac_after(before, protocol_transition)
    return ModifyRequest(
        dn=account.dn,
        add_values=tuple(adds.values()),
        delete_values=deletes,
        uac_before=before if after != before else None,
        uac_after=after if after != before else None,
    )


def _uac_after(before: int, protocol_transition: bool | None) -> int:
    if protocol_transition is None:
        return before
    if protocol_transition:
        after = before | UAC_TRUSTED_TO_AUTH_FOR_DELEGATION
    else:
        after = before & ~UAC_TRUSTED_TO_AUTH_FOR_DELEGATION
    # Only the 0x01000000 bit moves: 0x00080000 keeps the value read (a finding, never set).
    return (after & ~UAC_TRUSTED_FOR_DELEGATION) | (before & UAC_TRUSTED_FOR_DELEGATION)
