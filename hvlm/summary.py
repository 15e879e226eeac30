"""The reviewer's summary of a plan: what changes on which hosts, once, as a value. Pure.

Pipeline position: between the plan (hvlm.plan) and the renderers (hvlm.render). `summarize(plan)`
computes what a person must see to review a plan at fleet size; the human and Markdown renderers
show that value and never re-derive it. It reads only the plan (its changes, findings, fleet and
groups), so a saved plan (`hvlm show PLANFILE`) summarises exactly as the plan did when printed.

How changes collapse into entries (issue 20):
- host settings: one entry per (setting, before, after), naming the hosts it happens on
  ("all 200 hosts: authentication CredSSP -> Kerberos");
- incoming networks: one entry per (action, subnet, priority before, after);
- delegation added (or pruned): each account's values are read back as (service, peer, name
  form). Accounts whose values are the full product of their services, forms and peers collapse:
  a set S of accounts that each gain every other member of S is "gain delegation to each other";
  the rest by the peers they gain ("16 accounts gain delegation to HV017"). An account whose
  values are not such a product (a value already present, a case variant) is its own entry;
- protocol transition: turned on or off; tickets: purged;
- findings: the same finding (severity, code, and message and fix once the subject's host names
  are taken out) on many hosts is one group naming them.
Within a family of entries (one setting's target value, one subnet), the entry with the most hosts
is the common pattern and the others are flagged `exception`; so is a delegation entry whose
values are not a product of services, forms and peers.
Every host a change concerns is named in some entry (in a group, a range, or an exception), and
each phase's count of changes is kept, so the totals stay exact.

Host sets are named by `HostSet.label`: "all N hosts", the manifest's group names when the set is
exactly their union, else compact ranges ("HV001–HV016, HV020").
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

from hvlm.errors import Severity
from hvlm.findings import Finding
from hvlm.model import DelegationService, spn_host
from hvlm.plan import Action, Change, FieldValue, GroupRef, Part, Phase, Plan

RANGES_SHOWN = 24  # ranges a short label names before "and N more"
GROUPS_NAMED = 3  # a set that is the union of more groups is "N groups (...)"
_RANGE_DASH = "\u2013"  # en dash, as in "HV001–HV016"
_TRAILING_NUMBER = re.compile(r"^(.*?)(\d+)$")

_SERVICE_NAMES = {s.spn_class.lower(): s.value for s in DelegationService}
# What a grouped finding's message says for each subject's names ("HOST" would read as the SPN
# class HOST/ in the SPN findings)
HOST_PLACEHOLDER, PEER_PLACEHOLDER = "{host}", "{peer}"
ARROW = "\u2192"  # "CredSSP → Kerberos"


# --- host sets -----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1 << 16)  # a name is sorted in every set it is in
def _natural_key(name: str) -> tuple[str, int, int]:
    match = _TRAILING_NUMBER.match(name)
    if match is None:
        return (name.upper(), -1, 0)
    return (match.group(1).upper(), int(match.group(2)), len(match.group(2)))


def host_ranges(names: Iterable[str]) -> tuple[str, ...]:
    """Compact, naturally sorted ranges: HV001, HV002, HV003, HV005 -> ("HV001–HV003", "HV005").

    A run joins names with the same prefix and digit count whose numbers follow each other; a
    run of two is written as two names."""
    ordered = sorted(set(names), key=_natural_key)
    out: list[str] = []
    run: list[str] = []
    last: tuple[str, int, int] | None = None
    for name in ordered:
        key = _natural_key(name)
        follows = last is not None and key[1] >= 0 and key[0] == last[0] \
            and key[2] == last[2] and key[1] == last[1] + 1
        if not follows and run:
            out.extend(_run_text(run))
            run = []
        run.append(name)
        last = key
    if run:
        out.extend(_run_text(run))
    return tuple(out)


def _range_size(text: str) -> int:
    first, dash, last = text.partition(_RANGE_DASH)
    if not dash:
        return 1
    return _natural_key(last)[1] - _natural_key(first)[1] + 1


def _run_text(run: list[str]) -> list[str]:
    if len(run) < 3:
        return run
    return [f"{run[0]}{_RANGE_DASH}{run[-1]}"]


@dataclass(frozen=True)
class HostSet:
    """A set of hosts (or accounts) and how a reviewer reads it."""

    names: tuple[str, ...]  # naturally sorted
    ranges: tuple[str, ...]  # host_ranges(names)
    groups: tuple[str, ...] = ()  # manifest groups whose union is exactly `names`
    everyone: bool = False  # every host of the manifest (more than one)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def label(self) -> str:
        """Every host named: "all 200 hosts", "group rack-01 (16 hosts)", "3 hosts (HV01–HV03)"."""
        return self.short_label(len(self.ranges))

    def short_label(self, most: int = RANGES_SHOWN) -> str:
        """The label with at most `most` ranges, then "and N more" (the full list: `label`)."""
        count = len(self.names)
        if self.everyone:
            return f"all {count} hosts"
        if self.groups and len(self.groups) <= GROUPS_NAMED:
            noun = "group" if len(self.groups) == 1 else "groups"
            return f"{noun} {', '.join(self.groups)} ({count} hosts)"
        if count == 1:
            return self.names[0]
        ranges = ", ".join(self.ranges[:most])
        if len(self.ranges) > most:
            shown = sum(_range_size(r) for r in self.ranges[:most])
            ranges += f" and {count - shown} more"
        if self.groups:
            return f"{len(self.groups)} groups ({count} hosts: {ranges})"
        return f"{count} hosts ({ranges})"


class _Namer:
    """Names host sets for one plan: its fleet and its groups (indexed once per summary)."""

    def __init__(self, fleet: Iterable[str], groups: Sequence[GroupRef]) -> None:
        self.fleet = frozenset(h.upper() for h in fleet)
        self.groups = [(g.name, frozenset(h.upper() for h in g.hosts)) for g in groups if g.hosts]
        self.by_host: dict[str, list[int]] = {}
        for i, (_, members) in enumerate(self.groups):
            for host in members:
                self.by_host.setdefault(host, []).append(i)

    def name(self, names: Iterable[str]) -> HostSet:
        members = frozenset(names)
        ordered = tuple(sorted(members, key=_natural_key))
        upper = frozenset(m.upper() for m in members)
        everyone = len(upper) > 1 and upper == self.fleet
        groups = () if everyone else self._cover(upper)
        return HostSet(ordered, host_ranges(ordered), groups, everyone)

    def _cover(self, upper: frozenset[str]) -> tuple[str, ...]:
        """The groups whose union is exactly `upper` (none of them inside another), or ()."""
        candidates = {i for host in upper for i in self.by_host.get(host, ())}
        inside = sorted(i for i in candidates if self.groups[i][1] <= upper)
        lookup = frozenset(inside)
        kept = [i for i in inside if not self._within_another(i, lookup)]
        union: set[str] = set()
        for i in kept:
            union.update(self.groups[i][1])
        return tuple(self.groups[i][0] for i in kept) if kept and union == upper else ()

    def _within_another(self, i: int, inside: frozenset[int]) -> bool:
        members = self.groups[i][1]
        host = next(iter(members))
        return any(j in inside and members < self.groups[j][1] for j in self.by_host[host])


# --- the summary's values ------------------------------------------------------------------------


class Section(str, Enum):
    """What a summary entry is about; its family for `exception` is (section, topic)."""

    SETTINGS = "settings"
    NETWORK = "network"
    DELEGATION = "delegation"
    PROTOCOL_TRANSITION = "protocol-transition"
    TICKETS = "tickets"


@dataclass(frozen=True)
class Entry:
    """Identical changes across a set of hosts (or accounts): one line for a reviewer."""

    phase: Phase
    section: Section
    symbol: str  # '+', '~' or '-'
    hosts: HostSet
    text: str  # what happens to each of them, e.g. "authentication: CredSSP -> Kerberos"
    topic: str = ""  # the family within its section (a setting, a subnet)
    exception: bool = False  # differs from the family's common pattern (its largest entry)
    values: int = 0  # delegation values in all (delegation entries)


@dataclass(frozen=True)
class PhaseSummary:
    phase: Phase
    changes: int  # the plan's changes in this phase (every address counted)
    entries: tuple[Entry, ...]


@dataclass(frozen=True)
class FindingGroup:
    """The same finding on one or more subjects."""

    severity: Severity
    code: str
    message: str  # with {host} / {peer} for the subjects' names when there are several
    fix: str
    evidence: str  # the first subject's evidence (each subject's is in the plan file)
    subjects: tuple[str, ...]
    hosts: HostSet  # the hosts the subjects name


@dataclass(frozen=True)
class Summary:
    totals: tuple[int, int, int]  # Plan.summary(): to add, to change, to delete
    phases: tuple[PhaseSummary, ...]  # in apply order, only phases with changes
    findings: tuple[FindingGroup, ...]
    changed: HostSet  # every host or account a change concerns
    finding_count: int = 0

    @property
    def entries(self) -> tuple[Entry, ...]:
        """All phases' entries, in order."""
        return tuple(e for p in self.phases for e in p.entries)


