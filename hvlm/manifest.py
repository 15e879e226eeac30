"""Manifest loading: YAML bytes -> validated, resolved `hvlm.model.Manifest`. Pure (reads one file).

Pipeline position: the first stage. `load_manifest()` returns the model plus warnings, or raises
`ManifestError` carrying every problem found, each located as FILE:LINE:COL: path: message.
Three passes, each stopping the pipeline only after reporting everything it found:
  1. hvlm.yamlsafe: bounded YAML parsing with positions and duplicate-key detection;
  2. the JSON Schema in schemas/manifest.v1.schema.json (types, ranges, unknown fields);
  3. semantics the schema cannot say (subnets, names, references, secrets), then resolution.
"""

from __future__ import annotations

import difflib
import hashlib
import ipaddress
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path as FsPath
from typing import Any

import jsonschema

from hvlm import model as m
from hvlm.errors import Diagnostic, ManifestError, Severity, inert
from hvlm.settings import BY_KEY, HOST_SETTINGS
from hvlm.yamlsafe import Loaded, Path, format_path, load_yaml

SCHEMA_FILE = "manifest.v1.schema.json"
_SECRET_KEY = re.compile(
    r"pass(word|wd)?|secret|token|credential|api[-_]?key|private[-_]?key", re.IGNORECASE
)
_NETBIOS_BAD = set("\\/:*?\"<>|,~!@#$%^&'(){}_ ;=+[]`.")
_DNS_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def schema_text(name: str = SCHEMA_FILE) -> str:
    """The JSON Schema shipped in the package (falls back to the checkout's schemas/ folder)."""
    packaged = resources.files("hvlm") / "schemas" / name
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    return (FsPath(__file__).resolve().parent.parent / "schemas" / name).read_text(encoding="utf-8")


@lru_cache(maxsize=4)
def _validator(name: str = SCHEMA_FILE) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads(schema_text(name)))


@dataclass(frozen=True)
class LoadResult:
    manifest: m.Manifest
    warnings: tuple[Diagnostic, ...]


class _Located:
    """Builds Diagnostics located by document path."""

    def __init__(self, file: str, loaded: Loaded) -> None:
        self.file, self.loaded = file, loaded
        self.items: list[Diagnostic] = []

    def add(
        self, path: Path, message: str, severity: Severity = Severity.ERROR, at_key: bool = False
    ) -> None:
        positions = self.loaded.key_positions if at_key else self.loaded.positions
        probe = path
        while probe not in positions and probe:
            probe = probe[:-1]
        line, col = positions.get(probe, (0, 0))
        self.items.append(Diagnostic(severity, message, self.file, line, col, format_path(path)))

    def has_error(self, path: Path) -> bool:
        """Did an earlier pass already report this very value? (one problem, one line)"""
        where = format_path(path)
        return any(d.path == where and d.severity is Severity.ERROR for d in self.items)

    def sorted(self) -> list[Diagnostic]:
        return sorted(self.items, key=lambda d: (d.line, d.column))

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity is Severity.ERROR]


