"""The pure half of hvlm.directory: filter, parser, modify builder and error mapping (no network)."""

from __future__ import annotations

import pytest
from ldap3.core.exceptions import LDAPSocketOpenError

from hvlm.directory.errors import error_for_exception, error_for_result
from hvlm.directory.parse import (
    DELEGATE_TO,
    UAC,
    RawEntry,
    build_modify,
    parse_accounts,
    search_filter,
)
from hvlm.errors import (
    DirectoryAccessDenied,
    DirectoryAuthError,
    DirectoryError,
    DirectoryUnreachable,
)
from hvlm.state import DelegationState

MIG = "Microsoft Virtual System Migration Service"
WORKSTATION = 0x1000
TRANSITION = 0x01000000
UNCONSTRAINED = 0x00080000


def entry(name: str, uac: int = WORKSTATION, delegate: tuple[str, ...] = ()) -> RawEntry:
    attrs: dict[str, list[bytes]] = {
        "sAMAccountName": [f"{name}$".encode()],
        "dNSHostName": [f"{name.lower()}.lab.example".encode()],
        "servicePrincipalName": [f"HOST/{name}".encode(), f"{MIG}/{name}".encode()],
        "userAccountControl": [str(uac).encode()],
    }
    if delegate:
        attrs["msDS-AllowedToDelegateTo"] = [v.encode() for v in delegate]
    return RawEntry(f"CN={name},CN=Computers,DC=lab,DC=example", attrs)


def account(uac: int = WORKSTATION, delegate: tuple[str, ...] = ()) -> DelegationState:
    return DelegationState("HV01", "CN=HV01,CN=Computers,DC=lab,DC=example", "HV01$",
                           "hv01.lab.example", (), uac, delegate)


# --- search filter ------------------------------------------------------------------------------

def test_filter_is_one_or_of_account_names() -> None:
    assert search_filter(["hv01", "HV02"]) == (
        "(&(objectCategory=computer)(|(sAMAccountName=HV01$)(sAMAccountName=HV02$)))")


@pytest.mark.parametrize(("name", "escaped"), [
    ("A*", r"A\2a$"), ("B)(x=1", r"B\29\28X=1$"), ("C\\D", r"C\5cD$"), ("E\x00", r"E\00$"),
])
def test_filter_escapes_metacharacters(name: str, escaped: str) -> None:
    assert f"(sAMAccountName={escaped})" in search_filter([name])


def test_filter_needs_a_host() -> None:
    with pytest.raises(ValueError):
        search_filter([])


# --- parser -------------------------------------------------------------------------------------

def test_parse_matches_hosts_case_insensitively_and_reports_missing() -> None:
    state = parse_accounts(["hv01", "HV02", "HV09"], [entry("HV02"), entry("HV01")], "ldaps://dc")
    assert [a.name for a in state.accounts] == ["hv01", "HV02"]  # manifest order and spelling
    assert state.missing == ("HV09",)
    assert state.server == "ldaps://dc"
    hv01 = state.accounts[0]
    assert hv01.sam_account_name == "HV01$"
    assert hv01.dns_host_name == "hv01.lab.example"
    assert hv01.service_principal_names == ("HOST/HV01", f"{MIG}/HV01")
    assert hv01.allowed_to_delegate_to == ()


def test_parse_reads_delegation_and_flags() -> None:
    raw = entry("HV01", WORKSTATION | TRANSITION | UNCONSTRAINED, ("cifs/HV02", "MSSQLSvc/x:1"))
    (hv01,) = parse_accounts(["HV01"], [raw]).accounts
    assert hv01.allowed_to_delegate_to == ("cifs/HV02", "MSSQLSvc/x:1")
    assert hv01.protocol_transition and hv01.unconstrained


def test_parse_attribute_names_are_case_insensitive_and_unknown_entries_ignored() -> None:
    raw = RawEntry("CN=HV01,DC=x", {"samaccountname": [b"hv01$"],
                                    "USERACCOUNTCONTROL": [b"4096"]})
    state = parse_accounts(["HV01"], [raw, entry("OTHER")])
    assert state.accounts[0].user_account_control == 4096
    assert len(state.accounts) == 1