_LAST: list[tuple[Plan, Summary]] = []  # one slot: a plan printed and saved is summarised once


def summarize(plan: Plan) -> Summary:
    """The plan's summary. The CLI renders one plan in several forms (the text on stdout, the
    JSON it saves): the last plan's summary is kept, by identity (a Plan is immutable)."""
    if _LAST and _LAST[0][0] is plan:
        return _LAST[0][1]
    summary = _summarize(plan)
    _LAST[:] = [(plan, summary)]
    return summary


def _summarize(plan: Plan) -> Summary:
    namer = _Namer(plan.fleet, plan.groups)
    phases = []
    for phase in Phase:
        changes = plan.in_phase(phase)
        if changes:
            phases.append(PhaseSummary(phase, len(changes), _mark_exceptions(
                _phase_entries(phase, changes, namer))))
    return Summary(
        totals=plan.summary(),
        phases=tuple(phases),
        findings=group_findings(plan.findings, namer),
        changed=namer.name({c.host for c in plan.changes}),
        finding_count=len(plan.findings),
    )


def _phase_entries(phase: Phase, changes: Sequence[Change], namer: _Namer) -> list[Entry]:
    settings: dict[tuple[str, FieldValue, FieldValue], list[str]] = {}
    networks: dict[tuple[Action, str, FieldValue, FieldValue], list[str]] = {}
    transitions: dict[tuple[bool, str], list[str]] = {}
    tickets: list[str] = []
    delegation: list[Change] = []
    for change in changes:
        where = change.where
        part = where.part
        if part is Part.MIGRATION:
            before, after = change.before or {}, change.after or {}
            for key in after:
                settings.setdefault((key, before.get(key), after[key]), []).append(change.host)
        elif part is Part.NETWORK:
            subnet = str(where.subnet)
            before_p = (change.before or {}).get("priority")
            after_p = (change.after or {}).get("priority")
            networks.setdefault((change.action, subnet, before_p, after_p), []).append(
                change.host)
        elif part is Part.PROTOCOL_TRANSITION:
            wanted = bool((change.after or {}).get("protocolTransition"))
            transitions.setdefault((wanted, change.reason), []).append(change.host)
        elif part is Part.TICKETS:
            tickets.append(change.host)
        else:
            delegation.append(change)
    out = [_setting_entry(phase, key, hosts, namer) for key, hosts in settings.items()]
    out += [_network_entry(phase, key, hosts, namer) for key, hosts in networks.items()]
    out += delegation_entries(phase, delegation, namer)
    out += [Entry(phase, Section.PROTOCOL_TRANSITION, "~", namer.name(hosts),
                  "protocol transition (use any authentication protocol, 0x01000000) turned "
                  + ("on" if wanted else "off"), topic="protocolTransition")
            for (wanted, _), hosts in transitions.items()]
    if tickets:
        out.append(Entry(phase, Section.TICKETS, "~", namer.name(tickets),
                         "Kerberos tickets of the computer purged (klist purge -li 0x3e7)",
                         topic="tickets"))
    return out


