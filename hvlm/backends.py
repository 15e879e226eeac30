"""The real backends behind hvlm.reconcile's two protocols: pypsrp hosts, ldap3 directory.

Pipeline position: wiring only. hvlm.reconcile stays free of pypsrp/ldap3 imports and tests can
hand it other openers; the CLI uses these defaults.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from hvlm.directory.parse import fleet_spns
from hvlm.directory.session import DirectorySession
from hvlm.hosts.session import HostSession
from hvlm.model import DirectorySpec, HostSpec
from hvlm.state import DelegationState, DirectoryState


def default_host_opener(spec: HostSpec) -> HostSession:
    session = HostSession(spec)
    session.open()
    return session


class Directory:
    """DirectorySession as hvlm.reconcile.DirectoryLike: read by HostSpec, modify per account."""

    def __init__(self, session: DirectorySession) -> None:
        self.session = session

    def read(self, hosts: Sequence[HostSpec]) -> DirectoryState:
        """The accounts (one search), then who holds the fleet's SPNs (one more search)."""
        state = self.session.read([spec.name for spec in hosts])
        spns = fleet_spns((spec.name, spec.fqdn) for spec in hosts)
        return replace(state, spn_holders=self.session.read_spn_holders(spns))

    def modify(
        self,
        account: DelegationState,
        add: Sequence[str],
        delete: Sequence[str],
        protocol_transition: bool | None,
    ) -> str | None:
        self.session.write(account, add=add, delete=delete, protocol_transition=protocol_transition)
        return self.session.server.url if self.session.server else None

    def close(self) -> None:
        self.session.close()


def default_directory_opener(spec: DirectorySpec) -> Directory:
    session = DirectorySession(spec)
    session.open()
    return Directory(session)
