"""PSRP shells of the lab's WSMan server: psrpcore's server runspace pool behind one WSMan shell.

Part of the lab. `wsman/server.py` turns WSMan actions into calls here: Create ->
`PsrpShell(creation fragments)`, Command -> `command()`, Send -> `send()`, Receive -> `receive()`
(long poll), Signal -> `signal()`. Each statement of a pipeline (commands up to end_of_statement)
becomes a list of `Invocation`s given to the host's `CmdletHost.invoke()`; its `StatementResult` is
written to the pipeline's output/error/warning streams, and a terminating error FAILS the pipeline
(state Failed with the error as reason) so later statements do not run. psrpcore 0.3.1 has no
public API for that last step: `_change_state` is used (pin psrpcore==0.3.1). Outgoing data is
fragmented to `fragment_size` and queued per target (the pool or one pipeline) so every Receive
gets its own.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from psrpcore import (
    Command,
    CreatePipelineEvent,
    GetAvailableRunspacesEvent,
    ResetRunspaceStateEvent,
    ServerPipeline,
    ServerRunspacePool,
    SetMaxRunspacesEvent,
    SetMinRunspacesEvent,
)
from psrpcore._exceptions import PSRPCoreError
from psrpcore._payload import PSRPPayload, StreamType
from psrpcore.types import (
    ErrorCategory,
    ErrorCategoryInfo,
    ErrorRecord,
    NETException,
    PSInvocationState,
)

from hvlm_lab.cmdlets import CmdletHost, ErrorInfo, Invocation, StatementResult
from hvlm_lab.wsman.faults import FaultSpec, HostStats, Outcome, clr_type, jsonable

_YES_NO_EVENTS = (SetMaxRunspacesEvent, SetMinRunspacesEvent, ResetRunspaceStateEvent)
_FINISHED = (PSInvocationState.Completed, PSInvocationState.Failed, PSInvocationState.Stopped)

SCRIPT_REFUSED = ErrorInfo(
    message="This lab host runs commands with parameters only: scripts (AddScript) are refused. "
    "hvlm never sends scripts.",
    error_id="ScriptsNotAllowed,hvlm_lab",
    category=ErrorCategory.PermissionDenied,
    exception_type="System.Management.Automation.PSNotSupportedException",
)


class ProtocolError(Exception):
    """The client sent PSRP data psrpcore cannot process."""


class CommandNotFound(Exception):
    """No pipeline with that CommandId in this shell."""


@dataclass(frozen=True)
class RunReport:
    """What running a pipeline produced for the WSMan layer (HTTP 500 injection)."""

    http_500: bool = False


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _exception(info: ErrorInfo) -> NETException:
    exception = NETException(Message=info.message, HResult=-2146233087)
    names = [info.exception_type, "System.SystemException"]
    exception.PSObject.type_names = names + list(exception.PSTypeNames)
    return exception


def _category(info: ErrorInfo) -> ErrorCategoryInfo:
    target = "" if info.target is None else str(info.target)
    reason = info.exception_type.rsplit(".", 1)[-1]
    return ErrorCategoryInfo(Category=info.category, Reason=reason, TargetName=target)


def error_record(info: ErrorInfo) -> ErrorRecord:
    return ErrorRecord(
        Exception=_exception(info),
        CategoryInfo=_category(info),
        FullyQualifiedErrorId=info.error_id,
        TargetObject=info.target,
    )


def to_invocation(command: Command) -> Invocation:
    named = tuple((str(n), v) for n, v in command.parameters if n is not None)
    positional = tuple(v for n, v in command.parameters if n is None)
    return Invocation(str(command.command_text), named, positional, bool(command.is_script))


def split_statements(commands: Sequence[Command]) -> list[list[Invocation]]:
    statements: list[list[Invocation]] = [[]]
    for command in commands:
        statements[-1].append(to_invocation(command))
        if command.end_of_statement:
            statements.append([])
    return [s for s in statements if s]


class PsrpShell:
    """One WSMan shell = one PSRP runspace pool of one host."""

    def __init__(
        self,
        shell_id: str,
        host: CmdletHost,
        stats: HostStats,
        faults: Callable[[], FaultSpec],
        fragment_size: int,
    ) -> None:
        self.shell_id = shell_id
        self._host = host
        self._stats = stats
        self._faults = faults
        self._fragment_size = fragment_size
        self._pool = ServerRunspacePool()
        self._queues: dict[uuid.UUID | None, collections.deque[bytes]] = {None: collections.deque()}
        self._pipelines: dict[uuid.UUID, ServerPipeline] = {}
        self._changed = asyncio.Condition()
        self._closed = False

    # --- input --------------------------------------------------------------------------------

    async def open(self, creation: bytes) -> None:
        """The creationXml of Create: SessionCapability + InitRunspacePool; answers are queued."""
        await self._feed(creation, None)

    async def command(self, command_id: str, first_fragment: bytes) -> RunReport:
        pipeline_id = self._parse_id(command_id)
        pipeline = ServerPipeline(self._pool, pipeline_id)
        self._pipelines[pipeline_id] = pipeline
        self._queues[pipeline_id] = collections.deque()
        return await self._feed(first_fragment, pipeline_id)

    async def send(self, command_id: str | None, data: bytes) -> RunReport:
        pipeline_id = self._parse_id(command_id) if command_id else None
        if pipeline_id is not None and pipeline_id not in self._pipelines:
            raise CommandNotFound(command_id)
        return await self._feed(data, pipeline_id)

    @staticmethod
    def _parse_id(command_id: str) -> uuid.UUID:
        try:
            return uuid.UUID(command_id)
        except ValueError as exc:
            raise CommandNotFound(command_id) from exc

    async def _feed(self, data: bytes, pipeline_id: uuid.UUID | None) -> RunReport:
        report = RunReport()
        try:
            self._pool.receive_data(PSRPPayload(data, StreamType.default, pipeline_id))
            while (event := self._pool.next_event()) is not None:
                report = self._handle_event(event) or report
        except PSRPCoreError as exc:
            raise ProtocolError(str(exc)) from exc
        await self._drain()
        return report

    def _handle_event(self, event: Any) -> RunReport | None:
        if isinstance(event, CreatePipelineEvent):
            return self._run(self._pipelines[event.pipeline_id], event.pipeline.commands)
        if isinstance(event, GetAvailableRunspacesEvent):
            self._pool.runspace_availability_response(event.ci, self._pool.max_runspaces)
        elif isinstance(event, _YES_NO_EVENTS):
            self._pool.runspace_availability_response(event.ci, True)
        return None

    # --- running statements -------------------------------------------------------------------

    def _run(self, pipeline: ServerPipeline, commands: Sequence[Command]) -> RunReport:
        faults = self._faults()
        statements = split_statements(commands)
        pid = str(pipeline.pipeline_id)
        target = (faults.http_500_on_cmdlet or "").lower()
        if target and any(inv.command.lower() == target for s in statements for inv in s):
            for index, statement in enumerate(statements):
                self._record(pid, index, statement, Outcome.HTTP_500)
            self._forget(pipeline)
            return RunReport(http_500=True)
        pipeline.start()
        failed = False
        for index, statement in enumerate(statements):
            if failed:
                self._record(pid, index, statement, Outcome.SKIPPED)
                continue
            result, outcome = self._execute(statement, faults)
            self._record(pid, index, statement, outcome)
            failed = self._emit(pipeline, result)
        if not failed:
            pipeline.complete()
        return RunReport()

    def _execute(
        self, statement: list[Invocation], faults: FaultSpec
    ) -> tuple[StatementResult, Outcome]:
        if any(inv.is_script for inv in statement):
            return StatementResult(terminating=SCRIPT_REFUSED), Outcome.REFUSED
        injected = next(
            (f for inv in statement if (f := faults.cmdlet_fault(inv.command)) is not None), None
        )
        if injected is not None:
            command = next(inv for inv in statement if faults.cmdlet_fault(inv.command))
            error_id = injected.error_id
            if "," not in error_id:  # name the cmdlet as real FullyQualifiedErrorIds do
                noun = command.command.replace("-", "")
                error_id = f"{error_id},Microsoft.HyperV.PowerShell.Commands.{noun}"
            info = ErrorInfo(injected.message, error_id, ErrorCategory[injected.category])
            stop = _error_action_stop(command) and not injected.ignore_error_action
            if injected.terminating or stop:
                return StatementResult(terminating=info), Outcome.TERMINATED
            return StatementResult(errors=[info]), Outcome.ERROR
        try:
            result = self._host.invoke(statement)
        except Exception as exc:  # a lab bug must show as a failed pipeline, not a dead server
            info = ErrorInfo(f"lab host error: {exc!r}", "LabHostError,hvlm_lab")
            return StatementResult(terminating=info), Outcome.TERMINATED
        if result.terminating is not None:
            return result, Outcome.TERMINATED
        return result, Outcome.ERROR if result.errors else Outcome.OK

    @staticmethod
    def _emit(pipeline: ServerPipeline, result: StatementResult) -> bool:
        """Write a statement's streams; True when it failed the pipeline."""
        for value in result.output:
            pipeline.write_output(value)
        for info in result.errors:
            pipeline.write_error(_exception(info), _category(info), info.target, info.error_id)
        for message in result.warnings:
            pipeline.write_warning(message)
        if result.terminating is None:
            return False
        # psrpcore 0.3.1 has no public "fail" API (pinned): PipelineState Failed with the reason.
        pipeline._change_state(PSInvocationState.Failed, error_record(result.terminating))
        return True

    def _record(self, pid: str, index: int, statement: list[Invocation], outcome: Outcome) -> None:
        for inv in statement:
            self._stats.cmdlet(
                {
                    "pipeline": pid,
                    "statement": index,
                    "command": inv.command,
                    "parameters": [[n, jsonable(v)] for n, v in inv.parameters],
                    "parameter_types": [[n, clr_type(v)] for n, v in inv.parameters],
                    "arguments": [jsonable(v) for v in inv.arguments],
                    "is_script": inv.is_script,
                    "outcome": outcome.value,
                }
            )

    # --- output -------------------------------------------------------------------------------

    async def _drain(self) -> None:
        while (payload := self._pool.data_to_send(self._fragment_size)) is not None:
            queue = self._queues.get(payload.pipeline_id)
            if queue is not None:
                queue.append(payload.data)
        async with self._changed:
            self._changed.notify_all()

    def _finished(self, pipeline_id: uuid.UUID | None) -> bool:
        if pipeline_id is None:
            return False
        pipeline = self._pipelines.get(pipeline_id)
        return pipeline is None or pipeline.state in _FINISHED

    async def receive(
        self, command_id: str | None, budget: int, timeout: float
    ) -> tuple[list[str], bool] | None:
        """Fragments (base64) for the pool or a pipeline, and whether that pipeline is done.

        Waits until there is data or the pipeline is finished; None on timeout (the caller
        answers the WSMan OperationTimeout fault, which pypsrp retries while polling a pipeline).
        """
        pipeline_id = self._parse_id(command_id) if command_id else None
        if pipeline_id is not None and pipeline_id not in self._queues:
            raise CommandNotFound(command_id)
        queue = self._queues[pipeline_id]

        def ready() -> bool:
            return bool(queue) or self._finished(pipeline_id) or self._closed

        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(ready), timeout)
            except asyncio.TimeoutError:
                return None
        if self._closed:
            raise CommandNotFound(command_id or self.shell_id)
        chunks: list[str] = []
        used = 0
        while queue and (not chunks or used + len(queue[0]) <= budget):
            used += len(queue[0])
            chunks.append(_b64(queue.popleft()))
        return chunks, not queue and self._finished(pipeline_id)

    # --- signals and close --------------------------------------------------------------------

    async def signal(self, command_id: str, terminate: bool) -> None:
        pipeline_id = self._parse_id(command_id)
        pipeline = self._pipelines.get(pipeline_id)
        if pipeline is None:
            raise CommandNotFound(command_id)
        if pipeline.state in (PSInvocationState.Running, PSInvocationState.Stopping):
            pipeline.stop()
        if terminate:
            self._forget(pipeline)
        await self._drain()

    def _forget(self, pipeline: ServerPipeline) -> None:
        if pipeline.state == PSInvocationState.Running:
            pipeline.stop()
        pipeline.close()
        self._pipelines.pop(pipeline.pipeline_id, None)
        self._queues.pop(pipeline.pipeline_id, None)

    async def close(self) -> None:
        """Delete: pipelines first (psrpcore refuses to close a pool that still has some)."""
        self._closed = True
        for pipeline in list(self._pipelines.values()):
            self._forget(pipeline)
        with contextlib.suppress(PSRPCoreError):
            self._pool.close()
        async with self._changed:
            self._changed.notify_all()


def _error_action_stop(invocation: Invocation) -> bool:
    """-ErrorAction Stop turns a non-terminating error into a terminating one, as in PowerShell."""
    for name, value in invocation.parameters:
        if name.lower() in ("erroraction", "ea") and str(value).lower() in ("stop", "1"):
            return True
    return False
