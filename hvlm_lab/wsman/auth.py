"""Authentication for the lab's WSMan endpoints: Basic (over HTTPS) and Negotiate with message
encryption (over HTTP), one `ConnectionAuth` per TCP connection.

Part of the lab (`wsman/server.py` calls `authenticator.for_connection()` when a client connects).
- Basic checks every request's Authorization header against the host's credentials.
- Negotiate uses pyspnego as the acceptor (protocol "negotiate": raw NTLM and SPNEGO tokens, and
  Kerberos when a keytab is reachable through KRB5_KTNAME). NTLM validates against the process-wide
  NTLM_USER_FILE that `NtlmUserFile` maintains; the authenticated principal must then be the host's
  own user, so a user of host A is refused (401) by host B. After authentication the connection's
  security context unwraps `multipart/encrypted` requests and wraps the responses, as WinRM does
  over HTTP with AllowUnencrypted=false.
Adding an acceptor (e.g. Kerberos only, certificate) = one more `Authenticator`.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import struct
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol

import spnego
import spnego.exceptions

from hvlm_lab.wsman.httpserver import Request, Response

ENCRYPTED_BOUNDARY = "Encrypted Boundary"
SPNEGO_PROTOCOL = "application/HTTP-SPNEGO-session-encrypted"
KERBEROS_PROTOCOL = "application/HTTP-Kerberos-session-encrypted"


@dataclass(frozen=True)
class Credentials:
    """The account a host accepts. username without domain; domain is the NetBIOS name."""

    username: str
    password: str
    domain: str = "LAB"

    def matches_user(self, given: str) -> bool:
        """Accept 'user', 'DOMAIN\\user' and 'user@domain...' forms (case-insensitive)."""
        domain, user = split_principal(given)
        if user.lower() != self.username.lower():
            return False
        return not domain or _same_domain(domain, self.domain)


def split_principal(principal: str) -> tuple[str, str]:
    if "\\" in principal:
        domain, _, user = principal.partition("\\")
        return domain, user
    if "@" in principal:
        user, _, realm = principal.partition("@")
        return realm, user
    return "", principal


def _same_domain(a: str, b: str) -> bool:
    return a.split(".")[0].lower() == b.split(".")[0].lower()


@dataclass(frozen=True)
class AuthStep:
    """Either `challenge` (answer it instead of the request) or authenticated with `body`."""

    challenge: Response | None = None
    body: bytes = b""
    principal: str = ""
    extra_headers: tuple[tuple[str, str], ...] = ()
    refused: bool = False  # credentials were presented and rejected (not a handshake leg)


BASIC_CHALLENGE = ('Basic realm="WSMAN"',)


def unauthorized(*schemes: str) -> Response:
    return Response(401, b"", tuple(("WWW-Authenticate", s) for s in schemes))


class ConnectionAuth(Protocol):
    def authenticate(self, request: Request) -> AuthStep: ...

    def wrap(self, response: Response) -> Response: ...


class Authenticator(Protocol):
    @property
    def challenge(self) -> tuple[str, ...]:
        """WWW-Authenticate values of a 401."""
        ...

    def for_connection(self) -> ConnectionAuth: ...


# --- Basic -----------------------------------------------------------------------------------


class _BasicConnection:
    def __init__(self, credentials: Credentials) -> None:
        self._credentials = credentials

    def authenticate(self, request: Request) -> AuthStep:
        header = request.header("Authorization") or ""
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(token).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError):
                user = password = ""
            if self._credentials.matches_user(user) and password == self._credentials.password:
                return AuthStep(body=request.body, principal=user)
        return AuthStep(challenge=unauthorized(*BASIC_CHALLENGE), refused=bool(header))

    def wrap(self, response: Response) -> Response:
        return response


@dataclass(frozen=True)
class BasicAuthenticator:
    credentials: Credentials

    @property
    def challenge(self) -> tuple[str, ...]:
        return BASIC_CHALLENGE

    def for_connection(self) -> ConnectionAuth:
        return _BasicConnection(self.credentials)


# --- Negotiate (NTLM, Kerberos) with message encryption ---------------------------------------

_TOKEN = re.compile(r"^(Negotiate|Kerberos|NTLM)\s+(\S+)\s*$", re.I)


class _NegotiateConnection:
    def __init__(self, credentials: Credentials, schemes: tuple[str, ...]) -> None:
        self._credentials = credentials
        self._schemes = schemes
        self._context: spnego.ContextProxy | None = None
        self._authenticated = False
        self._principal = ""
        self._protocol = SPNEGO_PROTOCOL

    def _refuse(self, refused: bool = True) -> AuthStep:
        self._context, self._authenticated = None, False
        return AuthStep(challenge=unauthorized(*self._schemes), refused=refused)

    def authenticate(self, request: Request) -> AuthStep:
        match = _TOKEN.match(request.header("Authorization") or "")
        if match:
            return self._step(match.group(1), match.group(2), request)
        if not self._authenticated:
            return self._refuse(refused=False)
        return self._unwrap(request)

    def _step(self, scheme: str, token_b64: str, request: Request) -> AuthStep:
        if self._authenticated or self._context is None:
            self._context = spnego.server(protocol="negotiate")
            self._authenticated = False
        try:
            out = self._context.step(base64.b64decode(token_b64))
        except (spnego.exceptions.SpnegoError, binascii.Error, ValueError):
            return self._refuse()
        token = base64.b64encode(out).decode() if out else ""
        header = (("WWW-Authenticate", f"{scheme} {token}"),) if out else ()
        if not self._context.complete:
            return AuthStep(challenge=Response(401, b"", header))
        principal = str(self._context.client_principal or "")
        if not self._credentials.matches_user(principal):
            return self._refuse()
        self._authenticated, self._principal = True, principal
        self._protocol = KERBEROS_PROTOCOL if scheme.lower() == "kerberos" else SPNEGO_PROTOCOL
        step = self._unwrap(request)
        return AuthStep(step.challenge, step.body, step.principal, header, step.refused)

    def _unwrap(self, request: Request) -> AuthStep:
        content_type = request.header("Content-Type") or ""
        if not request.body:
            return AuthStep(principal=self._principal)
        if self._context is None or not content_type.startswith("multipart/encrypted"):
            # UNCONFIRMED: WinRM with AllowUnencrypted=false refuses plain bodies over HTTP.
            return self._refuse()
        try:
            body = unwrap_message(self._context, request.body)
        except (spnego.exceptions.SpnegoError, ValueError, struct.error):
            return self._refuse()
        return AuthStep(body=body, principal=self._principal)

    def wrap(self, response: Response) -> Response:
        if not self._authenticated or self._context is None or not response.body:
            return response
        payload = wrap_message(self._context, response.body, self._protocol)
        content_type = (
            f'multipart/encrypted;protocol="{self._protocol}";boundary="{ENCRYPTED_BOUNDARY}"'
        )
        headers = tuple(h for h in response.headers if h[0].lower() != "content-type")
        return Response(response.status, payload, headers + (("Content-Type", content_type),))


@dataclass(frozen=True)
class NegotiateAuthenticator:
    """NTLM always; Kerberos too when `kerberos` is set and KRB5_KTNAME holds the host's keys."""

    credentials: Credentials
    kerberos: bool = False

    @property
    def challenge(self) -> tuple[str, ...]:
        return ("Negotiate", "Kerberos") if self.kerberos else ("Negotiate",)

    def for_connection(self) -> ConnectionAuth:
        return _NegotiateConnection(self.credentials, self.challenge)


