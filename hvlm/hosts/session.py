"""One host over PowerShell Remoting (pypsrp 0.9.1): connection, one RunspacePool, pipelines.

Pipeline position: hvlm.backends opens a `HostSession` per host for hvlm.reconcile, which keeps
it open from the plan's read to the verification read (HostSessionLike: read / run / close).
Step accounting of writes: hvlm.hosts.write.
A session opens ONE RunspacePool (WSMan Create + Receive), reuses it for the read, the writes and
the verification read (one Command + Receive per pipeline), and closes it (Delete):
5 WSMan requests for a read, 9 for read + write + verify with Basic.

Commands are sent only as structured cmdlets with named parameters (AddCommand/AddParameter):
never a script, never a string built from values, so a subnet or a name carrying PowerShell
metacharacters arrives as a parameter value. Every failure of the host or of the way to it
leaves here as an hvlm HostError (hvlm.hosts.errors: BACKEND_ERRORS, map_exception); any other
exception is a bug in hvlm and propagates as it is. Credentials come from the environment or the
Kerberos ticket cache and are never logged.
"""

from __future__ import annotations

import os
import time
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import structlog
from pypsrp.wsman import WSMan

from hvlm.errors import CredentialsMissing, HostError, HostUnreachable
from hvlm.hosts.commands import READ_STATEMENTS, HostCommand, restore_commands
from hvlm.hosts.errors import (
    BACKEND_ERRORS,
    BadAnswer,
    is_transient,
    map_exception,
    plain_http_basic_refused,
    read_timeout,
    uses_plain_http_basic,
)
from hvlm.hosts.parse import parse_host_state
from hvlm.hosts.records import PASSWORD_VARIABLE, USER_VARIABLE
from hvlm.hosts.transport import Limits, PsrpClient, harden
from hvlm.hosts.write import (
    ApplyResult,
    PipelineResult,
    StepStatus,
    apply_host_changes,
)
from hvlm.model import ConnectionSpec, HostSpec, Transport, WinRMAuth
from hvlm.state import HostState

log = structlog.get_logger(__name__)

BACKOFF_SECONDS = 0.5  # first retry delay; doubles per attempt
_T = TypeVar("_T")


# -- credentials --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    """Who hvlm connects as. The password never appears in repr() or a log line."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, auth: WinRMAuth, env: Mapping[str, str] | None = None) -> Credentials:
        """HVLM_WINRM_USER / HVLM_WINRM_PASSWORD; Kerberos uses the ticket cache instead.

        basic, ntlm and credssp need both variables; negotiate uses them when set and the
        ticket cache otherwise; kerberos never takes a password.
        """
        env = os.environ if env is None else env
        user, password = env.get(USER_VARIABLE) or None, env.get(PASSWORD_VARIABLE) or None
        if auth is WinRMAuth.KERBEROS:
            return cls()
        if auth is WinRMAuth.NEGOTIATE and user is None and password is None:
            return cls()
        missing = [n for n, v in ((USER_VARIABLE, user), (PASSWORD_VARIABLE, password)) if not v]
        if missing:
            raise CredentialsMissing(
                f"connection.auth {auth.value} needs {' and '.join(missing)} in the environment"
            )
        return cls(user, password)


# -- transport ----------------------------------------------------------------------------------


