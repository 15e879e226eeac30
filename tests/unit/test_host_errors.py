"""hvlm.hosts.errors: the one mapping from pypsrp/requests/WSMan/PowerShell failures to hvlm errors.

The exceptions are built as the libraries raise them (same classes, same argument shapes, real
messages captured from this machine); the end-to-end cases (401, TLS, drop, hang) run against
the lab in tests/integration/test_hosts.py.
"""

from __future__ import annotations

import pytest
import requests
from pypsrp.exceptions import AuthenticationError, WinRMTransportError, WSManFaultError

from hvlm.errors import HostAuthError, HostError, HostUnreachable
from hvlm.hosts.clixml import Record, as_obj, deserialize
from hvlm.hosts.errors import (
    is_transient,
    map_exception,
    read_timeout,
)
from hvlm.hosts.records import RecordInfo, describe_record, explain
from hvlm.model import ConnectionSpec, Timeouts, Transport, WinRMAuth

SPEC = ConnectionSpec("hv01.corp.example.com", 5986, timeouts=Timeouts(4, 30, 20))
URL = "https://hv01.corp.example.com:5986/wsman"


def mapped(exc: BaseException, spec: ConnectionSpec = SPEC) -> HostError:
    return map_exception(exc, "HV01", "read", spec)


@pytest.mark.parametrize(
    ("exc", "kind", "line", "hint"),
    [
        (
            AuthenticationError("Failed to authenticate the user admin with negotiate"),
            HostAuthError,
            "HV01: read: authentication failed (HTTP 401, negotiate)",
            "HVLM_WINRM_USER / HVLM_WINRM_PASSWORD",
        ),
        (
            requests.exceptions.SSLError(
                "HTTPSConnectionPool(host='hv01.corp.example.com', port=5986): Max retries "
                "exceeded with url: /wsman (Caused by SSLError(SSLCertVerificationError(1, "
                "'[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get "
                "local issuer certificate (_ssl.c:1006)')))"
            ),
            HostUnreachable,
            f"HV01: read: TLS handshake with {URL} failed: certificate verify failed: unable "
            "to get local issuer certificate",
            "connection.certValidation",
        ),
        (
            requests.exceptions.SSLError(
                "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)"
            ),
            HostUnreachable,
            f"HV01: read: TLS handshake with {URL} failed: wrong version number",
            "does not speak TLS",
        ),
        (
            requests.exceptions.ConnectionError(
                "HTTPSConnectionPool(host='hv01', port=5986): Max retries exceeded with url: "
                "/wsman (Caused by NewConnectionError('<urllib3.connection.HTTPSConnection "
                "object>: Failed to establish a new connection: [Errno 111] Connection refused'))"
            ),
            HostUnreachable,
            "HV01: read: connection refused by hv01.corp.example.com:5986",
            "firewall",
        ),
        (
            requests.exceptions.ConnectionError(
                "('Connection aborted.', RemoteDisconnected('Remote end closed connection "
                "without response'))"
            ),
            HostUnreachable,
            f"HV01: read: connection to {URL} dropped by the host before it answered",
            "",
        ),
        (
            requests.exceptions.ConnectTimeout("timed out"),
            HostUnreachable,
            f"HV01: read: connection to {URL} timed out after 4s",
            "",
        ),
        (
            requests.exceptions.ReadTimeout("Read timed out. (read timeout=30)"),
            HostUnreachable,
            "HV01: read: no answer within 30s (read timeout)",
            "hangs",
        ),
        (
            WSManFaultError(
                2150858843,
                "HV01",
                "The WS-Management service cannot process the request.",
                None,
                None,
                None,
            ),
            HostError,
            "HV01: read: WSMan fault 0x8033805B: The WS-Management service cannot process "
            "the request.",
            "",
        ),
        (
            WSManFaultError(5, None, "Access is denied.", None, None, None),
            HostAuthError,
            "HV01: read: WSMan fault 0x00000005: Access is denied.",
            "Remote Management Users",
        ),
        (
            WinRMTransportError("http", 503, "Service Unavailable"),
            HostError,
            f"HV01: read: HTTP 503 from {URL}: Service Unavailable",
            "",
        ),
    ],
)
def test_each_failure_is_one_line_naming_host_step_and_cause(
    exc: BaseException, kind: type[HostError], line: str, hint: str
) -> None:
    error = mapped(exc)
    assert type(error) is kind
    assert str(error).startswith(line)
    assert hint in error.hint
    assert "\n" not in str(error)


