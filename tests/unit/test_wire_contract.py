"""The security boundary asserted on the wire: cmdlets with typed parameters, never a script.

Where it sits: unit tests of what hvlm's PSRP client (hvlm.hosts.transport, driven by
hvlm.hosts.session) puts into the WSMan Command envelope. The envelopes are captured at the
transport seam (tests/unit/psrp_wire.py) and decoded HERE, independently of hvlm: the base64
`rsp:Arguments`, the fragments (MS-PSRP 2.2.4) and the CREATE_PIPELINE message (2.2.2.10), whose
CLIXML is read twice, as raw XML (which element types carry the values) and by psrpcore's
server-side deserialiser (the one the lab's hosts use), which reads it as a PowerShell host does:
MS-PSRP 2.2.3.11 PowerShell, 2.2.3.12 Command: `Cmd`, `IsScript`, `Args` of {N, V}; with
`ExtraCmds` (several statements) the host runs those, one statement each.

A host runs a Command with IsScript true as script text: the boundary "cmdlets with parameters,
never scripts" is exactly IsScript false, the command name as sent, and every value a typed
parameter value.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

import psrpcore.types
import pytest

from hvlm.hosts.commands import READ_STATEMENTS, HostCommand
from tests.unit.psrp_wire import Answer, session

# The metacharacters of PowerShell's grammar that could end, chain or expand a command.
HOSTILE = "10.0.0.0/8; Remove-Item C:\\ -Recurse | Out-Null $(Stop-Computer) ' \" ` & @x _x0041_"
CMDLET = re.compile(r"^[A-Za-z]+(-[A-Za-z]+)?$")


def statements(pipeline: ET.Element) -> list[list[ET.Element]]:
    """The Command objects of each statement, as the host reads them: ExtraCmds when present."""
    powershell = pipeline.find("./MS/Obj[@N='PowerShell']")
    assert powershell is not None
    extra = powershell.find("./MS/Obj[@N='ExtraCmds']/LST")
    groups = ([s.find("./MS/Obj[@N='Cmds']/LST") for s in extra] if extra is not None
              else [powershell.find("./MS/Obj[@N='Cmds']/LST")])
    return [list(g) for g in groups if g is not None]


def raw(command: ET.Element) -> tuple[str, str, list[tuple[str, str | None, str | None]]]:
    """(Cmd, IsScript's text, [(element type of V, N, V's text)]) of one Command, as XML."""
    ms = command.find("MS")
    assert ms is not None
    name = ms.find("S[@N='Cmd']")
    is_script = ms.find("B[@N='IsScript']")
    assert name is not None and is_script is not None
    args = []
    for arg in ms.findall("./Obj[@N='Args']/LST/Obj/MS"):
        key, value = arg.find("*[@N='N']"), arg.find("*[@N='V']")
        assert key is not None and value is not None
        args.append((value.tag, key.text if key.tag == "S" else None, value.text))
    return name.text or "", is_script.text or "", args


def decoded(pipeline: ET.Element) -> list[list[tuple[str, bool, list[tuple[Any, Any]]]]]:
    """The same pipeline as psrpcore's server side reads it: (Cmd, IsScript, [(N, V)])."""
    ps = psrpcore.types.deserialize(pipeline, None).PowerShell
    return [[(str(c.Cmd), c.IsScript, [(a.N, a.V) for a in c.Args]) for c in statement.Cmds]
            for statement in ps.ExtraCmds]


def sent(commands: tuple[HostCommand, ...]) -> ET.Element:
    host, transport = session("HV01", Answer())
    host.invoke(commands, "apply")
    [pipeline] = transport.sent_pipelines()
    return pipeline


def test_the_read_is_cmdlets_with_typed_parameters_never_a_script() -> None:
    host, transport = session("HV01", Answer(output=[]))
    host.invoke(READ_STATEMENTS, "read")
    [pipeline] = transport.sent_pipelines()
    got = [[raw(c) for c in s] for s in statements(pipeline)]
    assert all(len(s) == 1 for s in got)  # one command per statement
    assert all(is_script == "false" for [(_, is_script, _)] in got)
    assert all(CMDLET.match(name) for [(name, _, _)] in got), got
    # hand-written: what the essential statements and a parameterised one look like on the wire
    assert got[0] == [("Get-VMHost", "false", [])]
    assert got[1] == [("Get-VMMigrationNetwork", "false", [])]
    assert [("Get-CimInstance", "false", [("S", "ClassName", "Win32_ComputerSystem")])] in got
    assert [("Get-NetFirewallRule", "false", [("S", "Name", "VIRT-MIGL-In-TCP-NoScope")])] in got
    # and every read statement, as many as there are, arrives as written (one statement each)
    assert [[(n, [(k, v) for _, k, v in a]) for n, _, a in s] for s in got] == [
        [(c.cmdlet, [(k, str(v)) for k, v in c.parameters])] for c in READ_STATEMENTS]