def wrap_message(context: spnego.ContextProxy, message: bytes, protocol: str) -> bytes:
    """MS-WSMV 2.2.9.1 encrypted message, as pypsrp's WinRMEncryption reads it."""
    result = context.wrap_winrm(message)
    length = len(message) + result.padding_length
    head = (
        f"--{ENCRYPTED_BOUNDARY}\r\n\tContent-Type: {protocol}\r\n"
        f"\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length={length}\r\n"
        f"--{ENCRYPTED_BOUNDARY}\r\n\tContent-Type: application/octet-stream\r\n"
    ).encode()
    wrapped = struct.pack("<i", len(result.header)) + result.header + result.data
    return head + wrapped + f"--{ENCRYPTED_BOUNDARY}--\r\n".encode()


def unwrap_message(context: spnego.ContextProxy, payload: bytes) -> bytes:
    parts = [p for p in re.split(rb"--\s*Encrypted Boundary(?:--)?\r\n", payload) if p]
    message = b""
    for i in range(0, len(parts) - 1, 2):
        expected = int(parts[i].split(b"Length=")[1].strip())
        data = parts[i + 1].replace(b"\tContent-Type: application/octet-stream\r\n", b"", 1)
        header_length = struct.unpack("<i", data[:4])[0]
        header = data[4 : 4 + header_length]
        plain = bytes(context.unwrap_winrm(header, data[4 + header_length :]))
        if len(plain) != expected:
            raise ValueError("encrypted length mismatch")
        message += plain
    return message


