"""hvlm's own CLIXML reader (hvlm.hosts.clixml) on every element PowerShell's serializer writes.

Where it sits: unit tests of the reader that real hosts meet, on the production path: each answer
travels as a WSMan envelope through hvlm's PSRP client (tests/unit/psrp_wire.py, a transport seam:
PsrpClient.run -> HostSession.read -> hvlm.hosts.parse), or, for single values, through
hvlm.hosts.clixml.deserialize as hvlm.hosts.transport calls it for every message.

Every fixture is a recorded shape with its source:
- [PSRP] MS-PSRP, section 2.2.5.1.x "Serialization of Primitive Type Objects" (each element's
  XML content and the spec's example value), 2.2.5.2 complex objects (type names <TN>/<TNRef>,
  <ToString>, <Props>/<MS>, enums, <LST>/<IE>/<QUE>/<STK>, <DCT> with <En> Key/Value) and Appendix A
  (the XSD: "ps:Ref element can only refer to earlier ps:Obj elements");
- [PS] PowerShell's serializer, src/System.Management.Automation/engine/serialization.cs
  (PowerShell/PowerShell): `KnownTypes` (one element per .NET primitive: U16 for System.UInt16...),
  `WriteChar` (a char is its UInt16 code, XmlConvert.ToString((UInt16)c)), `WriteDouble`
  (XmlConvert.ToString(double): INF, -INF, NaN), and ErrorRecord.ToPSObjectForRemoting
  (ErrorPackage.cs: ErrorCategory_Message, ErrorDetails_Message, SerializeExtendedInfo, then
  InvocationInfo.ToPSObjectForRemoting's InvocationInfo_InvocationName and CommandInfo_Name).
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from hvlm.errors import HostError
from hvlm.hosts.clixml import PSObj, Record, as_obj, deserialize
from hvlm.hosts.parse import parse_host_state, prop
from hvlm.hosts.records import describe_record
from tests.unit.psrp_wire import FAILED, Answer, session

# -- every primitive element --------------------------------------------------------------------

# element, text as PowerShell writes it, what hvlm reads: [PSRP] section, and [PS] where it says more
PRIMITIVES: dict[str, tuple[str, str, object]] = {
    "String 2.2.5.1.1 (_xHHHH_ escapes)": ("S", "Line1_x000D__x000A_Line2", "Line1\r\nLine2"),
    "Character 2.2.5.1.2 ([PS] WriteChar: the UInt16 code)": ("C", "97", "a"),
    "Boolean 2.2.5.1.3": ("B", "true", True),
    "Boolean false 2.2.5.1.3": ("B", "false", False),
    "Date/Time 2.2.5.1.4": ("DT", "2008-04-11T10:42:32.2731993-07:00",
                            "2008-04-11T10:42:32.2731993-07:00"),
    "Duration 2.2.5.1.5": ("TS", "PT9.0269026S", "PT9.0269026S"),
    "Unsigned Byte 2.2.5.1.6": ("By", "254", 254),
    "Signed Byte 2.2.5.1.7": ("SB", "-127", -127),
    "Unsigned Short 2.2.5.1.8 (MSFT_NetIPAddress AddressState, firewall enums)":
        ("U16", "65535", 65535),
    "Signed Short 2.2.5.1.9": ("I16", "-32768", -32768),
    "Unsigned Int 2.2.5.1.10": ("U32", "4294967295", 4294967295),
    "Signed Int 2.2.5.1.11": ("I32", "-2147483648", -2147483648),
    "Unsigned Long 2.2.5.1.12": ("U64", "18446744073709551615", 18446744073709551615),
    "Signed Long 2.2.5.1.13": ("I64", "-9223372036854775808", -9223372036854775808),
    "Float 2.2.5.1.14": ("Sg", "12.34", 12.34),
    "Double 2.2.5.1.15": ("Db", "1.1", 1.1),
    "Double infinity ([PS] WriteDouble: XmlConvert)": ("Db", "-INF", -math.inf),
    "Decimal 2.2.5.1.16": ("D", "12.5", 12.5),
    "Array of Bytes 2.2.5.1.17": ("BA", "AQIDBA==", b"\x01\x02\x03\x04"),
    "GUID 2.2.5.1.18": ("G", "792e5b37-4505-47ef-b7d2-8711bb7affa8",
                        "792e5b37-4505-47ef-b7d2-8711bb7affa8"),
    "URI 2.2.5.1.19": ("URI", "http://www.microsoft.com/", "http://www.microsoft.com/"),
    "Version 2.2.5.1.21": ("Version", "6.2.1.3", "6.2.1.3"),
    "XML Document 2.2.5.1.22 (escaped markup)": (
        "XD", "&lt;name attribute=\"value\"&gt;Content&lt;/name&gt;",
        '<name attribute="value">Content</name>'),
    "ScriptBlock 2.2.5.1.23": ("SBK", "get-command -type cmdlet", "get-command -type cmdlet"),
    "Secure String 2.2.5.1.24 (kept as its ciphertext)": (
        "SS", "np7uo8n2ZhbN5Pp9LMpf03WLccPK1NQWYFQrg1UzyA8=",
        "np7uo8n2ZhbN5Pp9LMpf03WLccPK1NQWYFQrg1UzyA8="),
}


def read(xml: str) -> Any:
    return deserialize(xml.encode(), "an output object")


@pytest.mark.parametrize(("tag", "text", "expected"), PRIMITIVES.values(), ids=PRIMITIVES.keys())
def test_every_primitive_element_as_a_property(tag: str, text: str, expected: object) -> None:
    value = read(f'<Obj RefId="0"><Props><{tag} N="p">{text}</{tag}></Props>'
                 f'<MS><{tag} N="m">{text}</{tag}></MS></Obj>')
    for bag in (value.adapted_properties, value.extended_properties):
        got = next(iter(bag.values()))
        assert got == expected and type(got) is type(expected), (tag, got)


@pytest.mark.parametrize(("tag", "text", "expected"), PRIMITIVES.values(), ids=PRIMITIVES.keys())
def test_every_primitive_element_as_a_whole_message(tag: str, text: str, expected: object) -> None:
    """A pipeline may output a bare primitive (PIPELINE_OUTPUT of a string, an int...)."""
    assert read(f"<{tag}>{text}</{tag}>") == expected


def test_null_value_2_2_5_1_20_is_none_and_an_empty_string_is_empty() -> None:
    value = read('<Obj RefId="0"><Props><Nil N="a" /><S N="b" /><S N="c"></S></Props></Obj>')
    assert value.adapted_properties == {"a": None, "b": "", "c": ""}


def test_a_uint16_property_is_read_by_the_parser_over_the_wire() -> None:
    """MSFT_NetIPAddress.PrefixLength is a Byte and AddressState a UInt16 ([PS] KnownTypes):
    the address reaches HostFacts through the whole production path."""
    address = ('<Obj RefId="0"><TN RefId="0"><T>Microsoft.Management.Infrastructure.CimInstance#'
               "ROOT/StandardCimv2/MSFT_NetIPAddress</T><T>System.Object</T></TN><Props>"
               '<S N="IPAddress">192.168.10.11</S><By N="PrefixLength">24</By>'
               '<U16 N="AddressState">4</U16><U16 N="AddressFamily">2</U16></Props></Obj>')
    host, _ = session("HV01", Answer(output=[VMHOST, address.encode()]))
    state = host.read()
    assert [str(a) for a in state.facts.addresses] == ["192.168.10.11/24"]
    assert state.read_warnings == ()


# -- enums, references, collections -------------------------------------------------------------

VMHOST = (
    b'<Obj RefId="0"><TN RefId="0"><T>Deserialized.Microsoft.HyperV.PowerShell.VMHost</T>'
    b"<T>Deserialized.System.Object</T></TN><Props>"
    b'<B N="VirtualMachineMigrationEnabled">true</B>'
    b'<U32 N="MaximumVirtualMachineMigrations">2</U32><U32 N="MaximumStorageMigrations">2</U32>'
    b'<Obj N="VirtualMachineMigrationAuthenticationType" RefId="1"><TN RefId="1">'
    b"<T>Deserialized.Microsoft.HyperV.PowerShell.MigrationAuthenticationType</T>"
    b"<T>Deserialized.System.Enum</T><T>Deserialized.System.ValueType</T>"
    b"<T>Deserialized.System.Object</T></TN><ToString>Kerberos</ToString><I32>1</I32></Obj>"
    # the second enum reuses the type-name table entry of the first: <TNRef> ([PSRP] 2.2.5.2.3)
    b'<Obj N="VirtualMachineMigrationPerformanceOption" RefId="2"><TNRef RefId="1" />'
    b"<I32>2</I32></Obj>"
    b"</Props></Obj>"
)


def test_enums_with_and_without_their_name() -> None:
    """[PSRP] 2.2.5.2.7 enums: <ToString> (the name, when the serializer has it) and the integer
    value as the object's content; without <ToString> the parser falls back to the integer."""
    vmhost = as_obj(read(VMHOST.decode()))
    named = prop(vmhost, "VirtualMachineMigrationAuthenticationType")
    unnamed = prop(vmhost, "VirtualMachineMigrationPerformanceOption")
    assert (str(named), named.property_sets) == ("Kerberos", [1])
    assert (named.to_string, unnamed.to_string, unnamed.property_sets) == ("Kerberos", None, [2])
    assert unnamed.types == named.types  # the TNRef resolved to the earlier TN
    migration = parse_host_state("HV01", [vmhost]).migration
    assert (migration.authentication.value, migration.performance.value) == ("Kerberos", "SMB")


