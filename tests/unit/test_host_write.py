"""apply_host_changes' accounting: which step each error record belongs to, what ran, what not.

The runner is a plain function standing in for one pipeline (the `PipelineRunner` seam, as
httpx's mock transport takes a handler); the error records are deserialised from CLIXML shaped
like Hyper-V's by hvlm's own reader (hvlm.hosts.clixml, as hvlm.hosts.transport reads them). The same flows run over the wire against the lab
in tests/integration/test_hosts.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hvlm.hosts.clixml import Record, as_obj, deserialize
from hvlm.hosts.commands import HostCommand
from hvlm.hosts.write import PipelineResult, StepStatus, apply_host_changes, executable

ADD_A = HostCommand("Add-VMMigrationNetwork", (("Subnet", "10.1.0.0/16"), ("Priority", 0)))
ADD_B = HostCommand("Add-VMMigrationNetwork", (("Subnet", "10.2.0.0/16"),))
ENABLE = HostCommand("Enable-VMMigration")
SET = HostCommand("Set-VMHost", (("MaximumStorageMigrations", 3),))
REMOVE_C = HostCommand("Remove-VMMigrationNetwork", (("Subnet", "10.3.0.0/16"),))
REMOVE_D = HostCommand("Remove-VMMigrationNetwork", (("Subnet", "10.4.0.0/16"),))


def record(message: str, error_id: str, target: str = "") -> Any:
    target_xml = f'<S N="TargetObject">{target}</S>' if target else '<Nil N="TargetObject" />'
    xml = (
        '<Obj RefId="0"><TN RefId="0"><T>System.Management.Automation.ErrorRecord</T>'
        f"<T>System.Object</T></TN><ToString>{message}</ToString><MS>{target_xml}"
        f'<S N="FullyQualifiedErrorId">{error_id}</S><I32 N="ErrorCategory_Category">0</I32>'
        '<B N="SerializeExtendedInfo">false</B></MS></Obj>'
    )
    return Record(as_obj(deserialize(xml.encode(), "an error record")))


def hv(cmdlet_class: str, category: str = "OperationFailed") -> str:
    return f"{category},Microsoft.HyperV.PowerShell.Commands.{cmdlet_class}"


@dataclass
class Runner:
    """One canned PipelineResult per pipeline; records what each pipeline was asked to run."""

    answers: list[Callable[[Sequence[HostCommand]], PipelineResult]]
    name: str = "HV01"
    sent: list[list[HostCommand]] = field(default_factory=list)

    def invoke(self, commands: Sequence[HostCommand], step: str) -> PipelineResult:
        self.sent.append(list(commands))
        return self.answers[len(self.sent) - 1](commands)


def ok(_: Sequence[HostCommand]) -> PipelineResult:
    return PipelineResult((), (), (), failed=False)


def stopped_by(rec: Any) -> Callable[[Sequence[HostCommand]], PipelineResult]:
    return lambda _: PipelineResult((), (rec,), (), failed=True)


def test_every_step_but_removal_stops_the_pipeline_on_error() -> None:
    assert executable(ADD_A).parameters[-1] == ("ErrorAction", "Stop")
    assert executable(SET).parameters[-1] == ("ErrorAction", "Stop")
    assert executable(REMOVE_C) == REMOVE_C
    already = HostCommand("Set-VMHost", (("ErrorAction", "Continue"),))
    assert executable(already) == already


def test_all_steps_in_one_pipeline_when_nothing_fails() -> None:
    runner = Runner([ok])
    result = apply_host_changes(runner, (ADD_A, ENABLE, SET, REMOVE_C))
    assert len(runner.sent) == 1 and len(runner.sent[0]) == 4
    assert [s.status for s in result.steps] == [StepStatus.APPLIED] * 4 and result.ok


def test_already_exists_stops_then_the_rest_runs_in_a_second_pipeline() -> None:
    exists = record(
        "The migration network '10.2.0.0/16' already exists.",
        hv("AddVMMigrationNetwork"),
        "10.2.0.0/16",
    )
    runner = Runner([stopped_by(exists), ok])
    result = apply_host_changes(runner, (ADD_A, ADD_B, ENABLE, SET))

    assert [s.status for s in result.steps] == [
        StepStatus.APPLIED,
        StepStatus.ALREADY_DONE,
        StepStatus.APPLIED,
        StepStatus.APPLIED,
    ]
    assert [c.cmdlet for c in runner.sent[1]] == ["Enable-VMMigration", "Set-VMHost"]
    assert result.ok


def test_a_real_failure_skips_the_rest_and_names_the_step() -> None:
    bad = record(
        "The subnet '10.2.0.0/16' is not valid.",
        hv("AddVMMigrationNetwork", "InvalidParameter"),
        "10.2.0.0/16",
    )
    runner = Runner([stopped_by(bad)])
    result = apply_host_changes(runner, (ADD_A, ADD_B, ENABLE, REMOVE_C))

    assert [s.status for s in result.steps] == [
        StepStatus.APPLIED,
        StepStatus.FAILED,
        StepStatus.SKIPPED,
        StepStatus.SKIPPED,
    ]
    (error,) = result.failures
    assert str(error) == (
        "HV01: Add-VMMigrationNetwork -Subnet 10.2.0.0/16: The subnet '10.2.0.0/16' is not valid."
    )
    assert len(runner.sent) == 1


def test_not_found_on_remove_is_done_and_tied_to_the_right_removal() -> None:
    missing = record(
        "No migration networks were found matching the specified criteria.",
        hv("RemoveVMMigrationNetwork", "ObjectNotFound"),
        "10.4.0.0/16",
    )
    runner = Runner([lambda _: PipelineResult((), (missing,), (), failed=False)])
    result = apply_host_changes(runner, (SET, REMOVE_C, REMOVE_D))
    assert [s.status for s in result.steps] == [
        StepStatus.APPLIED,
        StepStatus.APPLIED,
        StepStatus.ALREADY_DONE,
    ]
    assert result.ok


def test_a_stop_hvlm_cannot_tie_to_a_step_leaves_every_step_unknown() -> None:
    mystery = record("The RPC server is unavailable.", "RuntimeException")
    result = apply_host_changes(Runner([stopped_by(mystery)]), (ADD_A, ENABLE))
    assert [s.status for s in result.steps] == [StepStatus.UNKNOWN] * 2
    assert [str(e) for e in result.failures] == ["HV01: apply: The RPC server is unavailable."]
    assert not result.ok


def test_a_non_terminating_error_tied_to_nothing_makes_the_steps_unknown() -> None:
    mystery = record("Something odd", "LabInjectedFault")
    result = apply_host_changes(
        Runner([lambda _: PipelineResult((), (mystery,), (), failed=False)]), (ADD_A, ENABLE)
    )
    assert [s.status for s in result.steps] == [StepStatus.UNKNOWN] * 2 and not result.ok


def test_warnings_are_kept() -> None:
    runner = Runner([lambda _: PipelineResult((), (), ("CredSSP needs a sign-in",), False)])
    result = apply_host_changes(runner, (SET,))
    assert result.warnings == ("CredSSP needs a sign-in",) and result.ok


def test_operation_failed_on_add_without_the_exists_text_is_a_failure() -> None:
    """Add's OperationFailed id also means "host does not support live migration" (and a
    localised host words SubnetAlreadyExists its own way): it is never taken as done, so the
    removals after it do not run and cannot strand the host."""
    unsupported = record("Le serveur ne prend pas en charge la migration dynamique.",
                         hv("AddVMMigrationNetwork"))
    runner = Runner([stopped_by(unsupported)])
    result = apply_host_changes(runner, (ADD_B, SET, REMOVE_C))
    assert [s.status for s in result.steps] == [
        StepStatus.FAILED, StepStatus.SKIPPED, StepStatus.SKIPPED]
    assert len(runner.sent) == 1 and not result.ok


def test_an_untargeted_record_among_two_removals_is_not_guessed() -> None:
    """Hyper-V's records have no TargetObject; with two Remove steps and a message naming
    neither subnet, the error is not pinned on the first one: both are unknown (the
    verification read settles them)."""
    lost = record("Access denied.", hv("RemoveVMMigrationNetwork", "PermissionDenied"))
    runner = Runner([lambda _: PipelineResult((), (lost,), (), failed=False)])
    result = apply_host_changes(runner, (REMOVE_C, REMOVE_D))
    assert [s.status for s in result.steps] == [StepStatus.UNKNOWN, StepStatus.UNKNOWN]
    assert not result.ok