_KEYTAB_V2 = b"\x05\x02"


def merge_keytabs(keytabs: Sequence[Path], target: Path) -> Path:
    """One keytab holding the keys of several hosts (e.g. from `samba-tool domain exportkeytab`).

    The Kerberos acceptor reads ONE process-wide keytab (KRB5_KTNAME), so a lab with several
    Kerberos hosts merges their keytabs. Format: a 0x0502 header, then entries (MIT keytab v2).
    """
    entries = b""
    for keytab in keytabs:
        data = keytab.read_bytes()
        if data[:2] != _KEYTAB_V2:
            raise ValueError(f"{keytab} is not a version 2 keytab")
        entries += data[2:]
    target.write_bytes(_KEYTAB_V2 + entries)
    target.chmod(0o600)
    return target


class NtlmUserFile:
    """The process-wide NTLM_USER_FILE the NTLM acceptor reads (lines DOMAIN:user:password)."""

    _lock = threading.Lock()
    _path: Path | None = None

    # line -> number of running endpoints that registered it (a stopped lab releases its users)
    _refs: ClassVar[dict[str, int]] = {}

    @classmethod
    def add(cls, credentials: Credentials) -> Path:
        with cls._lock:
            path = cls._ensure()
            lines = path.read_text().splitlines()
            for line in cls._lines(credentials):
                prefix = line.rsplit(":", 1)[0].lower() + ":"
                clash = [e for e in lines if e.lower().startswith(prefix) and e != line]
                if any(cls._refs.get(entry, 0) for entry in clash):
                    raise ValueError(
                        f"NTLM user {prefix[:-1]} is used by a running lab with another password: "
                        "NTLM users must be unique across the running labs of a process"
                    )
                lines = [e for e in lines if e not in clash]
                if line not in lines:
                    lines.append(line)
                cls._refs[line] = cls._refs.get(line, 0) + 1
            path.write_text("\n".join(lines) + "\n")
            return path

    @classmethod
    def remove(cls, credentials: Credentials) -> None:
        """Release a user registered by `add` (when its endpoint stops)."""
        with cls._lock:
            for line in cls._lines(credentials):
                cls._refs[line] = max(0, cls._refs.get(line, 0) - 1)

    @staticmethod
    def _lines(credentials: Credentials) -> tuple[str, ...]:
        return tuple(
            f"{domain}:{credentials.username}:{credentials.password}"
            for domain in (credentials.domain, "")
        )

    @classmethod
    def _ensure(cls) -> Path:
        if cls._path is None:
            directory = Path(tempfile.mkdtemp(prefix="hvlm-lab-ntlm-"))
            cls._path = directory / "ntlm_users"
            inherited = os.environ.get("NTLM_USER_FILE")
            text = Path(inherited).read_text() if inherited and Path(inherited).is_file() else ""
            cls._path.write_text(text)
            cls._path.chmod(0o600)
        os.environ["NTLM_USER_FILE"] = str(cls._path)
        return cls._path