# --- modify builder -------------------------------------------------------------------------------

def test_adds_only_missing_values_case_insensitively() -> None:
    request = build_modify(account(delegate=("CIFS/HV02.LAB.EXAMPLE",)),
                           add=["cifs/hv02.lab.example", "cifs/HV02", "cifs/hv02"])
    assert request.add_values == ("cifs/HV02",)
    assert request.changes() == {DELEGATE_TO: [("MODIFY_ADD", ["cifs/HV02"])]}


def test_deletes_every_stored_case_form_and_never_replaces() -> None:
    stored = ("cifs/HV03", "CIFS/hv03", "MSSQLSvc/sql01.lab.example:1433")
    request = build_modify(account(delegate=stored), delete=["cifs/hv03", "cifs/absent"])
    assert request.delete_values == ("cifs/HV03", "CIFS/hv03")
    operations = [op for ops in request.changes().values() for op, _ in ops]
    assert set(operations) <= {"MODIFY_ADD", "MODIFY_DELETE"}


def test_value_both_added_and_deleted_is_kept() -> None:
    request = build_modify(account(delegate=("cifs/HV02",)), add=["CIFS/hv02"],
                           delete=["cifs/HV02"])
    assert request.empty


def test_protocol_transition_is_a_guarded_delete_and_add() -> None:
    request = build_modify(account(), protocol_transition=True)
    assert request.changes() == {UAC: [("MODIFY_DELETE", ["4096"]),
                                       ("MODIFY_ADD", [str(WORKSTATION | TRANSITION)])]}
    off = build_modify(account(WORKSTATION | TRANSITION), protocol_transition=False)
    assert (off.uac_before, off.uac_after) == (WORKSTATION | TRANSITION, WORKSTATION)


def test_nothing_to_do_is_an_empty_request() -> None:
    assert build_modify(account(WORKSTATION | TRANSITION, ("cifs/HV02",)), add=["CIFS/hv02"],
                        protocol_transition=True).empty
    assert build_modify(account()).changes() == {}


def test_unconstrained_bit_is_never_set_and_left_as_found() -> None:
    assert build_modify(account(), protocol_transition=True).uac_after == WORKSTATION | TRANSITION
    found = build_modify(account(WORKSTATION | UNCONSTRAINED), protocol_transition=True)
    assert found.uac_after == WORKSTATION | UNCONSTRAINED | TRANSITION


# --- error mapping --------------------------------------------------------------------------------

def result(code: int, description: str, message: str = "") -> dict[str, object]:
    return {"result": code, "description": description, "message": message}


def test_insufficient_access_explains_the_privilege() -> None:
    error = error_for_result("ldaps://dc1", "modify CN=HV01", result(50, "insufficientAccessRights"))
    assert isinstance(error, DirectoryAccessDenied)
    assert str(error).startswith("ldaps://dc1: modify CN=HV01: insufficientAccessRights")
    assert "SeEnableDelegationPrivilege" in str(error) and "Domain Admins" in str(error)


@pytest.mark.parametrize(("code", "description", "kind", "words"), [
    (49, "invalidCredentials", DirectoryAuthError, "HVLM_LDAP_PASSWORD"),
    (8, "strongerAuthRequired", DirectoryAuthError, "StartTLS"),
    (32, "noSuchObject", DirectoryError, "plan again"),
    (80, "other", DirectoryError, "other"),
])
def test_result_codes_map_to_hvlm_errors(code: int, description: str,
                                         kind: type[DirectoryError], words: str) -> None:
    error = error_for_result("ldaps://dc1", "bind", result(code, description, "detail"))
    assert type(error) is kind
    assert words in str(error) and "ldaps://dc1: bind" in str(error)


def test_transport_and_tls_failures_are_unreachable() -> None:
    refused = error_for_exception("ldaps://dc1", "connect", LDAPSocketOpenError("refused"))
    assert isinstance(refused, DirectoryUnreachable)
    tls = error_for_exception("ldaps://dc1", "connect", LDAPSocketOpenError(
        "socket ssl wrapping error: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"))
    assert isinstance(tls, DirectoryUnreachable) and "certValidation" in str(tls)
