"""hvlm's exception tree. Every stage raises these; backends map theirs to these in one place.

HvlmError                      anything hvlm reports as one clear line (exit 1)
+-- ManifestError              bad input: carries located Diagnostics, nothing was contacted
+-- CredentialsMissing         an environment variable the manifest's auth needs is not set
+-- PlanFileError              a saved plan is unreadable, for another manifest, or stale
+-- BackendError               something across a wire failed (target, step, message, cause)
    +-- HostError              WinRM / PowerShell on one host (hvlm.hosts maps pypsrp here)
    |   +-- HostUnreachable    connect/TLS/timeout: transport never got an answer
    |   +-- HostAuthError      401: wrong or missing credentials
    |   +-- CmdletError        a PowerShell error record (terminating or not)
    +-- DirectoryError         LDAP (hvlm.directory maps ldap3 here)
        +-- DirectoryUnreachable
        +-- DirectoryAuthError
        +-- DirectoryAccessDenied   insufficientAccessRights (SeEnableDelegationPrivilege)

A BackendError's text is backend text (a library's message, a host's error record): it passes
`redact_secrets` (the secrets of the environment, HVLM_*_PASSWORD, in every form) when built.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from urllib.parse import quote, quote_plus


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Diagnostic:
    """One located problem in an input file: `FILE:LINE:COL: path: message`."""

    severity: Severity
    message: str
    file: str = "<input>"
    line: int = 0  # 1-based; 0 = unknown
    column: int = 0
    path: str = ""  # location in the document, e.g. "hosts[1].name"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        prefix = f"{where}: {self.path}: " if self.path else f"{where}: "
        tag = "" if self.severity is Severity.ERROR else "warning: "
        return inert(f"{prefix}{tag}{self.message}")


def inert(text: str) -> str:
    """Text from an input file made safe for a terminal and one line: control characters (C0, DEL,
    C1: ANSI escapes), bidi overrides and line breaks are shown as escapes, never interpreted."""
    return "".join(_escape(c) if _unsafe(c) else c for c in text)


def _unsafe(char: str) -> bool:
    code = ord(char)
    return code < 32 or 127 <= code < 160 or 0x2028 <= code <= 0x202E or 0x2066 <= code <= 0x2069


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 256 else f"\\u{code:04x}"


# -- secrets of the environment never leave in a backend's words --------------------------------

# HVLM_WINRM_PASSWORD (also the Kerberos password negotiate may use), HVLM_LDAP_PASSWORD, and any
# HVLM_*_PASSWORD / HVLM_*_SECRET a later backend reads.
SECRET_VARIABLE = re.compile(r"HVLM_\w*(PASSWORD|SECRET)\w*", re.IGNORECASE)
USER_VARIABLE = re.compile(r"HVLM_\w*_USER", re.IGNORECASE)
REDACTED = "<redacted>"


def secret_forms(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Each secret of the environment in every form a library could write it: as is, escaped as
    repr() does, URL-quoted, base64, and base64 of user:password (a Basic header); longest
    first, so that a form containing another is replaced whole."""
    env = os.environ if env is None else env
    users = [v for k, v in env.items() if USER_VARIABLE.fullmatch(k) and v]
    forms: set[str] = set()
    for name, value in env.items():
        if not value or not SECRET_VARIABLE.fullmatch(name):
            continue
        forms |= {value, repr(value)[1:-1], value.encode("unicode_escape").decode("ascii"),
                  quote(value, safe=""), quote_plus(value),
                  base64.b64encode(value.encode()).decode("ascii")}
        forms |= {base64.b64encode(f"{user}:{value}".encode()).decode("ascii") for user in users}
    return tuple(sorted(forms, key=len, reverse=True))


def redact_secrets(text: str, env: Mapping[str, str] | None = None) -> str:
    """`text` with every form of every secret of the environment replaced by <redacted>."""
    for form in secret_forms(env):
        text = text.replace(form, REDACTED)
    return text


class HvlmError(Exception):
    """Base class: the message is one line meant for the operator."""


class ManifestError(HvlmError):
    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = diagnostics
        errors = [d for d in diagnostics if d.severity is Severity.ERROR]
        super().__init__(str(errors[0]) if errors else "invalid manifest")


class CredentialsMissing(HvlmError):
    pass


class PlanFileError(HvlmError):
    pass


class BackendError(HvlmError):
    """Something across a wire failed: `target` (host or server), `step` (what hvlm did).

    The one sanitiser of backend text: every error the mapping boundaries build
    (hvlm.hosts.errors.map_exception, hvlm.directory.errors.error_for_exception /
    error_for_result) and every error record of a host is a BackendError, and its message and
    hint pass `redact_secrets` here, whatever a library or a host wrote into them.
    """

    def __init__(self, target: str, step: str, message: str, *, hint: str = "") -> None:
        target, step = redact_secrets(target), redact_secrets(step)
        message, hint = redact_secrets(message), redact_secrets(hint)
        self.target, self.step, self.detail, self.hint = target, step, message, hint
        text = f"{target}: {step}: {message}"
        super().__init__(f"{text} ({hint})" if hint else text)


class HostError(BackendError):
    pass


class HostUnreachable(HostError):
    pass


class HostAuthError(HostError):
    pass


class CmdletError(HostError):
    pass


class DirectoryError(BackendError):
    pass


class DirectoryUnreachable(DirectoryError):
    pass


class DirectoryAuthError(DirectoryError):
    pass


class DirectoryAccessDenied(DirectoryError):
    pass
