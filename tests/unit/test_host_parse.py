"""The pure parser of a host's read pipeline, fed with recorded CLIXML through hvlm's own reader.

No network: the fixtures under fixtures/hosts/ are PIPELINE_OUTPUT / ERROR_RECORD payloads shaped
like real PowerShell 5.1 remoting output. They reach hvlm.hosts.parse the way a live read does:
the whole recorded reads travel as WSMan envelopes through hvlm's PSRP client
(tests/unit/psrp_wire.py: PsrpClient.run -> HostSession.read); single objects are read by
hvlm.hosts.clixml.deserialize (and error records wrapped in clixml.Record), as
hvlm.hosts.transport does for every message. No other deserialiser is involved.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest

from hvlm.errors import CmdletError
from hvlm.hosts.clixml import Record, as_obj, deserialize
from hvlm.hosts.parse import Kind, classify, parse_enum, parse_host_state
from hvlm.model import AuthenticationType, PerformanceOption
from hvlm.state import HostState, ObservedNetwork, VirtualMachine
from tests.unit.psrp_wire import FAILED, Answer, objs, session

FIXTURES = Path(__file__).parent / "fixtures" / "hosts"


def load_objects(name: str) -> list[Any]:
    return [deserialize(data, "an output object") for data in objs(FIXTURES / name)]


def load_errors() -> list[Any]:
    return [Record(as_obj(deserialize(data, "an error record")))
            for data in objs(FIXTURES / "errors.xml")]


def obj(xml: str) -> Any:
    return deserialize(xml.encode(), "an output object")


def read_over_the_wire(name: str, output: str, errors: tuple[int, ...] = (),
                       terminating: int | None = None) -> HostState:
    """The recorded read as the host sends it, read by HostSession.read (the production path)."""
    records = objs(FIXTURES / "errors.xml")
    answer = Answer(output=objs(FIXTURES / output), errors=[records[i] for i in errors],
                    **({} if terminating is None else
                       {"state": FAILED, "terminating": records[terminating]}))
    host, _ = session(name, answer)
    return host.read()


def vmhost_xml(**props: str) -> str:
    body = {
        "VirtualMachineMigrationEnabled": '<B N="VirtualMachineMigrationEnabled">true</B>',
        "MaximumVirtualMachineMigrations": '<U32 N="MaximumVirtualMachineMigrations">2</U32>',
        "MaximumStorageMigrations": '<U32 N="MaximumStorageMigrations">2</U32>',
        "VirtualMachineMigrationAuthenticationType": enum_xml(
            "VirtualMachineMigrationAuthenticationType",
            "MigrationAuthenticationType",
            "Kerberos",
            1,
        ),
        "VirtualMachineMigrationPerformanceOption": enum_xml(
            "VirtualMachineMigrationPerformanceOption", "VMMigrationPerformance", "TCPIP", 0
        ),
    }
    body.update(props)
    inner = "".join(v for v in body.values() if v)
    return (
        '<Obj RefId="0"><TN RefId="0"><T>Deserialized.Microsoft.HyperV.PowerShell.VMHost</T>'
        f"<T>Deserialized.System.Object</T></TN><Props>{inner}</Props></Obj>"
    )


def enum_xml(prop: str, enum: str, name: str | None, value: int) -> str:
    to_string = f"<ToString>{name}</ToString>" if name is not None else ""
    return (
        f'<Obj N="{prop}" RefId="9"><TN RefId="9"><T>Microsoft.HyperV.PowerShell.{enum}</T>'
        f"<T>System.Enum</T><T>System.ValueType</T><T>System.Object</T></TN>{to_string}"
        f"<I32>{value}</I32></Obj>"
    )


def network_xml(subnet: str, priority: int = 0, *, priority_xml: str | None = None) -> str:
    """A VMMigrationNetwork; Priority is a Nullable<Int32> on the module's object."""
    if priority_xml is None:
        priority_xml = f'<I32 N="Priority">{priority}</I32>'
    return (
        '<Obj RefId="0"><TN RefId="0"><T>Microsoft.HyperV.PowerShell.VMMigrationNetwork</T>'
        f'<T>System.Object</T></TN><Props><S N="Subnet">{subnet}</S>'
        f"{priority_xml}</Props></Obj>"
    )


# -- a full recorded read ---------------------------------------------------------------------


