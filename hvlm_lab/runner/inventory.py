"""The inventory file of `hvlm lab up --inventory FILE`: each host's switches, processor and VMs.

Part of the lab (issue 22): `cli.py` loads the file before the lab starts (so a mistake is one
located line and exit 1, never a traceback), `runner/lab.py` (`LabOptions.configs`) applies it to
the hosts' `LabHostConfig`s; the simulated cmdlets (hyperv/devices.py, Win32_Processor in
hyperv/preflight.py) then answer from them. A host missing from the file keeps the defaults
(hyperv/config.py: one switch `LabSwitch`, the same processor everywhere, no VMs). Format (YAML;
host names as the lab names them, any case)::

    HV01:
      os: "2025"                      # 2022 (default) or 2025: supported VM versions, and whether
                                      #   Get-VMProcessor shows CompatibilityForMigrationMode
      switches: [External, Internal]  # replaces the default; an entry may be
                                      #   {name: External, type: External|Internal|Private}
      processor: {manufacturer: GenuineIntel, name: "Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz",
                  caption: "Intel64 Family 6 Model 85 Stepping 7", sockets: 2}
      vms:
        - name: web01                 # required
          version: "10.0"             # default: the newest the host supports
          state: Running              # Running (default), Off, Saved, Paused
          adapters: [External, null]  # switch names; null (or {switch: null}): not connected;
                                      #   an entry may be {name: "Network Adapter", switch: X}
          compatibilityForMigration: false                  # default false
          compatibilityForMigrationMode: MinimumFeatureSet  # or CommonClusterFeatureSet

Every problem is one line `FILE:LINE:COLUMN: PATH: message` (LabError).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from hvlm_lab.hyperv.config import (
    SUPPORTED_VERSIONS_2022,
    SUPPORTED_VERSIONS_2025,
    WINDOWS_SERVER_2022,
    WINDOWS_SERVER_2025,
    CompatibilityMode,
    LabAdapter,
    LabHostConfig,
    LabProcessor,
    LabSwitch,
    LabVM,
    OsRelease,
    SwitchType,
    VMState,
)
from hvlm_lab.runner.files import LabError

MAX_BYTES = 4 * 1024 * 1024
OS_RELEASES: dict[str, tuple[OsRelease, tuple[str, ...]]] = {
    "2022": (WINDOWS_SERVER_2022, SUPPORTED_VERSIONS_2022),
    "2025": (WINDOWS_SERVER_2025, SUPPORTED_VERSIONS_2025),
}
_STATES = {s.name.lower(): s for s in (VMState.Running, VMState.Off, VMState.Saved,
                                       VMState.Paused)}


@dataclass(frozen=True)
class HostInventory:
    """What the file says about one host; None: keep the host's own."""

    name: str  # as written in the file
    where: str  # FILE:LINE:COL of its key, for messages
    os: str | None = None
    switches: tuple[LabSwitch, ...] | None = None
    processor: LabProcessor | None = None
    vms: tuple[VMInventory, ...] | None = None


@dataclass(frozen=True)
class VMInventory:
    """A VM of the file; its version None: the host's newest supported."""

    name: str
    version: str | None
    state: VMState
    adapters: tuple[LabAdapter, ...]
    compatibility_for_migration: bool
    compatibility_mode: CompatibilityMode


Inventory = Mapping[str, HostInventory]  # keyed by upper-cased host name


# --- reading ---------------------------------------------------------------------------------


