"""Secure by default: certificates validated, no credential sent in clear text unless asked for.

hvlm runs as a subprocess against the lab (hosts with certificates from the lab CA, which the
system trust store does not know) and the session's Samba DC (LDAPS and StartTLS with a lab-CA
certificate). Each refusal is checked on the wire, not only in the message: the lab counts the
requests a host received, and `StartTlsRefusingProxy` sits in front of the DC's port 389, refuses
StartTLS (as a DC without a certificate does) and records every LDAP operation that crossed in
clear text. Each refusal has a control showing that the explicit opt-in changes the outcome.
"""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hvlm_lab.pki import LabCA
from hvlm_lab.samba.dc import SambaDC
from hvlm_lab.wsman.server import Credentials, LabServer, Transport
from tests.security.conftest import (
    DC_URL,
    LabHost,
    Run,
    clean_env,
    host_entry,
    hvlm,
    lab_host,
    manifest,
    unique_secret,
)

pytestmark = [pytest.mark.lab, pytest.mark.samba]

WINRM_USER = "tlsadmin"
LDAP_NAME = "tlsldap"
HTTPS_HOSTS = ("TLS01", "TLS02")
HTTP_HOST = "TLS03"  # serves plain HTTP (Negotiate with message encryption)
STARTTLS_OID = b"1.3.6.1.4.1.1466.20037"
BIND_REQUEST, EXTENDED_REQUEST = 0x60, 0x77


# --- an LDAP proxy that refuses StartTLS and records what crossed in clear text -----------------


def _read_message(sock: socket.socket) -> bytes | None:
    """One BER-encoded LDAPMessage (SEQUENCE, definite length), or None at end of stream."""
    head = _read_exact(sock, 2)
    if head is None:
        return None
    length, extra = head[1], b""
    if length & 0x80:
        extra = _read_exact(sock, length & 0x7F) or b""
        length = int.from_bytes(extra, "big")
    body = _read_exact(sock, length) if length else b""
    return head + extra + (body or b"")


def _read_exact(sock: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _ber(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    raw = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(raw)]) + raw + content


def _operation(message: bytes) -> tuple[bytes, int]:
    """(the encoded messageID, the protocolOp tag) of an LDAPMessage."""
    offset = 2 + (message[1] & 0x7F if message[1] & 0x80 else 0)
    id_end = offset + 2 + message[offset + 1]
    return message[offset:id_end], message[id_end]


def starttls_refusal(message_id: bytes) -> bytes:
    """ExtendedResponse: unavailable (52), as a DC without a usable certificate answers."""
    result = b"\x0a\x01\x34" + _ber(0x04, b"") + _ber(0x04, b"StartTLS not available")
    return _ber(0x30, message_id + _ber(0x78, result))


