"""Renderers: a Plan, or check's findings, as text for a terminal, Markdown, or JSON. Pure.

Pipeline position: last before the user. `hvlm plan` / `hvlm apply` build a Plan (hvlm.planner),
`hvlm check` a list of findings (hvlm.check); the CLI prints one of these on stdout (logs go to
stderr). Findings look the same wherever they come from: one line each with their evidence and
fix, one Markdown table, one JSON object (hvlm.findings.finding_document). Colour only when the
caller asks (`color=True`: a TTY, no NO_COLOR).

Every string that came from outside (delegation values read from AD, error messages, reasons) is
made inert before it is shown: control characters are escaped in text (no terminal escape
sequences), HTML and Markdown are escaped in Markdown (a value cannot close a table or a block).
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence

from hvlm.errors import Severity
from hvlm.findings import Finding, finding_document
from hvlm.model import Manifest
from hvlm.plan import Action, Change, FieldValue, Phase, Plan, dumps_plan
from hvlm.summary import (
    HOST_PLACEHOLDER,
    PEER_PLACEHOLDER,
    RANGES_SHOWN,
    Entry,
    FindingGroup,
    HostSet,
    PhaseSummary,
    Summary,
    host_ranges,
    summarize,
)

FORMATS = ("human", "json", "markdown")
NO_CHANGES = "No changes. The hosts and the directory match the manifest."

_GREEN, _YELLOW, _RED, _BOLD, _DIM, _RESET = (
    "\x1b[32m", "\x1b[33m", "\x1b[31m", "\x1b[1m", "\x1b[2m", "\x1b[0m"
)
_ACTION_COLOR = {Action.CREATE: _GREEN, Action.UPDATE: _YELLOW, Action.DELETE: _RED}
_ENTRY_COLOR = {action.symbol: color for action, color in _ACTION_COLOR.items()}
_SEVERITY_COLOR = {Severity.ERROR: _RED, Severity.WARNING: _YELLOW}


MARKDOWN_BUDGET = 60_000  # one GitHub comment (65,536) with room for the pipeline's own lines


def render(plan: Plan, fmt: str = "human", *, color: bool = False, full: bool = False,
           budget: int | None = None) -> str:
    """The plan for people (human, Markdown: the summary, then every change with `full`) or
    machines (JSON: the plan file). Markdown stays within `budget` characters (MARKDOWN_BUDGET).
    The plan's DC note comes from `plan.domain_controllers` (host -> the DC it uses)."""
    if fmt == "json":
        return dumps_plan(plan, review_document(summarize(plan)))
    if fmt == "markdown":
        return render_markdown(plan, MARKDOWN_BUDGET if budget is None else budget)
    if fmt == "human":
        return render_human(plan, color=color, full=full)
    raise ValueError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")


def summary_line(plan: Plan) -> str:
    if not plan.has_changes:
        return NO_CHANGES
    add, change, delete = plan.summary()
    return f"Plan: {add} to add, {change} to change, {delete} to delete."


def safe(text: str) -> str:
    """Escape control and format characters (ESC, CSI, BIDI overrides...) as \\uXXXX."""
    if text.isprintable():
        return text
    return "".join(
        f"\\u{ord(ch):04x}" if unicodedata.category(ch)[0] in "CZ" and ch != " " else ch
        for ch in text
    )


def _show(value: FieldValue) -> str:
    if value is None:
        return "null (any)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[" + ", ".join(f'"{safe(v)}"' for v in value) + "]"
    if isinstance(value, int):
        return str(value)
    return f'"{safe(value)}"'


def _show_field(name: str, value: FieldValue) -> str:
    if name == "userAccountControl" and isinstance(value, int) and not isinstance(value, bool):
        return f"0x{value:08x}"
    if name == "priority" and value is None:
        return "unset (Hyper-V chooses)"
    return _show(value)


# --- the diff lines of one change (shared by text and Markdown) ---------------------------------