def test_a_ref_is_the_object_it_refers_to() -> None:
    """[PSRP] Appendix A: <Ref RefId> names an earlier <Obj RefId> of the same message
    (PowerShell writes a repeated reference once, then <Ref>)."""
    value = read('<Obj RefId="0"><MS><Obj N="first" RefId="1"><TN RefId="0"><T>X</T></TN>'
                 '<ToString>shared</ToString><Props><I32 N="n">7</I32></Props></Obj>'
                 '<Ref N="again" RefId="1" /><Ref N="unknown" RefId="9" /></MS></Obj>')
    first, again = value.extended_properties["first"], value.extended_properties["again"]
    assert again is first and str(again) == "shared" and again.adapted_properties == {"n": 7}
    assert value.extended_properties["unknown"] is None  # a reference to nothing is no value


@pytest.mark.parametrize("tag", ["LST", "IE", "QUE", "STK"])
def test_lists_queues_stacks_and_enumerables_are_lists(tag: str) -> None:
    """[PSRP] 2.2.5.2.6.1-3 (Stack, Queue, List) and IEnumerable: items in order, any element."""
    value = read(f'<Obj RefId="0"><TN RefId="0"><T>System.UInt32[]</T><T>System.Array</T>'
                 f"<T>System.Object</T></TN><{tag}><U32>1</U32><U32>2</U32><S>x</S><Nil />"
                 f"</{tag}></Obj>")
    assert value == [1, 2, "x", None]