class StartTlsRefusingProxy(socketserver.ThreadingTCPServer):
    """127.0.0.1:<port> -> the DC's 389; StartTLS refused; client->DC bytes and ops recorded."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, upstream: tuple[str, int]) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.upstream = upstream
        self.operations: list[int] = []
        self.client_bytes = bytearray()
        self.lock = threading.Lock()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def record(self, message: bytes, tag: int) -> None:
        with self.lock:
            self.operations.append(tag)
            self.client_bytes += message

    def reset(self) -> None:
        with self.lock:
            self.operations.clear()
            self.client_bytes.clear()


class _ProxyHandler(socketserver.BaseRequestHandler):
    server: StartTlsRefusingProxy

    def handle(self) -> None:
        client: socket.socket = self.request
        with socket.create_connection(self.server.upstream, timeout=10) as upstream:
            threading.Thread(target=_pump, args=(upstream, client), daemon=True).start()
            while (message := _read_message(client)) is not None:
                message_id, tag = _operation(message)
                self.server.record(message, tag)
                if tag == EXTENDED_REQUEST and STARTTLS_OID in message:
                    client.sendall(starttls_refusal(message_id))
                else:
                    upstream.sendall(message)


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            target.sendall(chunk)
    except OSError:
        pass


# --- the lab --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsLab:
    lab: LabServer
    work: Path
    ca: str
    proxy: StartTlsRefusingProxy
    winrm_password: str
    ldap_user: str
    ldap_password: str

    def env(self) -> dict[str, str]:
        return clean_env(
            HVLM_WINRM_USER=WINRM_USER,
            HVLM_WINRM_PASSWORD=self.winrm_password,
            HVLM_LDAP_USER=self.ldap_user,
            HVLM_LDAP_PASSWORD=self.ldap_password,
        )

    def plan(
        self,
        name: str,
        connection: Mapping[str, Any],
        directory: Mapping[str, Any] | None = None,
        http_host: Mapping[str, Any] | None = None,
    ) -> Run:
        """`hvlm plan` of TLS01, TLS02 (and TLS03 over http when `http_host` is given)."""
        hosts = [host_entry(self.lab, n) for n in HTTPS_HOSTS]
        if http_host is not None:
            hosts.append(host_entry(self.lab, HTTP_HOST, **http_host))
        directory = directory if directory is not None else self.directory()
        path = manifest(self.work / f"{name}.yaml", hosts, connection, directory)
        self.lab.reset_stats()
        self.proxy.reset()
        return hvlm(["plan", str(path)], self.env(), self.work)

    def directory(self, **fields: Any) -> dict[str, Any]:
        return {
            "servers": [{"url": DC_URL, "address": "127.0.0.1"}],
            "auth": "simple",
            "certValidation": self.ca,
            **fields,
        }

    def requests_to(self, name: str) -> int:
        return int(self.lab.stats(name)["http_requests"])


@pytest.fixture(scope="module")
def tls_lab(
    samba_dc: SambaDC,
    samba_ca: LabCA,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[TlsLab]:
    work = tmp_path_factory.mktemp("tls-lab")
    winrm_password, ldap_password = unique_secret("tlswinrm"), unique_secret("tlsldap")
    samba_dc.add_computers([*HTTPS_HOSTS, HTTP_HOST])
    samba_dc.add_user(LDAP_NAME, ldap_password)
    credentials = Credentials(WINRM_USER, winrm_password)
    configs = [lab_host(n, credentials) for n in HTTPS_HOSTS]
    configs.append(lab_host(HTTP_HOST, credentials, Transport.HTTP_NEGOTIATE))
    proxy = StartTlsRefusingProxy(("127.0.0.1", 389))
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        with LabServer(configs, samba_ca, work / "lab") as lab:
            yield TlsLab(
                lab,
                work,
                str(samba_ca.cert_path),
                proxy,
                winrm_password,
                f"{LDAP_NAME}@lab.example",
                ldap_password,
            )
    finally:
        proxy.shutdown()
        proxy.server_close()


def https(**fields: Any) -> dict[str, Any]:
    return {"transport": "https", "auth": "basic", **fields}


# --- WinRM ------------------------------------------------------------------------------------------


def test_winrm_certificates_are_validated_by_default(tls_lab: TlsLab) -> None:
    plan = tls_lab.plan("winrm-default", https())
    assert plan.returncode == 1, plan.text
    assert "certValidation" in plan.text and all(h in plan.text for h in HTTPS_HOSTS), plan.text
    assert [tls_lab.requests_to(h) for h in HTTPS_HOSTS] == [0, 0]  # refused at the handshake


def test_winrm_control_the_lab_ca_is_accepted_when_named(tls_lab: TlsLab) -> None:
    plan = tls_lab.plan("winrm-ca", https(certValidation=tls_lab.ca))
    assert plan.returncode == 0, plan.text
    assert all(tls_lab.requests_to(h) > 0 for h in HTTPS_HOSTS)


def test_winrm_certificate_must_name_the_address(tls_lab: TlsLab) -> None:
    """A trusted CA is not enough: the certificate (fqdn, 127.0.0.1) must name what hvlm dials."""
    lab = tls_lab.lab
    path = manifest(
        tls_lab.work / "winrm-localhost.yaml",
        [LabHost(h, f"localhost:{lab.endpoint(h).port}") for h in HTTPS_HOSTS],
        https(certValidation=tls_lab.ca),
        tls_lab.directory(),
    )
    lab.reset_stats()
    plan = hvlm(["plan", str(path)], tls_lab.env(), tls_lab.work)
    assert plan.returncode == 1, plan.text
    # hvlm.hosts.errors._tls_error: the reason (ssl's words) and what to do about it
    assert "not valid for this address" in plan.text, plan.text
    assert "TLS handshake with" in plan.text and all(h in plan.text for h in HTTPS_HOSTS)
    assert [tls_lab.requests_to(h) for h in HTTPS_HOSTS] == [0, 0]


def test_basic_over_plain_http_is_refused_before_connecting(tls_lab: TlsLab) -> None:
    plan = tls_lab.plan(
        "basic-http",
        https(certValidation=tls_lab.ca),
        http_host={"transport": "http", "auth": "basic"},
    )
    assert plan.returncode == 1, plan.text
    assert "allowUnencrypted" in plan.text and HTTP_HOST in plan.text, plan.text
    assert tls_lab.requests_to(HTTP_HOST) == 0  # the password never left


def test_control_allow_unencrypted_sends_basic_over_http(tls_lab: TlsLab) -> None:
    plan = tls_lab.plan(
        "basic-http-allowed",
        https(certValidation=tls_lab.ca),
        http_host={"transport": "http", "auth": "basic", "allowUnencrypted": True},
    )
    # The lab's HTTP host only speaks Negotiate: it answers Basic with 401. What matters is that
    # hvlm did send it, because the manifest said so.
    assert plan.returncode == 1, plan.text
    assert "authentication failed (HTTP 401, basic)" in plan.text, plan.text
    assert tls_lab.requests_to(HTTP_HOST) > 0


# --- LDAP -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", [DC_URL, "ldap://dc1.lab.example"], ids=["ldaps", "starttls"])
def test_ldap_certificates_are_validated_by_default(tls_lab: TlsLab, url: str) -> None:
    directory = tls_lab.directory(servers=[{"url": url, "address": "127.0.0.1"}])
    del directory["certValidation"]
    plan = tls_lab.plan("ldap-default", https(certValidation=tls_lab.ca), directory)
    assert plan.returncode == 1, plan.text
    assert "certValidation" in plan.text and "dc1.lab.example" in plan.text, plan.text


def test_ldap_control_the_lab_ca_is_accepted_when_named(tls_lab: TlsLab) -> None:
    """StartTLS validated against the lab CA works (LDAPS with it: the secrets suite)."""
    url = "ldap://dc1.lab.example"
    directory = tls_lab.directory(servers=[{"url": url, "address": "127.0.0.1"}])
    plan = tls_lab.plan("ldap-ca", https(certValidation=tls_lab.ca), directory)
    assert plan.returncode == 0, plan.text


def proxied(tls_lab: TlsLab, **fields: Any) -> dict[str, Any]:
    url = f"ldap://dc1.lab.example:{tls_lab.proxy.port}"
    return tls_lab.directory(servers=[{"url": url, "address": "127.0.0.1"}], **fields)


def test_plain_ldap_bind_is_refused_without_starttls(tls_lab: TlsLab) -> None:
    plan = tls_lab.plan("ldap-plain", https(certValidation=tls_lab.ca), proxied(tls_lab))
    assert plan.returncode == 1, plan.text
    assert EXTENDED_REQUEST in tls_lab.proxy.operations  # StartTLS was asked for, and refused
    assert BIND_REQUEST not in tls_lab.proxy.operations  # no bind crossed in clear text
    assert tls_lab.ldap_password.encode() not in bytes(tls_lab.proxy.client_bytes)


def test_plain_ldap_refusal_names_allow_plaintext_bind(tls_lab: TlsLab) -> None:
    plan = tls_lab.plan("ldap-plain-hint", https(certValidation=tls_lab.ca), proxied(tls_lab))
    assert plan.returncode == 1, plan.text
    assert "allowPlaintextBind" in plan.text, plan.text


def test_control_allow_plaintext_bind_binds_in_clear(tls_lab: TlsLab) -> None:
    directory = proxied(tls_lab, allowPlaintextBind=True)
    plan = tls_lab.plan("ldap-plain-allowed", https(certValidation=tls_lab.ca), directory)
    assert BIND_REQUEST in tls_lab.proxy.operations, plan.text  # the bind went out, as asked
    # Samba itself refuses a simple bind over clear text (strongerAuthRequired): exit 1.
    assert plan.returncode == 1 and "strongerAuthRequired" in plan.text, plan.text
