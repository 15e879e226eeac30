"""hvlm.hosts.envelopes and hvlm.hosts.clixml without a host: framing and CLIXML, both ways.

The lab tests (tests/integration/test_hosts.py, tests/hostile/test_host_answers.py) drive these
through a real exchange; here each seam of the transport is checked on its own.
"""

from __future__ import annotations

import base64
import uuid
import xml.etree.ElementTree as ET

import pytest

from hvlm.hosts.clixml import PSObj, Record, deserialize, pipeline_xml
from hvlm.hosts.commands import READ_STATEMENTS, HostCommand
from hvlm.hosts.envelopes import (
    FRAGMENT,
    PIPELINE_OUTPUT,
    Defragmenter,
    Fragmenter,
    message,
    parse_xml,
)
from hvlm.hosts.errors import BadAnswer


def test_the_read_pipeline_is_serialised_once_and_carries_every_statement() -> None:
    first = pipeline_xml(READ_STATEMENTS)
    assert pipeline_xml(READ_STATEMENTS) is first  # cached: the same bytes for every host
    root = ET.fromstring(first)
    commands = [s.text for s in root.iter("S") if s.get("N") == "Cmd"]
    # every statement in ExtraCmds, then the first one again in Cmds
    assert commands == [c.cmdlet for c in READ_STATEMENTS] + [READ_STATEMENTS[0].cmdlet]


def test_parameter_values_are_escaped_never_spliced() -> None:
    hostile = HostCommand("Add-VMMigrationNetwork", (("Subnet", "10.0.0.0/24'; Stop-Computer <x>"),))
    root = ET.fromstring(pipeline_xml((hostile,)))
    values = [s.text for s in root.iter("S") if s.get("N") == "V"]
    assert "10.0.0.0/24'; Stop-Computer <x>" in values


def test_fragments_of_one_message_are_joined_across_streams() -> None:
    payload = message(PIPELINE_OUTPUT, uuid.uuid4(), uuid.uuid4(), b"<Obj RefId=\"0\" />" * 50)
    framed = Fragmenter(64).fragments(payload)
    cut = FRAGMENT.size + 64  # exactly the first fragment
    defragmenter = Defragmenter()
    assert defragmenter.messages(base64.b64encode(framed[:cut]).decode()) == []
    [(kind, data)] = defragmenter.messages(base64.b64encode(framed[cut:]).decode())
    assert (kind, data) == (PIPELINE_OUTPUT, payload[40:])


@pytest.mark.parametrize(
    "stream",
    [
        "not base64!",
        base64.b64encode(b"\x00" * 5).decode(),  # shorter than a fragment header
        base64.b64encode(FRAGMENT.pack(1, 0, 3, 100) + b"short").decode(),
    ],
)
def test_broken_framing_is_a_bad_answer(stream: str) -> None:
    with pytest.raises(BadAnswer):
        Defragmenter().messages(stream)


def test_xml_with_a_dtd_or_invalid_utf8_is_refused() -> None:
    with pytest.raises(BadAnswer, match="DTD"):
        parse_xml(b'<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>', "an answer")
    with pytest.raises(BadAnswer, match="UTF-8"):
        parse_xml(b"<x>\xff</x>", "an answer")


def test_objects_and_error_records_deserialise_to_light_objects() -> None:
    obj = deserialize(
        b'<Obj RefId="0"><TN RefId="0"><T>Microsoft.HyperV.PowerShell.VMHost</T></TN>'
        b'<ToString>HV01</ToString><Props><S N="Name">HV_x005F_x01</S><I32 N="N">7</I32>'
        b'<B N="On">true</B><Nil N="None" /></Props>'
        b'<MS><S N="FullyQualifiedErrorId">ObjectNotFound,X</S></MS></Obj>',
        "an output object",
    )
    assert isinstance(obj, PSObj)
    assert obj.types == ["Microsoft.HyperV.PowerShell.VMHost"] and str(obj) == "HV01"
    assert obj.adapted_properties == {"Name": "HV_x01", "N": 7, "On": True, "None": None}
    assert Record(obj).fq_error == "ObjectNotFound,X"


def test_unknown_clixml_is_a_bad_answer() -> None:
    with pytest.raises(BadAnswer, match="invalid CLIXML"):
        deserialize(b'<Obj RefId="0"><Props><Bogus N="x" /></Props></Obj>', "an output object")


def test_surrogate_escapes_decode_to_one_character_and_lone_ones_to_a_replacement() -> None:
    """PowerShell escapes a character outside the BMP as two _xHHHH_ UTF-16 units."""
    text = deserialize(b"<S>vm _xD83D__xDE00_ and _xD83D_</S>", "a string")
    assert text == "vm \U0001f600 and \ufffd"
    text.encode("utf-8")  # printable and encodable: never an internal error later


def test_clixml_nested_too_deeply_is_a_bad_answer_not_a_crash() -> None:
    data = b'<Obj RefId="0">' * 5000 + b"</Obj>" * 5000
    with pytest.raises(BadAnswer, match="nested too deeply"):
        deserialize(data, "an output object")


def test_unfinished_messages_are_capped_in_total() -> None:
    from hvlm.hosts.envelopes import FRAGMENT, MAX_MESSAGE_BYTES, Defragmenter

    defrag = Defragmenter()
    chunk = b"x" * (4 * 1024 * 1024)
    with pytest.raises(BadAnswer, match="unfinished PSRP messages"):
        for object_id in range(1, 2 + MAX_MESSAGE_BYTES // len(chunk)):
            start = FRAGMENT.pack(object_id, 0, 1, len(chunk)) + chunk  # a start, never an end
            defrag.messages(base64.b64encode(start).decode())