def test_psrpcore_reads_the_read_as_a_host_does() -> None:
    host, transport = session("HV01", Answer(output=[]))
    host.invoke(READ_STATEMENTS, "read")
    [pipeline] = transport.sent_pipelines()
    assert decoded(pipeline) == [[(c.cmdlet, False, list(c.parameters))] for c in READ_STATEMENTS]


def test_every_parameter_arrives_typed() -> None:
    pipeline = sent((
        HostCommand("Set-VMHost", (("MaximumStorageMigrations", 3),
                                   ("UseAnyNetworkForMigration", False),
                                   ("VirtualMachineMigrationAuthenticationType", "Kerberos"),
                                   ("Huge", 2**40))),
        HostCommand("Enable-VMMigration", (("Confirm", None),)),
        HostCommand("klist", arguments=("purge", "-li", "0x3e7")),
    ))
    assert [[raw(c) for c in s] for s in statements(pipeline)] == [
        [("Set-VMHost", "false", [("I32", "MaximumStorageMigrations", "3"),
                                  ("B", "UseAnyNetworkForMigration", "false"),
                                  ("S", "VirtualMachineMigrationAuthenticationType", "Kerberos"),
                                  ("I64", "Huge", str(2**40))])],
        [("Enable-VMMigration", "false", [("Nil", "Confirm", None)])],  # a switch: no value
        # positional arguments of a native command: N is <Nil/>, each value its own argument
        [("klist", "false", [("S", None, "purge"), ("S", None, "-li"), ("S", None, "0x3e7")])],
    ]
    statement = decoded(pipeline)
    assert statement[0] == [("Set-VMHost", False, [
        ("MaximumStorageMigrations", 3), ("UseAnyNetworkForMigration", False),
        ("VirtualMachineMigrationAuthenticationType", "Kerberos"), ("Huge", 2**40)])]
    assert [type(v).__name__ for _, v in statement[0][0][2]] == ["PSInt", "bool", "PSString",
                                                                 "PSInt64"]
    assert statement[2] == [("klist", False, [(None, "purge"), (None, "-li"), (None, "0x3e7")])]


@pytest.mark.parametrize("value", [
    HOSTILE,
    "a\nb\r\tc\x00d",  # control characters: _xHHHH_ escapes, back to themselves on the host
    "<S N=\"Cmd\">Stop-Computer</S></MS>",  # markup: escaped, never a second element
    "emoji \U0001f600 and lone \ud800",
])
def test_metacharacters_arrive_as_the_value_of_their_parameter(value: str) -> None:
    pipeline = sent((HostCommand("Add-VMMigrationNetwork", (("Subnet", value), ("Priority", 1))),
                     HostCommand("Enable-VMMigration")))
    [[add], [enable]] = decoded(pipeline)
    assert add == ("Add-VMMigrationNetwork", False, [("Subnet", value), ("Priority", 1)])
    assert enable == ("Enable-VMMigration", False, [])
    names = [c.findtext("MS/S[@N='Cmd']") for c in pipeline.iter("Obj")
             if c.find("MS/S[@N='Cmd']") is not None]
    assert set(names) == {"Add-VMMigrationNetwork", "Enable-VMMigration"}  # nothing else to run
    assert all(value not in (name or "") for name in names)


def test_a_write_goes_the_same_way_through_apply() -> None:
    """HostSession.apply (the write path) sends its steps with -ErrorAction Stop, typed."""
    host, transport = session("HV01", Answer())
    result = host.apply((HostCommand("Add-VMMigrationNetwork", (("Subnet", HOSTILE),
                                                                ("Priority", 0))),))
    assert result.ok
    [pipeline] = transport.sent_pipelines()
    assert [[raw(c) for c in s] for s in statements(pipeline)] == [
        [("Add-VMMigrationNetwork", "false", [("S", "Subnet", HOSTILE.replace("_x", "_x005F_x")),
                                              ("I32", "Priority", "0"),
                                              ("S", "ErrorAction", "Stop")])]]
