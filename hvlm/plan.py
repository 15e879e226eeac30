"""The plan: what hvlm will change, in apply order, and the saved-plan file format (version 2).

Pipeline position: the planner (hvlm.planner) builds a Plan from the model and the observed
state; the renderers (hvlm.render) show it; `hvlm plan --out FILE` saves it with `dumps_plan`;
`hvlm apply FILE` reads it back with `loads_plan`, re-reads every target and calls `stale_targets`
before touching anything. Pure: no I/O, no backends. Findings (hvlm.findings) travel with it.

Addresses (stable, documented in schemas/plan.v2.schema.json):
    host/HV01/migration                      every Set-VMHost / Enable-VMMigration setting of a host
    host/HV01/network/192.168.10.0/24        one incoming migration network
    directory/HV01/allowedToDelegateTo       values added to the account (phase directory-add)
    directory/HV01/allowedToDelegateTo/prune hvlm's own values deleted (phase directory-prune)
    directory/HV01/protocolTransition        the 0x01000000 userAccountControl bit
    host/HV01/tickets                        `klist purge -li 0x3e7` after delegation changed
A change's *target* (`host/HV01`, `directory/HV01`) is what its fingerprint covers. `Address` is
the typed form (kind, host, part, subnet): build and read addresses with it, never by splitting
the text; `Change.address` and the file keep the text.

The file holds only the fields listed here, written one by one: never credentials, never whatever
else a state object might carry.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from operator import attrgetter
from typing import Any, TypeVar

from hvlm.errors import PlanFileError, Severity
from hvlm.findings import Finding as Finding  # re-exported: the plan carries them
from hvlm.findings import finding_document
from hvlm.model import IPNetwork
from hvlm.settings import HOST_SETTINGS
from hvlm.state import DelegationState, MigrationState

FORMAT_VERSION = 2

# A value in a change's before/after: JSON scalars, or a list of strings (held as a tuple).
FieldValue = None | bool | int | str | tuple[str, ...]
Fields = Mapping[str, FieldValue]
E = TypeVar("E", bound=Enum)


class Action(str, Enum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"

    @property
    def symbol(self) -> str:
        return {"create": "+", "update": "~", "delete": "-"}[self.value]


class Phase(str, Enum):
    """Apply order: migrations keep working at every step in between."""

    DIRECTORY_ADD = "directory-add"  # delegation values added, protocol transition turned on
    HOST = "host"  # enable, add networks, settings, remove networks
    DIRECTORY_PRUNE = "directory-prune"  # hvlm's stale values deleted, protocol transition off
    TICKETS = "tickets"  # purge the SYSTEM tickets of hosts whose delegation changed

    @property
    def order(self) -> int:
        return _PHASE_ORDER.index(self)

    @property
    def heading(self) -> str:
        return _PHASE_HEADING[self]


_PHASE_ORDER = list(Phase)
_PHASE_HEADING = {
    Phase.DIRECTORY_ADD: "Directory: delegation added",
    Phase.HOST: "Hosts: migration settings and networks",
    Phase.DIRECTORY_PRUNE: "Directory: stale delegation removed",
    Phase.TICKETS: "Hosts: Kerberos tickets refreshed",
}


class Kind(str, Enum):
    """What a target is: a host's settings (PSRP) or its computer account (LDAP)."""

    HOST = "host"
    DIRECTORY = "directory"


class Part(str, Enum):
    """What part of a target a change touches (the address after `KIND/NAME/`)."""

    MIGRATION = "migration"  # every Set-VMHost / Enable-VMMigration setting of a host
    NETWORK = "network"  # one incoming migration network (Address.subnet)
    TICKETS = "tickets"
    DELEGATION = "allowedToDelegateTo"
    DELEGATION_PRUNE = "allowedToDelegateTo/prune"
    PROTOCOL_TRANSITION = "protocolTransition"


_PARTS = {
    Kind.HOST: (Part.MIGRATION, Part.NETWORK, Part.TICKETS),
    Kind.DIRECTORY: (Part.DELEGATION, Part.DELEGATION_PRUNE, Part.PROTOCOL_TRANSITION),
}
# Address.parse's lookups, by text (a plan file of 10,000 hosts holds 70,000 addresses)
_KIND_OF = {kind._value_: kind for kind in Kind}
_PART_OF = {kind: {p._value_: p for p in parts if p is not Part.NETWORK}
            for kind, parts in _PARTS.items()}
