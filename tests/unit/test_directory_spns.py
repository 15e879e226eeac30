"""The fleet's SPN search (issue 14): one filter for every host's migration/cifs/HOST SPNs, and the
holders parsed from raw entries. Pure: no directory."""

from __future__ import annotations

from hvlm.directory.parse import RawEntry, fleet_spns, parse_spn_holders, spn_filter
from hvlm.state import DirectoryState, SpnHolder

MIGRATION = "Microsoft Virtual System Migration Service"


def test_fleet_spns_cover_both_name_forms_of_each_service_once() -> None:
    spns = fleet_spns([("HV01", "hv01.lab.example"), ("hv01", "HV01.LAB.EXAMPLE")])
    assert spns == (f"{MIGRATION}/HV01", f"{MIGRATION}/hv01.lab.example", "cifs/HV01",
                    "cifs/hv01.lab.example", "HOST/HV01", "HOST/hv01.lab.example")


def test_one_filter_for_the_fleet_escaped() -> None:
    assert spn_filter(["HOST/HV01", "cifs/a*(b)"]) == (
        r"(|(servicePrincipalName=HOST/HV01)(servicePrincipalName=cifs/a\2a\28b\29))")


def test_holders_keep_only_the_fleets_spns_case_insensitively() -> None:
    entries = [
        RawEntry("CN=HV03,CN=Computers,DC=lab,DC=example", {
            "sAMAccountName": [b"HV03$"],
            "servicePrincipalName": [f"{MIGRATION.lower()}/hv02".encode(), b"HOST/HV03"]}),
        RawEntry("CN=SQL01,CN=Computers,DC=lab,DC=example", {
            "sAMAccountName": [b"SQL01$"], "servicePrincipalName": [b"MSSQLSvc/sql01:1433"]}),
    ]
    holders = parse_spn_holders([f"{MIGRATION}/HV02"], entries)
    assert holders == (SpnHolder("CN=HV03,CN=Computers,DC=lab,DC=example", "HV03$",
                                 (f"{MIGRATION.lower()}/hv02",)),)
    state = DirectoryState((), spn_holders=holders)
    assert [h.sam_account_name for h in state.holders(f"{MIGRATION}/HV02")] == ["HV03$"]
    assert state.holders("HOST/HV03") == ()
