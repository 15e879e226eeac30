"""Waiting for replication (hvlm.reconcile.replication) with fake DCs, a fake clock and sleep."""

from __future__ import annotations

from collections.abc import Callable

from hvlm.errors import DirectoryUnreachable
from hvlm.model import DirectoryServer, DirectorySpec
from hvlm.reconcile.replication import (
    TRANSITION,
    Expected,
    Lag,
    blocked_hosts,
    dc_server,
    expected_after_add,
    missing_on,
    wait_for_replication,
)
from hvlm.state import DelegationState, DirectoryState

MIG = "Microsoft Virtual System Migration Service/HV02"
CIFS = "cifs/HV02.lab.example"
PT = 0x01000000


def account(name: str, values: tuple[str, ...] = (), uac: int = 4096) -> DelegationState:
    return DelegationState(name, f"CN={name},CN=Computers,DC=lab,DC=example", f"{name}$",
                           f"{name.lower()}.lab.example", (), uac, values)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def dc(*rounds: tuple[DelegationState, ...]) -> Callable[[], DirectoryState]:
    """A DC answering the given account lists, one per read; the last one from then on."""
    answers = list(rounds)

    def read() -> DirectoryState:
        return DirectoryState(answers.pop(0) if len(answers) > 1 else answers[0])

    return read


EXPECTED = {"HV01": Expected((MIG, CIFS))}


def test_all_agree_at_once_is_one_round_and_no_sleep() -> None:
    clock = Clock()
    both = (account("HV01", (MIG, CIFS)),)
    result = wait_for_replication(EXPECTED, {"dc1": dc(both), "dc2": dc(both)}, 60,
                                  clock=clock.time, sleep=clock.sleep)
    assert result.agreed and result.rounds == 1 and clock.sleeps == []


def test_waits_with_backoff_until_the_lagging_dc_has_the_values() -> None:
    clock = Clock()
    old, new = (account("HV01", (MIG,)),), (account("HV01", (CIFS.upper(), MIG)),)
    progress: list[tuple[int, int]] = []
    result = wait_for_replication(
        EXPECTED, {"dc1": dc(new), "dc2": dc(old, old, old, new)}, 60,
        clock=clock.time, sleep=clock.sleep, progress=lambda a, t: progress.append((a, t)))
    assert result.agreed and result.rounds == 4
    assert clock.sleeps == [0.25, 0.5, 1.0]  # values compared case-insensitively
    assert progress == [(1, 2), (1, 2), (1, 2), (2, 2)]


def test_timeout_lists_each_dc_account_and_missing_value() -> None:
    clock = Clock()
    result = wait_for_replication(
        EXPECTED, {"dc1": dc((account("HV01", (MIG, CIFS)),)), "dc2": dc((account("HV01"),))},
        3, clock=clock.time, sleep=clock.sleep)
    assert not result.agreed
    assert result.lags == [Lag("HV01", "dc2", (MIG, CIFS))]
    assert clock.sleeps == [0.25, 0.5, 1.0, 1.25]  # the last sleep is cut to the deadline


def test_backoff_is_capped() -> None:
    clock = Clock()
    wait_for_replication(EXPECTED, {"dc2": dc((account("HV01"),))}, 30,
                         clock=clock.time, sleep=clock.sleep)
    assert max(clock.sleeps) == 5.0


def test_an_unreachable_dc_is_left_out_and_named() -> None:
    clock = Clock()

    def down() -> DirectoryState:
        raise DirectoryUnreachable("ldaps://dc1", "connect", "timed out")

    result = wait_for_replication(
        EXPECTED, {"dc1": down, "dc2": dc((account("HV01", (MIG, CIFS)),))}, 60,
        clock=clock.time, sleep=clock.sleep)
    assert result.agreed and list(result.unreachable) == ["dc1"]