_NETWORK_PREFIX = Part.NETWORK._value_ + "/"


@dataclass(frozen=True)
class Address:
    """A plan address, typed: `host/HV01/network/10.0.0.0/24` is (HOST, "HV01", NETWORK, subnet).

    Plans (and their JSON) hold the text, `str(address)`; `Address.parse` reads it back. With no
    part, the address is a target (`host/HV01`, `directory/HV01`): what a fingerprint covers.
    """

    kind: Kind
    host: str
    part: Part | None = None
    subnet: IPNetwork | None = None  # Part.NETWORK only

    def __str__(self) -> str:
        return address_text(self.kind, self.host, self.part, self.subnet)

    @property
    def target(self) -> Address:
        return Address(self.kind, self.host)

    @classmethod
    def parse(cls, text: str) -> Address:
        """Raises ValueError for anything that is not a target or an address listed above."""
        kind_text, _, rest = text.partition("/")
        name, _, part_text = rest.partition("/")
        kind = _KIND_OF.get(kind_text)
        if kind is None or not name:
            raise ValueError(f"{text!r} is not an address")
        if not part_text:
            return cls(kind, name)
        if kind is Kind.HOST and part_text.startswith(_NETWORK_PREFIX):
            subnet = part_text[len(_NETWORK_PREFIX):]
            try:
                return cls(kind, name, Part.NETWORK, ipaddress.ip_network(subnet))
            except ValueError:
                raise ValueError(f"{text!r}: {subnet!r} is not a network") from None
        part = _PART_OF[kind].get(part_text)
        if part is None:
            raise ValueError(f"{text!r} is not an address")
        return cls(kind, name, part)


def address_text(
    kind: Kind, host: str, part: Part | None = None, subnet: IPNetwork | str | None = None
) -> str:
    """`str(Address(kind, host, part, subnet))` without building the Address (the planner builds
    tens of thousands; it passes a subnet as its text, made once). `_value_`: the member's value
    without the Enum descriptor's cost."""
    text = f"{kind._value_}/{host}"
    if part is not None:
        text = f"{text}/{part._value_}"
    if subnet is not None:
        text = f"{text}/{subnet}"
    return text


@dataclass(frozen=True)
class Change:
    address: str
    phase: Phase
    action: Action
    host: str  # the manifest host the change concerns (its settings, or its computer account)
    reason: str
    before: Fields | None = None
    after: Fields | None = None
    add: tuple[str, ...] = ()  # delegation values added (allowedToDelegateTo)
    delete: tuple[str, ...] = ()  # delegation values deleted (exactly as stored)

    @property
    def where(self) -> Address:
        """The address, typed."""
        return Address.parse(self.address)

    @property
    def target(self) -> str:
        """`host/HV01` or `directory/HV01`: the observed object this change was computed from."""
        return str(self.where.target)


@dataclass(frozen=True)
class Target:
    """The fingerprint of an observed object a plan touches, as it was when planned."""

    address: str
    fingerprint: str


@dataclass(frozen=True)
class ManifestRef:
    name: str
    source: str = ""
    digest: str = ""


@dataclass(frozen=True)
class GroupRef:
    """A group of the manifest (hosts that migrate among each other), as the plan records it:
    the summary names host sets by their group (hvlm.summary), also from a saved plan."""

    name: str
    hosts: tuple[str, ...]


@dataclass(frozen=True)
class Plan:
    manifest: ManifestRef
    changes: tuple[Change, ...] = ()
    findings: tuple[Finding, ...] = ()
    targets: tuple[Target, ...] = ()
    unread_hosts: tuple[str, ...] = ()  # hosts that could not be read: apply skips them
    directory_read: bool = True
    selection: tuple[str, ...] | None = None  # --host names, None = every host
    refresh_tickets: bool = False
    hvlm_version: str = field(default="", compare=False)
    # What a reviewer's summary needs, recorded so a saved plan renders the same (`hvlm show`):
    fleet: tuple[str, ...] = ()  # every host of the manifest, in its order
    groups: tuple[GroupRef, ...] = ()  # the manifest's groups
    # (host, DC it uses: Win32_NTDomain), set by the reconciler only when there is more than one
    # DC to tell apart; () = no DC note
    domain_controllers: tuple[tuple[str, str], ...] = ()

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)

    def summary(self) -> tuple[int, int, int]:
        """(to add, to change, to delete), as in "Plan: N to add, M to change, K to delete."."""
        counts = {action: 0 for action in Action}
        for change in self.changes:
            counts[change.action] += 1
        return counts[Action.CREATE], counts[Action.UPDATE], counts[Action.DELETE]

    def in_phase(self, phase: Phase) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.phase is phase)

    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.ERROR)