def show_value(name: str, value: FieldValue) -> str:
    """A setting's or a network's value as the summary writes it."""
    if name == "priority" and value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "not read"
    if isinstance(value, tuple):
        return ", ".join(value)
    return str(value)


def _setting_entry(phase: Phase, key: tuple[str, FieldValue, FieldValue], hosts: list[str],
                   namer: _Namer) -> Entry:
    name, before, after = key
    text = f"{name}: {show_value(name, before)} {ARROW} {show_value(name, after)}"
    topic = f"{name}={show_value(name, after)}"  # the same target from another value: exception
    return Entry(phase, Section.SETTINGS, "~", namer.name(hosts), text, topic=topic)


def _network_entry(phase: Phase, key: tuple[Action, str, FieldValue, FieldValue],
                   hosts: list[str], namer: _Namer) -> Entry:
    action, subnet, before, after = key
    if action is Action.CREATE:
        text = f"incoming network {subnet} added (priority {show_value('priority', after)})"
    elif action is Action.DELETE:
        text = (f"incoming network {subnet} removed (priority {show_value('priority', before)}; "
                "after the new ones are added)")
    else:
        text = (f"incoming network {subnet}: priority {show_value('priority', before)} {ARROW} "
                f"{show_value('priority', after)}")
    # the family: the network as it will be (a host that gets there from another priority differs)
    target = "removed" if action is Action.DELETE else f"priority {show_value('priority', after)}"
    return Entry(phase, Section.NETWORK, action.symbol, namer.name(hosts), text,
                 topic=f"{subnet} {target}")


