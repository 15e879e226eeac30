"""The directory session: read every host's computer account in one search, write single values.

Pipeline position: `hvlm plan` / `apply` / `check` open ONE DirectorySession per run (after
hvlm.manifest built the DirectorySpec), `read()` the accounts of all the manifest's hosts
(-> DirectoryState for the planner) and, in apply, `write()` each account's changes. Parsing and
the content of a modify are pure (hvlm.directory.parse); errors are mapped in
hvlm.directory.errors (ldap3, socket, TLS and GSSAPI failures only: any other exception is a bug
and propagates). ldap3 is used nowhere else in hvlm.

Connection: servers are tried in the manifest's order (failover when one is unreachable: socket,
TLS, timeout). ldaps:// is TLS from the start; ldap:// is always upgraded with StartTLS, and a
bind over a connection left in clear text is refused unless `allowPlaintextBind` says otherwise.
Certificates are validated by default (system store, or the CA bundle of `certValidation`)
against the server's name, even when `address` says where to connect. Auth: `simple` with
HVLM_LDAP_USER / HVLM_LDAP_PASSWORD, or `kerberos` (SASL GSSAPI from the ticket cache, service
ldap/<server name>).

Reads: ONE paged search (objectCategory=computer, OR of sAMAccountName=NAME$, escaped) whatever the
number of hosts, and ONE more (`read_spn_holders`: OR of servicePrincipalName=...) for who holds
the fleet's migration/cifs/HOST SPNs (duplicates); `counters` lets tests assert it. Writes: ONE
modify per computer object with MODIFY_ADD / MODIFY_DELETE of single values, never MODIFY_REPLACE;
the protocol-transition bit is a guarded read-modify-write (delete the userAccountControl value
read, add the new one, in the same modify: if someone changed it meanwhile the delete fails and
nothing is overwritten). An LDAP modify is atomic and its error does not say which value failed: on
attributeOrValueExists / noSuchAttribute the session re-reads the object (one base search) and
rebuilds the modify from what is there, so a value already added or already gone counts as done and
a concurrent userAccountControl change is kept, not overwritten (at most MAX_ATTEMPTS).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import ssl
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

import ldap3
from ldap3.core.exceptions import LDAPStartTLSError

from hvlm.directory import errors as derr
from hvlm.directory.parse import (
    ADD,
    ATTRIBUTES,
    DELETE,
    ModifyRequest,
    RawEntry,
    build_modify,
    parse_account,
    parse_accounts,
    parse_spn_holders,
    search_filter,
    spn_filter,
)
from hvlm.errors import CredentialsMissing, DirectoryError, DirectoryUnreachable
from hvlm.model import DirectoryAuth, DirectoryServer, DirectorySpec
from hvlm.state import DelegationState, DirectoryState, SpnHolder

PAGE_SIZE = 1000  # AD's default MaxPageSize: 200 hosts are one request
MAX_ATTEMPTS = 3
_PAGED_OID = "1.2.840.113556.1.4.319"
_OPS = {ADD: ldap3.MODIFY_ADD, DELETE: ldap3.MODIFY_DELETE}
_RETRY_CODES = {derr.ATTRIBUTE_OR_VALUE_EXISTS, derr.NO_SUCH_ATTRIBUTE}
T = TypeVar("T")


@dataclass(frozen=True)
class SimpleCredentials:
    user: str
    password: str = field(repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SimpleCredentials:
        env = os.environ if env is None else env
        user, password = env.get(derr.USER_ENV, ""), env.get(derr.PASSWORD_ENV, "")
        missing = [n for n, v in ((derr.USER_ENV, user), (derr.PASSWORD_ENV, password)) if not v]
        if missing:
            raise CredentialsMissing(
                f"directory.auth is simple: set {' and '.join(missing)} "
                "(or use auth: kerberos with a ticket cache)")
        return cls(user, password)


@dataclass
class LdapCounters:
    """LDAP operations this session sent (a search = one logical search, however many pages)."""

    binds: int = 0
    searches: int = 0
    search_requests: int = 0
    modifies: int = 0


@dataclass(frozen=True)
class WriteResult:
    """What `write` did to one computer object."""

    host: str
    dn: str
    modify: ModifyRequest | None  # the modify that succeeded, None when nothing was left to do
    attempts: int  # modifies sent (more than 1 only after a concurrent change)

    @property
    def changed(self) -> bool:
        return self.modify is not None


class DirectorySession:
    """One bound LDAP connection to the first server of the manifest that answers."""

    def __init__(self, spec: DirectorySpec, credentials: SimpleCredentials | None = None,
                 env: Mapping[str, str] | None = None) -> None:
        self.spec = spec
        self.counters = LdapCounters()
        self._credentials = credentials
        if spec.auth is DirectoryAuth.SIMPLE and credentials is None:
            self._credentials = SimpleCredentials.from_env(env)
        self._conn: ldap3.Connection | None = None
        self.server: DirectoryServer | None = None

    # ---- connection ---------------------------------------------------------------------------
    def __enter__(self) -> DirectorySession:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def server_name(self) -> str:
        return self.server.url if self.server else ", ".join(s.url for s in self.spec.servers)

    def open(self, skip: int = 0) -> None:
        """Bind to the first server (from index `skip`) that answers; fail over when unreachable."""
        failures: list[str] = []
        servers = self.spec.servers[skip:] + self.spec.servers[:skip]
        for server in servers:
            try:
                self._conn = self._connect(server)
            except DirectoryUnreachable as exc:
                failures.append(str(exc))
                continue
            self.server = server
            return
        raise DirectoryUnreachable(
            ", ".join(s.url for s in servers), "connect",
            "no directory server answered: " + "; ".join(failures))

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(*derr.BACKEND_ERRORS):  # closing: nothing useful to report
                self._conn.unbind()
            self._conn = None

    def _connect(self, server: DirectoryServer) -> ldap3.Connection:
        conn = self._connection(server)
        step = "connect"
        try:
            conn.open(read_server_info=False)
            if not server.use_ssl:
                step = "StartTLS"
                self._start_tls(conn, server)
            step = "bind"
            self.counters.binds += 1
            bound = conn.bind(read_server_info=False)
        except derr.BACKEND_ERRORS as exc:  # anything else is a bug in hvlm: not mapped
            raise derr.error_for_exception(server.url, step, exc) from exc
        if not bound:
            raise derr.error_for_result(server.url, f"bind as {self._who()}", conn.result)
        return conn

    def _start_tls(self, conn: ldap3.Connection, server: DirectoryServer) -> None:
        """Upgrade with StartTLS. A server that does not offer it (ldap3 raises or returns False)
        is refused unless allowPlaintextBind; a certificate that fails validation always is."""
        try:
            if conn.start_tls(read_server_info=False):
                return
        except LDAPStartTLSError as exc:
            # ldap3 raises a plain LDAPStartTLSError when the server refuses StartTLS, and a
            # subclass merged with the TLS error (certificate...) when the handshake fails:
            # the latter is never a reason to fall back to clear text.
            if type(exc) is not LDAPStartTLSError:
                raise
        if not self.spec.allow_plaintext_bind:
            raise DirectoryError(
                server.url, "StartTLS", f"StartTLS failed ({conn.result.get('description')})",
                hint="refusing to bind over clear text: use ldaps://, fix the DC's certificate, "
                     "or set directory.allowPlaintextBind: true (never over untrusted networks)")

    def _connection(self, server: DirectoryServer) -> ldap3.Connection:
        timeout = self.spec.timeout_seconds
        ldap_server = ldap3.Server(
            server.address or server.host, port=server.port, use_ssl=server.use_ssl,
            tls=self._tls(server), get_info=ldap3.NONE, connect_timeout=timeout)
        common: dict[str, Any] = {"auto_bind": ldap3.AUTO_BIND_NONE, "raise_exceptions": False,
                                  "receive_timeout": timeout, "auto_referrals": False}
        if self.spec.auth is DirectoryAuth.KERBEROS:
            if sasl_kerberos_backend() is None:
                raise DirectoryError(
                    server.url, "bind", "Kerberos (SASL GSSAPI) needs gssapi, or winkerberos on "
                    "Windows, and neither is installed", hint='pip install "hvlm[kerberos]"')
            return ldap3.Connection(ldap_server, authentication=ldap3.SASL,
                                    sasl_mechanism=ldap3.KERBEROS,
                                    sasl_credentials=(server.host,), **common)
        creds = self._credentials
        assert creds is not None
        return ldap3.Connection(ldap_server, creds.user, creds.password,
                                authentication=ldap3.SIMPLE, **common)

    def _tls(self, server: DirectoryServer) -> ldap3.Tls:
        validation = self.spec.cert_validation
        if validation is False:
            return ldap3.Tls(validate=ssl.CERT_NONE)
        ca = validation if isinstance(validation, str) else None
        return ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=ca,
                         valid_names=[server.host], sni=server.host)

    def _who(self) -> str:
        if self.spec.auth is DirectoryAuth.KERBEROS:
            return "the Kerberos ticket's principal"
        return self._credentials.user if self._credentials else "?"

    def _call(self, step: str, operation: Callable[[ldap3.Connection], T]) -> T:
        """Run `operation`; if the server went away, fail over once to the next and run it again."""
        for attempt in range(2):
            if self._conn is None:
                self.open()
            assert self._conn is not None
            try:
                return operation(self._conn)
            except derr.BACKEND_ERRORS as exc:  # anything else is a bug in hvlm: not mapped
                error = derr.error_for_exception(self.server_name, step, exc)
                if not isinstance(error, DirectoryUnreachable) or attempt:
                    raise error from exc
                failed = self.spec.servers.index(self.server) if self.server else 0
                self.close()
                self.open(skip=failed + 1)
        raise AssertionError("unreachable")

    # ---- read ---------------------------------------------------------------------------------
    def read(self, hosts: Sequence[str]) -> DirectoryState:
        """Every host's computer account in ONE (paged) search; hosts without one are missing."""
        if not hosts:
            return DirectoryState(accounts=(), server=self.server_name)
        entries = self._call("search computer accounts",
                             lambda conn: self._search(conn, search_filter(hosts)))
        return parse_accounts(hosts, entries, self.server_name)

    def read_spn_holders(self, spns: Sequence[str]) -> tuple[SpnHolder, ...]:
        """Every object holding one of `spns`: ONE (paged) search for the whole fleet."""
        if not spns:
            return ()
        entries = self._call("search SPN holders",
                             lambda conn: self._search(conn, spn_filter(spns)))
        return parse_spn_holders(spns, entries)

    def reread(self, account: DelegationState) -> DelegationState:
        """One base search of an account already found (after a failed modify)."""
        entries = self._call(f"read {account.dn}",
                             lambda conn: self._search(conn, "(objectClass=*)", account.dn))
        if not entries:
            raise DirectoryError(self.server_name, f"read {account.dn}", "object not found",
                                 hint="deleted or moved since it was read: plan again")
        return parse_account(account.name, entries[0])

    def _search(self, conn: ldap3.Connection, search: str, base: str | None = None
                ) -> list[RawEntry]:
        self.counters.searches += 1
        scope = ldap3.BASE if base else ldap3.SUBTREE
        entries: list[RawEntry] = []
        cookie: bytes | None = None
        while True:
            self.counters.search_requests += 1
            conn.search(base or self.spec.base_dn, search, scope, attributes=list(ATTRIBUTES),
                        paged_size=None if base else PAGE_SIZE, paged_cookie=cookie)
            if conn.result.get("result") != 0:
                raise derr.error_for_result(self.server_name, f"search {base or search}",
                                            conn.result)
            entries.extend(_raw_entries(conn.response or []))
            cookie = _next_cookie(conn.result)
            if not cookie:
                return entries

    # ---- write --------------------------------------------------------------------------------
    def write(self, account: DelegationState, *, add: Iterable[str] = (),
              delete: Iterable[str] = (), protocol_transition: bool | None = None
              ) -> WriteResult:
        """Make `account` hold `add`, not `delete`, with the wanted protocol-transition bit."""
        add, delete = tuple(add), tuple(delete)
        current = account
        for attempt in range(1, MAX_ATTEMPTS + 1):
            request = build_modify(current, add, delete, protocol_transition)
            if request.empty:
                return WriteResult(account.name, account.dn, None, attempt - 1)
            result = self._call(f"modify {account.dn}", partial(self._modify, request=request))
            code = int(str(result.get("result", -1)))
            if code == 0:
                return WriteResult(account.name, account.dn, request, attempt)
            if code not in _RETRY_CODES:
                raise derr.error_for_result(self.server_name, f"modify {account.dn}", result)
            current = self.reread(account)
        raise DirectoryError(self.server_name, f"modify {account.dn}",
                             f"still conflicting after {MAX_ATTEMPTS} attempts",
                             hint="another tool is changing this object at the same time")

    def _modify(self, conn: ldap3.Connection, *, request: ModifyRequest) -> dict[str, Any]:
        changes = {attribute: [(_OPS[op], values) for op, values in ops]
                   for attribute, ops in request.changes().items()}
        self.counters.modifies += 1
        conn.modify(request.dn, changes)
        return dict(conn.result)


def _raw_entries(response: Iterable[Mapping[str, Any]]) -> list[RawEntry]:
    """searchResEntry only: AD and Samba also return continuation references (referrals)."""
    return [RawEntry(str(item["dn"]), dict(item.get("raw_attributes") or {}))
            for item in response if item.get("type") == "searchResEntry"]


def _next_cookie(result: Mapping[str, Any]) -> bytes | None:
    control = (result.get("controls") or {}).get(_PAGED_OID) or {}
    cookie = (control.get("value") or {}).get("cookie")
    return bytes(cookie) if cookie else None


def sasl_kerberos_backend() -> str | None:
    """What carries ldap3's SASL GSSAPI here, as ldap3 itself picks it: gssapi (MIT or Heimdal
    Kerberos, off Windows), else winkerberos (SSPI on Windows: the logged-on user's ticket, no
    MIT Kerberos installed). None: neither is installed (the `kerberos` extra is missing)."""
    for module in ("gssapi", "winkerberos"):
        if importlib.util.find_spec(module) is not None:
            return module
    return None