def switches_to_kerberos(changes: Iterable[Change]) -> bool:
    """Does one of these changes switch a host's migration authentication to Kerberos? The one
    rule for it: the planner records that host's account (its delegation) as a target, `apply
    PLANFILE` reads the directory, and apply's guard will not switch a host whose delegation it
    has not seen."""
    return any(map(to_kerberos, changes))


def to_kerberos(change: Change) -> bool:
    """Does this change switch its host's migration authentication to Kerberos?"""
    return change.after is not None and change.after.get("authentication") == "Kerberos"


# --- fingerprints -------------------------------------------------------------------------------


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _digest(document: object) -> str:
    text = _CANONICAL.encode(document)
    return "sha256:" + hashlib.sha256(text.encode("ascii")).hexdigest()


def host_fingerprint(state: MigrationState) -> str:
    """What the host changes were computed from; network order on the host does not matter."""
    networks = sorted(
        (n.subnet.version, int(n.subnet.network_address), n.subnet.prefixlen,
         -1 if n.priority is None else n.priority)
        for n in state.networks
    ) if state.networks else []
    # HostSetting.plain of each setting, inlined (tens of thousands of hosts per plan)
    settings = [v._value_ if isinstance(v, Enum) else v for v in _SETTING_VALUES(state)]
    return _digest([*settings, networks])


_SETTING_VALUES = attrgetter(*(s.attr for s in HOST_SETTINGS))


def account_fingerprint(state: DelegationState) -> str:
    """What the directory changes were computed from, and what delegation toward the account
    names (its SPNs, dNSHostName: a Kerberos switch depends on them); LDAP returns values in no
    fixed order."""
    return _digest([state.dn, state.user_account_control, sorted(state.allowed_to_delegate_to),
                    sorted(state.service_principal_names), state.dns_host_name])


def target_key(address: str | Address) -> str:
    """`host/hv01` -> `host/HV01`: targets compare with the host name case-insensitively."""
    where = Address.parse(address) if isinstance(address, str) else address
    return str(Address(where.kind, where.host.upper()))


def stale_targets(plan: Plan, current: Mapping[str, str | None]) -> tuple[str, ...]:
    """Targets whose fingerprint now differs from the plan's (missing or None: not read again).

    `current` is keyed by `target_key` (hvlm.planner.current_fingerprints builds it).
    """
    return tuple(
        t.address for t in plan.targets if current.get(target_key(t.address)) != t.fingerprint
    )


# --- the plan file (format_version 2) ----------------------------------------------------------
#
# Format 2 states every delegation value once, factored: a delegation change records the values
# it keeps, adds and deletes (before = kept + delete, after = kept + add: the planner builds them
# so), each list as runs of [prefix, [middles], suffix] (`value_runs`). The targets and the DC of
# each host are objects keyed by address / host; a change names its host only when it is not the
# address's. Lossless: `plan_from_document(plan_to_document(p)) == p` for every plan the planner
# builds (tests/unit/test_plan_format.py).

DELEGATION_ATTRIBUTE = "allowedToDelegateTo"  # the one field of a delegation change's before/after
_VALUE_PARTS = (Part.DELEGATION, Part.DELEGATION_PRUNE)
_DIRECTORY_PREFIX = Kind.DIRECTORY._value_ + "/"
_VALUE_SUFFIXES = tuple("/" + part._value_ for part in _VALUE_PARTS)