def change_lines(change: Change) -> Iterator[tuple[str, str]]:
    """(symbol, text) per line: '+' added, '-' removed, '~' changed, ' ' kept."""
    if change.add or change.delete:
        yield from _value_lines(change)
        return
    before, after = change.before or {}, change.after or {}
    for name in dict.fromkeys([*before, *after]):
        if name == "subnet":
            continue
        old, new = before.get(name), after.get(name)
        if change.action is Action.CREATE:
            yield "+", f"{name}: {_show_field(name, new)}"
        elif change.action is Action.DELETE and change.after is None:
            yield "-", f"{name}: {_show_field(name, old)}"
        elif old != new:
            yield "~", f"{name}: {_show_field(name, old)} -> {_show_field(name, new)}"


def _value_lines(change: Change) -> Iterator[tuple[str, str]]:
    deleted = set(change.delete)
    values = next((v for v in (change.before or {}).values() if isinstance(v, tuple)), ())
    for value in values:
        yield ("-", f'"{safe(value)}"') if value in deleted else (" ", f'"{safe(value)}" (kept)')
    for value in change.add:
        yield "+", f'"{safe(value)}"'


DC_NOTE_HOSTS = 8  # hosts named per DC in the note; beyond, a count
DC_NOTE_DCS = 8  # DCs named in the note; beyond, a count


def dc_note(domain_controllers: Mapping[str, str]) -> str:
    """"Domain controllers the hosts use (Win32_NTDomain): dc1.x: HV01, HV03; dc2.x: HV02."."""
    by_dc: dict[str, list[str]] = {}
    for host, dc in sorted(domain_controllers.items()):
        by_dc.setdefault(dc or "unknown", []).append(host)
    parts = []
    for dc, hosts in sorted(by_dc.items())[:DC_NOTE_DCS]:
        named = ", ".join(hosts[:DC_NOTE_HOSTS])
        more = f" and {len(hosts) - DC_NOTE_HOSTS} more" if len(hosts) > DC_NOTE_HOSTS else ""
        parts.append(f"{dc}: {named}{more}")
    if len(by_dc) > DC_NOTE_DCS:
        parts.append(f"and {len(by_dc) - DC_NOTE_DCS} more DCs")
    return ("Domain controllers the hosts use (Win32_NTDomain; apply waits until they hold the "
            "delegation it writes): " + "; ".join(parts) + ".")


def notes(plan: Plan) -> list[str]:
    """Plain sentences shown above the changes (both renderers)."""
    out: list[str] = []
    if plan.domain_controllers:
        out.append(dc_note(dict(plan.domain_controllers)))
    if plan.selection is not None:
        selected = HostSet(plan.selection, host_ranges(plan.selection))
        out.append("Only the selected hosts (--host " + ", ".join(selected.ranges[:RANGES_SHOWN])
                   + (f" and {len(selected.ranges) - RANGES_SHOWN} more ranges"
                      if len(selected.ranges) > RANGES_SHOWN else "") + ") are "
                   "planned, with the delegation toward them: other changes are not shown.")
    if plan.unread_hosts:
        unread = HostSet(plan.unread_hosts, host_ranges(plan.unread_hosts))
        out.append("Hosts not read, no change planned for them: "
                   + (unread.names[0] if len(unread) == 1 else unread.short_label()))
    if not plan.directory_read:
        out.append("The directory was not read: no delegation change is planned.")
    delegation = plan.in_phase(Phase.DIRECTORY_ADD) + plan.in_phase(Phase.DIRECTORY_PRUNE)
    if delegation and not plan.refresh_tickets:
        out.append("Delegation changes take effect once the hosts get new Kerberos tickets: "
                   "plan with --refresh-tickets to purge them (klist purge -li 0x3e7).")
    return out


# --- JSON: the summary for machines (the plan file's "review") ---------------------------------


