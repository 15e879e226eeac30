"""No secret of the environment in a backend's words: the one sanitiser, through the real mappings.

Where it sits: unit tests of hvlm.errors.redact_secrets as the mapping boundaries use it
(hvlm.hosts.errors.map_exception, hvlm.directory.errors.error_for_exception / error_for_result,
and a host's error record read by hvlm.hosts.parse). Each case plants the secret in the text a
library or a host would write (every exception family hvlm maps), with the password in the
environment as the CLI has it, and checks the error hvlm reports. The same end to end against
the lab: tests/security/test_secrets.py (a host whose error record echoes the passwords).
"""

from __future__ import annotations

import base64
from urllib.parse import quote

import pytest
import requests
from ldap3.core import exceptions as lx
from pypsrp.exceptions import AuthenticationError, WinRMError, WinRMTransportError, WSManFaultError
from spnego.exceptions import InvalidTokenError

from hvlm.directory.errors import error_for_exception, error_for_result
from hvlm.errors import REDACTED, BackendError, redact_secrets
from hvlm.hosts.clixml import Record, as_obj, deserialize
from hvlm.hosts.errors import BadAnswer, map_exception
from hvlm.hosts.parse import parse_host_state
from hvlm.model import ConnectionSpec

SECRET = "Pa55 w/rd+%'\"\\x"  # quotes, a backslash, URL metacharacters, a space
USER = "secadmin"
SPEC = ConnectionSpec("hv01.corp.example.com", 5986)


@pytest.fixture(autouse=True)
def secrets_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HVLM_WINRM_USER", USER)
    monkeypatch.setenv("HVLM_WINRM_PASSWORD", SECRET)
    monkeypatch.setenv("HVLM_LDAP_PASSWORD", "ldap-" + SECRET)
    monkeypatch.setenv("HVLM_FUTURE_BACKEND_PASSWORD", "future-secret-9")


def forms(secret: str) -> list[str]:
    return [secret, repr(secret)[1:-1], quote(secret, safe=""),
            base64.b64encode(secret.encode()).decode(),
            base64.b64encode(f"{USER}:{secret}".encode()).decode()]


def assert_clean(error: BackendError) -> None:
    text = f"{error} {error.detail} {error.hint} {error.target} {error.step}"
    for secret in (SECRET, "ldap-" + SECRET, "future-secret-9"):
        for form in forms(secret):
            assert form not in text, (form, text)
    assert REDACTED in text, text  # the text was there, and replaced


def leak(secret: str = SECRET) -> str:
    return f"login {USER}:{secret} refused"


HOST_FAILURES = {
    "ConnectionError": requests.exceptions.ConnectionError(
        f"HTTPSConnectionPool: Max retries exceeded with url /wsman?pw={quote(SECRET, safe='')}"),
    "SSLError": requests.exceptions.SSLError(f"[SSL] bad certificate for {leak()}"),
    "ConnectTimeout": requests.exceptions.ConnectTimeout(leak()),  # text unused: still clean
    "WinRMTransportError": WinRMTransportError("http", 500, f"<x>{leak()}</x>"),
    "WSManFaultError": WSManFaultError(5, "machine", f"Access is denied: {leak()}", leak()),
    "SpnegoError": InvalidTokenError(context_msg=leak(repr(SECRET)[1:-1])),
    "WinRMError": WinRMError(f"Authorization: Basic "
                             f"{base64.b64encode(f'{USER}:{SECRET}'.encode()).decode()}"),
    "BadAnswer": BadAnswer(f"the WSMan answer is malformed XML ({leak()})"),
    "OSError": OSError(f"[Errno 111] {leak()}"),
    "a future backend's password": WinRMError(leak("future-secret-9")),
}


@pytest.mark.parametrize("exc", HOST_FAILURES.values(), ids=HOST_FAILURES.keys())
def test_a_host_failure_never_carries_a_secret(exc: BaseException) -> None:
    error = map_exception(exc, "HV01", "read", SPEC)
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        assert SECRET not in str(error)  # hvlm writes its own words for a timeout
        return
    assert_clean(error)


def test_authentication_error_says_who_but_not_the_password() -> None:
    error = map_exception(AuthenticationError(leak()), "HV01", "connect", SPEC)
    assert SECRET not in str(error) and "HVLM_WINRM_PASSWORD" in error.hint


DIRECTORY_FAILURES = {
    "socket": lx.LDAPSocketOpenError(f"socket connection error: {leak('ldap-' + SECRET)}"),
    "TLS": lx.LDAPStartTLSError(f"certificate verify failed {leak('ldap-' + SECRET)}"),
    "operation result": lx.LDAPOperationResult(result=49, description="invalidCredentials",
                                               message=leak("ldap-" + SECRET)),
    "OSError": TimeoutError(leak("ldap-" + SECRET)),
    "other": lx.LDAPException(leak("ldap-" + SECRET)),
}


@pytest.mark.parametrize("exc", DIRECTORY_FAILURES.values(), ids=DIRECTORY_FAILURES.keys())
def test_a_directory_failure_never_carries_a_secret(exc: Exception) -> None:
    assert_clean(error_for_exception("ldaps://dc1.corp.example.com", "bind", exc))


def test_a_directory_result_never_carries_a_secret() -> None:
    error = error_for_result("ldaps://dc1", "bind as x", {
        "result": 49, "description": "invalidCredentials",
        "message": f"80090308: LdapErr: DSID-0C09041C, {leak('ldap-' + SECRET)}"})
    assert_clean(error)


def test_a_host_error_record_echoing_a_secret_is_redacted() -> None:
    """A host (or a module on it) that writes the password into an error record."""
    record = Record(as_obj(deserialize(
        b'<Obj RefId="0"><MS><S N="FullyQualifiedErrorId">X,Microsoft.HyperV.PowerShell.'
        b'Commands.GetVMHost</S><S N="ErrorDetails_Message">'
        + leak().replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;").encode()
        + b"</S></MS></Obj>", "an error record")))
    with pytest.raises(BackendError) as caught:
        parse_host_state("HV01", [], [record])
    assert_clean(caught.value)


def test_control_without_the_variables_the_text_is_left_as_it_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The sanitiser replaces secrets of the environment, not text that looks like one."""
    for name in ("HVLM_WINRM_PASSWORD", "HVLM_LDAP_PASSWORD", "HVLM_FUTURE_BACKEND_PASSWORD"):
        monkeypatch.delenv(name)
    error = map_exception(WinRMError(leak()), "HV01", "read", SPEC)
    assert str(error) == f"HV01: read: WinRMError: {leak()}"
    assert redact_secrets("nothing secret", {"HVLM_WINRM_PASSWORD": ""}) == "nothing secret"


def test_the_longest_form_is_replaced_whole() -> None:
    env = {"HVLM_WINRM_USER": "u", "HVLM_WINRM_PASSWORD": "abc", "HVLM_X_SECRET": "abcdef"}
    assert redact_secrets("[abcdef] [abc] [dTphYmM=]", env) == (
        f"[{REDACTED}] [{REDACTED}] [{REDACTED}]")
