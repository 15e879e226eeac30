"""PowerShell-like parameter binding and error records for the simulated Hyper-V host.

Part of the lab: `hyperv/host.py` declares each cmdlet as a `CmdletSpec` and binds every
`Invocation` (from the PSRP server, see `cmdlets.py`) here before running it. Binding follows
PowerShell: case-insensitive names, aliases, unambiguous prefixes, positional arguments in position
order, the common parameters (-ErrorAction, -WarningAction...), -WhatIf/-Confirm on cmdlets that
change state, conversions with PowerShell's messages, and ParameterBindingException error
records whose FullyQualifiedErrorId is "<Id>,<implementing type>", as a real host sends them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from psrpcore.types import ErrorCategory

from hvlm_lab.cmdlets import ErrorInfo, Invocation

BINDING_EXCEPTION = "System.Management.Automation.ParameterBindingException"


class Kind(Enum):
    """How a parameter's value is converted (and the .NET type named in messages)."""

    STRING = "System.String"
    STRINGS = "System.String[]"
    UINT32 = "System.UInt32"
    UINT32S = "System.UInt32[]"
    BOOL = "System.Boolean"
    SWITCH = "System.Management.Automation.SwitchParameter"
    ENUM = "enum"
    ANY = "System.Object"
    CIM_SESSIONS = "Microsoft.Management.Infrastructure.CimSession[]"


class ActionPreference(Enum):
    """System.Management.Automation.ActionPreference."""

    SilentlyContinue = 0
    Stop = 1
    Continue = 2
    Inquire = 3
    Ignore = 4
    Suspend = 5
    Break = 6


@dataclass(frozen=True)
class Param:
    name: str
    kind: Kind = Kind.STRING
    position: int | None = None
    mandatory: bool = False
    aliases: tuple[str, ...] = ()
    enum: type[Enum] | None = None
    enum_type_name: str = ""
    not_empty: bool = False  # [ValidateNotNullOrEmpty]
    pipeline: bool = False  # ValueFromPipeline / ByPropertyName (by the parameter's name)


COMMON_PARAMETERS = (
    Param("Verbose", Kind.SWITCH, aliases=("vb",)),
    Param("Debug", Kind.SWITCH, aliases=("db",)),
    Param("ErrorAction", Kind.ENUM, aliases=("ea",), enum=ActionPreference,
          enum_type_name="System.Management.Automation.ActionPreference"),
    Param("WarningAction", Kind.ENUM, aliases=("wa",), enum=ActionPreference,
          enum_type_name="System.Management.Automation.ActionPreference"),
    Param("InformationAction", Kind.ENUM, aliases=("infa",), enum=ActionPreference,
          enum_type_name="System.Management.Automation.ActionPreference"),
    Param("ErrorVariable", aliases=("ev",)),
    Param("WarningVariable", aliases=("wv",)),
    Param("InformationVariable", aliases=("iv",)),
    Param("OutVariable", aliases=("ov",)),
    Param("OutBuffer", Kind.UINT32, aliases=("ob",)),
    Param("PipelineVariable", aliases=("pv",)),
)
SHOULD_PROCESS_PARAMETERS = (
    Param("WhatIf", Kind.SWITCH, aliases=("wi",)),
    Param("Confirm", Kind.SWITCH, aliases=("cf",)),
)


# The parameters by which a Hyper-V or CIM cmdlet targets hosts (every cmdlet the lab serves
# that reads a host takes them; -ComputerName must name this host).
HOST_PARAMS = (
    Param("ComputerName", Kind.STRINGS, not_empty=True),
    Param("Credential", Kind.ANY),
    Param("CimSession", Kind.CIM_SESSIONS),
)


@dataclass(frozen=True)
class CmdletSpec:
    """A command as PowerShell knows it: its name, implementing type and parameters."""

    name: str
    type_name: str  # the FullyQualifiedErrorId suffix, e.g. ...Commands.SetVMHost
    params: tuple[Param, ...]
    should_process: bool = False
    common: bool = True

    def all_params(self) -> tuple[Param, ...]:
        extra = COMMON_PARAMETERS if self.common else ()
        return self.params + extra + (SHOULD_PROCESS_PARAMETERS if self.should_process else ())

    def pipeline_params(self) -> tuple[Param, ...]:
        return tuple(p for p in self.params if p.pipeline)


class BindingError(Exception):
    """A terminating error raised while binding (or running) a command."""

    def __init__(self, info: ErrorInfo) -> None:
        super().__init__(info.message)
        self.info = info