def plan_to_document(plan: Plan) -> dict[str, Any]:
    add, change, delete = plan.summary()
    return {
        "format_version": FORMAT_VERSION,
        "hvlm_version": plan.hvlm_version,
        "manifest": {
            "name": plan.manifest.name,
            "source": plan.manifest.source,
            "digest": plan.manifest.digest,
        },
        "options": {
            "hosts": list(plan.selection) if plan.selection is not None else None,
            "refresh_tickets": plan.refresh_tickets,
        },
        "summary": {"add": add, "change": change, "delete": delete},
        "fleet": list(plan.fleet),
        "groups": [{"name": g.name, "hosts": list(g.hosts)} for g in plan.groups],
        "domain_controllers": _keyed(plan.domain_controllers, "domain_controllers"),
        "changes": [_change_doc(c) for c in plan.changes],
        "findings": [finding_document(f) for f in plan.findings],
        "targets": _keyed([(t.address, t.fingerprint) for t in plan.targets], "targets"),
        "unread_hosts": list(plan.unread_hosts),
        "directory_read": plan.directory_read,
    }


def _keyed(pairs: Sequence[tuple[str, str]], what: str) -> dict[str, str]:
    document = dict(pairs)
    if len(document) != len(pairs):
        raise ValueError(f"{what}: a key is listed twice")
    return document


def _fields_doc(fields: Fields) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()}


def _change_doc(change: Change) -> dict[str, Any]:
    address = change.address
    doc: dict[str, Any] = {
        "address": address, "phase": change.phase._value_, "action": change.action._value_,
    }
    # the text of address_text(kind, host, ...), read without parsing (tens of thousands)
    if not address.partition("/")[2].startswith(change.host + "/"):
        doc["host"] = change.host
    doc["reason"] = change.reason
    if address.startswith(_DIRECTORY_PREFIX) and address.endswith(_VALUE_SUFFIXES):
        doc["kept"] = value_runs(_kept(change))
        if change.add:
            doc["add"] = value_runs(change.add)
        if change.delete:
            doc["delete"] = value_runs(change.delete)
        return doc
    if change.add or change.delete:
        raise ValueError(f"{address}: only a delegation change adds or deletes values")
    if change.before is not None:
        doc["before"] = _fields_doc(change.before)
    if change.after is not None:
        doc["after"] = _fields_doc(change.after)
    return doc


def _kept(change: Change) -> tuple[str, ...]:
    """The values a delegation change keeps: its before is kept + delete, its after kept + add."""
    before = (change.before or {}).get(DELEGATION_ATTRIBUTE)
    kept = before[:len(before) - len(change.delete)] if isinstance(before, tuple) else ()
    if (change.before != {DELEGATION_ATTRIBUTE: kept + change.delete}
            or change.after != {DELEGATION_ATTRIBUTE: kept + change.add}):
        raise ValueError(f"{change.address}: before and after are not kept + delete and "
                         "kept + add")
    return kept


def value_runs(values: Iterable[str]) -> list[list[Any]]:
    """Delegation values, each stated once and factored: consecutive values that share a prefix
    (up to the first "/", or "" without one) and a suffix (from the first "." after it, or "")
    are one run [prefix, [middles], suffix]; each value is prefix + middle + suffix. Any string
    round-trips (case variants, values without "/"). The planner lists a change's values by
    service and name form, so a run holds every peer: ["cifs/", ["HV02", "HV03"], ""],
    ["cifs/", ["hv02", "hv03"], ".lab.example"]."""
    runs: list[list[Any]] = []
    prefix = suffix = ""
    middles: list[str] = []
    for value in values:
        # the common case first: the value continues the run (same prefix and suffix, and no
        # "." in between, nor a "/" when the prefix is ""): its split is the one computed below
        if middles and value.startswith(prefix) and value.endswith(suffix) \
                and len(value) >= len(prefix) + len(suffix):
            middle = value[len(prefix):len(value) - len(suffix)]
            if "." not in middle and (prefix or "/" not in middle):
                middles.append(middle)
                continue
        cut = value.find("/") + 1
        dot = value.find(".", cut)
        if dot < 0:
            dot = len(value)
        prefix, suffix = value[:cut], value[dot:]
        middles = [value[cut:dot]]
        runs.append([prefix, middles, suffix])
    return runs


def dumps_plan(plan: Plan, review: Mapping[str, Any] | None = None) -> str:
    """The plan file: compact JSON on one line (a fresh 10,000-host plan is ~21 MB: see
    bench/plan_10k.py). `jq . FILE` shows it indented; `hvlm plan --format json` and
    `hvlm show FILE --format json` print the same text, so a plan piped to a file is
    byte-for-byte the one `--out` writes. `review`: the reviewer's summary as JSON
    (hvlm.render.review_document), written under "review" for machines; derived from the rest,
    so `loads_plan` does not read it back."""
    document = plan_to_document(plan)
    if review is not None:
        document["review"] = review
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False) + "\n"