def test_kerberos_401_points_at_the_ticket_cache() -> None:
    spec = ConnectionSpec("hv01", 5985, Transport.HTTP, WinRMAuth.KERBEROS)
    error = mapped(AuthenticationError("Failed to authenticate the user None with kerberos"), spec)
    assert "kinit" in error.hint and "HVLM_WINRM_PASSWORD" not in error.hint


def test_a_401_message_carries_neither_password_nor_user(monkeypatch: pytest.MonkeyPatch) -> None:
    """A wrong password ends as pypsrp's AuthenticationError. hvlm writes its own text for it, so
    a password there (in the environment, or echoed by a library in its message) never shows."""
    sentinel = "Zx-sentinel-9f3c1e-Q7!"
    monkeypatch.setenv("HVLM_WINRM_USER", "admin")
    monkeypatch.setenv("HVLM_WINRM_PASSWORD", sentinel)
    for auth in WinRMAuth:
        spec = ConnectionSpec("hv01", 5986, auth=auth)
        error = mapped(
            AuthenticationError(f"Failed to authenticate the user admin:{sentinel} with basic"),
            spec,
        )
        shown = f"{error} {error.hint}"
        assert sentinel not in shown and "admin" not in shown, shown
        assert str(error).startswith(f"HV01: read: authentication failed (HTTP 401, {auth.value})")


def test_an_hvlm_error_passes_through() -> None:
    original = HostUnreachable("HV01", "connect", "gone")
    assert mapped(original) is original


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (requests.exceptions.ConnectionError("Connection refused"), True),
        (requests.exceptions.ConnectionError("Connection aborted."), True),
        (requests.exceptions.ConnectTimeout("timed out"), True),
        (requests.exceptions.ReadTimeout("read timeout"), False),  # a hung host stays hung
        (requests.exceptions.SSLError("certificate verify failed"), False),
        (AuthenticationError("401"), False),
        (WinRMTransportError("http", 503, ""), True),
        (WinRMTransportError("http", 500, ""), False),
        (WSManFaultError(2150858793, None, "timeout", None, None, None), False),
    ],
)
def test_only_transport_faults_are_retried(exc: BaseException, transient: bool) -> None:
    assert is_transient(exc) is transient


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            "failed: No credentials are available in the security package (0x8009030E).",
            "0x8009030E: no credentials in the security package",
        ),
        ("Error 0x8009030d: no suitable credentials", "0x8009030D: no suitable credentials"),
        (
            "The target principal name is incorrect. (0x80090322)",
            "0x80090322: the target principal name is incorrect",
        ),
        ("failed with error -2147014835", "0x8007274D: connection refused"),
        ("failed: 0x8007274C", "0x8007274C: connection timed out"),
        (
            'Event 21501: The virtual machine migration limit "2" was reached',
            "raise maxVirtualMachineMigrations",
        ),
    ],
)
def test_domain_error_codes_are_explained(message: str, expected: str) -> None:
    assert expected in explain(message)


def test_unknown_messages_get_no_hint() -> None:
    assert explain("Something else went wrong (0x80070005)") == ""


def test_records_are_attributed_by_their_error_id() -> None:
    """A record read by hvlm's own reader (hvlm.hosts.clixml), as the host sends it."""
    error_id = "ObjectNotFound,Microsoft.HyperV.PowerShell.Commands.RemoveVMMigrationNetwork"
    record = Record(as_obj(deserialize(
        b'<Obj RefId="0"><TN RefId="0"><T>System.Management.Automation.ErrorRecord</T>'
        b"<T>System.Object</T></TN><ToString>No migration networks were found matching the "
        b"specified criteria.</ToString><MS><S N=\"TargetObject\">10.1.0.0/16</S>"
        b'<S N="FullyQualifiedErrorId">' + error_id.encode() + b"</S>"
        b'<S N="ErrorCategory_Message">ObjectNotFound: (10.1.0.0/16:String) '
        b'[Remove-VMMigrationNetwork]</S><B N="SerializeExtendedInfo">false</B></MS></Obj>',
        "an error record")))
    info = describe_record(record, ["Add-VMMigrationNetwork", "Remove-VMMigrationNetwork"])
    assert info == RecordInfo(
        cmdlet="Remove-VMMigrationNetwork",
        message="No migration networks were found matching the specified criteria.",
        error_id=error_id,
        target="10.1.0.0/16",
    )


def test_the_read_timeout_outlasts_the_operation_timeout_and_the_message_says_which() -> None:
    spec = ConnectionSpec("hv01", 5986, timeouts=Timeouts(5, 10, 20))
    assert read_timeout(spec) == 21
    error = mapped(requests.exceptions.ReadTimeout("read timeout"), spec)
    assert str(error).startswith("HV01: read: no answer within 21s (read timeout)")