def test_recorded_2022_host_parses_every_fact() -> None:
    state = read_over_the_wire("HV01", "hv01_read.xml")

    m = state.migration
    assert (m.enabled, m.authentication, m.performance) == (
        True,
        AuthenticationType.KERBEROS,
        PerformanceOption.SMB,
    )
    assert (m.max_virtual_machine_migrations, m.max_storage_migrations) == (4, 2)
    assert m.use_any_network is False
    assert m.networks == (
        ObservedNetwork(ipaddress.ip_network("192.168.10.0/24"), 0),
        ObservedNetwork(ipaddress.ip_network("fd00:10::/64"), 5),
    )
    f = state.facts
    assert (f.computer_name, f.part_of_domain, f.domain) == ("HV01", True, "corp.example.com")
    assert (f.os_caption, f.os_version, f.os_build) == (
        "Microsoft Windows Server 2022 Datacenter",
        "10.0.20348",
        "20348",
    )
    assert f.hyperv_installed is True
    # the zone index of a link-local address is dropped; the prefix comes from PrefixLength
    assert f.addresses == (
        ipaddress.ip_interface("192.168.10.11/24"),
        ipaddress.ip_interface("fe80::1c2d:3e4f:5a6b:7c8d/64"),
        ipaddress.ip_interface("10.0.0.11/16"),
    )
    assert f.vms == (VirtualMachine("sql01", "10.0"), VirtualMachine("legacy-app", "5.0"))
    assert f.supported_versions == ("8.0", "10.0")
    assert not f.is_server_2025_or_later
    assert state.read_warnings == ()


def test_fresh_2025_host_outside_the_domain() -> None:
    state = read_over_the_wire("HV25", "fresh_2025_read.xml")

    m = state.migration
    assert (m.enabled, m.authentication, m.performance) == (
        False,
        AuthenticationType.CREDSSP,
        PerformanceOption.COMPRESSION,
    )
    assert m.use_any_network is False  # property absent: DOMAIN.md says treat as False
    assert m.networks == ()
    assert state.facts.part_of_domain is False
    assert state.facts.hyperv_installed is False
    assert state.facts.is_server_2025_or_later
    # cmdlets that wrote nothing leave empty facts, not errors
    assert (state.facts.vms, state.facts.addresses, state.facts.supported_versions) == ((), (), ())


@pytest.mark.parametrize(("fragment_size", "receives"), [(None, 3), (97, 1), (97, 4), (1, 2)])
def test_a_recorded_read_in_fragments_and_several_answers_reads_the_same(
    fragment_size: int | None, receives: int
) -> None:
    """A host cuts messages into fragments (MS-PSRP 2.2.4, at its max envelope size) and spreads
    them over Receive answers: the fragments are joined back into the same objects."""
    whole = read_over_the_wire("HV01", "hv01_read.xml")
    host, _ = session("HV01", Answer(output=objs(FIXTURES / "hv01_read.xml"),
                                     errors=objs(FIXTURES / "errors.xml")[:1],
                                     fragment_size=fragment_size, receives=receives))
    cut = host.read()
    assert (cut.migration, cut.facts) == (whole.migration, whole.facts)
    assert cut.read_warnings[0].startswith("Get-WindowsFeature: The term 'Get-WindowsFeature'")


def test_objects_are_classified_by_type_not_position() -> None:
    objects = load_objects("hv01_read.xml")
    vmhost_last = objects[1:] + objects[:1]
    assert parse_host_state("HV01", vmhost_last) == parse_host_state("HV01", objects)


# -- classification and enums -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_name", "kind"),
    [
        ("Microsoft.HyperV.PowerShell.VMHost", Kind.VMHOST),
        ("Deserialized.Microsoft.HyperV.PowerShell.VMHost", Kind.VMHOST),
        ("Microsoft.HyperV.PowerShell.VMMigrationNetwork", Kind.MIGRATION_NETWORK),
        (
            "Microsoft.Management.Infrastructure.CimInstance#root/cimv2/Win32_ComputerSystem",
            Kind.COMPUTER_SYSTEM,
        ),
        (
            "Deserialized.Microsoft.Management.Infrastructure.CimInstance#ROOT/CIMV2/Win32_OperatingSystem",
            Kind.OPERATING_SYSTEM,
        ),
        (
            "Microsoft.Management.Infrastructure.CimInstance#MSFT_NetIPAddress",
            Kind.IP_ADDRESS,
        ),
        ("Microsoft.HyperV.PowerShell.VirtualMachine", Kind.VM),
        ("Microsoft.HyperV.PowerShell.VMHostSupportedVersion", Kind.SUPPORTED_VERSION),
        ("Microsoft.Windows.ServerManager.Commands.Feature", Kind.FEATURE),
        ("Microsoft.HyperV.PowerShell.VMHostVersion", Kind.OTHER),
        ("System.Management.Automation.PSCustomObject", Kind.OTHER),
    ],
)
def test_classify_by_type_name(type_name: str, kind: Kind) -> None:
    xml = f'<Obj RefId="0"><TN RefId="0"><T>{type_name}</T><T>System.Object</T></TN></Obj>'
    assert classify(obj(xml)) is kind