def load_manifest(path: str | FsPath) -> LoadResult:
    file = str(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(8 * 1024 * 1024 + 1)
    except OSError as exc:
        raise ManifestError(
            [Diagnostic(Severity.ERROR, f"cannot read: {exc.strerror}", file)]
        ) from None
    return parse_manifest(raw, file)


def parse_manifest(raw: bytes, file: str = "<input>") -> LoadResult:
    loaded, problems = load_yaml(raw, file)
    if loaded is None:
        raise ManifestError(problems)
    diag = _Located(file, loaded)
    if not isinstance(loaded.data, dict):
        diag.add((), f"expected a mapping (apiVersion, kind, ...), found {_kind(loaded.data)}")
        raise ManifestError(diag.items)
    secret_paths = _check_secrets(loaded.data, (), diag)
    _check_schema(loaded.data, diag, secret_paths)
    _check_semantics(loaded.data, diag, tolerant=bool(diag.errors))
    if diag.errors:
        raise ManifestError(diag.sorted())
    manifest = _resolve(loaded.data, file, hashlib.sha256(raw).hexdigest())
    return LoadResult(manifest, tuple(diag.sorted()))


def _kind(value: Any) -> str:
    return {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        int: "a number",
        float: "a number",
        bool: "a boolean",
        type(None): "nothing",
    }.get(type(value), type(value).__name__)


# --- pass 1b: secrets ---------------------------------------------------------------------------


def _check_secrets(data: Any, path: Path, diag: _Located) -> list[Path]:
    found: list[Path] = []
    if isinstance(data, dict):
        for key, value in data.items():
            if _SECRET_KEY.search(key):
                diag.add(
                    path + (key,),
                    "literal secret in the manifest: credentials come from "
                    "environment variables (HVLM_WINRM_*, HVLM_LDAP_*) or Kerberos",
                    at_key=True,
                )
                found.append(path + (key,))
            else:
                found += _check_secrets(value, path + (key,), diag)
    elif isinstance(data, list):
        for i, item in enumerate(data):
            found += _check_secrets(item, path + (i,), diag)
    return found


# --- pass 2: schema -----------------------------------------------------------------------------


def _check_schema(data: dict[str, Any], diag: _Located, skip: list[Path]) -> None:
    errors = sorted(_validator().iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    for error in errors:
        path: Path = tuple(error.absolute_path)
        if any(path[: len(s)] == s for s in skip):
            continue
        for sub_path, message, at_key in _explain(error, path):
            if any(sub_path[: len(s)] == s for s in skip):
                continue
            diag.add(sub_path, message, at_key=at_key)


def _explain(error: jsonschema.ValidationError, path: Path) -> Iterator[tuple[Path, str, bool]]:
    kind = error.validator
    if kind == "additionalProperties" and isinstance(error.instance, dict):
        properties = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
        allowed = sorted(properties)
        for key in error.instance:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = (
                    f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(allowed)})"
                )
                yield path + (key,), f"unknown field {_short(key)}{hint}", True
        return
    if kind == "required":
        yield path, f"missing required field {error.message.split(' is a required')[0]}", False
    elif kind == "const":
        yield path, f"must be '{error.validator_value}', found {_short(error.instance)}", False
    elif kind == "enum":
        choices = " | ".join(str(v) for v in list(error.validator_value))  # type: ignore[arg-type]
        yield path, f"must be one of {choices}; found {_short(error.instance)}", False
    elif kind == "type":
        yield (
            path,
            f"must be {_type_name(error.validator_value)}, found {_kind(error.instance)}",
            False,
        )
    elif kind == "oneOf" and "certValidation" in map(str, path):
        yield path, "must be true, false or a path to a CA bundle", False
    elif kind == "oneOf":
        yield (
            path,
            "must be an LDAP URL string or a mapping with 'url' (and optional 'address')",
            False,
        )
    elif kind == "pattern":
        yield (
            path,
            f"{_short(error.instance)} does not match the required form {error.validator_value}",
            False,
        )
    elif kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        yield (
            path,
            f"{_short(error.instance)} is out of range ({kind} {error.validator_value})",
            False,
        )
    elif kind in _SIZE_RULES:
        yield path, _SIZE_RULES[kind].format(n=error.validator_value), False
    elif isinstance(error.instance, (dict, list)):
        yield path, f"{_kind(error.instance)} that fails the '{kind}' rule of the schema", False
    else:
        yield path, f"{_short(error.instance)} fails the '{kind}' rule of the schema", False


_SIZE_RULES = {
    "minItems": "must have at least {n} item(s)",
    "maxItems": "must have at most {n} items",
    "uniqueItems": "has duplicate items",
    "minLength": "must be at least {n} character(s)",
    "maxLength": "must be at most {n} characters",
    "minProperties": "must have at least {n} field(s)",
}


def _type_name(value: Any) -> str:
    names = {
        "object": "a mapping",
        "array": "a list",
        "string": "a string",
        "integer": "an integer",
        "number": "a number",
        "boolean": "true or false",
    }
    return names.get(str(value), str(value))


def _short(value: Any) -> str:
    """A value for a message: scalars shortened; containers only named (they may hold secrets)."""
    if isinstance(value, (dict, list)):
        return _kind(value)
    if isinstance(value, int) and abs(value) > 10**30:
        return f"a {len(str(abs(value))) if abs(value) < 10**4000 else 'huge'}-digit number"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


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


