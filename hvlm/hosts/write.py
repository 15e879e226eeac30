"""Writing a host: run the ordered steps in ONE pipeline and account for every step.

Pipeline position: hvlm.hosts.session (HostSession.apply / run) calls `apply_host_changes` with
the steps hvlm.reconcile built from the plan (hvlm.hosts.commands.host_commands); it only needs
something that runs a pipeline (`PipelineRunner`), so the accounting below is independent of
pypsrp.

Every step but a removal carries -ErrorAction Stop, so a failed add stops the pipeline before a
later step could remove the last network; error records are tied to their step (cmdlet, then the
value they name); "already exists" (add) and "not found" (remove) count as done, and when such a
benign error stopped the pipeline the remaining steps run in a further pipeline of the same pool.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from hvlm.errors import CmdletError
from hvlm.hosts.commands import HostCommand
from hvlm.hosts.records import RecordInfo, cmdlet_error, describe_record


class PipelineRunner(Protocol):
    """What apply_host_changes needs: a host name and one pipeline per call (HostSession)."""

    name: str

    def invoke(self, commands: Sequence[HostCommand], step: str) -> PipelineResult: ...


@dataclass(frozen=True)
class PipelineResult:
    """What one pipeline returned. `failed`: a terminating error stopped it (its record is last)."""

    output: tuple[object, ...]
    errors: tuple[object, ...]
    warnings: tuple[str, ...]
    failed: bool


class StepStatus(str, Enum):
    APPLIED = "applied"
    ALREADY_DONE = "already-done"  # "already exists" on add / "not found" on remove
    FAILED = "failed"
    SKIPPED = "skipped"  # an earlier step failed: not run
    UNKNOWN = "unknown"  # the pipeline failed at a step hvlm could not identify: verify tells


@dataclass(frozen=True)
class StepResult:
    command: HostCommand
    status: StepStatus
    error: CmdletError | None = None


@dataclass(frozen=True)
class ApplyResult:
    host: str
    steps: tuple[StepResult, ...] = ()
    warnings: tuple[str, ...] = ()
    errors: tuple[CmdletError, ...] = ()  # records hvlm could not tie to a step
    # After a failure left the host stranded (see commands.stranded): what put it back.
    restored: tuple[StepResult, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors and all(
            s.status in (StepStatus.APPLIED, StepStatus.ALREADY_DONE) for s in self.steps
        )

    @property
    def failures(self) -> tuple[CmdletError, ...]:
        return tuple(s.error for s in self.steps if s.error is not None) + self.errors


WRITE_CMDLETS = (
    "Enable-VMMigration",
    "Disable-VMMigration",
    "Add-VMMigrationNetwork",
    "Set-VMMigrationNetwork",
    "Remove-VMMigrationNetwork",
    "Set-VMHost",
    "klist",
)
# A failed removal cannot leave the host worse off, so it does not stop the pipeline; every other
# step does (-ErrorAction Stop): a failed add never lets a later step remove the last network.
_CONTINUE_ON_ERROR = frozenset({"Remove-VMMigrationNetwork", "klist"})


def executable(command: HostCommand) -> HostCommand:
    """The step as sent: with -ErrorAction Stop unless its failure cannot strand the host."""
    if command.cmdlet in _CONTINUE_ON_ERROR:
        return command
    if any(name.lower() == "erroraction" for name, _ in command.parameters):
        return command
    return HostCommand(
        command.cmdlet, (*command.parameters, ("ErrorAction", "Stop")), command.arguments
    )


def apply_host_changes(session: PipelineRunner, steps: Sequence[HostCommand]) -> ApplyResult:
    """Run all steps in ONE pipeline (statements), checking every error record.

    A step failing with "already exists" (add) or "not found" (remove) counts as done; if that
    stopped the pipeline, the remaining steps run in a further pipeline of the same pool.
    """
    results: dict[int, StepResult] = {}
    loose: list[CmdletError] = []
    warnings: list[str] = []
    pending = list(range(len(steps)))
    while pending:
        batch = [steps[i] for i in pending]
        outcome = session.invoke([executable(s) for s in batch], "apply")
        warnings.extend(outcome.warnings)
        pending = _settle(session.name, steps, pending, outcome, results, loose)
    return ApplyResult(
        host=session.name,
        steps=tuple(results[i] for i in range(len(steps))),
        warnings=tuple(warnings),
        errors=tuple(loose),
    )


def _settle(
    host: str,
    steps: Sequence[HostCommand],
    pending: list[int],
    outcome: PipelineResult,
    results: dict[int, StepResult],
    loose: list[CmdletError],
) -> list[int]:
    """Record what one pipeline did; return the steps still to run (after a benign stop)."""
    infos = [describe_record(r, WRITE_CMDLETS) for r in outcome.errors]
    stop_at: int | None = None
    if outcome.failed and infos:
        stop_at = _attribute(infos[-1], steps, pending)
        if stop_at is None:  # the pipeline stopped somewhere hvlm cannot tell
            loose.append(cmdlet_error(host, "apply", infos[-1]))
            for i in pending:
                results[i] = StepResult(steps[i], StepStatus.UNKNOWN)
            return []
    unexplained = False
    for info in infos:
        index = _attribute(info, steps, pending)
        if index is None:
            loose.append(cmdlet_error(host, "apply", info))
            unexplained = True
        else:
            results[index] = _errored(host, steps[index], info)
    # An error hvlm cannot tie to a step may belong to any of them: none is known to be applied.
    ran = StepStatus.UNKNOWN if unexplained else StepStatus.APPLIED
    for i in pending:
        if stop_at is not None and pending.index(i) > pending.index(stop_at):
            break
        results.setdefault(i, StepResult(steps[i], ran))
    if stop_at is None:
        return []
    rest = pending[pending.index(stop_at) + 1 :]
    if results[stop_at].status is StepStatus.ALREADY_DONE:
        return rest
    for i in rest:
        results[i] = StepResult(steps[i], StepStatus.SKIPPED)
    return []


def _errored(host: str, command: HostCommand, info: RecordInfo) -> StepResult:
    if _benign(command, info):
        return StepResult(command, StepStatus.ALREADY_DONE)
    return StepResult(command, StepStatus.FAILED, cmdlet_error(host, str(command), info))


def _benign(command: HostCommand, info: RecordInfo) -> bool:
    """Idempotence: the change the step wanted is already true.

    Keyed on the FullyQualifiedErrorId (the message is a localised resource). Add's
    `OperationFailed` id also covers "host does not support live migration", so it counts as
    done only with the English SubnetAlreadyExists text too: on a localised host an existing
    subnet is reported failed (safe: later steps are skipped) and the next apply converges.
    """
    if command.cmdlet == "Add-VMMigrationNetwork":
        return info.error_id.startswith("OperationFailed,") and "already exists" in info.message
    if command.cmdlet == "Remove-VMMigrationNetwork":
        return info.error_id.startswith("ObjectNotFound")
    return False


def _names(message: str, value: str) -> bool:
    """Does the message name `value` as a whole token ('10.0.0.0/2' is not in '10.0.0.0/24')?"""
    start = message.find(value)
    while start >= 0:
        end = start + len(value)
        before = message[start - 1] if start else " "
        after = message[end] if end < len(message) else " "
        if not (before.isalnum() or before in "./:") and not (after.isalnum() or after in "/:"):
            return True
        start = message.find(value, start + 1)
    return False


def _attribute(info: RecordInfo, steps: Sequence[HostCommand], pending: list[int]) -> int | None:
    """The pending step an error record belongs to: same cmdlet, then the value it names."""
    same = [i for i in pending if steps[i].cmdlet.lower() == info.cmdlet.lower()]
    if len(same) <= 1:
        return same[0] if same else None
    for i in same:
        values = [str(v) for _, v in steps[i].parameters if v is not None]
        if info.target and info.target in values:
            return i
    named = [i for i in same
             if any(_names(info.message, str(v)) for _, v in steps[i].parameters
                    if isinstance(v, str) and v)]
    if len(named) == 1:  # the message names one step's value, and only that step's
        return named[0]
    # Hyper-V's records carry no target (ExceptionHelper passes null) and localised messages:
    # with several candidates, guessing would pin the error on the wrong step. Unknown: the
    # verification read settles what happened.
    return None
