"""What a simulated command runs with: the host it runs on, its streams, and error helpers.

Part of the lab. `hyperv/host.py` (Hyper-V cmdlets) and `hyperv/preflight.py` (CIM, features,
addresses, VMs, klist) write handlers `handler(host, bound, emitter)`; the host runs them under
its lock. The `Emitter` applies -ErrorAction / -WarningAction as PowerShell does: Stop turns the
first non-terminating error (or warning) into a terminating one; SilentlyContinue/Ignore drop it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from psrpcore.types import ErrorCategory

from hvlm_lab.cmdlets import ErrorInfo
from hvlm_lab.hyperv.binding import ActionPreference, BindingError, Bound, CmdletSpec
from hvlm_lab.hyperv.config import LabHostConfig, MigrationState

VIRTUALIZATION_EXCEPTION = "Microsoft.HyperV.PowerShell.VirtualizationException"
_DROPPED = (ActionPreference.SilentlyContinue, ActionPreference.Ignore)


class HostView(Protocol):
    """The host as a command handler sees it (the host's lock is held)."""

    @property
    def config(self) -> LabHostConfig: ...

    def state(self) -> MigrationState: ...

    def set_state(self, state: MigrationState) -> None: ...

    def record_purge(self, logon_id: str) -> None: ...

    def ticket_count(self, logon_id: str) -> int: ...

    def firewall_rules(self) -> dict[str, bool]: ...

    def set_firewall_rule(self, name: str, enabled: bool) -> None: ...


@dataclass
class Emitter:
    """Collects one command's output, errors and warnings for one input record."""

    spec: CmdletSpec
    bound: Bound
    output: list[Any] = field(default_factory=list)
    errors: list[ErrorInfo] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def write(self, obj: Any) -> None:
        self.output.append(obj)

    def error(self, info: ErrorInfo) -> None:
        action = self.bound.preference("ErrorAction")
        if action is ActionPreference.Stop:
            raise BindingError(info)
        if action not in _DROPPED:
            self.errors.append(info)

    def warning(self, message: str) -> None:
        action = self.bound.preference("WarningAction")
        if action is ActionPreference.Stop:
            raise BindingError(ErrorInfo(
                "The running command stopped because the preference variable "
                f'"WarningPreference" or common parameter is set to Stop: {message}',
                f"ActionPreferenceStop,{self.spec.type_name}", ErrorCategory.OperationStopped,
                "System.Management.Automation.ActionPreferenceStopException"))
        if action not in _DROPPED:
            self.warnings.append(message)

    def should_process(self) -> bool:
        """-WhatIf means: describe, do not change (the description goes to the host UI)."""
        return not self.bound.get("WhatIf", False)

    def vm_error(self, error_id: str, category: ErrorCategory, message: str,
                 target: Any = None) -> None:
        """A Hyper-V cmdlet's non-terminating VirtualizationException record."""
        self.error(ErrorInfo(message, f"{error_id},{self.spec.type_name}", category,
                             VIRTUALIZATION_EXCEPTION, target))


Handler = Callable[[HostView, Bound, Emitter], None]


@dataclass(frozen=True)
class Command:
    spec: CmdletSpec
    handler: Handler
    needs_hyperv: bool = False
    # A native program (klist): no binding; the handler gets bound["args"], the raw tokens.
    native: bool = False


def targets_this_host(host: HostView, bound: Bound, emitter: Emitter) -> bool:
    """-ComputerName may only name this host (lab choice: another computer is an error)."""
    names = bound.get("ComputerName") or []
    others = [n for n in names if n.lower() not in host.config.names()]
    for name in others:
        emitter.vm_error(
            "ObjectNotFound", ErrorCategory.ObjectNotFound,
            f"The operation on computer '{name}' failed: The WinRM client cannot process the "
            "request because the server name cannot be resolved.", name)
    return not others


_WILDCARD_CHARS = re.compile(r"(?<!`)[*?\[\]]")


def has_wildcards(pattern: str) -> bool:
    """WildcardPattern.ContainsWildcardCharacters: an unescaped * ? [ or ]."""
    return bool(_WILDCARD_CHARS.search(pattern))


def wildcard_match(pattern: str, text: str) -> bool:
    """PowerShell wildcard match, case-insensitive (` escapes the next character)."""
    regex = ""
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "`" and i + 1 < len(pattern):
            regex += re.escape(pattern[i + 1])
            i += 2
            continue
        if ch == "[":
            end = pattern.find("]", i + 1)
            if end > i:
                regex += "[" + pattern[i + 1:end].replace("\\", "\\\\") + "]"
                i = end + 1
                continue
        regex += ".*" if ch == "*" else "." if ch == "?" else re.escape(ch)
        i += 1
    return re.fullmatch(regex, text, re.IGNORECASE | re.DOTALL) is not None


def matches_any(patterns: list[str] | None, text: str) -> bool:
    """A -Name/-Subnet filter: None matches all; wildcards or a case-insensitive equality."""
    if patterns is None:
        return True
    return any(wildcard_match(p, text) if has_wildcards(p) else p.lower() == text.lower()
               for p in patterns)
