"""A simulated Hyper-V host: the `CmdletHost` that the lab's WSMan/PSRP server drives.

Part of the lab. The server (`wsman/server.py`) turns each PSRP statement into `Invocation`s (see
`cmdlets.py`) and calls `HyperVHost.invoke`; the host binds them as PowerShell does
(`hyperv/binding.py`), runs the simulated cmdlets (`hyperv/migration.py`: host settings and
migration networks; `hyperv/preflight.py`: CIM, features, addresses, VMs, klist) against its
state, and answers with psrpcore PSObjects and error records shaped like a real host's.

    host = HyperVHost(server_2022("HV01", ["10.0.10.11/24"]))
    result = host.invoke([Invocation("Set-VMHost", (("MaximumVirtualMachineMigrations", 4),))])
    host.snapshot().max_vm_migrations  # 4

Thread-safe: one lock per host, held for a whole statement (the server may call from several
threads). A script (AddScript) is refused, as a no-language endpoint refuses it; an unknown
command is a terminating CommandNotFoundException; Hyper-V cmdlets on a host whose config says
the role is not installed are unknown commands too, as they are without the module.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psrpcore.types import ErrorCategory, PSObject

from hvlm_lab.cmdlets import ErrorInfo, Invocation, StatementResult
from hvlm_lab.hyperv import devices as hyperv_devices
from hvlm_lab.hyperv import migration as hyperv_migration
from hvlm_lab.hyperv import preflight as hyperv_preflight
from hvlm_lab.hyperv import security as hyperv_security
from hvlm_lab.hyperv.binding import (
    BINDING_EXCEPTION,
    BindingError,
    Bound,
    CmdletSpec,
    bind,
    check_mandatory,
    convert,
)
from hvlm_lab.hyperv.config import (
    LabHostConfig,
    MigrationNetwork,
    MigrationState,
    server_2022,
    server_2025,
)
from hvlm_lab.hyperv.runtime import Command, Emitter

__all__ = [
    "HyperVHost",
    "LabHostConfig",
    "MigrationNetwork",
    "MigrationState",
    "server_2022",
    "server_2025",
]

COMMANDS: dict[str, Command] = {
    c.spec.name.lower(): c for c in hyperv_migration.COMMANDS + hyperv_preflight.COMMANDS
    + hyperv_security.COMMANDS + hyperv_devices.COMMANDS
}
MODULE_PREFIXES = ("hyper-v\\", "cimcmdlets\\", "servermanager\\", "nettcpip\\",
                   "netsecurity\\")
# Tickets a fresh host holds per logon session, before any purge (lab choice).
INITIAL_TICKETS = 3

SCRIPTS_NOT_ALLOWED = ErrorInfo(
    "The syntax is not supported by this runspace. This can occur if the runspace is in "
    "no-language mode.", "ScriptsNotAllowed", ErrorCategory.ParserError,
    "System.Management.Automation.ParseException")


def command_not_found(name: str) -> ErrorInfo:
    return ErrorInfo(
        f"The term '{name}' is not recognized as the name of a cmdlet, function, script file, "
        "or operable program. Check the spelling of the name, or if a path was included, verify "
        "that the path is correct and try again.", "CommandNotFoundException",
        ErrorCategory.ObjectNotFound, "System.Management.Automation.CommandNotFoundException",
        name)


@dataclass(frozen=True)
class _Prepared:
    """One command of a statement, found and statically bound."""

    command: Command
    bound: Bound


class HyperVHost:
    """One simulated Hyper-V host: configuration, mutable migration state, and counters."""

    def __init__(self, config: LabHostConfig) -> None:
        self.name = config.name  # the CmdletHost protocol's name
        self._config = config
        self._state = config.initial_state
        self._lock = threading.RLock()
        self._purges: Counter[str] = Counter()
        self._tickets: dict[str, int] = {}
        self._history: list[Invocation] = []
        # Firewall rules present on the host (name -> enabled); Enable/Disable-NetFirewallRule.
        self._firewall: dict[str, bool] = {}
        if config.migration_firewall is not None:
            self._firewall[hyperv_security.MIGRATION_RULE] = config.migration_firewall

    # --- the CmdletHost protocol -------------------------------------------------------------

    def invoke(self, statement: Sequence[Invocation]) -> StatementResult:
        """Run one statement (a pipeline of commands) as PowerShell would."""
        with self._lock:
            self._history.extend(statement)
            result = StatementResult()
            try:
                prepared = [self._prepare(inv, i > 0) for i, inv in enumerate(statement)]
                self._run(prepared, result)
            except BindingError as error:
                result.terminating = error.info
            return result

    # --- out-of-band helpers for tests and the lab ---------------------------------------------

    @property
    def config(self) -> LabHostConfig:
        return self._config

    def state(self) -> MigrationState:
        return self._state

    def snapshot(self) -> MigrationState:
        """The migration state now (frozen: it never changes under the caller)."""
        with self._lock:
            return self._state

    def set_state(self, state: MigrationState) -> None:
        with self._lock:
            self._state = state

    def record_purge(self, logon_id: str) -> None:
        with self._lock:
            self._purges[logon_id] += 1
            self._tickets[logon_id] = 0

    def ticket_count(self, logon_id: str) -> int:
        with self._lock:
            return self._tickets.get(logon_id, INITIAL_TICKETS)

    def purge_count(self, logon_id: str = hyperv_preflight.SYSTEM_LOGON) -> int:
        """How many times `klist purge` ran for this logon session (default: SYSTEM, 0x3e7)."""
        with self._lock:
            return self._purges[logon_id]

    def firewall_rules(self) -> dict[str, bool]:
        """The simulated firewall rules (name -> enabled), a copy."""
        with self._lock:
            return dict(self._firewall)

    def set_firewall_rule(self, name: str, enabled: bool) -> None:
        """What Enable-/Disable-NetFirewallRule do (also for tests: out of band)."""
        with self._lock:
            if name in self._firewall:
                self._firewall[name] = enabled

    def history(self) -> tuple[Invocation, ...]:
        """Every invocation received, in order."""
        with self._lock:
            return tuple(self._history)

    # --- running a statement ----------------------------------------------------------------

    def _find(self, name: str) -> Command:
        key = name.strip().lower()
        for prefix in MODULE_PREFIXES:
            key = key.removeprefix(prefix)
        key = key.removesuffix(".exe") if key.startswith("klist") else key
        command = COMMANDS.get(key)
        if command is None or (command.needs_hyperv and not self._config.hyperv_installed):
            raise BindingError(command_not_found(name))
        return command

    def _prepare(self, invocation: Invocation, downstream: bool) -> _Prepared:
        if invocation.is_script:
            raise BindingError(SCRIPTS_NOT_ALLOWED)
        command = self._find(invocation.command)
        if command.native:
            return _Prepared(command, Bound({"args": _native_args(invocation)}))
        return _Prepared(command, bind(command.spec, invocation, downstream))

    def _run(self, prepared: list[_Prepared], result: StatementResult) -> None:
        inputs: list[Any] | None = None
        for index, step in enumerate(prepared):
            last = index == len(prepared) - 1
            inputs = self._run_step(step, inputs, result, last)

    def _run_step(self, step: _Prepared, inputs: list[Any] | None, result: StatementResult,
                  last: bool) -> list[Any]:
        """Run once (first command), or once per input record (downstream); return output."""
        records: list[Bound] = [step.bound] if inputs is None else []
        for obj in inputs or []:
            try:
                bound = _bind_input(step.command.spec, step.bound, obj)
            except BindingError as error:  # a record that fails binding is not fatal
                result.errors.append(error.info)
                continue
            if bound is None:
                result.errors.append(_input_not_bound(step.command.spec, obj))
            else:
                records.append(bound)
        output: list[Any] = []
        for bound in records:
            emitter = Emitter(step.command.spec, bound)
            try:
                step.command.handler(self, bound, emitter)
            finally:
                output.extend(emitter.output)
                if last:
                    result.output.extend(emitter.output)
                result.errors.extend(emitter.errors)
                result.warnings.extend(emitter.warnings)
        return output


def _native_args(invocation: Invocation) -> list[Any]:
    tokens: list[Any] = []
    for name, value in invocation.parameters:
        tokens.append(name if name.startswith("-") else f"-{name}")
        if value is not None:
            tokens.append(value)
    return tokens + list(invocation.arguments)


def _bind_input(spec: CmdletSpec, static: Bound, obj: Any) -> Bound | None:
    """ValueFromPipeline (a string) or ByPropertyName (a property of the parameter's name)."""
    for param in spec.pipeline_params():
        if param.name in static:
            continue
        value = _pipeline_value(obj, param.name)
        if value is None:
            continue
        bound = Bound(dict(static.values))
        bound.values[param.name] = convert(spec, param, value)
        check_mandatory(spec, bound)
        return bound
    return None


def _pipeline_value(obj: Any, name: str) -> Any:
    if isinstance(obj, str):
        return obj
    if isinstance(obj, PSObject):
        props = obj.PSObject.adapted_properties + obj.PSObject.extended_properties
        for prop in props:
            if prop.name.lower() == name.lower():
                return prop.get_value(obj)
    return None


def _input_not_bound(spec: CmdletSpec, obj: Any) -> ErrorInfo:
    return ErrorInfo(
        "The input object cannot be bound to any parameters for the command either because the "
        "command does not take pipeline input or the input and its properties do not match any "
        "of the parameters that take pipeline input.", f"InputObjectNotBound,{spec.type_name}",
        ErrorCategory.InvalidArgument, BINDING_EXCEPTION, obj)
