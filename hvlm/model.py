"""The typed model: what the manifest asks for, resolved per host. Pure: no I/O, no backends.

Pipeline position: manifest (hvlm.manifest parses and validates YAML) -> **model** -> observed state
(hvlm.hosts, hvlm.directory) -> plan (hvlm.planner) -> apply -> verify.

A field the manifest does not name is `None` here and is never compared or changed: hvlm manages
only what the manifest declares.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import Enum
from itertools import chain
from typing import Union

IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

# userAccountControl bits (MicrosoftDocs a-useraccountcontrol.md)
UAC_TRUSTED_FOR_DELEGATION = 0x00080000  # unconstrained: never set, a finding when present
UAC_TRUSTED_TO_AUTH_FOR_DELEGATION = (
    0x01000000  # protocol transition ("any authentication protocol")
)


class AuthenticationType(str, Enum):
    """Microsoft.HyperV.PowerShell.MigrationAuthenticationType."""

    CREDSSP = "CredSSP"
    KERBEROS = "Kerberos"


class PerformanceOption(str, Enum):
    """Microsoft.HyperV.PowerShell.VMMigrationPerformance."""

    TCPIP = "TCPIP"
    COMPRESSION = "Compression"
    SMB = "SMB"


class DelegationService(str, Enum):
    """The service classes live migration needs delegation to (DOMAIN.md)."""

    MIGRATION = "migration"
    CIFS = "cifs"

    @property
    def spn_class(self) -> str:
        return _SPN_CLASS[self]


_SPN_CLASS = {
    DelegationService.MIGRATION: "Microsoft Virtual System Migration Service",
    DelegationService.CIFS: "cifs",
}
OWNED_SPN_CLASSES = frozenset(c.lower() for c in _SPN_CLASS.values())


class Transport(str, Enum):
    HTTPS = "https"
    HTTP = "http"


class WinRMAuth(str, Enum):
    NEGOTIATE = "negotiate"
    KERBEROS = "kerberos"
    NTLM = "ntlm"
    CREDSSP = "credssp"
    BASIC = "basic"


class DirectoryAuth(str, Enum):
    SIMPLE = "simple"
    KERBEROS = "kerberos"


# certValidation: True (validate: for WinRM the bundle requests would use, REQUESTS_CA_BUNDLE /
# CURL_CA_BUNDLE or certifi's; for LDAP Python's default trust store), False (off), or a path to a
# CA bundle.
CertValidation = Union[bool, str]


@dataclass(frozen=True)
class MigrationNetwork:
    subnet: IPNetwork
    priority: int | None = None  # None: not managed (any priority is fine)


@dataclass(frozen=True)
class MigrationSettings:
    """Desired Set-VMHost state. None everywhere means "leave it as it is"."""

    enabled: bool | None = None
    authentication: AuthenticationType | None = None
    performance: PerformanceOption | None = None
    max_virtual_machine_migrations: int | None = None
    max_storage_migrations: int | None = None
    use_any_network: bool | None = None
    networks: tuple[MigrationNetwork, ...] | None = None  # None: the list is not managed


@dataclass(frozen=True)
class DelegationSettings:
    services: tuple[DelegationService, ...] = (DelegationService.MIGRATION, DelegationService.CIFS)
    # 0x01000000 "use any authentication protocol": required by the source document for a
    # Kerberos host (0x8009030E otherwise); None leaves the bit as it is.
    protocol_transition: bool | None = True


@dataclass(frozen=True)
class Timeouts:
    connect_seconds: float = 10.0
    read_seconds: float = 30.0
    operation_seconds: float = 20.0


@dataclass(frozen=True)
class ConnectionSpec:
    """How hvlm reaches one host over WinRM (credentials come from the environment)."""

    address: str  # DNS name or IP to connect to
    port: int
    transport: Transport = Transport.HTTPS
    auth: WinRMAuth = WinRMAuth.NEGOTIATE
    cert_validation: CertValidation = True
    allow_unencrypted: bool = False  # Basic over plain HTTP: refused unless this is true
    timeouts: Timeouts = Timeouts()
    retries: int = 2

    @property
    def url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.transport.value}://{host}:{self.port}/wsman"


@dataclass(frozen=True)
class HostSpec:
    name: str  # AD computer (NetBIOS) name, as written in the manifest
    fqdn: str
    connection: ConnectionSpec
    migration: MigrationSettings
    delegation: DelegationSettings
    peers: tuple[str, ...] = ()  # names of the hosts it live-migrates to (and from)

    @property
    def key(self) -> str:
        """Case-insensitive identity of the host."""
        return self.name.upper()

    @property
    def uses_kerberos(self) -> bool:
        return self.migration.authentication is AuthenticationType.KERBEROS


@dataclass(frozen=True)
class DirectoryServer:
    url: str  # ldaps://name[:port] or ldap://name[:port] (then StartTLS)
    host: str  # the DC's name: TLS hostname check and Kerberos service name
    port: int
    use_ssl: bool  # ldaps
    address: str | None = None  # connect here instead of resolving `host`


@dataclass(frozen=True)
class DirectorySpec:
    domain: str
    servers: tuple[DirectoryServer, ...]
    auth: DirectoryAuth = DirectoryAuth.KERBEROS
    cert_validation: CertValidation = True
    base_dn: str = ""
    allow_plaintext_bind: bool = False
    timeout_seconds: float = 10.0
    # apply waits this long for written delegation to reach every DC the hosts use (issue 15)
    replication_timeout_seconds: float = 300.0


@dataclass(frozen=True)
class Group:
    name: str
    hosts: tuple[str, ...]


@dataclass(frozen=True)
class Manifest:
    name: str
    hosts: tuple[HostSpec, ...]
    groups: tuple[Group, ...] = ()
    directory: DirectorySpec | None = None
    prune_delegation: bool = False
    source: str = "<input>"
    digest: str = ""  # sha256 of the manifest bytes, recorded in saved plans

    def host(self, name: str) -> HostSpec:
        wanted = name.upper()
        for spec in self.hosts:
            if spec.key == wanted:
                return spec
        raise KeyError(name)

    def peers_of(self, host: HostSpec) -> tuple[HostSpec, ...]:
        return tuple(self.host(name) for name in host.peers)


def delegation_targets(peer: HostSpec, services: tuple[DelegationService, ...]) -> tuple[str, ...]:
    """msDS-AllowedToDelegateTo values a source needs toward one destination: both name forms."""
    values: list[str] = []
    for service in services:
        values.append(f"{service.spn_class}/{peer.name}")
        values.append(f"{service.spn_class}/{peer.fqdn}")
    return tuple(values)


def desired_delegation(host: HostSpec, peers: tuple[HostSpec, ...]) -> tuple[str, ...]:
    """Values `host`'s computer account must hold: only when it migrates with Kerberos. Listed by
    service and name form, then peer (`cifs/HV02`, `cifs/HV03`, `cifs/hv02.x`, `cifs/hv03.x`):
    the order the planner adds them in, which the plan file states compactly."""
    if not host.uses_kerberos:
        return ()
    per_peer = [delegation_targets(peer, host.delegation.services) for peer in peers]
    return tuple(chain.from_iterable(zip(*per_peer, strict=True)))


def spn_host(value: str) -> str:
    """The host an SPN (a delegation value) names, lower-cased: 'cifs/HV02.x:445/inst' ->
    'hv02.x' (the KDC compares case-insensitively); '' for a value without '/'."""
    target = value.partition("/")[2]
    return target.split(":", 1)[0].split("/", 1)[0].lower()


def owned_value(value: str, manifest_names: frozenset[str]) -> bool:
    """Is a delegation value hvlm's own? Its two service classes toward a host of the manifest.

    `manifest_names` holds every host's short name and FQDN, lower-cased. Everything else in
    msDS-AllowedToDelegateTo (SQL Server, file servers, ...) is never touched.
    """
    spn_class, sep, _ = value.partition("/")
    if not sep:
        return False
    return spn_class.lower() in OWNED_SPN_CLASSES and spn_host(value) in manifest_names


def manifest_names(manifest: Manifest) -> frozenset[str]:
    names: set[str] = set()
    for host in manifest.hosts:
        names.add(host.name.lower())
        names.add(host.fqdn.lower())
    return frozenset(names)


def host_spns(name: str, fqdn: str) -> tuple[str, ...]:
    """The SPNs migrations to a host need on its computer account (DOMAIN.md): the migration
    service and cifs (which AD serves from HOST/), short name and FQDN."""
    classes = (DelegationService.MIGRATION.spn_class, DelegationService.CIFS.spn_class, "HOST")
    return tuple(f"{c}/{form}" for c in classes for form in (name, fqdn))
