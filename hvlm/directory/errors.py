"""ldap3 results and exceptions -> hvlm.errors, in ONE place (the boundary of hvlm.directory).

Pipeline position: only hvlm.directory.session calls this. Every error names the server and the
object (or step) and, for the causes administrators meet, says what to do:

    insufficientAccessRights -> DirectoryAccessDenied  (SeEnableDelegationPrivilege, Domain Admins)
    invalidCredentials       -> DirectoryAuthError     (HVLM_LDAP_USER / HVLM_LDAP_PASSWORD)
    strongerAuthRequired     -> DirectoryAuthError     (TLS or signing required)
    GSSAPI failure           -> DirectoryAuthError     (ticket cache, DC name)
    socket / TLS / timeout   -> DirectoryUnreachable   (the session fails over to the next server)
    any other of BACKEND_ERRORS -> DirectoryError

Only the exception families of the libraries between hvlm and the DC are mapped
(`BACKEND_ERRORS`: ldap3, socket and ssl, pyasn1 decoding, GSSAPI): anything else raised while
talking to the directory (a TypeError...) is a bug in hvlm; the session lets it propagate and
the CLI reports it as an internal error. Whatever ldap3 or the DC wrote, the DirectoryError
built here passes hvlm.errors.redact_secrets (no secret of the environment in a message).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from ldap3.core import exceptions as lx

from hvlm.errors import (
    DirectoryAccessDenied,
    DirectoryAuthError,
    DirectoryError,
    DirectoryUnreachable,
)

USER_ENV = "HVLM_LDAP_USER"
PASSWORD_ENV = "HVLM_LDAP_PASSWORD"  # noqa: S105  (the variable's name, not a secret)

# LDAP result codes (RFC 4511)
INVALID_CREDENTIALS = 49
STRONGER_AUTH_REQUIRED = 8
INSUFFICIENT_ACCESS_RIGHTS = 50
ATTRIBUTE_OR_VALUE_EXISTS = 20
NO_SUCH_ATTRIBUTE = 16
NO_SUCH_OBJECT = 32
UNWILLING_TO_PERFORM = 53
CONSTRAINT_VIOLATION = 19

ACCESS_HINT = (
    "writing msDS-AllowedToDelegateTo or the protocol-transition bit of userAccountControl needs "
    "SeEnableDelegationPrivilege on the domain controllers (Domain Admins have it by default) "
    "and write access to the computer object: run hvlm with such an account"
)
_HINTS = {
    INVALID_CREDENTIALS: f"wrong user or password: check {USER_ENV} / {PASSWORD_ENV} "
                         "(user as user@domain, DOMAIN\\user or a DN)",
    STRONGER_AUTH_REQUIRED: "the server requires an encrypted or signed connection: use "
                            "ldaps://, or ldap:// with StartTLS",
    INSUFFICIENT_ACCESS_RIGHTS: ACCESS_HINT,
    NO_SUCH_OBJECT: "the object is gone: it was deleted or moved since it was read; plan again",
    UNWILLING_TO_PERFORM: "the server refused the change as a policy",
}
_AUTH_CODES = {INVALID_CREDENTIALS, STRONGER_AUTH_REQUIRED}


def _optional(module: str, name: str) -> tuple[type[Exception], ...]:
    """An exception class of a library below ldap3, if it is installed (gssapi: the `kerberos`
    extra; pyasn1: always, with ldap3, but it ships no type information)."""
    try:
        found: type[Exception] = getattr(importlib.import_module(module), name)
    except ImportError:
        return ()
    return (found,)


# What a call to the directory may raise for a reason outside hvlm; error_for_exception maps these.
BACKEND_ERRORS: tuple[type[Exception], ...] = (
    lx.LDAPException,  # ldap3: communication, timeouts, StartTLS, results raised as exceptions
    OSError,  # socket, ssl
    *_optional("pyasn1.error", "PyAsn1Error"),  # a response ldap3 could not decode
    *_optional("gssapi.exceptions", "GSSError"),  # SASL GSSAPI (auth: kerberos)
    *_optional("winkerberos", "KrbError"),  # the same on Windows (SSPI)
)


def error_for_result(server: str, step: str, result: Mapping[str, object]) -> DirectoryError:
    """An LDAP result that is not success -> the matching hvlm error."""
    code = int(str(result.get("result", -1)))
    description = str(result.get("description") or f"result {code}")
    message = str(result.get("message") or "").strip()
    detail = f"{description}: {message}" if message else description
    hint = _HINTS.get(code, "")
    if code == INSUFFICIENT_ACCESS_RIGHTS:
        return DirectoryAccessDenied(server, step, detail, hint=hint)
    if code in _AUTH_CODES:
        return DirectoryAuthError(server, step, detail, hint=hint)
    return DirectoryError(server, step, detail, hint=hint)


def error_for_exception(server: str, step: str, exc: Exception) -> DirectoryError:
    """One of BACKEND_ERRORS (ldap3, gssapi, socket...) -> the matching hvlm error."""
    text = str(exc).strip() or type(exc).__name__
    if _is_tls_validation(text):
        return DirectoryUnreachable(
            server, step, f"TLS certificate not trusted: {text}",
            hint="directory.certValidation: give the CA bundle that issued the DC's certificate",
        )
    if isinstance(exc, (lx.LDAPCommunicationError, lx.LDAPResponseTimeoutError, OSError,
                        lx.LDAPStartTLSError)):
        return DirectoryUnreachable(server, step, text)
    if _is_gssapi(exc):
        return DirectoryAuthError(
            server, step, f"Kerberos (SASL GSSAPI) failed: {text}",
            hint="is there a ticket (kinit, KRB5CCNAME) and does the DC's name in "
                 "directory.servers match its ldap/ service principal?",
        )
    if isinstance(exc, lx.LDAPOperationResult):
        return error_for_result(server, step, {"result": exc.result, "description":
                                               exc.description, "message": exc.message})
    return DirectoryError(server, step, text)


def _is_tls_validation(text: str) -> bool:
    lowered = text.lower()
    return "certificate verify failed" in lowered or "doesn't match" in lowered or (
        "certificateerror" in lowered)


def _is_gssapi(exc: Exception) -> bool:
    return type(exc).__module__.startswith("gssapi") or "gss" in type(exc).__name__.lower()