def loads_plan(text: str | bytes, name: str = "") -> Plan:
    """Read a plan file (`name`: its path, for the messages); anything malformed is one
    PlanFileError naming where (the file, then the field)."""
    try:
        document = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _in_file(PlanFileError(f"plan file is not JSON: {exc}"), name) from exc
    return plan_from_document(document, name)


def plan_from_document(document: object, name: str = "") -> Plan:
    try:
        return _plan_from_document(document, name)
    except PlanFileError as exc:
        raise _in_file(exc, name) from None


def _in_file(error: PlanFileError, name: str) -> PlanFileError:
    """The error with the file's path in front, unless it names the file already."""
    message = str(error)
    return error if not name or name in message else PlanFileError(f"{name}: {message}")


def _plan_from_document(document: object, name: str) -> Plan:
    doc = _obj(document, "plan")
    _check_version(doc.get("format_version"), name)
    manifest = _obj(doc.get("manifest"), "manifest")
    options = _obj(doc.get("options"), "options")
    hosts = options.get("hosts")
    return Plan(
        manifest=ManifestRef(
            name=_str(manifest, "name", "manifest"),
            source=_str(manifest, "source", "manifest"),
            digest=_str(manifest, "digest", "manifest"),
        ),
        changes=tuple(_change(c, f"changes[{i}]") for i, c in enumerate(_list(doc, "changes"))),
        findings=tuple(_finding(f, f"findings[{i}]") for i, f in enumerate(_list(doc, "findings"))),
        targets=tuple(Target(a, f) for a, f in _pairs(doc, "targets", _target_address)),
        unread_hosts=_strings(doc.get("unread_hosts"), "unread_hosts"),
        directory_read=_bool(doc, "directory_read", "plan"),
        selection=None if hosts is None else _strings(hosts, "options.hosts"),
        refresh_tickets=_bool(options, "refresh_tickets", "options"),
        hvlm_version=_str(doc, "hvlm_version", "plan"),
        fleet=_strings(doc.get("fleet"), "fleet"),
        groups=tuple(_group(g, f"groups[{i}]") for i, g in enumerate(_list(doc, "groups"))),
        domain_controllers=_pairs(doc, "domain_controllers", _host_name),
    )


def _check_version(version: object, name: str) -> None:
    if isinstance(version, int) and not isinstance(version, bool):
        if version == FORMAT_VERSION:
            return
        if 0 < version < FORMAT_VERSION:
            label = f"plan file {name}" if name else "plan file"
            raise PlanFileError(f"{label} was made by an older hvlm (format {version}): run hvlm "
                                "plan again")
    raise PlanFileError(
        f"plan format_version {version!r} is not supported (this hvlm reads {FORMAT_VERSION})"
    )


_CHANGE_FIELDS = frozenset({"address", "phase", "action", "host", "reason"})
_FIELDS_OF = {
    True: _CHANGE_FIELDS | {"kept", "add", "delete"},  # a delegation change
    False: _CHANGE_FIELDS | {"before", "after"},
}


def _change(value: object, where: str) -> Change:
    doc = _obj(value, where)
    address = _address(_str(doc, "address", where), f"{where}.address")
    if address.part is None:
        raise PlanFileError(f"plan file: {where}.address: {doc['address']!r} is not an address")
    values = address.part in _VALUE_PARTS
    unknown = sorted(doc.keys() - _FIELDS_OF[values])
    if unknown:
        raise PlanFileError(f"plan file: {where}.{unknown[0]}: not a field of this change")
    phase, action = _enum(Phase, doc, "phase", where), _enum(Action, doc, "action", where)
    host = _str(doc, "host", where) if "host" in doc else address.host
    reason = _str(doc, "reason", where)
    if not values:
        return Change(doc["address"], phase, action, host, reason,
                      _fields(doc.get("before"), f"{where}.before"),
                      _fields(doc.get("after"), f"{where}.after"))
    kept = _values(doc.get("kept"), f"{where}.kept")
    add = _values(doc.get("add", []), f"{where}.add")
    delete = _values(doc.get("delete", []), f"{where}.delete")
    return Change(doc["address"], phase, action, host, reason,
                  {DELEGATION_ATTRIBUTE: kept + delete}, {DELEGATION_ATTRIBUTE: kept + add},
                  add=add, delete=delete)


