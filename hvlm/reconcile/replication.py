"""Wait until the delegation just written has reached every DC the changed hosts use. Orchestration.

Pipeline position: hvlm.reconcile.apply calls `wait_for_replication` between the directory-add
phase and the host phase, so that no host is switched to Kerberos, and no host has its tickets
purged, while the KDC it asks still answers from the old state (0x8009030D until replication,
../shared/notes/DOMAIN.md). The directory is read through `Reader`s (one per DC: hvlm.reconcile
opens each with the run's own directory opener, for that one server), so this module imports no
backend library; tests hand in fakes, a clock and a sleep.

- What must be there: for each account, what apply expects after the add phase (the values read
  before, plus the values added; the protocol-transition bit if it was written). Deletions wait
  for the prune phase and are not compared.
- Where: every DC listed in the manifest plus every DC a changed host reports using
  (Win32_NTDomain), each read once per round with one search; a DC that does not answer is left
  out (logged), since what cannot be read cannot be waited for.
- How long: rounds with backoff (0.25 s doubling up to 5 s) until all agree or `timeout` passes.
- With one DC there is nothing to wait for and nothing is read (the caller does not call this).

The result lists, per DC and account, what is still missing (empty when all agree), and the DCs
that could not be read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import structlog

from hvlm.errors import HvlmError
from hvlm.findings import DELEGATION_NOT_REPLICATED
from hvlm.manifest.semantics import dns_name_problem
from hvlm.model import DirectoryAuth, DirectoryServer, DirectorySpec
from hvlm.state import DelegationState, DirectoryState

__all__ = ["DELEGATION_NOT_REPLICATED", "Expected", "Lag", "ReplicationResult", "blocked_hosts",
           "dc_server", "expected_after_add", "missing_on", "wait_for_replication"]

log = structlog.get_logger("hvlm.reconcile.replication")

Reader = Callable[[], DirectoryState]  # one DC's accounts of the hosts concerned
FIRST_DELAY, MAX_DELAY = 0.25, 5.0
TRANSITION = "use any authentication protocol (TRUSTED_TO_AUTH_FOR_DELEGATION)"


@dataclass(frozen=True)
class Expected:
    """What one account must hold on every DC after the add phase."""

    values: tuple[str, ...]
    protocol_transition: bool | None = None  # None: not written, not compared


@dataclass(frozen=True)
class Lag:
    """One DC still lacking part of one account's delegation."""

    host: str
    server: str
    missing: tuple[str, ...]


@dataclass
class ReplicationResult:
    lags: list[Lag] = field(default_factory=list)  # empty: every DC read agrees
    unreachable: dict[str, str] = field(default_factory=dict)  # server -> error
    rounds: int = 0
    seconds: float = 0.0

    @property
    def agreed(self) -> bool:
        return not self.lags


def missing_on(expected: Expected, seen: DelegationState | None) -> tuple[str, ...]:
    """What `seen` (one DC's copy of the account) lacks of `expected`; values case-insensitive."""
    have = {v.lower() for v in seen.allowed_to_delegate_to} if seen is not None else set()
    missing = [v for v in expected.values if v.lower() not in have]
    if expected.protocol_transition is not None and (
        seen is None or seen.protocol_transition != expected.protocol_transition
    ):
        missing.append(("" if expected.protocol_transition else "no ") + TRANSITION)
    return tuple(missing)


def lags_of(server: str, expected: Mapping[str, Expected], state: DirectoryState) -> list[Lag]:
    lags = []
    for host, wanted in sorted(expected.items()):
        missing = missing_on(wanted, state.account(host))
        if missing:
            lags.append(Lag(host, server, missing))
    return lags