def _check_semantics(data: dict[str, Any], diag: _Located, tolerant: bool) -> None:
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


def _check_control_characters(data: Any, path: Path, diag: _Located) -> None:
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


def _check_servers(servers: list[Any], diag: _Located) -> None:
    for i, entry in enumerate(servers):
        url = entry if isinstance(entry, str) else entry["url"]
        where: Path = (
            ("directory", "servers", i)
            if isinstance(entry, str)
            else ("directory", "servers", i, "url")
        )
        if not diag.has_error(where) and _ldap_url(url) is None:
            diag.add(where, f"'{_clip(url)}' is not ldaps://NAME[:PORT] or ldap://NAME[:PORT]")
        address = None if isinstance(entry, str) else entry.get("address")
        if address is not None and _split_address(address) in (None,):
            diag.add(
                ("directory", "servers", i, "address"),
                f"'{_clip(address)}' is not a DNS name or an IP address",
            )


def _ldap_url(url: str) -> tuple[bool, str, int | None] | None:
    """(ldaps?, host, port) of ldap[s]://HOST[:PORT][/], or None."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in ("ldap", "ldaps"):
        return None
    split = _split_address(rest[:-1] if rest.endswith("/") else rest)
    if split is None or not split[0]:
        return None
    return scheme.lower() == "ldaps", split[0], split[1]


def _check_host(
    host: dict[str, Any],
    i: int,
    domain: str | None,
    defaults: dict[str, Any],
    diag: _Located,
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
    if "address" in host and _split_address(host["address"]) is None:
        diag.add(
            base + ("address",),
            f"'{_clip(host['address'])}' is not NAME, IP, NAME:PORT or [IPv6]:PORT",
        )
    _check_migration(host.get("migration"), base + ("migration",), diag)
    _check_delegation(host.get("delegation"), base + ("delegation",), diag)
    migration = _merged(defaults.get("migration"), host.get("migration"))
    if migration.get("authentication") == "Kerberos" and not domain:
        diag.add(
            base,
            f"host '{name}' uses Kerberos but the manifest has no directory "
            "(constrained delegation lives in AD)",
        )


def _check_migration(section: dict[str, Any] | None, path: Path, diag: _Located) -> None:
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


def _check_delegation(section: dict[str, Any] | None, path: Path, diag: _Located) -> None:
    if section and section.get("protocolTransition") is False:
        diag.add(
            path + ("protocolTransition",),
            "without 'use any authentication protocol' a Kerberos live migration started "
            "remotely fails with 0x8009030E (the source document requires it)",
            Severity.WARNING,
        )


def _check_groups(groups: list[dict[str, Any]], hosts: dict[str, int], diag: _Located) -> None:
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


# --- resolution ---------------------------------------------------------------------------------


def _merged(default: dict[str, Any] | None, override: dict[str, Any] | None) -> dict[str, Any]:
    """A host's section over the defaults; networks and useAnyNetwork replace each other."""
    override = override or {}
    out = {**(default or {}), **override}
    if "networks" in override and "useAnyNetwork" not in override:
        out.pop("useAnyNetwork", None)
    if override.get("useAnyNetwork") is True and "networks" not in override:
        out.pop("networks", None)
    return out


def _split_address(text: str) -> tuple[str, int | None] | None:
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
        parsed = _ldap_url(url)
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


def _resolve(data: dict[str, Any], file: str, digest: str) -> m.Manifest:
    directory = _directory(data.get("directory"))
    defaults = data.get("defaults", {})
    conn_default = data.get("connection", {})
    peers = _peers(data)
    hosts = []
    for host in data["hosts"]:
        name = host["name"]
        fqdn = host.get("fqdn") or f"{name.lower()}.{directory.domain if directory else ''}"
        split = _split_address(host["address"]) if "address" in host else None
        address, port = split if split is not None else (fqdn, None)
        hosts.append(
            m.HostSpec(
                name=name,
                fqdn=fqdn.rstrip("."),
                connection=_connection(
                    {**conn_default, **host.get("connection", {})}, address, port
                ),
                migration=_migration(_merged(defaults.get("migration"), host.get("migration"))),
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