def test_a_dictionary_is_a_dict_of_its_entries() -> None:
    """[PSRP] 2.2.5.2.6.4 dictionaries: <DCT><En><key N="Key"/><value N="Value"/></En></DCT>."""
    value = read('<Obj RefId="0"><TN RefId="0"><T>System.Collections.Hashtable</T>'
                 '<T>System.Object</T></TN><DCT><En><S N="Key">Subnet</S><S N="Value">10.0.0.0/8'
                 '</S></En><En><I32 N="Key">2</I32><Obj N="Value" RefId="1"><LST><I32>1</I32>'
                 "</LST></Obj></En></DCT></Obj>")
    assert value == {"Subnet": "10.0.0.0/8", 2: [1]}


def test_a_uint32_array_property_reaches_the_device_guard_fact() -> None:
    guard = (b'<Obj RefId="0"><TN RefId="0"><T>Deserialized.Microsoft.Management.Infrastructure.'
             b"CimInstance#root/Microsoft/Windows/DeviceGuard/Win32_DeviceGuard</T></TN><Props>"
             b'<Obj N="SecurityServicesConfigured" RefId="1"><TN RefId="1"><T>System.UInt32[]</T>'
             b"</TN><LST><U32>1</U32><U32>2</U32></LST></Obj>"
             b'<Obj N="SecurityServicesRunning" RefId="2"><TNRef RefId="1" /><LST><U32>1</U32>'
             b"</LST></Obj></Props></Obj>")
    host, _ = session("HV01", Answer(output=[VMHOST, guard]))
    guard_fact = host.read().facts.device_guard
    assert guard_fact is not None
    assert (guard_fact.configured, guard_fact.running) == ((1, 2), (1,))


# -- error records and warnings: every field hvlm reads -----------------------------------------


