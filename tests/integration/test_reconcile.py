"""Issue 6's acceptance: `hvlm plan` and `hvlm apply` through the CLI against the lab.

The CLI runs as a subprocess (exit codes, stdout and stderr as a pipeline sees them) against
simulated Hyper-V hosts (real WSMan/PSRP on loopback) and the session's Samba AD DC. Effects are
read from the lab itself: host state snapshots, LDAP reads as Administrator (uSNChanged moves on
every modify of an object), and the lab's WSMan request and cmdlet counters.

Run inside a private network namespace (Samba's ports are fixed):
    tests/isolated.sh .venv/bin/python -m pytest tests/integration/test_reconcile.py -q
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from hvlm_lab.samba.dc import SambaDC
from hvlm_lab.wsman.server import CmdletFault, FaultSpec
from tests.integration.helpers import (
    ENABLED_OLD,
    FRESH,
    REPO,
    UNRELATED,
    WANTED,
    CliResult,
    LabFleet,
    ManifestOptions,
    lab_fleet,
    lower,
    values_toward,
)

pytestmark = [pytest.mark.lab, pytest.mark.samba]
NAMES = ("RC01", "RC02", "RC03")
START = {"RC01": FRESH, "RC02": ENABLED_OLD, "RC03": FRESH}
MAX_REQUESTS_WITH_CHANGES = 9  # open 2 + read 2 + write 2 + verify 2 + close 1 (Basic)
MAX_REQUESTS_READ_ONLY = 5


@pytest.fixture(scope="module")
def reconcile_lab(lab_dc: SambaDC, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabFleet]:
    """RC01..RC03 on the session's DC (tests/conftest.py's lab_dc)."""
    with lab_fleet(lab_dc, tmp_path_factory.mktemp("reconcile"), NAMES) as fleet:
        yield fleet


@pytest.fixture
def fleet(reconcile_lab: LabFleet) -> LabFleet:
    """The module's fleet back to its starting point: RC02 enabled on an old network only.

    The CLI runs in this process (hvlm.cli.main: same exit codes and output, no interpreter
    start-up); tests of the process contract itself switch to subprocesses.
    """
    reconcile_lab.reset(START)
    reconcile_lab.write_manifest()
    reconcile_lab.in_process = True
    return reconcile_lab


def failed_lines(result: CliResult) -> list[str]:
    return [line for line in result.output.splitlines() if line.strip().startswith("failed")]


def test_plan_apply_plan_converges_and_a_second_apply_writes_nothing(
    fleet: LabFleet, tmp_path: Path
) -> None:
    fleet.in_process = False  # the whole contract as a pipeline sees it: real processes
    # a case variant of one of hvlm's own values: already there, must not be added twice
    fleet.dc.seed_delegation("RC01", ["CIFS/rc02.LAB.EXAMPLE"])
    planfile = tmp_path / "plan.json"

    first = fleet.plan("--out", str(planfile), "--full")
    assert first.code == 2, first
    assert fleet.writes() == []  # planning writes nothing
    for name in NAMES:
        assert f"host/{name}/migration" in first.stdout
        assert f"directory/{name}/allowedToDelegateTo" in first.stdout

    fleet.server.reset_stats()
    applied = fleet.hvlm("apply", str(planfile))
    assert applied.code == 0, applied
    for name in NAMES:
        assert fleet.state(name) == WANTED
        assert fleet.wsman_requests(name) <= MAX_REQUESTS_WITH_CHANGES, fleet.server.stats(name)
    rc01 = lower(fleet.account("RC01").values)
    assert len([v for v in rc01 if v.endswith(("/rc02", "/rc02.lab.example"))]) == 4

    second = fleet.plan()
    assert second.code == 0, second
    assert "No changes" in second.stdout

    fleet.server.reset_stats()
    before = fleet.accounts()
    again = fleet.apply()
    assert again.code == 0, again
    assert fleet.writes() == []  # no write cmdlet on any host
    assert fleet.accounts() == before  # same values, same uSNChanged: no LDAP modify
    for name in NAMES:
        assert fleet.wsman_requests(name) <= MAX_REQUESTS_READ_ONLY
        assert UNRELATED in fleet.account(name).values


def test_unrelated_values_survive_and_prune_removes_only_hvlms_stale_values(
    fleet: LabFleet,
) -> None:
    foreign = "cifs/HV99.lab.example"  # toward a host that is not in the manifest: not hvlm's
    fleet.dc.seed_delegation("RC01", [foreign])
    fleet.server.reset_stats()
    assert fleet.apply().code == 0
    assert all(fleet.wsman_requests(n) <= MAX_REQUESTS_WITH_CHANGES for n in NAMES)

    # RC03 leaves the group but stays a host of the manifest: values toward it become stale
    fleet.write_manifest(ManifestOptions(group=["RC01", "RC02"], prune=False))
    kept = fleet.apply()
    assert kept.code == 0, kept
    assert lower(values_toward("RC03")) <= lower(fleet.account("RC01").values)

    fleet.write_manifest(ManifestOptions(group=["RC01", "RC02"], prune=True))
    plan = fleet.plan()
    assert plan.code == 2, plan
    pruned = fleet.apply()
    assert pruned.code == 0, pruned
    assert lower(fleet.account("RC01").values) == lower(
        {UNRELATED, foreign} | values_toward("RC02")
    )
    assert lower(fleet.account("RC02").values) == lower({UNRELATED} | values_toward("RC01"))
    assert lower(fleet.account("RC03").values) == lower({UNRELATED})
    assert fleet.plan().code == 0


@pytest.mark.parametrize("change", ["host", "directory", "manifest"])
def test_a_saved_plan_made_stale_is_refused_without_touching_anything(
    fleet: LabFleet, tmp_path: Path, change: str
) -> None:
    planfile = tmp_path / "plan.json"
    assert fleet.plan("--out", str(planfile)).code == 2
    if change == "host":
        fleet.hosts["RC02"].set_state(replace(fleet.state("RC02"), max_vm_migrations=5))
    elif change == "directory":  # one of the values the plan adds, added by someone else
        fleet.dc.seed_delegation("RC01", ["cifs/rc02.lab.example"])
    else:
        fleet.manifest.write_text(fleet.manifest.read_text().replace("SMB", "TCPIP"))
    states, accounts = fleet.states(), fleet.accounts()
    fleet.server.reset_stats()

    refused = fleet.hvlm("apply", str(planfile))
    assert refused.code == 1, refused
    assert "stale plan" in refused.stderr
    assert "Traceback" not in refused.output
    assert fleet.writes() == []  # no write cmdlet reached any host
    assert fleet.states() == states
    assert fleet.accounts() == accounts  # no LDAP modify


def test_one_host_failing_mid_apply_does_not_stop_the_others_and_converges_next_time(
    fleet: LabFleet,
) -> None:
    message = "injected: the migration network adapter is busy"
    fault = CmdletFault("Add-VMMigrationNetwork", message)
    fleet.fault(FaultSpec(cmdlet_faults=(fault,)), "RC02")

    failed = fleet.apply()
    assert failed.code == 1, failed
    lines = failed_lines(failed)
    assert lines and all("RC02" in line for line in lines), failed
    assert any(message in line and "host/RC02/" in line for line in lines), failed
    assert "Apply FAILED" in failed.output
    assert fleet.state("RC01") == WANTED and fleet.state("RC03") == WANTED
    rc02 = fleet.state("RC02")
    assert rc02.enabled and rc02.networks  # never stranded, never disabled

    fleet.clear_faults()
    again = fleet.apply()
    assert again.code == 0, again
    assert fleet.converged()
    assert fleet.plan().code == 0


def test_apply_off_a_terminal_without_auto_approve_refuses(fleet: LabFleet) -> None:
    fleet.in_process = False
    accounts = fleet.accounts()
    refused = fleet.hvlm("apply", str(fleet.manifest))  # stdin is /dev/null, not a TTY
    assert refused.code == 1, refused
    assert "--auto-approve" in refused.stderr
    assert "Traceback" not in refused.output
    assert fleet.writes() == []
    assert fleet.accounts() == accounts
    assert fleet.states() == START


@contextmanager
def sigint_not_ignored() -> Iterator[None]:
    """A child started inside gets SIGINT at its default disposition (exec resets a handled
    signal to SIG_DFL but keeps an ignored one ignored). Done here rather than in a preexec_fn:
    this process runs the lab's threads, and code between fork and exec is unsafe with threads."""
    previous = signal.getsignal(signal.SIGINT)
    if previous is not signal.SIG_IGN:
        yield
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def catches_sigint(pid: int) -> bool:
    """The process has a handler for SIGINT (Linux: /proc/PID/status, SigCgt bit 2)."""
    status = Path(f"/proc/{pid}/status").read_text()
    masks = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    bit = 1 << (signal.SIGINT - 1)
    return bool(int(masks["SigCgt"], 16) & bit) and not int(masks["SigIgn"], 16) & bit