def review_document(summary: Summary) -> dict[str, object]:
    """The summary as JSON: each step's entries and the finding groups, host sets as their
    label, count, compact ranges and groups (every host named, in few bytes)."""
    return {
        "changed": _host_set_doc(summary.changed),
        "steps": [{
            "step": part.phase.order + 1, "phase": part.phase.value, "changes": part.changes,
            "entries": [{
                "symbol": e.symbol, "section": e.section.value, "hosts": _host_set_doc(e.hosts),
                "text": e.text, "exception": e.exception, "values": e.values,
            } for e in part.entries],
        } for part in summary.phases],
        "findings": [{
            "severity": g.severity.value, "code": g.code, "message": g.message, "fix": g.fix,
            "subjects": list(g.subjects), "hosts": _host_set_doc(g.hosts),
        } for g in summary.findings],
    }


def _host_set_doc(hosts: HostSet) -> dict[str, object]:
    return {"label": hosts.short_label(), "count": len(hosts), "ranges": list(hosts.ranges),
            "groups": list(hosts.groups), "all": hosts.everyone}


# --- human text ---------------------------------------------------------------------------------


def render_human(plan: Plan, *, color: bool = False, full: bool = False) -> str:
    """The summary (hvlm.summary): one line per set of identical changes, findings grouped;
    `full` adds every change with its values, in apply order."""
    paint: Callable[[str, str], str] = (lambda code, text: f"{code}{text}{_RESET}") if color \
        else (lambda code, text: text)
    summary = summarize(plan)
    out = [f"hvlm plan for manifest {_show(plan.manifest.name)}{_digest_note(plan)}"]
    out.extend(paint(_YELLOW, safe(note)) for note in notes(plan))
    if plan.has_changes:
        out.append(f"\nhvlm will change {summary.changed.short_label()}, in this order:")
    for part in summary.phases:
        out.append(f"\n{paint(_BOLD, _phase_title(part))}")
        out.extend(_human_entry(entry, paint) for entry in part.entries)
    if summary.findings:
        out.append(f"\n{paint(_BOLD, _findings_title(summary))}")
        out.extend(_human_group(group, paint) for group in summary.findings)
    if full and plan.has_changes:
        out.append(f"\n{paint(_BOLD, 'Every change:')}")
        for phase in Phase:
            changes = plan.in_phase(phase)
            if changes:
                out.append(f"\n{paint(_BOLD, f'{phase.order + 1}. {phase.heading}')}")
                out.extend(_human_change(change, paint) for change in changes)
    elif plan.has_changes:
        out.append("\n" + paint(_DIM, FULL_HINT))
    out.append("\n" + paint(_BOLD, summary_line(plan)))
    return "\n".join(out) + "\n"


FULL_HINT = "Every change and delegation value: add --full (or hvlm show PLANFILE --full)."


def _phase_title(phase: PhaseSummary) -> str:
    noun = "change" if phase.changes == 1 else "changes"
    return f"{phase.phase.order + 1}. {phase.phase.heading} ({phase.changes} {noun})"


def _findings_title(summary: Summary) -> str:
    count = summary.finding_count
    return f"Findings ({count}):" if count == len(summary.findings) \
        else f"Findings ({count}, in {len(summary.findings)} groups):"


def _human_entry(entry: Entry, paint: Callable[[str, str], str]) -> str:
    symbol = paint(_ENTRY_COLOR[entry.symbol], entry.symbol)
    mark = paint(_YELLOW, " [differs from the rest]") if entry.exception else ""
    return f"  {symbol} {paint(_BOLD, safe(entry.hosts.label))}: {safe(entry.text)}{mark}"


def _human_group(group: FindingGroup, paint: Callable[[str, str], str]) -> str:
    tag = paint(_SEVERITY_COLOR[group.severity], group.severity.value)
    who = group.subjects[0] if len(group.subjects) == 1 else _group_subjects(group)
    head = f"  {tag}: {safe(who)}: {safe(group.message)} [{safe(group.code)}]"
    return "\n".join([head] + _details(group.evidence, group.fix, 6, len(group.subjects)))


