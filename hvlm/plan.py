"""The plan: what hvlm will change, in apply order, and the saved-plan file format (version 1).

Pipeline position: the planner (hvlm.planner) builds a Plan from the model and the observed
state; the renderers (hvlm.render) show it; `hvlm plan --out FILE` saves it with `dumps_plan`;
`hvlm apply FILE` reads it back with `loads_plan`, re-reads every target and calls `stale_targets`
before touching anything. Pure: no I/O, no backends. Findings (hvlm.findings) travel with it.

Addresses (stable, documented in schemas/plan.v1.schema.json):
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

import hashlib
import ipaddress
import json
from collections.abc import Mapping
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

FORMAT_VERSION = 1

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
        try:
            kind = Kind(kind_text)
        except ValueError:
            raise ValueError(f"{text!r} is not an address") from None
        if not name:
            raise ValueError(f"{text!r} is not an address")
        if not part_text:
            return cls(kind, name)
        if kind is Kind.HOST and part_text.startswith(Part.NETWORK.value + "/"):
            subnet = part_text[len(Part.NETWORK.value) + 1:]
            try:
                return cls(kind, name, Part.NETWORK, ipaddress.ip_network(subnet))
            except ValueError:
                raise ValueError(f"{text!r}: {subnet!r} is not a network") from None
        part = next((p for p in _PARTS[kind] if p.value == part_text and p is not Part.NETWORK),
                    None)
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
    """What the directory changes were computed from; LDAP returns values in no fixed order."""
    return _digest([state.dn, state.user_account_control, sorted(state.allowed_to_delegate_to)])


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


# --- the plan file (format_version 1) ----------------------------------------------------------


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
        "changes": [_change_doc(c) for c in plan.changes],
        "findings": [finding_document(f) for f in plan.findings],
        "targets": [{"address": t.address, "fingerprint": t.fingerprint} for t in plan.targets],
        "unread_hosts": list(plan.unread_hosts),
        "directory_read": plan.directory_read,
    }


def _fields_doc(fields: Fields | None) -> dict[str, Any] | None:
    if fields is None:
        return None
    return {k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()}


def _change_doc(change: Change) -> dict[str, Any]:
    return {
        "address": change.address,
        "phase": change.phase.value,
        "action": change.action.value,
        "host": change.host,
        "target": change.target,
        "reason": change.reason,
        "before": _fields_doc(change.before),
        "after": _fields_doc(change.after),
        "add": list(change.add),
        "delete": list(change.delete),
    }


def dumps_plan(plan: Plan) -> str:
    """The plan file: compact JSON on one line (issue 16: a 10,000-host plan is ~70 MB compact,
    ~89 MB indented). `jq . FILE` shows it indented; `hvlm plan --format json` prints the same
    text, so a plan piped to a file is byte-for-byte the one `--out` writes."""
    return json.dumps(plan_to_document(plan), separators=(",", ":"), ensure_ascii=False) + "\n"


def loads_plan(text: str | bytes) -> Plan:
    """Read a plan file; anything malformed is one PlanFileError naming where."""
    try:
        document = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PlanFileError(f"plan file is not JSON: {exc}") from exc
    return plan_from_document(document)


def plan_from_document(document: object) -> Plan:
    doc = _obj(document, "plan")
    version = doc.get("format_version")
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise PlanFileError(
            f"plan format_version {version!r} is not supported (this hvlm reads {FORMAT_VERSION})"
        )
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
        targets=tuple(_target(t, f"targets[{i}]") for i, t in enumerate(_list(doc, "targets"))),
        unread_hosts=_strings(doc.get("unread_hosts"), "unread_hosts"),
        directory_read=_bool(doc, "directory_read", "plan"),
        selection=None if hosts is None else _strings(hosts, "options.hosts"),
        refresh_tickets=_bool(options, "refresh_tickets", "options"),
        hvlm_version=_str(doc, "hvlm_version", "plan"),
    )


def _change(value: object, where: str) -> Change:
    doc = _obj(value, where)
    change = Change(
        address=_str(doc, "address", where),
        phase=_enum(Phase, doc, "phase", where),
        action=_enum(Action, doc, "action", where),
        host=_str(doc, "host", where),
        reason=_str(doc, "reason", where),
        before=_fields(doc.get("before"), f"{where}.before"),
        after=_fields(doc.get("after"), f"{where}.after"),
        add=_strings(doc.get("add", []), f"{where}.add"),
        delete=_strings(doc.get("delete", []), f"{where}.delete"),
    )
    try:
        address = Address.parse(change.address)
    except ValueError:
        address = None
    if address is None or address.part is None:
        raise PlanFileError(f"plan file: {where}.address: {change.address!r} is not an address")
    return change


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


def _target(value: object, where: str) -> Target:
    doc = _obj(value, where)
    target = Target(_str(doc, "address", where), _str(doc, "fingerprint", where))
    try:
        address = Address.parse(target.address)
    except ValueError:
        address = None
    if address is None or address.part is not None:
        raise PlanFileError(f"plan file: {where}.address: {target.address!r} is not a target")
    return target


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
        return kind(value)
    except (ValueError, TypeError):
        raise PlanFileError(f"plan file: {where}.{key}: unknown value {value!r}") from None


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