def test_ctrl_c_mid_apply_leaves_hosts_that_the_next_plan_describes(fleet: LabFleet) -> None:
    """SIGINT once the first host is being written (one host at a time, slow hosts): the running
    pipeline finishes, the rest is not started, and the next plan shows exactly what is left."""
    fleet.fault(FaultSpec(latency_ms=150), *NAMES)
    command = [sys.executable, "-m", "hvlm", "apply", str(fleet.manifest), "--auto-approve",
               "--parallelism", "1"]
    # The default SIGINT disposition in the child, whatever this process inherited: a suite
    # started from a background job (`nohup make test &`) ignores SIGINT, and so would the child,
    # whose Python then installs no KeyboardInterrupt handler.
    with sigint_not_ignored():
        proc = subprocess.Popen(command, env=fleet.env(), cwd=REPO, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not fleet.writes() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, ("apply ended before it was interrupted", proc.communicate())
    assert fleet.writes(), "no host was being written within 60 s"
    assert catches_sigint(proc.pid), "the child would not see Ctrl-C (SIGINT ignored or default)"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in out + err, err
    assert {"aborted", "interrupted"} & set(err.splitlines()), err
    fleet.clear_faults()

    states = fleet.states()
    assert sum(state == WANTED for state in states.values()) < len(NAMES), "nothing was cut"
    for name, state in states.items():
        assert not (state.enabled and not state.networks), f"{name} stranded: {state}"
    assert states["RC02"].enabled
    plan = fleet.plan("--full")
    assert plan.code == 2, plan
    for name, state in states.items():
        assert (f"host/{name}/" in plan.stdout) == (state != WANTED), (name, state, plan)
        assert UNRELATED in fleet.account(name).values
    assert fleet.apply().code == 0
    assert fleet.converged()


def test_host_selection_in_a_group_applies_and_verifies_only_toward_the_selection(
    fleet: LabFleet,
) -> None:
    """`--host RC01 --host RC02` in a group of three: the selected accounts are planned fully,
    RC03's account gains the values toward the selected hosts, the RC03 host itself is not
    touched, and verification (with the same selection) finds no drift; a full apply then
    converges the rest."""
    result = fleet.apply("--host", "RC01", "--host", "RC02")
    assert result.code == 0, result
    assert "drift" not in result.output, result
    assert fleet.state("RC03") == FRESH
    rc03 = lower(fleet.account("RC03").values)
    assert lower(values_toward("RC01")) <= rc03 and lower(values_toward("RC02")) <= rc03
    assert fleet.apply().code == 0
    assert fleet.converged()


def test_refresh_tickets_purges_the_system_tickets_of_hosts_whose_delegation_changed(
    fleet: LabFleet,
) -> None:
    """`--refresh-tickets`: after the delegation was written, `klist purge -li 0x3e7` runs on the
    hosts whose computer account changed (the source document's last step), and only then; a
    converged fleet purges nothing."""
    before = {name: fleet.hosts[name].purge_count() for name in NAMES}
    result = fleet.apply("--refresh-tickets")
    assert result.code == 0, result
    for name in NAMES:
        assert f"host/{name}/tickets" in result.output, result
        assert fleet.hosts[name].purge_count() == before[name] + 1
    again = fleet.apply("--refresh-tickets")
    assert again.code == 0 and "tickets" not in again.output, again
    assert all(fleet.hosts[n].purge_count() == before[n] + 1 for n in NAMES)


def test_progress_off_a_terminal_is_one_log_line_per_host_on_stderr(fleet: LabFleet) -> None:
    """Not on a TTY, fleet progress is structured log lines on stderr; stdout stays the plan."""
    result = fleet.hvlm("--log-level", "info", "plan", str(fleet.manifest), "--format", "json")
    assert result.code == 0, result
    assert json.loads(result.stdout)["format_version"] == 2  # stdout: the plan and nothing else
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    ticks = [line for line in lines if line.get("event") == "read host"]
    assert sorted(t["host"] for t in ticks) == sorted(NAMES), result.stderr
    assert all(t["ok"] and t["total"] == len(NAMES) for t in ticks)
