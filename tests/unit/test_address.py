"""Plan addresses, typed (hvlm.plan.Address): text <-> Address, exactly as the plan file writes it."""

from __future__ import annotations

import ipaddress

import pytest

from hvlm.plan import Address, Kind, Part, target_key

ADDRESSES = [
    ("host/HV01", Address(Kind.HOST, "HV01")),
    ("directory/HV01", Address(Kind.DIRECTORY, "HV01")),
    ("host/HV01/migration", Address(Kind.HOST, "HV01", Part.MIGRATION)),
    ("host/HV01/tickets", Address(Kind.HOST, "HV01", Part.TICKETS)),
    ("host/HV01/network/192.168.10.0/24",
     Address(Kind.HOST, "HV01", Part.NETWORK, ipaddress.ip_network("192.168.10.0/24"))),
    ("host/HV01/network/fd00:10::/64",
     Address(Kind.HOST, "HV01", Part.NETWORK, ipaddress.ip_network("fd00:10::/64"))),
    ("directory/HV01/allowedToDelegateTo", Address(Kind.DIRECTORY, "HV01", Part.DELEGATION)),
    ("directory/HV01/allowedToDelegateTo/prune",
     Address(Kind.DIRECTORY, "HV01", Part.DELEGATION_PRUNE)),
    ("directory/HV01/protocolTransition",
     Address(Kind.DIRECTORY, "HV01", Part.PROTOCOL_TRANSITION)),
]


@pytest.mark.parametrize(("text", "address"), ADDRESSES, ids=[t for t, _ in ADDRESSES])
def test_round_trip(text: str, address: Address) -> None:
    assert Address.parse(text) == address
    assert str(address) == text
    assert str(address.target) == "/".join(text.split("/")[:2])


@pytest.mark.parametrize("text", [
    "host", "host/", "vm/HV01", "host/HV01/firewall", "directory/HV01/migration",
    "host/HV01/allowedToDelegateTo", "host/HV01/network/not-a-net", "host/HV01/network",
])
def test_not_an_address(text: str) -> None:
    with pytest.raises(ValueError, match="not a"):
        Address.parse(text)


def test_target_key_upper_cases_the_host() -> None:
    assert target_key("host/hv01") == "host/HV01"
    assert target_key(Address(Kind.DIRECTORY, "hv02")) == "directory/HV02"
