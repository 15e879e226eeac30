"""The ONE place where pypsrp/requests exceptions, WSMan faults and error records become our errors.

Pipeline position: hvlm.hosts.session (transport and pipelines) and hvlm.hosts.parse (error
records of the read pipeline) call here; everything above them (fleet, planner, CLI) only sees
hvlm.errors types:

    requests ConnectionError / timeouts / SSLError  -> HostUnreachable
    pypsrp AuthenticationError (HTTP 401), SPNEGO    -> HostAuthError
    WSManFaultError / WinRMTransportError / others   -> HostError
    PowerShell ErrorRecord (terminating or not)      -> CmdletError

Every error names the host, the step and the real message; known causes get a hint (credentials,
certValidation, the error codes of DOMAIN.md's table). Credentials never appear in a message.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import requests
from pypsrp.exceptions import (
    AuthenticationError,
    WinRMError,
    WinRMTransportError,
    WSManFaultError,
)

from hvlm.errors import CmdletError, HostAuthError, HostError, HostUnreachable
from hvlm.model import ConnectionSpec, Transport, WinRMAuth

USER_VARIABLE = "HVLM_WINRM_USER"
PASSWORD_VARIABLE = "HVLM_WINRM_PASSWORD"  # noqa: S105 (a variable name)

# DOMAIN.md's table of errors administrators meet: code -> (cause, fix).
KNOWN_CODES: dict[int, str] = {
    0x8009030E: "no credentials in the security package: CredSSP needs a sign-in on the source, or "
    "use Kerberos with delegation and 'use any authentication protocol'",
    0x8009030D: "no suitable credentials: constrained delegation is missing; use Kerberos on both "
    "hosts, delegation both ways, then klist purge -li 0x3e7",
    0x80090322: "the target principal name is incorrect: check the SPNs, DNS and the network order",
    0x8007274D: "connection refused: is TCP 6600 (migration) reachable through the firewall?",
    0x8007274C: "connection timed out: is TCP 6600 (migration) reachable through the firewall?",
}
_MIGRATION_LIMIT = re.compile(r"migration limit", re.IGNORECASE)

# WSMan fault codes worth a hint.
_WSMAN_HINTS: dict[int, str] = {
    0x80338029: "the operation timed out on the host: raise connection.timeouts.operation",
}


def explain(message: str) -> str:
    """A hint for the known error codes (hex or signed/unsigned decimal) found in `message`."""
    hints: list[str] = []
    for code, hint in KNOWN_CODES.items():
        forms = (f"0x{code:08x}", str(code), str(code - (1 << 32)))
        if any(form in message.lower() for form in forms):
            hints.append(f"0x{code:08X}: {hint}")
    if _MIGRATION_LIMIT.search(message):
        hints.append("concurrency limit reached: raise maxVirtualMachineMigrations")
    return "; ".join(hints)


# -- PowerShell error records -----------------------------------------------------------------


@dataclass(frozen=True)
class RecordInfo:
    """What hvlm takes from an ErrorRecord: the command it belongs to and its real message."""

    cmdlet: str  # "" when it cannot be attributed
    message: str
    error_id: str  # FullyQualifiedErrorId
    target: str  # TargetObject as text ("" if none)


def record_message(record: object) -> str:
    """The real text of an ErrorRecord (ErrorRecord.message is only the category text)."""
    details = getattr(record, "details_message", None)
    if details:
        return str(details)
    exception = getattr(record, "exception", None)
    for source in (exception, record):
        text = _message_of(source)
        if text:
            return text
    return str(getattr(record, "message", "") or "unknown error")


def _message_of(value: object) -> str:
    if value is None:
        return ""
    for bag in ("adapted_properties", "extended_properties"):
        props = getattr(value, bag, None)
        if isinstance(props, dict) and props.get("Message"):
            return str(props["Message"])
    try:
        text = str(value)
    except (KeyError, TypeError, ValueError):
        return ""
    return "" if text in ("None", "") else text


def describe_record(record: object, candidates: Iterable[str]) -> RecordInfo:
    """Attribute an ErrorRecord to one of `candidates` (cmdlet names) and extract its text."""
    message = record_message(record)
    error_id = str(getattr(record, "fq_error", "") or "")
    target = getattr(record, "target_object", None)
    target_text = _message_of(target) if target is not None else ""
    names = [
        str(getattr(record, "invocation_name", "") or ""),
        str(getattr(record, "command_name", "") or ""),
        _command_from_error_id(error_id),
        target_text,
    ]
    cmdlet = _match_cmdlet(names, message, tuple(candidates))
    return RecordInfo(cmdlet=cmdlet, message=message, error_id=error_id, target=target_text)


def _command_from_error_id(error_id: str) -> str:
    """'ObjectNotFound,Microsoft.HyperV.PowerShell.Commands.RemoveVMMigrationNetwork' -> class."""
    _, sep, origin = error_id.rpartition(",")
    if not sep:
        return ""
    name = origin.rsplit(".", 1)[-1]
    return name[: -len("Command")] if name.endswith("Command") else name


def _match_cmdlet(names: list[str], message: str, candidates: tuple[str, ...]) -> str:
    squashed = {c.replace("-", "").lower(): c for c in candidates}
    for name in names:
        key = name.replace("-", "").lower()
        if key in squashed:
            return squashed[key]
    lowered = message.lower()
    for candidate in candidates:
        if f"'{candidate.lower()}'" in lowered:
            return candidate
    return ""


def cmdlet_error(host: str, step: str, info: RecordInfo) -> CmdletError:
    return CmdletError(host, step, info.message, hint=explain(info.message))


# -- transport and protocol exceptions --------------------------------------------------------


def map_exception(exc: BaseException, host: str, step: str, spec: ConnectionSpec) -> HostError:
    """Map anything pypsrp/requests/pyspnego raised to one HostError subclass (one clear line)."""
    if isinstance(exc, HostError):
        return exc
    if isinstance(exc, AuthenticationError):
        return HostAuthError(
            host,
            step,
            f"authentication failed (HTTP 401, {spec.auth.value})",
            hint=_credentials_hint(spec),
        )
    if isinstance(exc, requests.exceptions.SSLError):
        return _tls_error(exc, host, step, spec)
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return HostUnreachable(
            host,
            step,
            f"connection to {spec.url} timed out after {spec.timeouts.connect_seconds:g}s",
            hint=_reach_hint(spec),
        )
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return HostUnreachable(
            host,
            step,
            f"no answer within {read_timeout(spec):g}s (read timeout)",
            hint="the host or its WinRM service hangs; "
            "raise connection.timeouts.read if it is only slow",
        )
    if isinstance(exc, requests.exceptions.ConnectionError):
        return HostUnreachable(host, step, _connection_text(exc, spec), hint=_reach_hint(spec))
    if isinstance(exc, WSManFaultError):
        return _wsman_fault(exc, host, step)
    if isinstance(exc, WinRMTransportError):
        text = _first_line(exc.response_text) or "no body"
        return HostError(host, step, f"HTTP {exc.code} from {spec.url}: {text}", hint=explain(text))
    if _is_spnego_error(exc):
        return HostAuthError(
            host,
            step,
            f"{spec.auth.value} authentication failed: {_first_line(str(exc))}",
            hint=_credentials_hint(spec),
        )
    if isinstance(exc, WinRMError):
        return HostError(host, step, f"{type(exc).__name__}: {_first_line(str(exc))}")
    return HostError(host, step, f"{type(exc).__name__}: {_first_line(str(exc))}")


def read_timeout(spec: ConnectionSpec) -> float:
    """The HTTP read timeout: a Receive long-polls up to the operation timeout, so it must outlast
    that (else a slow but healthy pipeline would look like a hung host)."""
    return max(spec.timeouts.read_seconds, spec.timeouts.operation_seconds + 1)


def is_transient(exc: BaseException) -> bool:
    """Faults worth a bounded retry: the connection failed or dropped, or the host said 'busy'.

    Never retried: authentication, TLS, read timeouts (a hung host would only hang again),
    WSMan faults and PowerShell errors.
    """
    if isinstance(exc, (requests.exceptions.SSLError, requests.exceptions.ReadTimeout)):
        return False
    if isinstance(exc, requests.exceptions.ConnectionError):
        return True
    if isinstance(exc, WinRMTransportError):
        return exc.code in (502, 503, 504)
    return False


def _credentials_hint(spec: ConnectionSpec) -> str:
    if spec.auth is WinRMAuth.KERBEROS:
        return "check the Kerberos ticket cache (kinit; klist) and the host's WSMAN/ SPN"
    return (
        f"check {USER_VARIABLE} / {PASSWORD_VARIABLE} (for a domain account: user@DOMAIN "
        "or DOMAIN\\user) and that the account may use WinRM on this host"
    )


def _reach_hint(spec: ConnectionSpec) -> str:
    return (
        f"is WinRM listening on {spec.address}:{spec.port} ({spec.transport.value}) and the "
        "firewall open?"
    )


def _tls_error(exc: BaseException, host: str, step: str, spec: ConnectionSpec) -> HostUnreachable:
    text = str(exc)
    reason = _tls_reason(text)
    if "wrong version number" in text.lower() or "record layer failure" in text.lower():
        hint = "the endpoint does not speak TLS: check connection.transport and the port"
    elif "hostname mismatch" in text.lower() or "doesn't match" in text.lower():
        hint = "the certificate is not valid for this address: connect by the name it carries"
    else:
        hint = (
            "the host's certificate is not trusted: set connection.certValidation to the "
            "path of the CA bundle that issued it"
        )
    return HostUnreachable(host, step, f"TLS handshake with {spec.url} failed: {reason}", hint=hint)


def _tls_reason(text: str) -> str:
    match = re.search(r"certificate verify failed: ([^()'\"]+)", text)
    if match:
        return "certificate verify failed: " + match.group(1).strip()
    match = re.search(r"\[SSL: [A-Z_]+\] ([^()'\"]+)", text)
    if match:
        return match.group(1).strip()
    return _first_line(text)


def _connection_text(exc: BaseException, spec: ConnectionSpec) -> str:
    text = str(exc)
    lowered = text.lower()
    if "refused" in lowered:
        return f"connection refused by {spec.address}:{spec.port}"
    if any(
        k in lowered
        for k in (
            "remotedisconnected",
            "connection aborted",
            "reset by peer",
            "without response",
            "connection broken",
            "incomplete",
        )
    ):
        return f"connection to {spec.url} dropped by the host before it answered"
    if "name or service not known" in lowered or "nodename nor servname" in lowered:
        return f"the name {spec.address} does not resolve"
    return f"cannot connect to {spec.url}: {_first_line(text)}"


def _wsman_fault(exc: WSManFaultError, host: str, step: str) -> HostError:
    code = exc.code if isinstance(exc.code, int) else None
    reason = _first_line(str(exc.reason or exc.message or "")) or "no reason given"
    label = f"WSMan fault 0x{code:08X}" if code is not None else "WSMan fault"
    hint = _WSMAN_HINTS.get(code or 0, "") or explain(reason)
    if code == 5 or "access is denied" in reason.lower():
        return HostAuthError(
            host,
            step,
            f"{label}: {reason}",
            hint=hint
            or "the account may not "
            "use PowerShell Remoting on this host (Administrators / Remote "
            "Management Users)",
        )
    return HostError(host, step, f"{label}: {reason}", hint=hint)


def _is_spnego_error(exc: BaseException) -> bool:
    module = type(exc).__module__ or ""
    return module.startswith(("spnego", "gssapi", "krb5", "requests_credssp"))


def _first_line(text: str) -> str:
    for line in text.strip().splitlines():
        if line.strip():
            return line.strip()[:400]
    return ""


def plain_http_basic_refused(host: str, spec: ConnectionSpec) -> HostAuthError:
    return HostAuthError(
        host,
        "connect",
        "Basic authentication over plain HTTP would send the password in clear",
        hint="use transport: https, or set allowUnencrypted: true for a lab",
    )


def uses_plain_http_basic(spec: ConnectionSpec) -> bool:
    return spec.transport is Transport.HTTP and spec.auth is WinRMAuth.BASIC
