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

import json
import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence

from hvlm.errors import Severity
from hvlm.findings import Finding, finding_document
from hvlm.model import Manifest
from hvlm.plan import Action, Change, FieldValue, Phase, Plan, dumps_plan

FORMATS = ("human", "json", "markdown")
NO_CHANGES = "No changes. The hosts and the directory match the manifest."

_GREEN, _YELLOW, _RED, _BOLD, _DIM, _RESET = (
    "\x1b[32m", "\x1b[33m", "\x1b[31m", "\x1b[1m", "\x1b[2m", "\x1b[0m"
)
_ACTION_COLOR = {Action.CREATE: _GREEN, Action.UPDATE: _YELLOW, Action.DELETE: _RED}
_SEVERITY_COLOR = {Severity.ERROR: _RED, Severity.WARNING: _YELLOW}


MARKDOWN_BUDGET = 60_000  # one GitHub comment (65,536) with room for the pipeline's own lines


def render(plan: Plan, fmt: str = "human", *, color: bool = False, full: bool = False,
           budget: int | None = None) -> str:
    """The plan for people (human, Markdown: the summary, then every change with `full`) or
    machines (JSON: the plan file). Markdown stays within `budget` characters (MARKDOWN_BUDGET).
    The plan's DC note comes from `plan.domain_controllers` (host -> the DC it uses)."""
    if fmt == "json":
        return dumps_plan(plan)
    if fmt == "markdown":
        return render_markdown(plan)
    if fmt == "human":
        return render_human(plan, color=color)
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


def dc_note(domain_controllers: Mapping[str, str]) -> str:
    """"Domain controllers the hosts use (Win32_NTDomain): dc1.x: HV01, HV03; dc2.x: HV02."."""
    by_dc: dict[str, list[str]] = {}
    for host, dc in sorted(domain_controllers.items()):
        by_dc.setdefault(dc or "unknown", []).append(host)
    parts = []
    for dc, hosts in sorted(by_dc.items()):
        named = ", ".join(hosts[:DC_NOTE_HOSTS])
        more = f" and {len(hosts) - DC_NOTE_HOSTS} more" if len(hosts) > DC_NOTE_HOSTS else ""
        parts.append(f"{dc}: {named}{more}")
    return ("Domain controllers the hosts use (Win32_NTDomain; apply waits until they hold the "
            "delegation it writes): " + "; ".join(parts) + ".")


def notes(plan: Plan) -> list[str]:
    """Plain sentences shown above the changes (both renderers)."""
    out: list[str] = []
    if plan.domain_controllers:
        out.append(dc_note(dict(plan.domain_controllers)))
    if plan.selection is not None:
        out.append("Only the selected hosts (--host " + ", ".join(plan.selection) + ") are "
                   "planned, with the delegation toward them: other changes are not shown.")
    if plan.unread_hosts:
        out.append("Hosts not read, no change planned for them: " + ", ".join(plan.unread_hosts))
    if not plan.directory_read:
        out.append("The directory was not read: no delegation change is planned.")
    delegation = plan.in_phase(Phase.DIRECTORY_ADD) + plan.in_phase(Phase.DIRECTORY_PRUNE)
    if delegation and not plan.refresh_tickets:
        out.append("Delegation changes take effect once the hosts get new Kerberos tickets: "
                   "plan with --refresh-tickets to purge them (klist purge -li 0x3e7).")
    return out


# --- human text ---------------------------------------------------------------------------------


def render_human(plan: Plan, *, color: bool = False) -> str:
    paint: Callable[[str, str], str] = (lambda code, text: f"{code}{text}{_RESET}") if color \
        else (lambda code, text: text)
    out = [f"hvlm plan for manifest {_show(plan.manifest.name)}{_digest_note(plan)}"]
    out.extend(paint(_YELLOW, safe(note)) for note in notes(plan))
    if plan.has_changes:
        out.append("\nhvlm will perform the following actions, in this order:")
    for phase in Phase:
        changes = plan.in_phase(phase)
        if changes:
            out.append(f"\n{paint(_BOLD, f'{phase.order + 1}. {phase.heading}')}")
            out.extend(_human_change(change, paint) for change in changes)
    if plan.findings:
        out.append(f"\n{paint(_BOLD, 'Findings:')}")
        out.extend(_human_finding(f, paint) for f in plan.findings)
    out.append("\n" + paint(_BOLD, summary_line(plan)))
    return "\n".join(out) + "\n"


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


def _human_finding(finding: Finding, paint: Callable[[str, str], str]) -> str:
    tag = paint(_SEVERITY_COLOR[finding.severity], finding.severity.value)
    lines = [f"  {tag}: {safe(finding.subject)}: {safe(finding.message)} [{safe(finding.code)}]"]
    return "\n".join(lines + _finding_details(finding, 6))


def _finding_details(finding: Finding, indent: int) -> list[str]:
    pad = " " * indent
    lines = [f"{pad}evidence: {safe(finding.evidence)}"] if finding.evidence else []
    return lines + ([f"{pad}fix: {safe(finding.fix)}"] if finding.fix else [])


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


def render_markdown(plan: Plan) -> str:
    out = [f"### hvlm plan: {md_code(plan.manifest.name)}", "", f"**{summary_line(plan)}**", ""]
    for note in notes(plan):
        out += [f"> **Note:** {md_text(note)}", ""]
    for phase in Phase:
        changes = plan.in_phase(phase)
        if changes:
            out += _md_phase(phase, changes)
    if plan.findings:
        out += _md_findings(plan.findings)
    return "\n".join(out).rstrip("\n") + "\n"


def _md_phase(phase: Phase, changes: tuple[Change, ...]) -> list[str]:
    out = [f"#### {phase.order + 1}. {phase.heading}", "",
           "| | Address | Action | Reason |", "|---|---|---|---|"]
    for c in changes:
        out.append(f"| `{c.action.symbol}` | {md_code(c.address)} | {c.action.value} "
                   f"| {md_text(c.reason)} |")
    body = "\n".join(_md_diff(c) for c in changes)
    fence = _fence(body)
    noun = "change" if len(changes) == 1 else "changes"
    out += ["", f"<details><summary>Details ({len(changes)} {noun})</summary>", "",
            f"{fence}diff", body, fence, "", "</details>", ""]
    return out


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
        out.extend(_finding_details(f, 8))
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