# --- delegation ----------------------------------------------------------------------------------

_PatternKey = tuple[tuple[str, ...], tuple[str, ...]]  # (services, forms)


@dataclass(frozen=True)
class _Pattern:
    """An account's delegation values as (services x forms x peers), when they are that product."""

    services: tuple[str, ...]  # "migration", "cifs", or a service class hvlm does not know
    forms: tuple[str, ...]  # "short", "fqdn"
    peers: frozenset[str]  # upper-case short names
    complete: bool  # the values are exactly services x forms x peers
    values: int

    @property
    def key(self) -> _PatternKey:
        return self.services, self.forms

    def text(self, each: bool, total: int) -> str:
        count = f"{_values(self.values)} each" if each else _values(total)
        return f": {' + '.join(self.services)}, {_forms_text(self.forms)}, {count}"


def _forms_text(forms: tuple[str, ...]) -> str:
    return "both name forms" if len(forms) == 2 else f"{forms[0]} names"


def _values(count: int) -> str:
    return f"{count:,} value" if count == 1 else f"{count:,} values"


def value_parts(value: str) -> tuple[str, str]:
    """(service, target host) of a delegation value: 'cifs/HV02.lab.example:445' -> cifs,
    hv02.lab.example (lower case: the KDC compares case-insensitively)."""
    spn_class = value.partition("/")[0]
    return _SERVICE_NAMES.get(spn_class.lower(), spn_class), spn_host(value)


class _Patterns:
    """Reads accounts' values as patterns; each distinct value is parsed once per summary (a
    peer's values recur in every account of its group).

    A peer is named by its short (NetBIOS) name: the values toward it in the short form. Its
    FQDN need not start with that name (hyperv-03.corp.example.com for HV03), so the FQDN
    values are not matched to peers by name: a pattern with both forms is a product when every
    service has every target and there are as many FQDNs as short names. Only when an account
    gains FQDN values alone are its peers named by the FQDNs' first labels."""

    def __init__(self) -> None:
        self.parts: dict[str, tuple[str, str]] = {}

    def of(self, values: Sequence[str]) -> _Pattern:
        cache = self.parts
        parts = set()
        for value in values:
            found = cache.get(value)
            if found is None:
                found = cache[value] = value_parts(value)
            parts.add(found)
        services = tuple(sorted({s for s, _ in parts}, key=_service_order))
        targets = {t for _, t in parts}
        short = {t for t in targets if "." not in t}
        fqdn = targets - short
        forms = tuple(f for f, present in (("short", short), ("fqdn", fqdn)) if present)
        peers = frozenset(t.upper() for t in short) if short \
            else frozenset(t.split(".", 1)[0].upper() for t in fqdn)
        complete = (len(parts) == len(values) == len(services) * len(targets)
                    and (not short or not fqdn or len(short) == len(fqdn)))
        return _Pattern(services, forms, peers, complete, len(values))


def _service_order(service: str) -> tuple[int, str]:
    known = [s.value for s in DelegationService]
    return (known.index(service), "") if service in known else (len(known), service)


@dataclass(frozen=True)
class _Delegation:
    """What the delegation entries of one phase share."""

    phase: Phase
    namer: _Namer
    verb: str  # "gain" / "lose"
    symbol: str

    def entry(self, hosts: HostSet, text: str, values: int, exception: bool = False) -> Entry:
        return Entry(self.phase, Section.DELEGATION, self.symbol, hosts, text,
                     topic="delegation", exception=exception, values=values)