def test_the_dc_that_went_away_is_reported_once_so_apply_can_write_again_elsewhere() -> None:
    """on_unreachable runs when the DC is dropped, before the next DC of the same round is read:
    apply writes again there what the dead DC took, so the wait ends at once."""
    clock = Clock()
    gone: list[str] = []
    holds: list[DelegationState] = [account("HV01")]

    def down() -> DirectoryState:
        raise DirectoryUnreachable("ldaps://dc1", "connect", "refused")

    def rewrite(server: str) -> None:
        gone.append(server)
        holds[0] = account("HV01", (MIG, CIFS))

    result = wait_for_replication(
        EXPECTED, {"dc1": down, "dc2": lambda: DirectoryState((holds[0],))}, 60,
        clock=clock.time, sleep=clock.sleep, on_unreachable=rewrite)
    assert gone == ["dc1"] and result.agreed and result.rounds == 1 and clock.sleeps == []


def test_a_missing_account_and_the_protocol_transition_bit_count_as_missing() -> None:
    wanted = Expected((MIG,), protocol_transition=True)
    assert missing_on(wanted, None) == (MIG, TRANSITION)
    assert missing_on(wanted, account("HV01", (MIG,))) == (TRANSITION,)
    assert missing_on(wanted, account("HV01", (MIG,), 4096 | PT)) == ()
    assert missing_on(Expected((), False), account("HV01", (), 4096 | PT)) == ("no " + TRANSITION,)


def test_only_hosts_whose_own_dc_lags_are_blocked_unknown_dc_means_any() -> None:
    from hvlm.reconcile.replication import ReplicationResult

    result = ReplicationResult(lags=[Lag("HV01", "dc2", (MIG,)), Lag("HV02", "dc2", (MIG,)),
                                     Lag("HV03", "dc2", (MIG,))])
    blocked = blocked_hosts(result, {"HV01": "dc2", "HV02": "dc1", "HV03": None})
    assert sorted(blocked) == ["HV01", "HV03"]


def test_expected_values_are_the_read_ones_plus_the_added_ones() -> None:
    got = expected_after_add({"HV01": account("HV01", ("MSSQLSvc/sql:1433", MIG))},
                             {"HV01": [MIG.lower(), CIFS]}, {"HV01": True})
    assert got == {"HV01": Expected(("MSSQLSvc/sql:1433", MIG, CIFS), True)}


def test_a_host_names_its_dc_by_dns_or_netbios_name() -> None:
    dc1 = DirectoryServer("ldaps://dc1.lab.example", "dc1.lab.example", 636, True, "127.0.0.1")
    dc2 = DirectoryServer("ldaps://dc2.lab.example", "dc2.lab.example", 636, True, "127.0.0.2")
    spec = DirectorySpec("lab.example", (dc1, dc2))
    assert dc_server(spec, "\\\\DC2.lab.example") is dc2
    assert dc_server(spec, "\\\\DC1") is dc1
    assert dc_server(spec, "") is None
    other = dc_server(spec, "\\\\dc3")
    assert other is not None and other.url == "ldaps://dc3.lab.example:636"
    assert other.address is None


def test_a_host_cannot_send_hvlm_to_a_dc_of_its_choosing() -> None:
    """The DC a host names is the host's word: never a server outside the directory's domain,
    and with simple binds (a password) never a server the manifest does not list."""
    from hvlm.model import DirectoryAuth

    dc1 = DirectoryServer("ldaps://dc1.lab.example", "dc1.lab.example", 636, True)
    kerberos = DirectorySpec("lab.example", (dc1,))
    simple = DirectorySpec("lab.example", (dc1,), auth=DirectoryAuth.SIMPLE)
    assert dc_server(kerberos, "\\\\evil.example.net") is None
    assert dc_server(kerberos, "\\\\dc9.lab.example.evil.net") is None
    assert dc_server(kerberos, "\\\\bad name.lab.example") is None
    assert dc_server(simple, "\\\\dc3.lab.example") is None
    assert dc_server(simple, "\\\\DC3") is None
    assert dc_server(simple, "\\\\dc1") is dc1  # listed: fine with either bind


def test_a_dc_that_did_not_answer_blocks_the_hosts_that_use_it_and_hosts_of_unknown_dc() -> None:
    from hvlm.reconcile.replication import ReplicationResult

    result = ReplicationResult(unreachable={"dc2": "timed out"})
    blocked = blocked_hosts(result, {"HV01": "dc2", "HV02": "dc1", "HV03": None})
    assert sorted(blocked) == ["HV01", "HV03"]
    assert [lag.server for lag in blocked["HV01"]] == ["dc2"]
