"""Security facts of a simulated host that break migrations: Credential Guard (Win32_DeviceGuard)
and the Hyper-V migration listener's firewall rule (Get-/Enable-/Disable-NetFirewallRule).

Part of the lab (issue 14): `hyperv/host.py` registers `COMMANDS`, and `hyperv/preflight.py`'s
Get-CimInstance hands the DeviceGuard namespace to `get_device_guard`. Credential Guard comes from
the host's `LabHostConfig.credential_guard` (`hvlm lab up --credential-guard NAME`); the rule's
state lives on the host (`HostView.firewall_rules`) so that Enable-/Disable-NetFirewallRule over
PSRP change what Get-NetFirewallRule shows, as on Windows. Shapes and sources: FIDELITY.md.
"""

from __future__ import annotations

from typing import Any

from psrpcore.types import ErrorCategory, PSObject, PSType, PSUInt, PSUInt16

from hvlm_lab.cmdlets import ErrorInfo
from hvlm_lab.hyperv.binding import Bound, CmdletSpec, Kind, Param
from hvlm_lab.hyperv.config import CredentialGuard, LabHostConfig
from hvlm_lab.hyperv.objects import CIM, _NamedEnum, ps_object
from hvlm_lab.hyperv.runtime import Command, Emitter, HostView, has_wildcards, matches_any

DEVICE_GUARD_NAMESPACE = "root/microsoft/windows/deviceguard"
MIGRATION_RULE = "VIRT-MIGL-In-TCP-NoScope"
# Name -> (DisplayName, Description) of the rules the lab simulates (the Hyper-V role's).
RULES = {
    MIGRATION_RULE: ("Hyper-V (MIG-TCP-In)",
                     "Inbound rule for Hyper-V to allow planned failover of virtual machines. "
                     "[TCP]"),
}
CIM_JOB_EXCEPTION = "Microsoft.PowerShell.Cmdletization.Cim.CimJobException"
_NETSECURITY = "Microsoft.PowerShell.Cmdletization.GeneratedTypes.NetSecurity"


@PSType([f"{_NETSECURITY}.Enabled"])
class Enabled(_NamedEnum):
    """MSFT_NetFirewallRule.Enabled as NetSecurity's cmdletization enum (True = 1, False = 2;
    the members cannot be named True/False in Python: str() gives the .NET names)."""

    True_ = 1
    False_ = 2

    def __str__(self) -> str:
        return "True" if self is Enabled.True_ else "False"


def _rule_params() -> tuple[Param, ...]:
    return (
        Param("Name", Kind.STRINGS, position=0, aliases=("ID",)),
        Param("DisplayName", Kind.STRINGS),
        Param("PolicyStore", Kind.STRING),
        Param("CimSession", Kind.CIM_SESSIONS, aliases=("Session",)),
        Param("ThrottleLimit", Kind.UINT32),
        Param("AsJob", Kind.SWITCH),
    )


GET_RULE = CmdletSpec("Get-NetFirewallRule", "Get-NetFirewallRule", _rule_params())
ENABLE_RULE = CmdletSpec("Enable-NetFirewallRule", "Enable-NetFirewallRule",
                         _rule_params() + (Param("PassThru", Kind.SWITCH),), should_process=True)
DISABLE_RULE = CmdletSpec("Disable-NetFirewallRule", "Disable-NetFirewallRule",
                          _rule_params() + (Param("PassThru", Kind.SWITCH),), should_process=True)


# --- Win32_DeviceGuard ---------------------------------------------------------------------------