def delegation_entries(phase: Phase, changes: Sequence[Change], namer: _Namer) -> list[Entry]:
    """Delegation added (DIRECTORY_ADD) or pruned (DIRECTORY_PRUNE), collapsed by pattern."""
    gains = phase is Phase.DIRECTORY_ADD
    how = _Delegation(phase, namer, "gain" if gains else "lose", "+" if gains else "-")
    reader = _Patterns()
    patterns: dict[str, _Pattern] = {}
    odd: list[Entry] = []
    for change in changes:
        values = change.add if gains else change.delete
        pattern = reader.of(values)
        if pattern.complete and pattern.peers:
            patterns[change.host] = pattern
        else:
            peers = namer.name(pattern.peers)
            odd.append(how.entry(namer.name([change.host]),
                                 f"{how.verb} {_values(len(values))} toward {peers.label}"
                                 f"{pattern.text(False, len(values))}", len(values), True))
    mutual = _mutual_entries(how, patterns)
    return mutual + _toward_entries(how, patterns) + odd


_Cluster = tuple[_PatternKey, frozenset[str]]


@dataclass(frozen=True)
class _Mutual:
    """Accounts that each gain every other member of one set (`whole`)."""

    key: _PatternKey
    whole: frozenset[str]
    hosts: HostSet
    patterns: tuple[_Pattern, ...]

    @property
    def values(self) -> int:
        return sum(p.values for p in self.patterns)

    @property
    def one_group(self) -> bool:
        """The members are the whole set, and the set is exactly one manifest group."""
        return len(self.hosts) == len(self.whole) and len(self.hosts.groups) == 1


def _mutual_entries(how: _Delegation, patterns: dict[str, _Pattern]) -> list[Entry]:
    """Accounts that each gain every other member of one set S (removed from `patterns`): one
    entry per S, except where several S of one pattern are each exactly one manifest group:
    one entry for all of them ("gain delegation to the other hosts of their group")."""
    clusters: dict[_Cluster, list[str]] = {}
    for host, pattern in patterns.items():
        if host.upper() not in pattern.peers:
            clusters.setdefault((pattern.key, pattern.peers | {host.upper()}), []).append(host)
    mutual = [_Mutual(key, whole, how.namer.name(members),
                      tuple(patterns.pop(m) for m in members))
              for (key, whole), members in clusters.items() if len(members) > 1]
    by_key: dict[_PatternKey, list[_Mutual]] = {}
    for cluster in mutual:
        if cluster.one_group:
            by_key.setdefault(cluster.key, []).append(cluster)
    across = {(c.key, c.whole) for groups in by_key.values() if len(groups) > 1 for c in groups}
    out = [_one_set(how, c) for c in mutual if (c.key, c.whole) not in across]
    return out + [_across_groups(how, key, groups) for key, groups in by_key.items()
                  if len(groups) > 1]


def _one_set(how: _Delegation, cluster: _Mutual) -> Entry:
    text = f"{how.verb} delegation to each other"
    others = cluster.whole - {m.upper() for m in cluster.hosts.names}
    if others:
        text += f" and to {how.namer.name(others).label}"
    first = cluster.patterns[0]
    each = all(p.values == first.values for p in cluster.patterns)
    return how.entry(cluster.hosts, f"{text}{first.text(each, cluster.values)}", cluster.values)


def _across_groups(how: _Delegation, key: _PatternKey, groups: list[_Mutual]) -> Entry:
    """Whole groups with the same services and forms, each gaining delegation among its own
    members: one entry, "all 200 hosts: gain delegation to the other hosts of their group"."""
    services, forms = key
    hosts = how.namer.name(h for group in groups for h in group.hosts.names)
    total = sum(group.values for group in groups)
    return how.entry(hosts, (
        f"{how.verb} delegation to the other hosts of their group, in each of {len(groups)} "
        f"groups: {' + '.join(services)}, {_forms_text(forms)}, {len(services) * len(forms)} "
        f"values per peer, {total:,} in all"), total)


