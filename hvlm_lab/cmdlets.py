"""The seam between the lab's WSMan/PSRP server (`wsman/server.py`) and its simulated hosts
(`hyperv/host.py`).

Part of the lab. The server turns each PSRP statement (structured AddCommand/AddParameter, never a
script) into `Invocation`s and hands them to a `CmdletHost`; the host answers with a
`StatementResult` whose output objects are psrpcore PSObjects carrying real Hyper-V type names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from psrpcore.types import ErrorCategory


@dataclass(frozen=True)
class Invocation:
    """One command of a statement as it arrived on the wire."""

    command: str
    # Named parameters in arrival order; a switch arrives with value None.
    parameters: tuple[tuple[str, Any], ...] = ()
    # Positional arguments (AddArgument), in order.
    arguments: tuple[Any, ...] = ()
    is_script: bool = False


@dataclass(frozen=True)
class ErrorInfo:
    """An ErrorRecord to send: message is what `str(record)` shows on the client."""

    message: str
    # FullyQualifiedErrorId, e.g.
    # "InvalidParameter,Microsoft.HyperV.PowerShell.Commands.RemoveVMMigrationNetwork"
    error_id: str
    category: ErrorCategory = ErrorCategory.NotSpecified
    exception_type: str = "System.Management.Automation.RuntimeException"
    target: Any = None


@dataclass
class StatementResult:
    output: list[Any] = field(default_factory=list)
    errors: list[ErrorInfo] = field(default_factory=list)  # non-terminating
    warnings: list[str] = field(default_factory=list)
    # A terminating error stops the statement and fails the whole pipeline.
    terminating: ErrorInfo | None = None


class CmdletHost(Protocol):
    """A simulated host that runs one statement at a time."""

    name: str

    def invoke(self, statement: Sequence[Invocation]) -> StatementResult: ...