def _group_subjects(group: FindingGroup, short: bool = False) -> str:
    """Whom a group of findings is about: '6 hosts (HV01–HV06)' ({host} in its message stands
    for each), or its pairs / directions themselves ({host} and {peer} for each one's two);
    `short`: at most RANGES_SHOWN of them, then a count."""
    for separator, noun in (("<->", "pairs"), ("->", "directions")):
        if any(separator in subject for subject in group.subjects):
            listed = list(group.subjects)
            if short and len(listed) > RANGES_SHOWN:
                listed = listed[:RANGES_SHOWN] + [f"and {len(group.subjects) - RANGES_SHOWN} more"]
            return (f"{len(group.subjects)} {noun} ({HOST_PLACEHOLDER}{separator}"
                    f"{PEER_PLACEHOLDER}): {', '.join(listed)}")
    if not group.hosts.names:
        return f"{len(group.subjects)} subjects: {', '.join(group.subjects)}"
    return group.hosts.short_label() if short else group.hosts.label


def _details(evidence: str, fix: str, indent: int, subjects: int = 1) -> list[str]:
    pad = " " * indent
    tail = f" (one of {subjects}; each one's is in the plan file)" if subjects > 1 else ""
    lines = [f"{pad}evidence: {safe(evidence)}{tail}"] if evidence else []
    return lines + ([f"{pad}fix: {safe(fix)}"] if fix else [])


def _digest_note(plan: Plan) -> str:
    digest = plan.manifest.digest.removeprefix("sha256:")
    return f" (sha256 {safe(digest[:12])})" if digest else ""


def _human_change(change: Change, paint: Callable[[str, str], str]) -> str:
    color = _ACTION_COLOR[change.action]
    lines = [f"  {paint(color, change.action.symbol)} {paint(_BOLD, safe(change.address))}",
             f"      {paint(_DIM, '# ' + safe(change.reason))}"]
    line_color = {"+": _GREEN, "-": _RED, "~": _YELLOW, " ": ""}
    for symbol, text in change_lines(change):
        lines.append(f"      {paint(line_color[symbol], symbol) if symbol != ' ' else ' '} {text}")
    return "\n".join(lines)


# --- Markdown (pull-request comment) -----------------------------------------------------------

# Inline-significant characters; text never starts a line (cells, "> **Note:** ..."), so the
# line-start ones (#, +, -, 1.) need no escape.
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]~|>])")


