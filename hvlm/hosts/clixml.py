"""CLIXML, the PowerShell serialisation inside PSRP messages: hvlm's pipelines out, host objects in.

Where it sits: the hosts backend (hvlm.hosts), below hvlm.reconcile and hvlm.backends.
hvlm.hosts.transport (the per-host exchange) calls `pipeline_xml` for every pipeline it creates
(the read, the writes, the verification read: one path) and `deserialize` for every message a
host sends; hvlm.hosts.parse / records read the objects it returns. Pure: no I/O, no pypsrp.

Out: the CLIXML of a pipeline is built as text and cached per distinct statement list (issue 16:
the read pipeline is the same on every host; a write's statement list is the same on every host
with the same changes), derived from the HostCommands given (hvlm.hosts.commands). In: answers are
read through hvlm.hosts.envelopes.parse_xml (strict UTF-8, no DTD) straight into light objects
(`PSObj`, `Record`) carrying what hvlm.hosts.parse / records read (pypsrp's attribute names).
Invalid CLIXML is a `BadAnswer`, which hvlm.hosts.errors' map_exception turns into one line.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any
from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape

from hvlm.hosts.commands import HostCommand
from hvlm.hosts.envelopes import parse_xml
from hvlm.hosts.errors import BadAnswer

# -- serialise: what hvlm sends ------------------------------------------------------------------

CAPABILITY_XML = (
    '<Obj RefId="0"><MS><Version N="protocolversion">2.3</Version><Version N="PSVersion">2.0'
    '</Version><Version N="SerializationVersion">1.1.0.1</Version></MS></Obj>'
)
_ENUM_TN = "<TN RefId=\"{ref}\"><T>{name}</T><T>System.Enum</T><T>System.ValueType</T>" \
           "<T>System.Object</T></TN>"
_HOST_INFO = (
    '<Obj RefId="{ref}" N="HostInfo"><MS><B N="_isHostNull">true</B><B N="_isHostUINull">true</B>'
    '<B N="_isHostRawUINull">true</B><B N="_useRunspaceHost">true</B></MS></Obj>'
)
_RUNSPACES = "System.Management.Automation.Runspaces."
INIT_XML = (
    '<Obj RefId="0"><MS><I32 N="MinRunspaces">1</I32><I32 N="MaxRunspaces">1</I32>'
    '<Obj RefId="1" N="PSThreadOptions">'
    + _ENUM_TN.format(ref=0, name=_RUNSPACES + "PSThreadOptions")
    + '<ToString>Default</ToString><I32>0</I32></Obj><Obj RefId="2" N="ApartmentState">'
    + _ENUM_TN.format(ref=1, name=_RUNSPACES + "ApartmentState")
    + "<ToString>UNKNOWN</ToString><I32>2</I32></Obj>"
    + _HOST_INFO.format(ref=3)
    + '<Nil N="ApplicationArguments" /></MS></Obj>'
)


def _clixml_string(text: str) -> str:
    """CLIXML string escaping (_xHHHH_ for '_x' and characters XML cannot carry) + XML escaping."""
    if "_x" in text or any(ord(c) < 0x20 or 0xD800 <= ord(c) <= 0xDFFF for c in text):
        text = "".join(
            f"_x{ord(c):04X}_" if ord(c) < 0x20 or 0xD800 <= ord(c) <= 0xDFFF else c
            for c in text.replace("_x", "_x005F_x")
        )
    return escape(text)


def _value_xml(name: str, value: object) -> str:
    if value is None:
        return f'<Nil N="{name}" />'
    if isinstance(value, bool):
        return f'<B N="{name}">{"true" if value else "false"}</B>'
    if isinstance(value, int):
        tag = "I32" if -(2**31) <= value < 2**31 else "I64"
        return f'<{tag} N="{name}">{value}</{tag}>'
    return f'<S N="{name}">{_clixml_string(str(value))}</S>'


class _Refs:
    def __init__(self) -> None:
        self.next = 0
        self.types: dict[str, int] = {}

    def obj(self) -> int:
        self.next += 1
        return self.next - 1

    def tn(self, key: str, body: str) -> str:
        if key in self.types:
            return f'<TNRef RefId="{self.types[key]}" />'
        self.types[key] = len(self.types)
        return body.format(ref=self.types[key])


_LIST = ("<TN RefId=\"{ref}\"><T>System.Collections.Generic.List`1[[System.Management.Automation."
         "PSObject, System.Management.Automation, Version=1.0.0.0, Culture=neutral, PublicKeyToken="
         "31bf3856ad364e35]]</T><T>System.Object</T></TN>")
_MERGES = ("MergeMyResult", "MergeToResult", "MergePreviousResults", "Args", "MergeError",
           "MergeWarning", "MergeVerbose", "MergeDebug", "MergeInformation")


def _command_xml(command: HostCommand, refs: _Refs) -> str:
    parts = [f'<Obj RefId="{refs.obj()}"><MS><S N="Cmd">{_clixml_string(command.cmdlet)}</S>'
             '<B N="IsScript">false</B><Nil N="UseLocalScope" />']
    for merge in _MERGES:
        if merge == "Args":
            args = [_value_xml("N", name) + _value_xml("V", value)
                    for name, value in command.parameters]
            args += ['<Nil N="N" />' + _value_xml("V", a) for a in command.arguments]
            ref = refs.obj()
            tn = refs.tn("list", _LIST)
            items = "".join(f'<Obj RefId="{refs.obj()}"><MS>{a}</MS></Obj>' for a in args)
            lst = f"<LST>{items}</LST>" if items else "<LST />"
            parts.append(f'<Obj RefId="{ref}" N="Args">{tn}{lst}</Obj>')
            continue
        tn = refs.tn("merge", _ENUM_TN.format(ref="{ref}", name=_RUNSPACES + "PipelineResultTypes"))
        parts.append(f'<Obj RefId="{refs.obj()}" N="{merge}">{tn}<ToString>None</ToString>'
                     "<I32>0</I32></Obj>")
    parts.append("</MS></Obj>")
    return "".join(parts)


def _statement_xml(commands: Iterable[HostCommand], refs: _Refs, name: str) -> str:
    ref = refs.obj()
    tn = refs.tn("list", _LIST)  # before the children: a TNRef may only follow its TN
    body = "".join(_command_xml(c, refs) for c in commands)
    return f'<Obj RefId="{ref}" N="{name}">{tn}<LST>{body}</LST></Obj>'


@lru_cache(maxsize=256)
def pipeline_xml(statements: tuple[HostCommand, ...]) -> bytes:
    """The CREATE_PIPELINE CLIXML of `statements` (one command each), serialised once per run."""
    refs = _Refs()
    top = refs.obj()
    head = (f'<Obj RefId="{top}"><MS><B N="NoInput">true</B>'
            f'<Obj RefId="{refs.obj()}" N="ApartmentState">'
            + refs.tn("apartment", _ENUM_TN.format(ref="{ref}", name=_RUNSPACES + "ApartmentState"))
            + f'<ToString>UNKNOWN</ToString><I32>2</I32></Obj><Obj RefId="{refs.obj()}" '
            'N="RemoteStreamOptions">'
            + refs.tn("stream", _ENUM_TN.format(ref="{ref}",
                                                name=_RUNSPACES + "RemoteStreamOptions"))
            + '<ToString>AddInvocationInfo</ToString><I32>15</I32></Obj>'
            '<B N="AddToHistory">false</B>' + _HOST_INFO.format(ref=refs.obj()))
    ps_ref = refs.obj()
    extra_ref = refs.obj()
    extra_tn = refs.tn("list", _LIST)
    items = "".join(
        f'<Obj RefId="{refs.obj()}"><MS>{_statement_xml((s,), refs, "Cmds")}</MS></Obj>'
        for s in statements
    )
    extra = (f'<Obj RefId="{extra_ref}" N="ExtraCmds">{extra_tn}<LST>{items}</LST>'
             "</Obj>")
    first = _statement_xml(statements[:1], refs, "Cmds")
    return (head + f'<Obj RefId="{ps_ref}" N="PowerShell"><MS><B N="IsNested">false</B>'
            + extra + first + '<Nil N="History" /><B N="RedirectShellErrorOutputPipe">false</B>'
            '</MS></Obj><B N="IsNested">false</B></MS></Obj>').encode()



# -- deserialised objects ----------------------------------------------------------------------


class PSObj:
    """A deserialised object: what hvlm.hosts.parse reads of pypsrp's GenericComplexObject."""

    __slots__ = (
        "adapted_properties",
        "extended_properties",
        "property_sets",
        "to_string",
        "types",
    )

    def __init__(self) -> None:
        self.types: list[str] = []
        self.adapted_properties: dict[str, Any] = {}
        self.extended_properties: dict[str, Any] = {}
        self.to_string: str | None = None
        self.property_sets: list[Any] = []

    def __str__(self) -> str:
        return self.to_string if self.to_string is not None else ""

    def __repr__(self) -> str:
        return f"PSObj({self.types[:1]}, {self.to_string!r})"