@dataclass
class Bound:
    """The parameters a command was bound with, by canonical name."""

    values: dict[str, Any] = field(default_factory=dict)

    def __contains__(self, name: str) -> bool:
        return name in self.values

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)

    def preference(self, name: str) -> ActionPreference:
        value = self.values.get(name, ActionPreference.Continue)
        return value if isinstance(value, ActionPreference) else ActionPreference.Continue


def binding_error(spec: CmdletSpec, error_id: str, message: str, target: Any = None,
                  category: ErrorCategory = ErrorCategory.InvalidArgument) -> BindingError:
    return BindingError(ErrorInfo(message, f"{error_id},{spec.type_name}", category,
                                  BINDING_EXCEPTION, target))


def resolve_name(spec: CmdletSpec, given: str) -> Param:
    """Exact name or alias first, then a unique prefix; otherwise PowerShell's errors."""
    wanted = given.lstrip("-").rstrip(":").lower()
    params = spec.all_params()
    for param in params:
        if wanted == param.name.lower() or wanted in (a.lower() for a in param.aliases):
            return param
    matches = [p for p in params
               if p.name.lower().startswith(wanted)
               or any(a.lower().startswith(wanted) for a in p.aliases)]
    if len(matches) == 1 and wanted:
        return matches[0]
    if len(matches) > 1 and wanted:
        names = " ".join(f"-{p.name}" for p in matches)
        raise binding_error(
            spec, "AmbiguousParameter",
            f"Parameter cannot be processed because the parameter name '{given}' is ambiguous. "
            f"Possible matches include: {names}.")
    raise binding_error(
        spec, "NamedParameterNotFound",
        f"A parameter cannot be found that matches parameter name '{given}'.", given)


def bind(spec: CmdletSpec, invocation: Invocation, downstream: bool = False) -> Bound:
    """Bind named then positional arguments; check mandatory ones (not pipeline ones if fed)."""
    bound = Bound()
    for given, raw in invocation.parameters:
        param = resolve_name(spec, given)
        if param.name in bound:
            raise binding_error(
                spec, "ParameterAlreadyBound",
                f"Cannot bind parameter because parameter '{param.name}' is specified more than "
                "once. To provide multiple values to parameters that can accept multiple values, "
                'use the array syntax. For example, "-parameter value1,value2,value3".')
        bound.values[param.name] = convert(spec, param, raw, named=True)
    positional = sorted((p for p in spec.params if p.position is not None),
                        key=lambda p: p.position or 0)
    free = [p for p in positional if p.name not in bound]
    for raw in invocation.arguments:
        if not free:
            raise binding_error(
                spec, "PositionalParameterNotFound",
                f"A positional parameter cannot be found that accepts argument '{raw}'.", raw)
        param = free.pop(0)
        bound.values[param.name] = convert(spec, param, raw, named=False)
    check_mandatory(spec, bound, skip_pipeline=downstream)
    return bound


def check_mandatory(spec: CmdletSpec, bound: Bound, skip_pipeline: bool = False) -> None:
    missing = [p.name for p in spec.params
               if p.mandatory and p.name not in bound and not (skip_pipeline and p.pipeline)]
    if missing:
        raise binding_error(
            spec, "MissingMandatoryParameter",
            "Cannot process command because of one or more missing mandatory parameters: "
            f"{' '.join(missing)}.")


def convert(spec: CmdletSpec, param: Param, raw: Any, named: bool = True) -> Any:
    """Convert one wire value to the parameter's type, with PowerShell's error records."""
    if param.kind is Kind.SWITCH:
        return True if raw is None else bool(raw)
    if raw is None and named:
        type_name = param.enum_type_name or param.kind.value
        raise binding_error(
            spec, "MissingArgument",
            f"Missing an argument for parameter '{param.name}'. Specify a parameter of type "
            f"'{type_name}' and try again.")
    value = _CONVERTERS[param.kind](spec, param, raw)
    if param.not_empty and (value is None or value == "" or value == []):
        raise binding_error(
            spec, "ParameterArgumentValidationError",
            f"Cannot validate argument on parameter '{param.name}'. The argument is null or "
            "empty. Provide an argument that is not null or empty, and then try the command "
            "again.")
    return value


def _cannot_convert(spec: CmdletSpec, param: Param, raw: Any, type_name: str,
                    error: str) -> BindingError:
    return binding_error(
        spec, "CannotConvertArgumentNoMessage",
        f"Cannot bind parameter '{param.name}'. Cannot convert value \"{_ps_str(raw)}\" to type "
        f"\"{type_name}\". Error: \"{error}\"", raw)