def _seconds(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def build_wsman(
    spec: ConnectionSpec, credentials: Credentials, host: str, service_name: str = ""
) -> WSMan:
    """A WSMan for one host, used by one thread only (it owns a requests.Session).

    `service_name`: the host's DNS name; Kerberos asks for a ticket to host/<service_name>
    (pypsrp 0.9.1's default service class, which every computer account holds) even when hvlm
    connects to an address (an IP or an override) that is not that name.
    """
    if uses_plain_http_basic(spec) and not spec.allow_unencrypted:
        raise plain_http_basic_refused(host, spec)
    https = spec.transport is Transport.HTTPS
    if https:
        encryption = "auto"
    elif spec.auth is WinRMAuth.BASIC:
        encryption = "never"
    else:
        encryption = "always"
    # pypsrp annotates these as bool/int, but takes a CA path (documented) and float seconds
    # (requests does): hence an untyped mapping.
    options: dict[str, Any] = {
        "port": spec.port,
        "ssl": https,
        "auth": spec.auth.value,
        "cert_validation": spec.cert_validation if https else False,
        "encryption": encryption,
        "connection_timeout": _seconds(spec.timeouts.connect_seconds),
        "read_timeout": _seconds(read_timeout(spec)),
        "operation_timeout": _seconds(spec.timeouts.operation_seconds),
        "reconnection_retries": 0,
        "no_proxy": True,
    }
    kerberos_capable = spec.auth in (WinRMAuth.KERBEROS, WinRMAuth.NEGOTIATE)
    if kerberos_capable and service_name and service_name.lower() != spec.address.lower():
        options["negotiate_hostname_override"] = service_name
    if credentials.username is not None:
        options["username"] = credentials.username
    if credentials.password is not None:
        options["password"] = credentials.password
    wsman = WSMan(spec.address, **options)
    # Build the requests.Session now, in this thread: no environment lookup per request (no_proxy
    # already decided the proxies), the run's one TLS context, every answer bounded in size and
    # time (hvlm.hosts.transport). pypsrp==0.9.1 is pinned.
    harden(wsman, options["cert_validation"], answer_limits(spec))
    return wsman


def answer_limits(spec: ConnectionSpec) -> Limits:
    """One answer may take at most the read timeout in all (a Receive long-polls up to the
    operation timeout, which read_timeout outlasts), one socket read as long."""
    seconds = read_timeout(spec)
    return Limits(total_seconds=seconds, read_seconds=seconds)


# -- the session ----------------------------------------------------------------------------------


class HostSession:
    """`with HostSession(spec) as s: s.read(); apply_host_changes(s, steps); s.read()`.

    Opens one RunspacePool on enter (retrying transient connection faults with backoff), closes it
    on exit. Not thread-safe by design: one session (and its WSMan) per host per thread.
    """

    def __init__(self, spec: HostSpec, credentials: Credentials | None = None) -> None:
        self.spec = spec
        self.name = spec.name
        self.connection = spec.connection
        self._credentials = credentials
        self._wsman: WSMan | None = None
        self._pool: PsrpClient | None = None
        self._broken = False
        self._log = log.bind(host=spec.name)
        self.last_read: HostState | None = None  # the latest successful read of this session
        self.last_apply: ApplyResult | None = None  # what each step of the latest write did

    # -- lifecycle

    def __enter__(self) -> HostSession:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        self.close()

    def open(self) -> None:
        credentials = self._credentials or Credentials.from_env(self.connection.auth)
        wsman = build_wsman(self.connection, credentials, self.name, self.spec.fqdn)
        self._wsman = wsman

        def attempt() -> PsrpClient:
            pool = PsrpClient(wsman, self.connection.timeouts.operation_seconds)
            pool.open_pool()
            return pool

        try:
            self._pool = self._call("connect", attempt)
        except BaseException:
            self._release()
            raise
        self._log.debug("pool opened", url=self.connection.url)

    def close(self) -> None:
        """Delete the shell (skipped when the transport already failed: it would only hang),
        then release the HTTP connections."""
        pool, self._pool = self._pool, None
        try:
            if pool is not None and not self._broken:
                pool.close()
        except BACKEND_ERRORS as exc:  # a failed close must not hide the result obtained
            self._log.warning(
                "closing the pool failed",
                error=str(map_exception(exc, self.name, "close", self.connection)),
            )
        finally:
            self._release()

    def _release(self) -> None:
        wsman, self._wsman = self._wsman, None
        if wsman is not None:
            wsman.close()

    # -- pipelines

    def invoke(self, commands: Sequence[HostCommand], step: str) -> PipelineResult:
        """Run `commands` as the statements of ONE pipeline (one Command + Receive), as is."""
        if self._pool is None:
            raise HostError(self.name, step, "the session is not open")
        pool = self._pool

        def attempt() -> PipelineResult:
            statements: list[HostCommand] = []
            for command in commands:
                _add(statements, command)
            ran = pool.run(statements)
            return PipelineResult(
                output=tuple(ran.output),
                errors=tuple(ran.errors),
                warnings=tuple(_text(w) for w in ran.warnings),
                failed=ran.failed,
            )

        return self._call(step, attempt)

    def read(self) -> HostState:
        """Everything the planner and the preflight need: one pipeline, parsed (pure)."""
        result = self.invoke(READ_STATEMENTS, "read")
        state = parse_host_state(self.name, result.output, result.errors, result.failed)
        self.last_read = state
        for warning in state.read_warnings:
            self._log.warning("read warning", detail=warning)
        return state

    def apply(self, steps: Sequence[HostCommand]) -> ApplyResult:
        """Write steps (see apply_host_changes); the result says what each step did.

        Safety net: when a write failed, the host is read again (same pool) and, if the failure
        left it stranded (migration on, no network) when it was not before, put back as it was.
        """
        before = self.last_read
        result = self.last_apply = apply_host_changes(self, steps)
        if result.ok or before is None:
            return result
        try:
            now = self.read()
        except HostError as error:  # the write's own failure is what the caller must see
            self._log.warning("reading after a failed write failed", error=str(error))
            return result
        undo = restore_commands(before.migration, now.migration)
        if not undo:
            return result
        self._log.warning(
            "a failed write left migration on with no network: restoring",
            steps=[str(s) for s in undo],
        )
        restored = apply_host_changes(self, undo)
        result = self.last_apply = replace(result, restored=restored.steps)
        return result

    def run(self, steps: Sequence[HostCommand]) -> None:
        """Write steps; raise the first failure (CmdletError naming host, step and message)."""
        result = self.apply(steps)
        for step in result.steps:
            if step.status is StepStatus.SKIPPED:
                self._log.warning("step skipped", step=str(step.command))
        failures = result.failures
        if failures:
            raise failures[0]

    def _call(self, step: str, fn: Callable[[], _T]) -> _T:
        """Run fn, retrying transient transport faults (bounded, exponential backoff)."""
        attempt = 0
        while True:
            try:
                return fn()
            except BACKEND_ERRORS as exc:  # anything else is a bug in hvlm: not mapped
                if is_transient(exc) and attempt < self.connection.retries:
                    delay = BACKOFF_SECONDS * (2**attempt)
                    attempt += 1
                    self._log.info(
                        "transient fault, retrying",
                        step=step,
                        attempt=attempt,
                        delay=delay,
                        error=type(exc).__name__,
                    )
                    time.sleep(delay)
                    continue
                error = map_exception(exc, self.name, step, self.connection)
                if isinstance(error, HostUnreachable) or isinstance(exc, BadAnswer):
                    self._broken = True
                raise error from exc


def _add(statements: list[HostCommand], command: HostCommand) -> None:
    """One statement of the pipeline being built (each travels as AddCommand/AddParameter)."""
    statements.append(command)


def _text(record: object) -> str:
    message = getattr(record, "message", None)
    return str(message) if message is not None else str(record)
