"""The host settings hvlm manages, declared once: one row per Get-VMHost / Set-VMHost setting. Pure.

Pipeline position: beside the model, below everything that names a setting. Each row says how the
setting is written in the manifest (and in a plan's before/after), which attribute holds it in
hvlm.model.MigrationSettings and hvlm.state.MigrationState, which Get-VMHost property reads it and
which Set-VMHost parameter writes it, how its PowerShell value is read, and its JSON Schema
fragment. Derived from this table:

- manifest resolution (hvlm.manifest), the schema itself is checked against it by a unit test;
- the Get-VMHost parser (hvlm.hosts.parse.parse_vmhost);
- the Set-VMHost command, its simulation and the expected state (hvlm.hosts.commands);
- the planner's diff and `settings_from_plan` (hvlm.planner), the plan fingerprint (hvlm.plan);
- export (hvlm.export).

Adding a setting is one row here plus its field in the two dataclasses (tests/unit/test_settings.py
fails until the three and schemas/manifest.v1.schema.json agree). Networks are not a row: they are
a list with their own cmdlets (Add-/Set-/Remove-VMMigrationNetwork). The lab (hvlm_lab) keeps its
own model on purpose and never imports this table: an independent simulator is what catches a
wrong parameter name here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import Any

from hvlm.model import AuthenticationType, PerformanceOption

# A setting's value as the manifest and the plan file write it (an enum by its value).
PlainValue = bool | int | str


class Reader(str, Enum):
    """How the Get-VMHost property's deserialised value is read (hvlm.hosts.parse)."""

    BOOL = "bool"
    INT = "int"
    ENUM = "enum"  # by name, else by the integer it carries (`by_int`)


_COUNT = MappingProxyType({"type": "integer", "minimum": 1, "maximum": 4294967295})


@dataclass(frozen=True)
class HostSetting:
    key: str  # manifest key under `migration:`, and the field name in a plan's before/after
    attr: str  # attribute of hvlm.model.MigrationSettings and hvlm.state.MigrationState
    vmhost_property: str  # Get-VMHost property it is read from
    # Set-VMHost parameter it is written with; None: a cmdlet pair of its own (Enable-/Disable-)
    parameter: str | None
    reader: Reader
    schema: Mapping[str, Any]  # its fragment in schemas/manifest.v1.schema.json ($defs.migration)
    enum: type[Enum] | None = None
    by_int: tuple[Enum, ...] = ()  # enum members by the integer value of the .NET enum
    # The value when Get-VMHost does not carry the property; None: the property is required.
    absent: bool | None = None
    # Written together with the networks list (manifest merging, export): not a plain field.
    with_networks: bool = False

    def plain(self, value: object) -> PlainValue:
        """The manifest / plan-file form of a typed value."""
        if isinstance(value, Enum):
            return str(value.value)
        assert isinstance(value, (bool, int, str))
        return value

    def typed(self, value: object) -> object:
        """The model / state form of a manifest or plan-file value (an enum member for enums)."""
        return self.enum(value) if self.enum is not None else value


HOST_SETTINGS: tuple[HostSetting, ...] = (
    HostSetting("enabled", "enabled", "VirtualMachineMigrationEnabled", None,
                Reader.BOOL, {"type": "boolean"}),
    HostSetting("authentication", "authentication", "VirtualMachineMigrationAuthenticationType",
                "VirtualMachineMigrationAuthenticationType", Reader.ENUM,
                {"enum": ["Kerberos", "CredSSP"]}, AuthenticationType,
                (AuthenticationType.CREDSSP, AuthenticationType.KERBEROS)),
    HostSetting("performance", "performance", "VirtualMachineMigrationPerformanceOption",
                "VirtualMachineMigrationPerformanceOption", Reader.ENUM,
                {"enum": ["TCPIP", "Compression", "SMB"]}, PerformanceOption,
                (PerformanceOption.TCPIP, PerformanceOption.COMPRESSION, PerformanceOption.SMB)),
    HostSetting("maxVirtualMachineMigrations", "max_virtual_machine_migrations",
                "MaximumVirtualMachineMigrations", "MaximumVirtualMachineMigrations",
                Reader.INT, _COUNT),
    HostSetting("maxStorageMigrations", "max_storage_migrations",
                "MaximumStorageMigrations", "MaximumStorageMigrations", Reader.INT, _COUNT),
    # Absent on older hosts: False (DOMAIN.md).
    HostSetting("useAnyNetwork", "use_any_network", "UseAnyNetworkForMigration",
                "UseAnyNetworkForMigration", Reader.BOOL, {"type": "boolean"}, absent=False,
                with_networks=True),
)

BY_KEY: Mapping[str, HostSetting] = MappingProxyType({s.key: s for s in HOST_SETTINGS})
BY_ATTR: Mapping[str, HostSetting] = MappingProxyType({s.attr: s for s in HOST_SETTINGS})
# The rows Set-VMHost writes, in parameter order.
SET_VMHOST: tuple[HostSetting, ...] = tuple(s for s in HOST_SETTINGS if s.parameter is not None)
