"""Manifest resolution: a validated document -> hvlm.model.Manifest (defaults merged). Pure.

Pipeline position: the end of the first stage (manifest -> **model**). Called by
hvlm.manifest.parse_manifest once validation found no error; the host settings come from the one
table hvlm.settings.HOST_SETTINGS.
"""

from __future__ import annotations

import ipaddress
import math
from typing import Any

from hvlm import model as m
from hvlm.manifest.semantics import ldap_url, merged, split_address
from hvlm.settings import BY_KEY, HOST_SETTINGS


def _migration(section: dict[str, Any]) -> m.MigrationSettings:
    nets = section.get("networks")
    networks = None
    if nets is not None:
        networks = tuple(
            m.MigrationNetwork(ipaddress.ip_network(n["subnet"].strip()), n.get("priority"))
            for n in nets
        )
    values: dict[str, Any] = {}
    for setting in HOST_SETTINGS:  # each declared setting, typed (hvlm.settings)
        value = section.get(setting.key)
        if value is not None:
            values[setting.attr] = setting.typed(value)
    if networks is not None:  # declaring networks means "only these": not on any network
        values.setdefault(BY_KEY["useAnyNetwork"].attr, False)
    return m.MigrationSettings(**values, networks=networks)


def _delegation(section: dict[str, Any]) -> m.DelegationSettings:
    services = tuple(m.DelegationService(s) for s in section.get("services", ["migration", "cifs"]))
    # "Use any authentication protocol" is what the source document requires (step 5): on unless
    # the manifest says otherwise. Only Kerberos hosts' accounts are managed (hvlm.planner).
    return m.DelegationSettings(services, section.get("protocolTransition", True))


def _connection(section: dict[str, Any], address: str, port: int | None) -> m.ConnectionSpec:
    transport = m.Transport(section.get("transport", "https"))
    t = section.get("timeouts", {})
    return m.ConnectionSpec(
        address=address,
        port=port or section.get("port") or (5986 if transport is m.Transport.HTTPS else 5985),
        transport=transport,
        auth=m.WinRMAuth(section.get("auth", "negotiate")),
        cert_validation=section.get("certValidation", True),
        allow_unencrypted=section.get("allowUnencrypted", False),
        timeouts=m.Timeouts(
            t.get("connectSeconds", 10.0),
            t.get("readSeconds", 30.0),
            t.get("operationSeconds", 20.0),
        ),
        retries=section.get("retries", 2),
    )


def _directory(section: dict[str, Any] | None) -> m.DirectorySpec | None:
    if not section:
        return None
    servers = []
    for entry in section["servers"]:
        url = entry if isinstance(entry, str) else entry["url"]
        address = None if isinstance(entry, str) else entry.get("address")
        parsed = ldap_url(url)
        assert parsed is not None  # validated
        use_ssl, host, port = parsed
        split = (host, port)
        servers.append(
            m.DirectoryServer(
                url, split[0], split[1] or (636 if use_ssl else 389), use_ssl, address
            )
        )
    domain = section["domain"].rstrip(".")
    base_dn = section.get("baseDN") or ",".join(f"DC={part}" for part in domain.split("."))
    return m.DirectorySpec(
        domain,
        tuple(servers),
        m.DirectoryAuth(section.get("auth", "kerberos")),
        section.get("certValidation", True),
        base_dn,
        section.get("allowPlaintextBind", False),
        math.ceil(section.get("timeoutSeconds", 10)),  # ldap3 wants whole seconds,
        float(section.get("replicationTimeoutSeconds", 300)),
    )


def _peers(data: dict[str, Any]) -> dict[str, list[str]]:
    """Each host's peers in first-seen order (dicts as ordered sets: linear in group sizes)."""
    canonical = {h["name"].upper(): h["name"] for h in data["hosts"]}
    peers: dict[str, dict[str, None]] = {key: {} for key in canonical}
    for group in data.get("groups", []):
        members = [canonical[n.upper()] for n in group["hosts"]]
        for member in members:
            known = peers[member.upper()]
            for peer in members:
                if peer.upper() != member.upper():
                    known.setdefault(peer, None)
    return {key: list(found) for key, found in peers.items()}


def resolve(data: dict[str, Any], file: str, digest: str) -> m.Manifest:
    directory = _directory(data.get("directory"))
    defaults = data.get("defaults", {})
    conn_default = data.get("connection", {})
    peers = _peers(data)
    hosts = []
    for host in data["hosts"]:
        name = host["name"]
        fqdn = host.get("fqdn") or f"{name.lower()}.{directory.domain if directory else ''}"
        split = split_address(host["address"]) if "address" in host else None
        address, port = split if split is not None else (fqdn, None)
        hosts.append(
            m.HostSpec(
                name=name,
                fqdn=fqdn.rstrip("."),
                connection=_connection(
                    {**conn_default, **host.get("connection", {})}, address, port
                ),
                migration=_migration(merged(defaults.get("migration"), host.get("migration"))),
                delegation=_delegation(
                    {**defaults.get("delegation", {}), **host.get("delegation", {})}
                ),
                peers=tuple(peers[name.upper()]),
            )
        )
    groups = tuple(m.Group(g["name"], tuple(g["hosts"])) for g in data.get("groups", []))
    return m.Manifest(
        data["metadata"]["name"],
        tuple(hosts),
        groups,
        directory,
        data.get("prune", {}).get("delegation", False),
        file,
        digest,
    )