def _values(value: object, where: str) -> tuple[str, ...]:
    """`value_runs` read back: [[prefix, [middles], suffix], ...] -> the values, in order."""
    if not isinstance(value, list):
        raise PlanFileError(f"plan file: {where}: expected a list of [prefix, [values], suffix]")
    values: list[str] = []
    for i, run in enumerate(value):
        try:
            if not (isinstance(run, list) and len(run) == 3 and isinstance(run[0], str)
                    and isinstance(run[2], str) and isinstance(run[1], list) and run[1]):
                raise TypeError
            prefix, middles, suffix = run
            values.extend([prefix + middle + suffix for middle in middles])  # str + str only
        except TypeError:
            raise PlanFileError(f"plan file: {where}[{i}]: expected [prefix, [values], suffix] "
                                "(strings, at least one value)") from None
    return tuple(values)


def _address(text: str, where: str) -> Address:
    try:
        return Address.parse(text)
    except ValueError:
        raise PlanFileError(f"plan file: {where}: {text!r} is not an address") from None


def _target_address(text: str, where: str) -> None:
    if _address(text, where).part is not None:
        raise PlanFileError(f"plan file: {where}: {text!r} is not a target")


def _host_name(text: str, where: str) -> None:
    if not text or "/" in text:
        raise PlanFileError(f"plan file: {where}: {text!r} is not a host name")


def _pairs(doc: dict[str, Any], key: str, check: Callable[[str, str], None]
           ) -> tuple[tuple[str, str], ...]:
    """An object of strings keyed by `check`ed strings, as (key, value) pairs in file order."""
    value = _obj(doc.get(key), key)
    for name, item in value.items():
        check(name, f"{key}[{name!r}]")
        if not isinstance(item, str):
            raise PlanFileError(f"plan file: {key}[{name!r}]: expected a string")
    return tuple(value.items())


def _group(value: object, where: str) -> GroupRef:
    doc = _obj(value, where)
    return GroupRef(_str(doc, "name", where), _strings(doc.get("hosts"), f"{where}.hosts"))


def _finding(value: object, where: str) -> Finding:
    doc = _obj(value, where)
    return Finding(
        severity=_enum(Severity, doc, "severity", where),
        subject=_str(doc, "subject", where),
        code=_str(doc, "code", where),
        message=_str(doc, "message", where),
        fix=_str(doc, "fix", where),
        evidence=_str(doc, "evidence", where),
        vms=_strings(doc.get("vms", []), f"{where}.vms"),
    )


def _obj(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PlanFileError(f"plan file: {where}: expected an object")
    return value


def _list(doc: dict[str, Any], key: str) -> list[Any]:
    value = doc.get(key)
    if not isinstance(value, list):
        raise PlanFileError(f"plan file: {key}: expected a list")
    return value


def _str(doc: dict[str, Any], key: str, where: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str):
        raise PlanFileError(f"plan file: {where}.{key}: expected a string")
    return value


def _bool(doc: dict[str, Any], key: str, where: str) -> bool:
    value = doc.get(key)
    if not isinstance(value, bool):
        raise PlanFileError(f"plan file: {where}.{key}: expected true or false")
    return value


def _strings(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PlanFileError(f"plan file: {where}: expected a list of strings")
    return tuple(value)


def _enum(kind: type[E], doc: dict[str, Any], key: str, where: str) -> E:
    value = doc.get(key)
    try:
        member: E = _members(kind)[value]  # kind(value), without Enum's call per change
    except (KeyError, TypeError):
        raise PlanFileError(f"plan file: {where}.{key}: unknown value {value!r}") from None
    return member


@functools.cache
def _members(kind: type[E]) -> dict[object, E]:
    return {member.value: member for member in kind}


def _fields(value: object, where: str) -> dict[str, FieldValue] | None:
    if value is None:
        return None
    doc = _obj(value, where)
    fields: dict[str, FieldValue] = {}
    for key, item in doc.items():
        if item is None or isinstance(item, (bool, int, str)):
            fields[key] = item
        elif isinstance(item, list) and all(isinstance(v, str) for v in item):
            fields[key] = tuple(item)
        else:
            raise PlanFileError(f"plan file: {where}.{key}: unsupported value")
    return fields