def _ps_str(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, Enum):
        return value.name
    if isinstance(value, (list, tuple)):
        return " ".join(_ps_str(v) for v in value)
    return "" if value is None else str(value)


def _as_list(raw: Any) -> list[Any]:
    return list(raw) if isinstance(raw, (list, tuple)) else [raw]


def _to_string(spec: CmdletSpec, param: Param, raw: Any) -> Any:
    return None if raw is None else _ps_str(raw)


def _to_strings(spec: CmdletSpec, param: Param, raw: Any) -> Any:
    return [_ps_str(v) for v in _as_list(raw)]


def _to_uint32(spec: CmdletSpec, param: Param, raw: Any) -> int:
    if isinstance(raw, (list, tuple)):
        raise _cannot_convert(spec, param, raw, "System.UInt32",
                              'Cannot convert the "System.Object[]" value of type '
                              '"System.Object[]" to type "System.UInt32".')
    if raw is None:
        return 0
    try:
        value = _parse_int(raw)
    except ValueError:
        raise _cannot_convert(spec, param, raw, "System.UInt32",
                              "Input string was not in a correct format.") from None
    if not 0 <= value <= 0xFFFFFFFF:
        raise _cannot_convert(spec, param, raw, "System.UInt32",
                              "Value was either too large or too small for a UInt32.")
    return value


def _parse_int(raw: Any) -> int:
    if not isinstance(raw, str):
        return int(raw)
    text = raw.strip()
    if text.lower().startswith("0x"):
        return int(text[2:], 16)
    return int(text, 10)


def _to_uint32s(spec: CmdletSpec, param: Param, raw: Any) -> list[int]:
    return [_to_uint32(spec, param, v) for v in _as_list(raw)]


def _to_bool(spec: CmdletSpec, param: Param, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int):
        return raw != 0
    type_name = "System.String" if isinstance(raw, str) else "System.Object"
    raise binding_error(
        spec, "ParameterArgumentTransformationError",
        f"Cannot process argument transformation on parameter '{param.name}'. Cannot convert "
        f'value "{type_name}" to type "System.Boolean". Boolean parameters accept only Boolean '
        "values and numbers, such as $True, $False, 1 or 0.", raw)


def _to_enum(spec: CmdletSpec, param: Param, raw: Any) -> Enum:
    assert param.enum is not None
    members: Mapping[str, Enum] = param.enum.__members__
    names = ", ".join(members)
    if isinstance(raw, Enum):
        raw = raw.value
    if isinstance(raw, str) and raw.strip().lstrip("-").isdigit():
        raw = int(raw.strip())
    if isinstance(raw, int) and not isinstance(raw, bool):
        for member in members.values():
            if member.value == raw:
                return member
        raise binding_error(
            spec, "CannotConvertArgumentNoMessage",
            f"Cannot bind parameter '{param.name}'. Cannot convert value \"{raw}\" to type "
            f"\"{param.enum_type_name}\" due to enumeration values that are not valid. Specify "
            "one of the following enumeration values and try again. The possible enumeration "
            f"values are \"{','.join(members)}\".", raw)
    text = _ps_str(raw).strip()
    for name, member in members.items():
        if name.lower() == text.lower():
            return member
    raise _cannot_convert(
        spec, param, raw, param.enum_type_name,
        f"Unable to match the identifier name {text} to a valid enumerator name. Specify one of "
        f"the following enumerator names and try again:\n{names}")


def _to_any(spec: CmdletSpec, param: Param, raw: Any) -> Any:
    return raw


def _to_cim_sessions(spec: CmdletSpec, param: Param, raw: Any) -> Any:
    raise binding_error(
        spec, "CannotConvertArgumentNoMessage",
        f"Cannot bind parameter '{param.name}'. Cannot convert the \"{_ps_str(raw)}\" value of "
        f"type \"{type(raw).__name__}\" to type "
        "\"Microsoft.Management.Infrastructure.CimSession\".", raw)


_CONVERTERS: dict[Kind, Callable[[CmdletSpec, Param, Any], Any]] = {
    Kind.STRING: _to_string,
    Kind.STRINGS: _to_strings,
    Kind.UINT32: _to_uint32,
    Kind.UINT32S: _to_uint32s,
    Kind.BOOL: _to_bool,
    Kind.ENUM: _to_enum,
    Kind.ANY: _to_any,
    Kind.CIM_SESSIONS: _to_cim_sessions,
}