def error_record(*, details: str = "", invocation: str = "", command: str = "",
                 error_id: str = "OperationFailed", target: str = "") -> bytes:
    """An ErrorRecord as ToPSObjectForRemoting writes it ([PS] ErrorPackage.cs), with
    SerializeExtendedInfo true: InvocationInfo_* and CommandInfo_* follow it."""
    extended = (f'<B N="SerializeExtendedInfo">true</B>'
                f'<S N="InvocationInfo_InvocationName">{invocation}</S>'
                f'<S N="CommandInfo_Name">{command}</S>' if invocation or command
                else '<B N="SerializeExtendedInfo">false</B>')
    target_xml = f'<S N="TargetObject">{target}</S>' if target else '<Nil N="TargetObject" />'
    details_xml = (f'<S N="ErrorDetails_Message">{details}</S><Nil N="ErrorDetails_RecommendedAction" />'
                   if details else "")
    return (
        '<Obj RefId="0"><TN RefId="0"><T>System.Management.Automation.ErrorRecord</T>'
        "<T>System.Object</T></TN><ToString>the record's text</ToString><MS>"
        '<Obj N="Exception" RefId="1"><TN RefId="1"><T>System.Exception</T><T>System.Object</T>'
        '</TN><ToString>System.Exception: the exception</ToString><Props>'
        '<S N="Message">the exception</S><I32 N="HResult">-2146233087</I32></Props></Obj>'
        f'{target_xml}<S N="FullyQualifiedErrorId">{error_id}</S><I32 N="ErrorCategory_Category">'
        '7</I32><S N="ErrorCategory_Message">NotSpecified: (:) [], Exception</S>'
        f"{details_xml}{extended}</MS></Obj>"
    ).encode()


def test_an_error_record_carries_every_field_hvlm_reads() -> None:
    record = Record(as_obj(deserialize(
        error_record(details="the details", invocation="Get-VMMigrationNetwork",
                     command="Get-VMMigrationNetwork", error_id="X,Y.Z", target="HV01"),
        "an error record")))
    assert record.message == "NotSpecified: (:) [], Exception"
    assert record.details_message == "the details"
    assert record.fq_error == "X,Y.Z"
    assert record.target_object == "HV01"
    assert record.invocation_name == "Get-VMMigrationNetwork"
    assert record.command_name == "Get-VMMigrationNetwork"
    assert prop(record.exception, "Message") == "the exception"
    assert str(record) == "the record's text"


@pytest.mark.parametrize(("record", "cmdlet", "text"), [
    (error_record(details="the details"), "", "the details"),  # ErrorDetails wins
    (error_record(), "", "the exception"),  # then Exception.Message
    (error_record(invocation="Get-VMMigrationNetwork"), "Get-VMMigrationNetwork", "the exception"),
    (error_record(command="Get-VMHost"), "Get-VMHost", "the exception"),
    (error_record(error_id="Unspecified,Microsoft.HyperV.PowerShell.Commands.GetVMHost"),
     "Get-VMHost", "the exception"),
    (error_record(target="Get-NetIPAddress"), "Get-NetIPAddress", "the exception"),
])
def test_each_field_names_the_cmdlet_or_the_text(record: bytes, cmdlet: str, text: str) -> None:
    info = describe_record(Record(as_obj(deserialize(record, "an error record"))),
                           ("Get-VMHost", "Get-VMMigrationNetwork", "Get-NetIPAddress"))
    assert (info.cmdlet, info.message) == (cmdlet, text)


def test_an_error_record_over_the_wire_is_attributed_by_its_invocation_info() -> None:
    """A non-terminating error of Get-VMMigrationNetwork known only by InvocationInfo: the read
    is refused (a partial network list would plan wrong removals)."""
    host, _ = session("HV01", Answer(output=[VMHOST],
                                     errors=[error_record(invocation="Get-VMMigrationNetwork")]))
    with pytest.raises(HostError) as caught:
        host.read()
    assert str(caught.value) == "HV01: read (Get-VMMigrationNetwork): the exception"


def test_a_failed_pipeline_carries_its_reason_as_exception_as_error_record() -> None:
    """PIPELINE_STATE Failed ([PSRP] 2.2.2.21) with ExceptionAsErrorRecord: the record is the
    last error, and a reason hvlm cannot pin on a preflight cmdlet fails the read."""
    host, _ = session("HV01", Answer(output=[VMHOST], state=FAILED,
                                     terminating=error_record(details="the pipeline stopped")))
    with pytest.raises(HostError) as caught:
        host.read()
    assert str(caught.value) == "HV01: read: the pipeline stopped"


