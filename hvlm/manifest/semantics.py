"""Manifest validation, pass 3: what the schema cannot say (names, subnets, references). Pure.

Pipeline position: inside the first stage (manifest -> model), after the schema pass
(hvlm.manifest.validation) and before resolution (hvlm.manifest.resolution), which shares the
small parsers defined here (`merged`, `split_address`, `ldap_url`).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from hvlm import model as m
from hvlm.errors import Severity, inert
from hvlm.manifest.validation import Located
from hvlm.yamlsafe import Path

_NETBIOS_BAD = set("\\/:*?\"<>|,~!@#$%^&'(){}_ ;=+[]`.")
_DNS_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


# --- pass 3: semantics --------------------------------------------------------------------------


def _netbios_problem(name: str) -> str | None:
    if not 1 <= len(name) <= 15:
        return f"computer name '{name[:40]}' must be 1 to 15 characters (NetBIOS)"
    bad = sorted({c for c in name if c in _NETBIOS_BAD or ord(c) < 32 or ord(c) > 126})
    if bad:
        shown = " ".join(map(repr, bad))
        return f"computer name '{_clip(name)}' has characters a NetBIOS name cannot hold: {shown}"
    if name.isdigit():
        return f"computer name '{name}' cannot be only digits"
    return None


def dns_name_problem(name: str) -> str | None:
    if len(name) > 253 or not name:
        return f"'{name[:40]}' is not a valid DNS name (1 to 253 characters)"
    labels = name.rstrip(".").split(".")
    if not all(_DNS_LABEL.match(label) for label in labels):
        return f"'{_clip(name)}' is not a valid DNS name (dot-separated letters, digits, hyphens)"
    return None


def _clip(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in text[:60])


def parse_subnet(text: str) -> tuple[m.IPNetwork | None, str | None]:
    """Parse like Hyper-V: a bare address means /32 or /128; host bits set is an error."""
    try:
        return ipaddress.ip_network(text.strip(), strict=True), None
    except ValueError:
        pass
    try:
        loose = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return None, f"'{_clip(text)}' is not an IPv4 or IPv6 network"
    return None, f"'{_clip(text)}' has host bits set: the network is {loose}"


_APIPA = ipaddress.ip_network("169.254.0.0/16")


def refused_subnet(subnet: m.IPNetwork) -> str | None:
    """Why Add-VMMigrationNetwork would refuse `subnet` (loopback, APIPA), or None."""
    address = subnet.network_address
    if address.is_loopback:
        return f"{subnet} is a loopback network: Hyper-V refuses it as a migration network"
    if address.version == 4 and address in _APIPA:
        return (f"{subnet} is a link-local (APIPA, 169.254.0.0/16) network: Hyper-V refuses it "
                "as a migration network")
    return None


def check_semantics(data: dict[str, Any], diag: Located, tolerant: bool) -> None:
    """Checks the schema cannot express. After schema errors (`tolerant`), each part is checked
    only if its shape allows, so that one run reports as much as it can."""

    def guarded(check: Any, *args: Any) -> None:
        try:
            check(*args)
        except (KeyError, TypeError, AttributeError, ValueError):
            if not tolerant:
                raise

    directory = data.get("directory")
    domain = directory.get("domain") if isinstance(directory, dict) else None
    if isinstance(domain, str) and (problem := dns_name_problem(domain)):
        diag.add(("directory", "domain"), problem)
    if isinstance(directory, dict):
        guarded(_check_servers, directory.get("servers"), diag)
    raw_defaults = data.get("defaults")
    defaults: dict[str, Any] = raw_defaults if isinstance(raw_defaults, dict) else {}
    guarded(_check_migration, defaults.get("migration"), ("defaults", "migration"), diag)
    guarded(_check_delegation, defaults.get("delegation"), ("defaults", "delegation"), diag)
    seen: dict[str, int] = {}
    raw_hosts = data.get("hosts")
    for i, host in enumerate(raw_hosts if isinstance(raw_hosts, list) else []):
        guarded(
            _check_host, host, i, domain if isinstance(domain, str) else None, defaults, diag, seen
        )
    guarded(_check_groups, data.get("groups", []), seen, diag)
    _check_control_characters(data, (), diag)


def _check_control_characters(data: Any, path: Path, diag: Located) -> None:
    """Any string still unreported that holds a control character (a "\\0" or "\\e" escape)."""
    if isinstance(data, dict):
        for key, value in data.items():
            _check_control_characters(value, (*path, key), diag)
    elif isinstance(data, list):
        for i, value in enumerate(data):
            _check_control_characters(value, (*path, i), diag)
    elif isinstance(data, str) and not diag.has_error(path):
        bad = next((c for c in data if inert(c) != c), None)
        if bad is not None:
            diag.add(path, f"control character U+{ord(bad):04X} in a value")


def _check_servers(servers: list[Any], diag: Located) -> None:
    for i, entry in enumerate(servers):
        url = entry if isinstance(entry, str) else entry["url"]
        where: Path = (
            ("directory", "servers", i)
            if isinstance(entry, str)
            else ("directory", "servers", i, "url")
        )
        if not diag.has_error(where) and ldap_url(url) is None:
            diag.add(where, f"'{_clip(url)}' is not ldaps://NAME[:PORT] or ldap://NAME[:PORT]")
        address = None if isinstance(entry, str) else entry.get("address")
        if address is not None and split_address(address) in (None,):
            diag.add(
                ("directory", "servers", i, "address"),
                f"'{_clip(address)}' is not a DNS name or an IP address",
            )


def ldap_url(url: str) -> tuple[bool, str, int | None] | None:
    """(ldaps?, host, port) of ldap[s]://HOST[:PORT][/], or None."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in ("ldap", "ldaps"):
        return None
    split = split_address(rest[:-1] if rest.endswith("/") else rest)
    if split is None or not split[0]:
        return None
    return scheme.lower() == "ldaps", split[0], split[1]