class _Reader:
    """Walks the composed YAML nodes, so that every message has its line and column."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._constructor = SafeConstructor()

    def fail(self, node: Node, path: str, message: str) -> LabError:
        mark = node.start_mark
        where = f"{self.source}:{mark.line + 1}:{mark.column + 1}"
        return LabError(f"{where}: {path}: {message}" if path else f"{where}: {message}")

    def where(self, node: Node) -> str:
        return f"{self.source}:{node.start_mark.line + 1}:{node.start_mark.column + 1}"

    def scalar(self, node: Node, path: str) -> Any:
        if not isinstance(node, ScalarNode):
            raise self.fail(node, path, "expected a single value")
        try:
            return self._constructor.construct_object(node)
        except ConstructorError as exc:
            raise self.fail(node, path, str(exc.problem or exc)) from None

    def text(self, node: Node, path: str, *, allow_null: bool = False) -> str | None:
        """The scalar as written (so version 10.10 stays "10.10" and state Off stays "Off",
        not YAML 1.1's false); null only where allowed."""
        if self.scalar(node, path) is None:
            if allow_null:
                return None
            raise self.fail(node, path, "expected a text")
        text = str(node.value)
        if not text.strip():
            raise self.fail(node, path, "must not be empty")
        return text

    def boolean(self, node: Node, path: str) -> bool:
        value = self.scalar(node, path)
        if not isinstance(value, bool):
            raise self.fail(node, path, "expected true or false")
        return value

    def integer(self, node: Node, path: str, low: int, high: int) -> int:
        value = self.scalar(node, path)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail(node, path, f"expected a whole number from {low} to {high}")
        return value

    def choice(self, node: Node, path: str, choices: Mapping[str, T]) -> T:
        text = self.text(node, path) or ""
        found = choices.get(text.strip().lower())
        if found is None:
            raise self.fail(node, path, f"{text!r} is not one of {', '.join(choices)}")
        return found

    def mapping(self, node: Node, path: str, keys: Sequence[str]) -> dict[str, Node]:
        """A mapping with only these keys (each at most once)."""
        if not isinstance(node, MappingNode):
            raise self.fail(node, path, "expected a mapping")
        found: dict[str, Node] = {}
        for key_node, value in node.value:
            key = self.text(key_node, path) or ""
            if key not in keys:
                raise self.fail(key_node, path, f"unknown key {key!r} (expected: "
                                f"{', '.join(keys)})")
            if key in found:
                raise self.fail(key_node, path, f"{key!r} is given twice")
            found[key] = value
        return found

    def sequence(self, node: Node, path: str) -> list[Node]:
        if not isinstance(node, SequenceNode):
            raise self.fail(node, path, "expected a list")
        return list(node.value)


T = TypeVar("T")
_SWITCH_TYPES = {t.name.lower(): t for t in SwitchType}
_MODES = {m.name.lower(): m for m in CompatibilityMode}


def _switch(r: _Reader, node: Node, path: str) -> LabSwitch:
    if isinstance(node, ScalarNode):
        return LabSwitch(r.text(node, path) or "")
    fields = r.mapping(node, path, ("name", "type"))
    if "name" not in fields:
        raise r.fail(node, path, "a switch needs a name")
    kind = r.choice(fields["type"], f"{path}.type", _SWITCH_TYPES) if "type" in fields \
        else SwitchType.External
    return LabSwitch(r.text(fields["name"], f"{path}.name") or "", kind)


def _processor(r: _Reader, node: Node, path: str) -> LabProcessor:
    fields = r.mapping(node, path, ("manufacturer", "name", "caption", "sockets"))
    for key in ("manufacturer", "name"):
        if key not in fields:
            raise r.fail(node, path, f"a processor needs a {key}")
    return LabProcessor(
        manufacturer=r.text(fields["manufacturer"], f"{path}.manufacturer") or "",
        name=r.text(fields["name"], f"{path}.name") or "",
        caption=(r.text(fields["caption"], f"{path}.caption") or "") if "caption" in fields
        else "",
        sockets=r.integer(fields["sockets"], f"{path}.sockets", 1, 64) if "sockets" in fields
        else 2,
    )


def _adapter(r: _Reader, node: Node, path: str, index: int) -> LabAdapter:
    default_name = "Network Adapter" if index == 0 else f"Network Adapter {index + 1}"
    if isinstance(node, ScalarNode):
        return LabAdapter(r.text(node, path, allow_null=True), default_name)
    fields = r.mapping(node, path, ("name", "switch"))
    switch = r.text(fields["switch"], f"{path}.switch", allow_null=True) \
        if "switch" in fields else None
    name = r.text(fields["name"], f"{path}.name") if "name" in fields else default_name
    return LabAdapter(switch, name or default_name)


_VM_KEYS = ("name", "version", "state", "adapters", "compatibilityForMigration",
            "compatibilityForMigrationMode")


def _vm(r: _Reader, node: Node, path: str) -> VMInventory:
    fields = r.mapping(node, path, _VM_KEYS)
    if "name" not in fields:
        raise r.fail(node, path, "a VM needs a name")
    adapters = tuple(_adapter(r, item, f"{path}.adapters[{i}]", i) for i, item in
                     enumerate(r.sequence(fields["adapters"], f"{path}.adapters"))) \
        if "adapters" in fields else ()
    return VMInventory(
        name=r.text(fields["name"], f"{path}.name") or "",
        version=r.text(fields["version"], f"{path}.version") if "version" in fields else None,
        state=r.choice(fields["state"], f"{path}.state", _STATES) if "state" in fields
        else VMState.Running,
        adapters=adapters,
        compatibility_for_migration=r.boolean(fields["compatibilityForMigration"],
                                              f"{path}.compatibilityForMigration")
        if "compatibilityForMigration" in fields else False,
        compatibility_mode=r.choice(fields["compatibilityForMigrationMode"],
                                    f"{path}.compatibilityForMigrationMode", _MODES)
        if "compatibilityForMigrationMode" in fields else CompatibilityMode.MinimumFeatureSet,
    )


def _unique(r: _Reader, nodes: list[Node], names: list[str], path: str, what: str) -> None:
    """Hyper-V looks switches and VMs up by name case-insensitively: two of one name are a
    mistake in the file (the lab would not know which one a cmdlet means)."""
    seen: set[str] = set()
    for node, name in zip(nodes, names, strict=True):
        if name.casefold() in seen:
            raise r.fail(node, path, f"{what} {name!r} is listed twice")
        seen.add(name.casefold())


def _host(r: _Reader, name: str, key: Node, node: Node) -> HostInventory:
    fields = r.mapping(node, name, ("os", "switches", "processor", "vms"))
    host = HostInventory(name=name, where=r.where(key))
    if "os" in fields:
        host = dataclasses.replace(host, os=r.choice(fields["os"], f"{name}.os",
                                                     {k: k for k in OS_RELEASES}))
    if "switches" in fields:
        items = r.sequence(fields["switches"], f"{name}.switches")
        switches = tuple(_switch(r, n, f"{name}.switches[{i}]") for i, n in enumerate(items))
        _unique(r, items, [s.name for s in switches], f"{name}.switches", "switch")
        host = dataclasses.replace(host, switches=switches)
    if "processor" in fields:
        host = dataclasses.replace(host, processor=_processor(r, fields["processor"],
                                                              f"{name}.processor"))
    if "vms" in fields:
        items = r.sequence(fields["vms"], f"{name}.vms")
        vms = tuple(_vm(r, n, f"{name}.vms[{i}]") for i, n in enumerate(items))
        _unique(r, items, [vm.name for vm in vms], f"{name}.vms", "VM")
        host = dataclasses.replace(host, vms=vms)
    return host


def parse_inventory(text: str, source: str = "inventory") -> dict[str, HostInventory]:
    """The hosts of an inventory document, by upper-cased name."""
    reader = _Reader(source)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise LabError(f"{where}: not YAML: {getattr(exc, 'problem', None) or exc}") from None
    if root is None:
        return {}
    if not isinstance(root, MappingNode):
        raise reader.fail(root, "", "expected a mapping of host name -> its switches, "
                          "processor and VMs")
    hosts: dict[str, HostInventory] = {}
    for key, value in root.value:
        name = reader.text(key, "") or ""
        if name.upper() in hosts:
            raise reader.fail(key, name, "this host is given twice")
        hosts[name.upper()] = _host(reader, name, key, value)
    return hosts


def load_inventory(path: Path) -> dict[str, HostInventory]:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise LabError(f"cannot read inventory file {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_BYTES:
        raise LabError(f"{path}: larger than {MAX_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LabError(f"{path}: not UTF-8 (byte {exc.start})") from None
    return parse_inventory(text, str(path))


# --- applying --------------------------------------------------------------------------------


def apply_inventory(configs: Sequence[LabHostConfig], inventory: Inventory
                    ) -> tuple[LabHostConfig, ...]:
    """The hosts with what the inventory says about them; an unknown host is an error."""
    names = {c.name.upper() for c in configs}
    for key, host in inventory.items():
        if key not in names:
            listed = ", ".join(sorted(names)[:5]) + ("..." if len(names) > 5 else "")
            raise LabError(f"{host.where}: {host.name}: no such lab host (lab hosts: {listed})")
    return tuple(_apply(c, inventory[c.name.upper()]) if c.name.upper() in inventory else c
                 for c in configs)


def _apply(config: LabHostConfig, host: HostInventory) -> LabHostConfig:
    if host.os is not None:
        release, supported = OS_RELEASES[host.os]
        config = dataclasses.replace(config, os=release, supported_vm_versions=supported)
    if host.switches is not None:
        config = dataclasses.replace(config, switches=host.switches)
    if host.processor is not None:
        config = dataclasses.replace(config, processor=host.processor)
    if host.vms is not None:
        config = dataclasses.replace(config, vms=tuple(
            LabVM(vm.name, vm.version or config.default_vm_version, vm.state,
                  tuple(_connect(config, host, vm, a) for a in vm.adapters),
                  vm.compatibility_for_migration, vm.compatibility_mode) for vm in host.vms))
    return config


def _connect(config: LabHostConfig, host: HostInventory, vm: VMInventory,
             adapter: LabAdapter) -> LabAdapter:
    """An adapter is connected to one of its host's switches, found by name case-insensitively
    as Connect-VMNetworkAdapter -SwitchName finds it (SwitchName then reads the switch's own
    name); a switch the host does not have is a mistake in the file."""
    if adapter.switch is None:
        return adapter
    for switch in config.switches:
        if switch.name.casefold() == adapter.switch.casefold():
            return dataclasses.replace(adapter, switch=switch.name)
    have = ", ".join(s.name for s in config.switches) or "none"
    raise LabError(f"{host.where}: {host.name}: VM {vm.name!r}: switch {adapter.switch!r} is not "
                   f"one of the host's switches ({have})")