def test_objects_of_unknown_types_are_ignored() -> None:
    stray = obj(
        '<Obj RefId="0"><TN RefId="0"><T>System.Management.Automation.PSCustomObject</T>'
        '<T>System.Object</T></TN><MS><S N="Subnet">not-a-subnet</S></MS></Obj>'
    )
    state = parse_host_state("HV01", [obj(vmhost_xml()), stray, "a string", 42])
    assert state.migration.networks == ()


def test_enum_read_by_name_case_insensitively() -> None:
    value = obj(enum_xml("x", "MigrationAuthenticationType", "kerberos", 0))
    assert parse_enum(value, AuthenticationType, ()) is AuthenticationType.KERBEROS


def test_enum_without_its_name_falls_back_to_the_integer() -> None:
    xml = vmhost_xml(
        VirtualMachineMigrationPerformanceOption=enum_xml(
            "VirtualMachineMigrationPerformanceOption", "VMMigrationPerformance", None, 2
        )
    )
    assert parse_host_state("HV01", [obj(xml)]).migration.performance is PerformanceOption.SMB


def test_enum_as_plain_string_property() -> None:
    xml = vmhost_xml(
        VirtualMachineMigrationAuthenticationType='<S N="VirtualMachineMigrationAuthenticationType">'
        "CredSSP</S>"
    )
    assert (
        parse_host_state("HV01", [obj(xml)]).migration.authentication is AuthenticationType.CREDSSP
    )


def test_extended_properties_are_read_when_not_adapted() -> None:
    xml = vmhost_xml(MaximumStorageMigrations="").replace(
        "</Props>", '</Props><MS><U32 N="MaximumStorageMigrations">7</U32></MS>'
    )
    assert parse_host_state("HV01", [obj(xml)]).migration.max_storage_migrations == 7


def test_adapted_property_wins_over_extended() -> None:
    xml = vmhost_xml().replace(
        "</Props>", '</Props><MS><U32 N="MaximumStorageMigrations">7</U32></MS>'
    )
    assert parse_host_state("HV01", [obj(xml)]).migration.max_storage_migrations == 2


# -- networks ---------------------------------------------------------------------------------


def test_subnets_are_parsed_networks_and_a_bare_ip_is_a_host_route() -> None:
    state = parse_host_state(
        "HV01",
        [
            obj(vmhost_xml()),
            obj(network_xml("192.168.10.7", 1)),
            obj(network_xml("2001:DB8:0:0::/64", 2)),
        ],
    )
    assert state.migration.networks == (
        ObservedNetwork(ipaddress.ip_network("192.168.10.7/32"), 1),
        ObservedNetwork(ipaddress.ip_network("2001:db8::/64"), 2),
    )


def test_host_left_by_hyper_v_manager_reads_with_unset_priorities() -> None:
    """Networks added without -Priority: a <Nil/> Priority and a missing one both read as None;
    a set one reads as its Int32, and set priorities sort before unset ones."""
    state = read_over_the_wire("HV07", "gui_networks_read.xml")
    net = ipaddress.ip_network
    assert state.migration.networks == (
        ObservedNetwork(net("10.10.0.0/16"), 3),
        ObservedNetwork(net("10.20.0.0/16"), None),
        ObservedNetwork(net("10.30.0.0/16"), None),
    )
    assert state.migration.use_any_network is True


# Every reading of a network's Priority that no source rules out (DOMAIN.md: UNCONFIRMED).
PRIORITY_READINGS = {
    "Int32 (the module's Nullable<Int32>)": ('<I32 N="Priority">4</I32>', 4),
    "Int32 zero": ('<I32 N="Priority">0</I32>', 0),
    "null Nullable": ('<Nil N="Priority" />', None),
    "property missing": ("", None),
    "UInt32 (the WMI Metric's own type)": ('<U32 N="Priority">4294967295</U32>', 4294967295),
    "a large number the service chose": ('<I32 N="Priority">2147483647</I32>', 2147483647),
}


@pytest.mark.parametrize("xml, expected", PRIORITY_READINGS.values(), ids=PRIORITY_READINGS.keys())
def test_every_reading_of_an_unset_priority(xml: str, expected: int | None) -> None:
    state = parse_host_state(
        "HV01", [obj(vmhost_xml()), obj(network_xml("10.1.0.0/16", priority_xml=xml))]
    )
    assert state.migration.networks == (
        ObservedNetwork(ipaddress.ip_network("10.1.0.0/16"), expected),
    )