class Record:
    """An ErrorRecord or a warning: the fields hvlm.hosts.records reads (pypsrp's names)."""

    def __init__(self, obj: PSObj) -> None:
        props = {**obj.adapted_properties, **obj.extended_properties}
        self.obj = obj
        self.message = props.get("ErrorCategory_Message") or props.get(
            "InformationalRecord_Message")
        self.details_message = props.get("ErrorDetails_Message")
        self.fq_error = props.get("FullyQualifiedErrorId")
        self.exception = props.get("Exception")
        self.target_object = props.get("TargetObject")
        self.invocation_name = props.get("InvocationInfo_InvocationName")
        self.command_name = props.get("CommandInfo_Name")

    def __str__(self) -> str:
        return str(self.obj) or str(self.message or "")


_INTS = frozenset(("I32", "I16", "I64", "U16", "U32", "U64", "By", "SB"))
_TEXTS = frozenset(("DT", "G", "URI", "Version", "XD", "SBK", "TS", "SS"))
_ESCAPED = re.compile(r"_x([0-9A-Fa-f]{4})_")


def _unescape(text: str | None) -> str:
    """PowerShell's _xHHHH_ escapes are UTF-16 code units: a pair of surrogates is one character
    (an emoji in a VM name); a lone one becomes U+FFFD, never an unencodable str."""
    if not text:
        return ""
    if "_x" not in text:
        return text
    units = _ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), text)
    return units.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