def wait_for_replication(
    expected: Mapping[str, Expected],
    readers: Mapping[str, Reader],
    timeout: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    progress: Callable[[int, int], None] | None = None,
    on_unreachable: Callable[[str], None] | None = None,
) -> ReplicationResult:
    """Poll every DC in `readers` until each holds `expected`, or `timeout` seconds pass.

    `progress(agreeing, total)` is called after every round; `on_unreachable(server)` once when
    a DC stops answering (apply writes again, on the next server, what that DC took).
    """
    result = ReplicationResult()
    started = clock()
    pending: dict[str, Reader] = dict(readers)
    delay = FIRST_DELAY
    while True:
        result.rounds += 1
        result.lags = []
        for server in list(pending):
            lags = _read(server, pending, expected, result)
            if lags is None and on_unreachable is not None:
                on_unreachable(server)
            if lags is not None and not lags:
                del pending[server]  # agrees: values only grow during this phase
            result.lags += lags or []
        result.seconds = clock() - started
        if progress is not None:
            progress(len(readers) - len(pending), len(readers))
        if not pending or result.seconds >= timeout:
            return result
        log.info("waiting for replication", servers=sorted(pending),
                 missing=sum(len(lag.missing) for lag in result.lags),
                 seconds=round(result.seconds, 1), timeout=timeout)
        sleep(min(delay, max(0.0, timeout - result.seconds)))
        delay = min(delay * 2, MAX_DELAY)


def _read(server: str, pending: dict[str, Reader], expected: Mapping[str, Expected],
          result: ReplicationResult) -> list[Lag] | None:
    try:
        state = pending[server]()
    except HvlmError as exc:
        log.warning("a DC could not be read for replication; not waited for", server=server,
                    error=str(exc))
        result.unreachable[server] = str(exc)
        del pending[server]
        return None
    return lags_of(server, expected, state)


def blocked_hosts(result: ReplicationResult, dc_of: Mapping[str, str | None]
                  ) -> dict[str, list[Lag]]:
    """Hosts that must not be switched: their own DC lacks their delegation or could not be read
    (or, when hvlm does not know which DC a host uses, any DC lacks it or could not be read):
    a delegation hvlm could not see on the host's DC is unknown, and unknown blocks the switch."""
    blocked: dict[str, list[Lag]] = {}
    for lag in result.lags:
        own = dc_of.get(lag.host)
        if own is None or own == lag.server:
            blocked.setdefault(lag.host, []).append(lag)
    for host, own in dc_of.items():
        unread = [server for server in result.unreachable if own is None or own == server]
        for server in unread:
            blocked.setdefault(host, []).append(Lag(host, server, ("(the DC did not answer)",)))
    return blocked


def expected_after_add(observed: Mapping[str, DelegationState],
                       added: Mapping[str, Sequence[str]],
                       transitions: Mapping[str, bool | None]) -> dict[str, Expected]:
    """Each account's values read before the apply plus those it added (deletions come later)."""
    expected = {}
    for host, account in observed.items():
        values = list(account.allowed_to_delegate_to)
        known = {v.lower() for v in values}
        values += [v for v in added.get(host, ()) if v.lower() not in known]
        expected[host] = Expected(tuple(values), transitions.get(host))
    return expected


def dc_server(spec: DirectorySpec, name: str) -> DirectoryServer | None:
    """The directory server for a DC a host names (Win32_NTDomain: "\\\\dc2.lab.example" or
    "\\\\DC2"): the manifest's entry when its name matches (full, or first label); else, only
    with Kerberos binds, one built like the manifest's first server for a name INSIDE the
    directory's domain. A host's answer is not trusted with credentials: with simple binds
    (HVLM_LDAP_PASSWORD) only the manifest's servers are ever contacted, and a name outside the
    domain is never contacted at all (None: the host's DC is unknown, so it is treated as one that
    may lag)."""
    name = name.strip().lstrip("\\").rstrip(".").lower()
    if not name:
        return None
    for server in spec.servers:
        host = server.host.lower()
        if name == host or ("." not in name and name == host.split(".")[0]):
            return server
    domain = spec.domain.lower().rstrip(".")
    fqdn = name if "." in name else f"{name}.{domain}"
    if spec.auth is not DirectoryAuth.KERBEROS or not fqdn.endswith("." + domain) \
            or dns_name_problem(fqdn):
        return None
    first = spec.servers[0]
    scheme = "ldaps" if first.use_ssl else "ldap"
    return DirectoryServer(f"{scheme}://{fqdn}:{first.port}", fqdn, first.port, first.use_ssl)