def test_warnings_are_read_by_their_informational_record_message() -> None:
    """WARNING_RECORD ([PSRP] 2.2.2.23): an InformationalRecord, InformationalRecord_Message."""
    warning = (b'<Obj RefId="0"><MS><S N="InformationalRecord_Message">low memory</S>'
               b'<B N="InformationalRecord_SerializeInvocationInfo">false</B></MS></Obj>')
    host, _ = session("HV01", Answer(output=[VMHOST], warnings=[warning]))
    result = host.invoke((), "read")
    assert result.warnings == ("low memory",)


# -- what hvlm does not read ---------------------------------------------------------------------

UNKNOWN = {
    "made up": "<Bogus N=\"x\">1</Bogus>",
    "Progress Record 2.2.5.1.25 (hvlm never reads PROGRESS_RECORD messages)":
        '<PR N="x"><AV>Activity</AV><AI>0</AI><Nil N="CO" /><PI>-1</PI><PC>-1</PC>'
        "<T>Processing</T><SR>-1</SR><SD>Status</SD></PR>",
    "SemanticVersion ([PS] SerializationStrings, PowerShell 7)":
        '<SemanticVersion N="x">7.4.0</SemanticVersion>',
}


@pytest.mark.parametrize("element", UNKNOWN.values(), ids=UNKNOWN.keys())
def test_an_unknown_element_is_one_clear_error_for_that_host(element: str) -> None:
    """Never a crash: deserialize refuses it (BadAnswer), the session maps it (HostError naming
    the host, the step and the element), and the other hosts are read."""
    tag = element[1:element.index(" ")]
    bad = f'<Obj RefId="0"><Props>{element}</Props></Obj>'.encode()
    broken, _ = session("HV02", Answer(output=[VMHOST, bad]))
    with pytest.raises(HostError) as caught:
        broken.read()
    assert str(caught.value) == (
        f"HV02: read: refused the host's answer: an output object holds invalid CLIXML "
        f"(unknown CLIXML element <{tag}>) (the host answered something that is not "
        "WSMan/PSRP as expected)")
    healthy, _ = session("HV01", Answer(output=[VMHOST]))
    assert healthy.read().migration.enabled is True


def test_in_a_fleet_only_that_host_is_unread() -> None:
    """The same through hvlm.reconcile: the host with the unknown element is unread (its reason
    says which element), the other host is read and planned; nothing escapes as a crash."""
    from hvlm.model import ConnectionSpec, DelegationSettings, HostSpec, Manifest
    from hvlm.model import MigrationSettings as Wanted
    from hvlm.reconcile import open_fleet

    bad = b'<Obj RefId="0"><Props><PR N="x"><AV>a</AV></PR></Props></Obj>'
    hosts = {"HV01": session("HV01", Answer(output=[VMHOST]))[0],
             "HV02": session("HV02", Answer(output=[VMHOST, bad]))[0]}
    specs = tuple(HostSpec(n, f"{n.lower()}.corp.example.com",
                           ConnectionSpec(f"{n.lower()}.corp.example.com", 5986),
                           Wanted(enabled=True), DelegationSettings()) for n in hosts)
    with open_fleet(Manifest("unknown-element", specs), parallelism=2, progress=False,
                    open_host=lambda spec: hosts[spec.key],
                    open_directory=lambda spec: None) as fleet:  # type: ignore[arg-type,return-value]
        observation = fleet.observe()
    assert set(observation.hosts) == {"HV01"}
    assert observation.host_errors == {"HV02": (
        "HV02: read: refused the host's answer: an output object holds invalid CLIXML (unknown "
        "CLIXML element <PR>) (the host answered something that is not WSMan/PSRP as expected)")}


def test_a_number_that_is_not_one_is_a_clear_error_too() -> None:
    broken, _ = session("HV02", Answer(output=[b'<Obj RefId="0"><Props><U16 N="x">lots</U16>'
                                               b"</Props></Obj>"]))
    with pytest.raises(HostError, match=r"^HV02: read: refused the host's answer: an output "
                                        r"object holds invalid CLIXML \(invalid literal"):
        broken.read()


def test_the_reader_returns_only_plain_values_and_psobjs() -> None:
    """What hvlm.hosts.parse can meet: str, int, bool, float, bytes, None, list, dict, PSObj."""
    value = read(VMHOST.decode())
    assert isinstance(value, PSObj)
    kinds = {type(v) for v in value.adapted_properties.values()}
    assert kinds <= {str, int, bool, float, bytes, type(None), list, dict, PSObj}
