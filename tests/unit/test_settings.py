"""The host-settings table (hvlm.settings), the two dataclasses and the manifest schema agree.

A setting added to one of them and forgotten in another fails here, not on a host.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from hvlm.model import MigrationSettings
from hvlm.settings import BY_ATTR, BY_KEY, HOST_SETTINGS, SET_VMHOST, Reader
from hvlm.state import MigrationState

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "schemas" / "manifest.v1.schema.json").read_text())
LISTS = {"networks"}  # not a row of the table: a list with cmdlets of its own


def _without_description(fragment: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fragment.items() if k != "description"}


def test_the_table_and_the_dataclasses_name_the_same_settings() -> None:
    attrs = [s.attr for s in HOST_SETTINGS]
    for cls in (MigrationSettings, MigrationState):
        fields = [f.name for f in dataclasses.fields(cls) if f.name not in LISTS]
        assert fields == attrs, cls.__name__


def test_the_table_and_the_schema_name_the_same_settings() -> None:
    properties = SCHEMA["$defs"]["migration"]["properties"]
    assert [k for k in properties if k not in LISTS] == [s.key for s in HOST_SETTINGS]
    for setting in HOST_SETTINGS:
        assert _without_description(properties[setting.key]) == dict(setting.schema), setting.key


def test_enum_rows_list_every_member_in_schema_and_by_int() -> None:
    for setting in HOST_SETTINGS:
        if setting.reader is not Reader.ENUM:
            assert setting.enum is None and not setting.by_int
            continue
        assert setting.enum is not None
        members = {m.value for m in setting.enum}
        assert set(setting.schema["enum"]) == members
        assert {m.value for m in setting.by_int} == members


def test_rows_are_unique_and_set_vmhost_writes_all_but_enabled() -> None:
    for column in ("key", "attr", "vmhost_property"):
        values = [getattr(s, column) for s in HOST_SETTINGS]
        assert len(set(values)) == len(values), column
    assert len(BY_KEY) == len(BY_ATTR) == len(HOST_SETTINGS)
    # enabled is Enable-/Disable-VMMigration; everything else is one Set-VMHost
    assert [s.key for s in HOST_SETTINGS if s not in SET_VMHOST] == ["enabled"]
    assert all(s.parameter for s in SET_VMHOST)


def test_plain_and_typed_round_trip() -> None:
    state = MigrationState(True, BY_KEY["authentication"].typed("Kerberos"),  # type: ignore[arg-type]
                           BY_KEY["performance"].typed("SMB"), 3, 4, False)  # type: ignore[arg-type]
    for setting in HOST_SETTINGS:
        value = getattr(state, setting.attr)
        assert setting.typed(setting.plain(value)) == value
