"""The ONE place where pypsrp/requests exceptions, WSMan faults and error records become our errors.

Pipeline position: hvlm.hosts.session (transport and pipelines) and hvlm.hosts.parse (error
records of the read pipeline) call here; everything above them (the reconciler, the CLI) only
sees hvlm.errors types:

    requests ConnectionError / timeouts / SSLError  -> HostUnreachable
    BadAnswer (transport / envelopes / clixml)       -> HostError
    pypsrp AuthenticationError (HTTP 401), SPNEGO    -> HostAuthError
    WSManFaultError / WinRMTransportError / others   -> HostError
    PowerShell ErrorRecord (terminating or not)      -> CmdletError

Only the exception families of the libraries between hvlm and a host are mapped
(`BACKEND_ERRORS`: pypsrp, requests/urllib3, socket and ssl, SPNEGO/NTLM/Kerberos/CredSSP, a
response that is not XML). Anything else raised while talking to a host (a TypeError...) is a
bug in hvlm: the session lets it propagate and the CLI reports it as an internal error.

Every error names the host, the step and the real message; known causes get a hint (credentials,
certValidation, the error codes of DOMAIN.md's table). Credentials never appear in a message:
whatever a library wrote, the HostError built here passes hvlm.errors.redact_secrets.
"""

from __future__ import annotations

import importlib
import re
from xml.etree.ElementTree import ParseError

import requests
import urllib3.exceptions
from pypsrp.exceptions import (
    AuthenticationError,
    WinRMError,
    WinRMTransportError,
    WSManFaultError,
)
from requests_credssp.exceptions import (
    AuthenticationException,
    InvalidConfigurationException,
    NTStatusException,
)
from spnego.exceptions import FeatureMissingError, NativeError, SpnegoError

from hvlm.errors import HostAuthError, HostError, HostUnreachable
from hvlm.hosts.records import (  # re-exported: the record half of the mapping
    _WSMAN_HINTS,
    PASSWORD_VARIABLE,
    USER_VARIABLE,
    explain,
)
from hvlm.model import ConnectionSpec, Transport, WinRMAuth


class BadAnswer(Exception):
    """A host's answer hvlm refuses to read: too large or not complete in time
    (hvlm.hosts.transport), not UTF-8, malformed XML, a DTD (entity expansion) or invalid PSRP
    framing (hvlm.hosts.envelopes), invalid CLIXML (hvlm.hosts.clixml)."""


def _optional(module: str, name: str) -> tuple[type[Exception], ...]:
    """An exception class of a library of the `kerberos` extra, if it is installed."""
    try:
        found: type[Exception] = getattr(importlib.import_module(module), name)
    except ImportError:
        return ()
    return (found,)


# authentication (NTLM, Kerberos, CredSSP) below pypsrp: a failed handshake, a missing ticket
_AUTH_ERRORS: tuple[type[Exception], ...] = (
    SpnegoError,
    NativeError,
    FeatureMissingError,
    AuthenticationException,
    InvalidConfigurationException,
    NTStatusException,
    *_optional("gssapi.exceptions", "GSSError"),
    *_optional("krb5", "Krb5Error"),
)
# What a call to a host may raise for a reason outside hvlm; map_exception maps these only.
BACKEND_ERRORS: tuple[type[Exception], ...] = (
    WinRMError,  # pypsrp: HTTP 401 and other statuses, WSMan faults, PSRP state and fragments
    OSError,  # requests (connect/read timeouts, TLS, dropped connections), socket, ssl
    urllib3.exceptions.HTTPError,  # what requests lets through
    ParseError,  # a response body that is not XML
    BadAnswer,  # an answer refused by hvlm's own transport (size, time, XML, CLIXML)
    *_AUTH_ERRORS,
)


def map_exception(exc: BaseException, host: str, step: str, spec: ConnectionSpec) -> HostError:
    """Map one of BACKEND_ERRORS to one HostError subclass (one clear line)."""
    if isinstance(exc, HostError):
        return exc
    if isinstance(exc, BadAnswer):
        return HostError(host, step, f"refused the host's answer: {exc}",
                         hint="the host answered something that is not WSMan/PSRP as expected")
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
    if isinstance(exc, _AUTH_ERRORS):
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
        return "check the Kerberos ticket cache (kinit; klist) and the host's host/<fqdn> SPN"
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