class _Reader:
    def __init__(self) -> None:
        self.refs: dict[str | None, Any] = {}
        self.types: dict[str | None, list[str]] = {}

    def value(self, el: Element) -> Any:
        tag = el.tag
        if tag == "S":
            return _unescape(el.text)
        if tag in _INTS:
            return int(el.text or "")
        if tag == "B":
            return (el.text or "").strip().lower() == "true"
        if tag == "Nil":
            return None
        if tag == "Obj":
            return self.obj(el)
        if tag == "Ref":
            return self.refs.get(el.get("RefId"))
        if tag in _TEXTS:
            return _unescape(el.text)
        if tag in ("Db", "Sg", "D"):
            return float(el.text or "")
        if tag == "C":
            return chr(int(el.text or ""))
        if tag == "BA":
            return base64.b64decode(el.text or "")
        raise ValueError(f"unknown CLIXML element <{tag}>")

    def obj(self, el: Element) -> Any:
        obj = PSObj()
        result: Any = obj
        for child in el:
            tag = child.tag
            if tag == "TN":
                obj.types = [t.text or "" for t in child]
                self.types[child.get("RefId")] = obj.types
            elif tag == "TNRef":
                obj.types = self.types.get(child.get("RefId"), [])
            elif tag == "ToString":
                obj.to_string = _unescape(child.text)
            elif tag == "Props":
                obj.adapted_properties = self.props(child)
            elif tag == "MS":
                obj.extended_properties = self.props(child)
            elif tag in ("LST", "IE", "QUE", "STK"):
                result = [self.value(item) for item in child]
            elif tag == "DCT":
                result = {self.value(en[0]): self.value(en[1]) for en in child if len(en) == 2}
            else:
                obj.property_sets.append(self.value(child))
        self.refs[el.get("RefId")] = result
        return result

    def props(self, el: Element) -> dict[str, Any]:
        return {_unescape(p.get("N")): self.value(p) for p in el}


def deserialize(data: bytes, what: str) -> Any:
    root = parse_xml(data, what)
    try:
        return _Reader().value(root)
    except RecursionError:  # nesting no host needs: refused, never a crash of the run
        raise BadAnswer(f"{what} holds CLIXML nested too deeply") from None
    except (ValueError, TypeError, IndexError, OverflowError) as exc:
        raise BadAnswer(f"{what} holds invalid CLIXML ({exc})") from exc



def as_obj(value: Any) -> PSObj:
    if not isinstance(value, PSObj):
        raise BadAnswer("a PSRP message that is not an object")
    return value


def int_property(value: Any, name: str) -> int:
    obj = as_obj(value)
    number = obj.extended_properties.get(name, obj.adapted_properties.get(name))
    if not isinstance(number, int) or isinstance(number, bool):
        raise BadAnswer(f"a PSRP message without a valid {name}")
    return number