def test_a_non_canonical_subnet_keeps_the_hosts_text_for_cmdlets() -> None:
    """Hyper-V stores SubnetNumber as typed and matches -Subnet by that address: the parsed
    network compares, the host's own text is what cmdlets must name."""
    state = parse_host_state("HV01", [obj(vmhost_xml()), obj(network_xml("10.1.0.5/16", 1)),
                                      obj(network_xml("10.2.0.0/16", 2))])
    odd, plain = state.migration.networks
    assert odd.subnet == ipaddress.ip_network("10.1.0.0/16") and odd.text == "10.1.0.5/16"
    assert odd.cmdlet_subnet == "10.1.0.5/16"
    assert plain.text == "" and plain.cmdlet_subnet == "10.2.0.0/16"


def test_duplicate_network_entries_keep_the_first() -> None:
    state = parse_host_state(
        "HV01",
        [obj(vmhost_xml()), obj(network_xml("10.1.0.0/16", 3)), obj(network_xml("10.1.0.0/16", 9))],
    )
    assert state.migration.networks == (ObservedNetwork(ipaddress.ip_network("10.1.0.0/16"), 3),)


def test_unparseable_network_is_an_error_naming_the_host() -> None:
    with pytest.raises(CmdletError) as caught:
        parse_host_state("HV01", [obj(vmhost_xml()), obj(network_xml("10.1.0.0/99"))])
    assert str(caught.value).startswith("HV01: read: Get-VMMigrationNetwork:")


def test_bad_preflight_object_becomes_a_warning() -> None:
    address = (
        '<Obj RefId="0"><TN RefId="0">'
        "<T>Microsoft.Management.Infrastructure.CimInstance#ROOT/StandardCimv2/MSFT_NetIPAddress</T>"
        '<T>System.Object</T></TN><Props><S N="IPAddress">not-an-ip</S><By N="PrefixLength">24</By></Props></Obj>'
    )
    state = parse_host_state("HV01", [obj(vmhost_xml()), obj(address)])
    assert state.facts.addresses == ()
    assert len(state.read_warnings) == 1
    assert state.read_warnings[0].startswith("Get-NetIPAddress:")


# -- what is fatal, what is a warning ---------------------------------------------------------


def test_missing_vmhost_is_an_error() -> None:
    with pytest.raises(CmdletError, match=r"^HV01: read: Get-VMHost returned no object"):
        parse_host_state("HV01", load_objects("hv01_read.xml")[1:])


@pytest.mark.parametrize(
    "prop", ["VirtualMachineMigrationEnabled", "VirtualMachineMigrationAuthenticationType"]
)
def test_vmhost_without_a_migration_property_is_an_error(prop: str) -> None:
    with pytest.raises(CmdletError, match=f"Get-VMHost returned no {prop}"):
        parse_host_state("HV01", [obj(vmhost_xml(**{prop: ""}))])


def test_preflight_cmdlet_error_becomes_a_read_warning() -> None:
    state = read_over_the_wire("HV01", "hv01_read.xml", errors=(0,))
    assert state.read_warnings == (
        "Get-WindowsFeature: The term 'Get-WindowsFeature' is not recognized as the name of a "
        "cmdlet, function, script file, or operable program. Check the spelling of the name, or "
        "if a path was included, verify that the path is correct and try again.",
    )


def test_get_vmhost_error_is_fatal_with_the_real_message() -> None:
    with pytest.raises(CmdletError) as caught:
        read_over_the_wire("HV01", "hv01_read.xml", errors=(1,))
    err = caught.value
    assert (err.target, err.step) == ("HV01", "read (Get-VMHost)")
    assert "Virtual Machine Management service is not running" in err.detail


def test_terminating_preflight_error_is_a_warning_saying_the_read_stopped() -> None:
    state = read_over_the_wire("HV01", "hv01_read.xml", terminating=0)
    assert state.read_warnings[0].endswith("(the read stopped there)")


def test_failed_pipeline_with_an_unattributable_error_is_fatal() -> None:
    # names no read cmdlet: hvlm cannot tell what was not read
    with pytest.raises(CmdletError) as caught:
        read_over_the_wire("HV01", "hv01_read.xml", terminating=2)
    # the real message, and DOMAIN.md's explanation of the code it carries
    assert "No credentials are available in the security package" in str(caught.value)
    assert "0x8009030E: no credentials in the security package" in caught.value.hint


def test_any_error_hvlm_cannot_pin_on_a_cmdlet_is_fatal() -> None:
    move_vm = load_errors()[2]  # could have come from Get-VMMigrationNetwork: a partial read
    with pytest.raises(CmdletError, match=r"^HV01: read: Virtual machine migration operation"):
        parse_host_state("HV01", load_objects("hv01_read.xml"), [move_vm])