def device_guard(config: LabHostConfig) -> PSObject:
    """Get-CimInstance -Namespace root/Microsoft/Windows/DeviceGuard -ClassName Win32_DeviceGuard:
    SecurityServicesConfigured / SecurityServicesRunning are uint32 arrays, 1 = Credential Guard."""
    guard = config.credential_guard
    configured = [PSUInt(1)] if guard is not CredentialGuard.OFF else []
    running = [PSUInt(1)] if guard is CredentialGuard.RUNNING else []
    namespace = "root/Microsoft/Windows/DeviceGuard"
    return ps_object(
        [f"{CIM}#{namespace}/Win32_DeviceGuard", f"{CIM}#Win32_DeviceGuard", CIM],
        [
            ("AvailableSecurityProperties", [PSUInt(1), PSUInt(2), PSUInt(3)]),
            ("CodeIntegrityPolicyEnforcementStatus", PSUInt(0)),
            ("InstanceIdentifier", "4ff40742-2649-41b8-bdd1-e80fad1cce80"),
            ("RequiredSecurityProperties", [PSUInt(0)]),
            ("SecurityServicesConfigured", configured),
            ("SecurityServicesRunning", running),
            ("UsermodeCodeIntegrityPolicyEnforcementStatus", PSUInt(0)),
            ("Version", "1.0"),
            ("VirtualizationBasedSecurityStatus", PSUInt(2 if running else 0)),
        ],
    )


def get_device_guard(host: HostView, class_name: str, out: Emitter) -> bool:
    """Answer Win32_DeviceGuard; False when the class is not one of this namespace's."""
    if class_name.lower() != "win32_deviceguard":
        return False
    out.write(device_guard(host.config))
    return True


# --- firewall rules ------------------------------------------------------------------------------


def firewall_rule(name: str, enabled: bool) -> PSObject:
    """MSFT_NetFirewallRule as Get-NetFirewallRule writes it."""
    display, description = RULES[name]
    ns = "root/standardcimv2"
    return ps_object(
        [f"{CIM}#{ns}/MSFT_NetFirewallRule", f"{CIM}#{ns}/MSFT_NetSARule",
         f"{CIM}#{ns}/CIM_ManagedElement", f"{CIM}#MSFT_NetFirewallRule", f"{CIM}#MSFT_NetSARule",
         f"{CIM}#CIM_ManagedElement", CIM],
        [
            ("Name", name),
            ("ID", name),
            ("DisplayName", display),
            ("Description", description),
            ("DisplayGroup", "Hyper-V"),
            ("Group", "@%systemroot%\\system32\\vmms.exe,-251"),
            ("Enabled", Enabled.True_ if enabled else Enabled.False_),
            ("Profile", "Any"),
            ("Direction", PSUInt16(1)),  # Inbound
            ("Action", PSUInt16(2)),  # Allow
            ("PrimaryStatus", PSUInt16(1)),
        ],
    )


def _selected(host: HostView, bound: Bound, out: Emitter) -> list[str]:
    """The rules -Name / -DisplayName select; a literal value matching none: ObjectNotFound."""
    rules = host.firewall_rules()
    names, displays = bound.get("Name"), bound.get("DisplayName")
    chosen = [n for n in rules if matches_any(names, n) and matches_any(displays, RULES[n][0])]
    for prop, values, key in (("Name", names, lambda n: n), ("DisplayName", displays,
                                                              lambda n: RULES[n][0])):
        for value in values or []:
            if not has_wildcards(value) and not any(matches_any([value], key(n)) for n in rules):
                out.error(_not_found(out.spec, prop, value))
    return chosen


def _not_found(spec: CmdletSpec, prop: str, value: Any) -> ErrorInfo:
    return ErrorInfo(
        f"No MSFT_NetFirewallRule objects found with property '{prop}' equal to '{value}'.  "
        "Verify the value of the property and retry.",
        f"CmdletizationQuery_NotFound_{prop},{spec.name}", ErrorCategory.ObjectNotFound,
        CIM_JOB_EXCEPTION, value)


def get_net_firewall_rule(host: HostView, bound: Bound, out: Emitter) -> None:
    rules = host.firewall_rules()
    for name in _selected(host, bound, out):
        out.write(firewall_rule(name, rules[name]))


def _set_rules(enabled: bool) -> Any:
    def handler(host: HostView, bound: Bound, out: Emitter) -> None:
        for name in _selected(host, bound, out):
            if out.should_process():
                host.set_firewall_rule(name, enabled)
            if bound.get("PassThru"):
                out.write(firewall_rule(name, host.firewall_rules()[name]))
    return handler


COMMANDS = (
    Command(GET_RULE, get_net_firewall_rule),
    Command(ENABLE_RULE, _set_rules(True)),
    Command(DISABLE_RULE, _set_rules(False)),
)