def _toward_entries(how: _Delegation, patterns: dict[str, _Pattern]) -> list[Entry]:
    """The rest, by the peers they gain: "16 accounts gain delegation to HV017"."""
    by_peers: dict[_Cluster, list[str]] = {}
    for host, pattern in patterns.items():
        by_peers.setdefault((pattern.key, pattern.peers), []).append(host)
    out = []
    for (_, peers), members in by_peers.items():
        pattern = patterns[members[0]]
        total = pattern.values * len(members)
        out.append(how.entry(how.namer.name(members),
                             f"{how.verb} delegation to {how.namer.name(peers).label}"
                             f"{pattern.text(len(members) > 1, total)}", total))
    return out


def _mark_exceptions(entries: list[Entry]) -> tuple[Entry, ...]:
    """Order entries by section and family, largest first; flag those smaller than their
    family's largest (a tie has no common pattern: none of the tied is flagged).

    A family is where the hosts end up: one setting's target value, one network as it will be,
    one protocol-transition direction; its smaller entries get there another way than most.
    Delegation entries of different host sets are different patterns, not exceptions (only an
    account whose values are no product is)."""
    order = list(Section)
    entries.sort(key=lambda e: (order.index(e.section), e.topic, -len(e.hosts),
                                e.hosts.names, e.text))
    largest: dict[tuple[Section, str], int] = {}
    for entry in entries:
        largest.setdefault((entry.section, entry.topic), len(entry.hosts))
    out: list[Entry] = []
    for entry in entries:
        family = (entry.section, entry.topic)
        if len(entry.hosts) < largest[family] and not entry.exception \
                and entry.section is not Section.DELEGATION:
            entry = dataclasses.replace(entry, exception=True)
        out.append(entry)
    return tuple(out)


# --- findings ------------------------------------------------------------------------------------


def subject_hosts(subject: str) -> tuple[str, ...]:
    """The host names a finding's subject names: 'host/HV01' -> HV01; a pair 'HV01<->HV02' or a
    direction 'HV01->HV02' -> both, in that order."""
    for separator in ("<->", "->"):
        if separator in subject:
            return tuple(part.strip() for part in subject.split(separator, 1))
    kind, sep, rest = subject.partition("/")
    if sep and kind in ("host", "directory"):
        return (rest.split("/", 1)[0],)
    return ()


def _masked(text: str, names: Sequence[str], patterns: dict[str, re.Pattern[str]]) -> str:
    """The subject's names taken out: a name (any case) as a word, with the DNS suffix that may
    follow it (its FQDN, hv01.lab.example) and the `$` of its account (HV01$)."""
    placeholders = (HOST_PLACEHOLDER, PEER_PLACEHOLDER)
    for name, placeholder in zip(names, placeholders, strict=False):
        pattern = patterns.get(name)
        if pattern is None:
            pattern = patterns.setdefault(name, re.compile(
                rf"(?<![\w.-]){re.escape(name)}(?:\.[A-Za-z0-9-]+)*\$?(?![\w-])", re.IGNORECASE))
        text = pattern.sub(placeholder, text)
    return text


def group_findings(findings: Sequence[Finding], namer: _Namer | None = None
                   ) -> tuple[FindingGroup, ...]:
    """The same finding on several subjects, once: keyed by severity, code, and the message and
    fix with the subject's own names masked ({host}, {peer}). Order: the findings' own (errors
    first)."""
    namer = namer or _Namer((), ())
    groups: dict[tuple[Severity, str, str, str], list[Finding]] = {}
    patterns: dict[str, re.Pattern[str]] = {}
    for finding in findings:
        names = subject_hosts(finding.subject)
        key = (finding.severity, finding.code, _masked(finding.message, names, patterns),
               _masked(finding.fix, names, patterns))
        groups.setdefault(key, []).append(finding)
    out = []
    for (severity, code, message, fix), members in groups.items():
        first = members[0]
        if len(members) == 1:
            message, fix = first.message, first.fix
        hosts = namer.name(h for f in members for h in subject_hosts(f.subject))
        out.append(FindingGroup(severity, code, message, fix, first.evidence,
                                tuple(f.subject for f in members), hosts))
    return tuple(out)


def covered_hosts(summary: Summary) -> frozenset[str]:
    """Every host an entry names (tests: each changed host is named somewhere)."""
    return frozenset(name for entry in summary.entries for name in entry.hosts.names)


def phase_counts(summary: Summary) -> Mapping[Phase, int]:
    return {p.phase: p.changes for p in summary.phases}