def _check_host(
    host: dict[str, Any],
    i: int,
    domain: str | None,
    defaults: dict[str, Any],
    diag: Located,
    seen: dict[str, int],
) -> None:
    base: Path = ("hosts", i)
    name = host["name"]
    if diag.has_error((*base, "name")):
        pass
    elif problem := _netbios_problem(name):
        diag.add(base + ("name",), problem)
    elif name.upper() in seen:
        diag.add(
            base + ("name",),
            f"duplicate host '{name}' (also hosts[{seen[name.upper()]}]; "
            "names are case-insensitive)",
        )
    else:
        seen[name.upper()] = i
    fqdn_path = (*base, "fqdn")
    if (
        "fqdn" in host
        and not diag.has_error(fqdn_path)
        and (problem := dns_name_problem(host["fqdn"]))
    ):
        diag.add(base + ("fqdn",), problem)
    if "fqdn" not in host and domain is None:
        diag.add(base, "no fqdn and no directory.domain to derive it from")
    if "address" in host and split_address(host["address"]) is None:
        diag.add(
            base + ("address",),
            f"'{_clip(host['address'])}' is not NAME, IP, NAME:PORT or [IPv6]:PORT",
        )
    _check_migration(host.get("migration"), base + ("migration",), diag)
    _check_delegation(host.get("delegation"), base + ("delegation",), diag)
    migration = merged(defaults.get("migration"), host.get("migration"))
    if migration.get("authentication") == "Kerberos" and not domain:
        diag.add(
            base,
            f"host '{name}' uses Kerberos but the manifest has no directory "
            "(constrained delegation lives in AD)",
        )


def _check_migration(section: dict[str, Any] | None, path: Path, diag: Located) -> None:
    if not section:
        return
    nets = section.get("networks")
    if section.get("useAnyNetwork") is True:
        diag.add(
            path + ("useAnyNetwork",),
            "migration traffic is not encrypted: 'use any network' "
            "sends it over every network; prefer a dedicated subnet",
            Severity.WARNING,
        )
        if nets:
            diag.add(
                path + ("networks",), "useAnyNetwork: true and a networks list exclude each other"
            )
    if section.get("authentication") == "CredSSP":
        diag.add(
            path + ("authentication",),
            "CredSSP needs a sign-in on the source host and does not "
            "work on Windows Server 2025 (Credential Guard): prefer Kerberos",
            Severity.WARNING,
        )
    if nets == [] and section.get("enabled") is True and not section.get("useAnyNetwork"):
        diag.add(
            path + ("networks",),
            "migration enabled with no network: list a subnet or set useAnyNetwork: true",
        )
    seen: dict[m.IPNetwork, int] = {}
    for j, net in enumerate(nets or []):
        subnet, problem = parse_subnet(net["subnet"])
        if subnet is not None and problem is None:
            problem = refused_subnet(subnet)
        if problem or subnet is None:
            diag.add(path + ("networks", j, "subnet"), problem or "invalid subnet")
        elif subnet in seen:
            diag.add(
                path + ("networks", j, "subnet"),
                f"duplicate subnet {subnet} (same as networks[{seen[subnet]}])",
            )
        else:
            seen[subnet] = j


def _check_delegation(section: dict[str, Any] | None, path: Path, diag: Located) -> None:
    if section and section.get("protocolTransition") is False:
        diag.add(
            path + ("protocolTransition",),
            "without 'use any authentication protocol' a Kerberos live migration started "
            "remotely fails with 0x8009030E (the source document requires it)",
            Severity.WARNING,
        )


def _check_groups(groups: list[dict[str, Any]], hosts: dict[str, int], diag: Located) -> None:
    names: set[str] = set()
    for i, group in enumerate(groups):
        if group["name"].lower() in names:
            diag.add(("groups", i, "name"), f"duplicate group '{group['name']}'")
        names.add(group["name"].lower())
        members: set[str] = set()
        for j, member in enumerate(group["hosts"]):
            if member.upper() not in hosts:
                diag.add(
                    ("groups", i, "hosts", j), f"unknown host '{_clip(member)}' (not in hosts)"
                )
            elif member.upper() in members:
                diag.add(("groups", i, "hosts", j), f"host '{member}' listed twice")
            members.add(member.upper())


def merged(default: dict[str, Any] | None, override: dict[str, Any] | None) -> dict[str, Any]:
    """A host's section over the defaults; networks and useAnyNetwork replace each other."""
    override = override or {}
    out = {**(default or {}), **override}
    if "networks" in override and "useAnyNetwork" not in override:
        out.pop("useAnyNetwork", None)
    if override.get("useAnyNetwork") is True and "networks" not in override:
        out.pop("networks", None)
    return out


def split_address(text: str) -> tuple[str, int | None] | None:
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\](?::(\d{1,5}))?|([^\s:\[\]/]+)(?::(\d{1,5}))?", text)
    if not match:
        try:
            return str(ipaddress.IPv6Address(text)), None
        except ValueError:
            return None
    host = match.group(1) or match.group(3)
    port_text = match.group(2) or match.group(4)
    port = int(port_text) if port_text else None
    if port is not None and not 1 <= port <= 65535:
        return None
    if match.group(3) and dns_name_problem(host):
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return None
    return host, port