def md_text(text: str) -> str:
    """Inert Markdown text for a table cell or a line: HTML and Markdown escaped, one line."""
    escaped = safe(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", escaped).replace("\n", " ")


def md_code(text: str) -> str:
    """Inline code that survives any content (a table's pipes, backticks): HTML <code>."""
    escaped = safe(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return "<code>" + escaped.replace("|", "&#124;").replace("`", "&#96;") + "</code>"


def _fence(body: str) -> str:
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    return "`" * max(3, longest + 1)


def render_markdown(plan: Plan, budget: int = MARKDOWN_BUDGET) -> str:
    """A pull-request comment of at most `budget` characters: title, totals (and the findings'
    count, so an error is never silently out of the budget), the notes, the summary
    (hvlm.summary) and the grouped findings, then each phase's every change in a collapsed block
    while it fits. What does not fit is left out whole (a note, a table row, a block: never a
    cut row or fence), and a closing note says what and where the full plan is. A summary row
    names every host when it fits, else as many ranges as its short label holds."""
    summary = summarize(plan)
    head = [f"### hvlm plan: {md_code(plan.manifest.name)}", "", f"**{summary_line(plan)}**"]
    if summary.findings:
        head += ["", f"**{_findings_count(plan)}**"]
    page = _Page(budget - _LEFT_OUT_RESERVE, "\n".join(head) + "\n")
    for note in notes(plan):
        page.piece(f"> **Note:** {md_text(note)}\n", "a note")
    rows = [(_md_entry_row(phase, entry, entry.hosts.label),
             _md_entry_row(phase, entry, entry.hosts.short_label()))
            for phase in summary.phases for entry in phase.entries]
    findings = [(_md_group_row(group, False), _md_group_row(group, True))
                for group in summary.findings]
    if rows:
        # with findings to show, the summary leaves them a third of the room at least
        share = page.room() * 2 // 3 if findings else page.room()
        page.table(f"#### What changes ({_changed_label(summary)})",
                   "| | Hosts | Change |\n|---|---|---|", rows, "summary rows", share)
    if findings:
        page.table(f"#### Findings ({summary.finding_count})",
                   "| Severity | Subject | Finding | Fix |\n|---|---|---|---|", findings,
                   "finding rows")
    for phase in Phase:
        changes = plan.in_phase(phase)
        if changes:
            page.block("#### Every change\n", functools.partial(_md_phase, phase, changes),
                       f"every change of step {phase.order + 1} ({len(changes)})")
    return page.text(budget)


def _findings_count(plan: Plan) -> str:
    errors = len(plan.errors())
    warnings = len(plan.findings) - errors
    return f"Findings: {errors} error(s), {warnings} warning(s)."


_LEFT_OUT_RESERVE = 600  # room kept for the closing note about what was left out


class _Page:
    """Markdown built in whole pieces within a budget; remembers what it left out."""

    def __init__(self, budget: int, head: str) -> None:
        self.budget = budget
        self.parts = [head]
        self.left_out: list[str] = []
        self.headings: set[str] = set()
        self.size = len(head)

    def room(self) -> int:
        return self.budget - self.size

    def _fits(self, piece: str, limit: int | None = None) -> bool:
        return self.size + len(piece) + 1 <= (self.budget if limit is None else limit)

    def _add(self, piece: str) -> None:
        self.parts.append(piece)
        self.size += len(piece) + 1

    def piece(self, text: str, what: str) -> None:
        if self._fits(text):
            self._add(text)
        else:
            self.left_out.append(what)

    def table(self, title: str, header: str, rows: Sequence[tuple[str, ...]], what: str,
              share: int | None = None) -> None:
        """Rows in order while they fit in `share` characters (default: the room left); each
        row is its first form that fits (a full form, then shorter ones)."""
        limit = self.size + (self.room() if share is None else share)
        start = f"{title}\n\n{header}"
        if not self._fits(start, limit):
            self.left_out.append(f"{len(rows)} {what}")
            return
        self._add(start)
        for i, forms in enumerate(rows):
            row = next((form for form in forms if self._fits(form, limit)), None)
            if row is None:
                self.left_out.append(f"{len(rows) - i} of {len(rows)} {what}")
                break
            self._add(row)
        self._add("")

    def block(self, heading: str, build: Callable[[int], str | None], what: str) -> None:
        """A piece built within the room left (`build` returns None when it does not fit), under
        `heading` (written once, before the first piece that fits)."""
        room = self.budget - self.size - 1 - (0 if heading in self.headings else len(heading) + 1)
        body = build(room) if room > 0 else None
        if body is None:
            self.left_out.append(what)
            return
        if heading not in self.headings:
            self.headings.add(heading)
            self._add(heading)
        self._add(body)

    def text(self, budget: int) -> str:
        parts = list(self.parts)
        if self.left_out:
            parts.append(md_text(
                f"Left out to stay within {budget:,} characters: " + "; ".join(self.left_out)
                + ". The full plan is the saved plan file (the pipeline's plan artifact): "
                "hvlm show PLANFILE --full lists every change and value; "
                "hvlm show PLANFILE --format json prints it for machines.").join(
                    ("> **Note:** ", "")))
        return "\n".join(parts).rstrip("\n") + "\n"


def _changed_label(summary: Summary) -> str:
    return md_text(summary.changed.short_label())


def _md_entry_row(phase: PhaseSummary, entry: Entry, hosts: str) -> str:
    mark = " *(differs from the rest)*" if entry.exception else ""
    return (f"| `{entry.symbol}` | {md_text(hosts)} "
            f"| {phase.phase.order + 1}. {md_text(entry.text)}{mark} |")


def _md_group_row(group: FindingGroup, short: bool) -> str:
    subject = md_code(group.subjects[0]) if len(group.subjects) == 1 \
        else md_text(_group_subjects(group, short))
    tail = f" (one of {len(group.subjects)})" if len(group.subjects) > 1 else ""
    evidence = f" (evidence: {md_text(group.evidence)}{tail})" if group.evidence else ""
    return (f"| **{group.severity.value}** | {subject} "
            f"| {md_text(group.message)}{evidence} {md_code(group.code)} | {md_text(group.fix)} |")


def _md_phase(phase: Phase, changes: tuple[Change, ...], room: int) -> str | None:
    """Every change of one phase, with its values, as a collapsed diff block; None when the
    block would take more than `room` characters (it is then left out whole, not cut)."""
    diffs: list[str] = []
    size = 0
    for change in changes:
        diff = _md_diff(change)
        size += len(diff) + 1
        if size > room:
            return None
        diffs.append(diff)
    body = "\n".join(diffs)
    fence = _fence(body)
    noun = "change" if len(changes) == 1 else "changes"
    block = "\n".join([
        f"<details><summary>{phase.order + 1}. {phase.heading}: every change "
        f"({len(changes)} {noun})</summary>", "", f"{fence}diff", body, fence, "", "</details>",
        ""])
    return block if len(block) <= room else None


def _md_diff(change: Change) -> str:
    lines = [f"{change.action.symbol} {safe(change.address)}"]
    lines += [f"{symbol}     {text}" for symbol, text in change_lines(change)]
    return "\n".join(lines)


def _md_findings(findings: tuple[Finding, ...]) -> list[str]:
    out = ["#### Findings", "", "| Severity | Subject | Finding | Fix |", "|---|---|---|---|"]
    for f in findings:
        evidence = f" (evidence: {md_text(f.evidence)})" if f.evidence else ""
        out.append(f"| **{f.severity.value}** | {md_code(f.subject)} "
                   f"| {md_text(f.message)}{evidence} {md_code(f.code)} | {md_text(f.fix)} |")
    out.append("")
    return out


# --- findings alone (`hvlm check`) ------------------------------------------------------------

FINDINGS_FORMAT_VERSION = 1


def render_findings(
    findings: Sequence[Finding], hosts: int, *, color: bool = False, fmt: str = "human",
    manifest: Manifest | None = None,
) -> str:
    """`hvlm check`'s report: human (default), markdown, or json (which needs the manifest)."""
    if fmt == "json":
        if manifest is None:
            raise ValueError("the JSON findings document names its manifest")
        return json.dumps(findings_document(findings, manifest), indent=2) + "\n"
    if fmt == "markdown":
        return render_findings_markdown(findings, hosts)
    if fmt != "human":
        raise ValueError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    paint: Callable[[str, str], str] = (lambda code, text: f"{code}{text}{_RESET}") if color \
        else (lambda code, text: text)
    out: list[str] = []
    for f in findings:
        out.append(f"{paint(_SEVERITY_COLOR[f.severity], f'{f.severity.value:<7}')} "
                   f"{safe(f.subject)}  [{f.code}] {safe(f.message)}")
        out.extend(_details(f.evidence, f.fix, 8))
    out.append(_check_summary(findings, hosts))
    return "\n".join(out) + "\n"


def _check_summary(findings: Sequence[Finding], hosts: int) -> str:
    errors = sum(1 for f in findings if f.severity is Severity.ERROR)
    if not findings:
        return f"Check: no findings on {hosts} host(s)."
    return f"Check: {errors} error(s), {len(findings) - errors} warning(s) on {hosts} host(s)."


def render_findings_markdown(findings: Sequence[Finding], hosts: int) -> str:
    out = ["### hvlm check", "", f"**{_check_summary(findings, hosts)}**", ""]
    if findings:
        out += _md_findings(tuple(findings))
    return "\n".join(out).rstrip("\n") + "\n"


def findings_document(findings: Sequence[Finding], manifest: Manifest) -> dict[str, object]:
    """`hvlm check --format json` (format_version 1)."""
    errors = sum(1 for f in findings if f.severity is Severity.ERROR)
    return {
        "format_version": FINDINGS_FORMAT_VERSION,
        "manifest": {"name": manifest.name, "source": manifest.source},
        "summary": {"errors": errors, "warnings": len(findings) - errors},
        "findings": [finding_document(f) for f in findings],
    }
