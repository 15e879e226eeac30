"""Findings: the one catalogue of finding codes, and the rules the planner and check share. Pure.

Pipeline position: beside the observed state, below the plan. A finding is something a reviewer
must know and hvlm does not fix by itself. Two stages judge the observed fleet:

- the planner (hvlm.planner) reports what concerns the plan itself: what could not be read, a
  host apply refuses to touch, a host not in a domain, computer accounts (`Judge.PLANNER`);
- check (hvlm.check) judges everything else, per host and per pair (`Judge.CHECK`).

`hvlm check` runs check alone, which then also reports the planner's codes (live). `hvlm plan`
runs both: check in planned mode leaves the planner's codes out (`PLANNER_CODES`), so every
problem is reported once, under one code. A rule both need (unread host, not domain-joined, no
incoming network, computer account...) is a function here, called by both, never written twice.
The renderers (hvlm.render) show findings of both commands.

Every code, with its severity and the text of its message, fix and evidence, is a `Kind` in
`CATALOGUE`; text is a str.format template filled by the rule that raises it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import Any

from hvlm.errors import Diagnostic, Severity
from hvlm.model import HostSpec
from hvlm.state import DelegationState, HostFacts

ERROR, WARNING = Severity.ERROR, Severity.WARNING


@dataclass(frozen=True)
class Finding:
    """One finding (in a plan, or in `hvlm check`'s report)."""

    severity: Severity
    subject: str  # an address or target, e.g. "directory/HV01", or "HV01<->HV02" for a pair
    code: str  # stable kebab-case identifier, e.g. "unconstrained-delegation"
    message: str
    fix: str = ""
    evidence: str = ""
    # The VMs a per-VM finding is about (issue 22), all of them: the message lists a few.
    vms: tuple[str, ...] = ()

    @classmethod
    def from_diagnostic(cls, diagnostic: Diagnostic) -> Finding:
        """A validation warning (or error) of the manifest, shown with the plan."""
        where = f"{diagnostic.file}:{diagnostic.line}" if diagnostic.line else diagnostic.file
        subject = f"{where}: {diagnostic.path}" if diagnostic.path else where
        return MANIFEST.make(subject, diagnostic.severity, message=diagnostic.message)


def finding_document(finding: Finding) -> dict[str, Any]:
    """A finding in the plan file and in `hvlm check --format json` (`vms` only when the
    finding is about VMs)."""
    document: dict[str, Any] = {
        "severity": finding.severity.value,
        "subject": finding.subject,
        "code": finding.code,
        "message": finding.message,
        "fix": finding.fix,
        "evidence": finding.evidence,
    }
    if finding.vms:
        document["vms"] = list(finding.vms)
    return document


def finding_order(finding: Finding) -> tuple[int, str, str, str]:
    """Errors first, then by subject, code and message."""
    return (0 if finding.severity is ERROR else 1, finding.subject, finding.code,
            finding.message)


class Judge(str, Enum):
    """Which stage reports the code in `hvlm plan` (`hvlm check` reports every code)."""

    PLANNER = "planner"
    CHECK = "check"


@dataclass(frozen=True)
class Kind:
    code: str
    severity: Severity  # the usual severity; a rule may lower or raise it
    judge: Judge
    message: str  # str.format templates
    fix: str = ""
    evidence: str = ""

    def make(self, subject: str, severity: Severity | None = None, *,
             vms: tuple[str, ...] = (), **fields: object) -> Finding:
        return Finding(
            severity or self.severity, subject, self.code, self.message.format(**fields),
            self.fix.format(**fields), self.evidence.format(**fields), vms,
        )


_P, _C = Judge.PLANNER, Judge.CHECK
_HYPERV_FIX = "Install-WindowsFeature -Name Hyper-V -IncludeManagementTools -Restart"
_DOMAIN_EVIDENCE = "Win32_ComputerSystem.PartOfDomain={joined}, Domain={domain}"
_DELEGATION_EVIDENCE = "msDS-AllowedToDelegateTo of {src} holds neither '{short}' nor '{fqdn}'"

MANIFEST = Kind("manifest", WARNING, _P, "{message}")
HOST_UNREAD = Kind(
    "host-unread", ERROR, _P, "could not read {name}: {error}",
    fix="check that the host answers over WinRM with these credentials; apply skips it")
HOST_READ_WARNING = Kind(
    "host-read-warning", WARNING, _P, "{warning}",
    fix="what this cmdlet reports was not checked: make sure it exists on the host and that "
        "hvlm's account may run it")
DIRECTORY_UNREAD = Kind(
    "directory-unread", ERROR, _P,
    "the directory was not read: {error}; delegation and computer accounts were not checked",
    fix="check directory.servers and the directory credentials; apply makes no delegation change")
HYPERV_ROLE_MISSING = Kind(
    "hyperv-role-missing", ERROR, _C, "the Hyper-V role{module} is not installed on {name}{effect}",
    fix=_HYPERV_FIX, evidence="{evidence}")
NOT_DOMAIN_JOINED = Kind(
    "not-domain-joined", ERROR, _P,
    "{name} is not a member of a domain: live migration without a cluster needs both hosts in "
    "the same (or a trusted) AD domain",
    fix="join {name} to the domain", evidence=_DOMAIN_EVIDENCE)
OUTSIDE_DIRECTORY_DOMAIN = Kind(
    "outside-directory-domain", WARNING, _C,
    "{name} is in {domain}, not in the manifest's directory {directory}: its computer account "
    "is not where hvlm looks",
    fix="manage it with a manifest for its own domain", evidence=_DOMAIN_EVIDENCE)
_KERBEROS_FIX = ("migration.authentication: Kerberos in the manifest (constrained delegation: "
                 "hvlm apply writes it), then hvlm apply")
CREDSSP_ON_SERVER_2025 = Kind(
    "credssp-on-server-2025", WARNING, _C,
    "{name} runs Windows Server 2025 with CredSSP and Win32_DeviceGuard could not be read: "
    "Credential Guard (on by default on 2025) would break CredSSP live migration from {name}",
    fix=_KERBEROS_FIX,
    evidence="OS build {build} ({caption}), VirtualMachineMigrationAuthenticationType=CredSSP; "
             "Win32_DeviceGuard: {reason}")
CREDSSP_WITH_CREDENTIAL_GUARD = Kind(
    "credssp-with-credential-guard", ERROR, _C,
    "{name} runs Credential Guard and migrates with CredSSP: every CredSSP live migration from "
    "{name} fails",
    fix="switch to Kerberos: " + _KERBEROS_FIX,
    evidence="Win32_DeviceGuard.SecurityServicesRunning={running} (1 = Credential Guard), "
             "VirtualMachineMigrationAuthenticationType=CredSSP")
CREDENTIAL_GUARD_CONFIGURED = Kind(
    "credential-guard-configured", WARNING, _C,
    "Credential Guard is configured on {name} but not running yet: after the next reboot CredSSP "
    "live migration from {name} fails",
    fix="switch to Kerberos before rebooting: " + _KERBEROS_FIX,
    evidence="Win32_DeviceGuard.SecurityServicesConfigured={configured}, "
             "SecurityServicesRunning={running}")
MIGRATION_FIREWALL_CLOSED = Kind(
    "migration-firewall-closed", ERROR, _C,
    "{name} {state}: incoming live migrations (TCP 6600) are refused (0x8007274D/0x8007274C)",
    fix="on {name}: {fix_command} (hvlm never changes firewalls)",
    evidence="Get-NetFirewallRule -Name {rule}: {found}")
MIGRATION_DISABLED = Kind(
    "migration-disabled", WARNING, _C,
    "live migration is disabled on {name}: it neither sends nor receives",
    fix="migration.enabled: true (Enable-VMMigration)",
    evidence="VirtualMachineMigrationEnabled=False")
NO_INCOMING_NETWORK = Kind(
    "no-incoming-network", ERROR, _P,
    "migration is enabled on {name} with no incoming network: it cannot receive a "
    "migration{refused}",
    fix="declare migration.networks (a subnet the host has an address in), or useAnyNetwork: true",
    evidence="{evidence}")
ANY_NETWORK = Kind(
    "any-network", WARNING, _C,
    "{name} accepts migrations on any network: the traffic is not encrypted",
    fix="list a dedicated, trusted migration subnet in migration.networks (useAnyNetwork: false)",
    evidence="UseAnyNetworkForMigration=True")
NETWORK_WITHOUT_ADDRESS = Kind(
    "network-without-address", WARNING, _C,
    "{name} owns no address in its incoming migration network {network}{effect}",
    fix="give {name} an address in {network}, or correct the subnet",
    evidence="Get-NetIPAddress: {addresses}")
COMPUTER_ACCOUNT_MISSING = Kind(
    "computer-account-missing", ERROR, _P,
    "no computer account {name} in the directory: its delegation cannot be set",
    fix="join the host to the domain (or correct its name in the manifest)")
UNCONSTRAINED_DELEGATION = Kind(
    "unconstrained-delegation", ERROR, _P,
    "{name} is trusted for unconstrained delegation (any service, any user)",
    fix="set the account to 'Trust this computer for delegation to specified services only' "
        "(clears 0x00080000); hvlm never sets or clears this bit itself",
    evidence="userAccountControl=0x{uac:08x} includes TRUSTED_FOR_DELEGATION (0x00080000)")
PROTOCOL_TRANSITION_MISSING = Kind(
    "protocol-transition-missing", ERROR, _C,
    "{name} delegates with Kerberos only: a migration started remotely (not signed in on the "
    "source) fails with 0x8009030E 'No credentials are available'; the source document requires "
    "'use any authentication protocol'",
    fix="delegation.protocolTransition: true (\"use any authentication protocol\")",
    evidence="userAccountControl=0x{uac:08x} lacks TRUSTED_TO_AUTH_FOR_DELEGATION (0x01000000)")
AUTHENTICATION_MISMATCH = Kind(
    "authentication-mismatch", ERROR, _C,
    "{a} and {b} migrate with different authentication",
    fix="use the same migration.authentication on both (Kerberos is recommended)",
    evidence="{a}: {auth_a}, {b}: {auth_b}")
DOMAIN_MISMATCH = Kind(
    "domain-mismatch", ERROR, _C, "{a} and {b} are in different domains{effect}",
    fix="keep hosts that migrate among each other in one domain",
    evidence="{a}: {domain_a}, {b}: {domain_b}")
DELEGATION_MISSING = Kind(
    "delegation-missing", ERROR, _C,
    "{src} may not delegate to {dst}'s migration service{also}: a Kerberos migration from {src} "
    "to {dst} fails with 0x8009030D",
    fix="put {src} and {dst} in one group with authentication: Kerberos and run hvlm apply, then "
        "klist purge -li 0x3e7 on {src}",
    evidence=_DELEGATION_EVIDENCE)
STORAGE_DELEGATION_MISSING = Kind(
    "storage-delegation-missing", WARNING, _C,
    "{src} may not delegate to {dst}'s cifs service: storage moves from {src} to {dst} fail",
    fix="delegation.services: [migration, cifs], then hvlm apply", evidence=_DELEGATION_EVIDENCE)
VM_VERSION_UNSUPPORTED = Kind(
    "vm-version-unsupported", ERROR, _C,
    "{count} VM(s) on {src} have a configuration version {dst} cannot run",
    fix="keep them off {dst}, or upgrade {dst}'s OS",
    evidence="Get-VM on {src}: {listed}; Get-VMHostSupportedVersion on {dst}: {supported}")
# Per VM and direction (hvlm.readiness): {who} is the VM's name, or "N VMs" followed by {names}.
VM_SWITCH_MISSING = Kind(
    "vm-switch-missing", ERROR, _C,
    "{who} on {src} cannot move to {dst}: switch '{switch}' is missing on {dst}{names}",
    fix="create a virtual switch named '{switch}' on {dst} (New-VMSwitch -Name '{switch}'), or "
        "connect the adapters to a switch that both hosts have (Connect-VMNetworkAdapter)",
    evidence="Get-VMNetworkAdapter on {src}: {listed} on '{switch}'; Get-VMSwitch on {dst}: "
             "{switches}")
VM_SWITCH_CASE_DIFFERS = Kind(
    "vm-switch-case-differs", WARNING, _C,
    "{who} on {src} use switch '{switch}', which {dst} has only as '{peer_switch}'{names}: "
    "the names differ in case, and whether a migration matches them is not documented",
    fix="give the switch the same name on both hosts, case included (on {dst}: Rename-VMSwitch "
        "-Name '{peer_switch}' -NewName '{switch}')",
    evidence="Get-VMNetworkAdapter on {src}: {listed} on '{switch}'; Get-VMSwitch on {dst}: "
             "{switches}")
PROCESSOR_VENDOR_MISMATCH = Kind(
    "processor-vendor-mismatch", ERROR, _C,
    "{a} and {b} have processors of different manufacturers: no running VM can live-migrate "
    "between them, whatever its processor compatibility",
    fix="keep hosts of one processor manufacturer in a group; between {a} and {b} a VM moves "
        "only shut down",
    evidence="Win32_Processor.Manufacturer: {a} {vendor_a}, {b} {vendor_b}")
PROCESSOR_COMPATIBILITY_OFF = Kind(
    "processor-compatibility-off", ERROR, _C,
    "{who} on {src} cannot live-migrate to {dst}: processor compatibility is off and {dst} has "
    "another processor model{names}",
    fix="shut each VM down, then on {src}: Set-VMProcessor -VMName {vm_list} "
        "-CompatibilityForMigrationEnabled $true, and start it again",
    evidence="Win32_Processor.Name: {src} '{model_src}', {dst} '{model_dst}'; Get-VMProcessor on "
             "{src}: CompatibilityForMigrationEnabled=False for {listed}")
_SPN_EVIDENCE = "servicePrincipalName of {account}: {spns}"
MIGRATION_SPN_MISSING = Kind(
    "migration-spn-missing", ERROR, _C,
    "the computer account {account} lacks {missing}: Kerberos live migration to {name} fails "
    "with 0x80090322",
    fix="{commands} (the Hyper-V service registers them when it starts)",
    evidence=_SPN_EVIDENCE)
CIFS_SPN_MISSING = Kind(
    "cifs-spn-missing", WARNING, _C,
    "the computer account {account} has neither cifs/ nor HOST/ for {missing}: storage moves to "
    "{name} fail", fix="{commands}", evidence=_SPN_EVIDENCE)
SPN_DUPLICATE = Kind(
    "spn-duplicate", ERROR, _C,
    "SPNs of {name} are held by another account ({held}): the KDC cannot tell which account "
    "they name, and migrations to {name} fail with 0x8009030D / 0x80090322",
    fix="{commands}; setspn -X lists every duplicate in the domain",
    evidence="{held}")
DNSHOSTNAME_MISMATCH = Kind(
    "dnshostname-mismatch", WARNING, _C,
    "the computer account {account} has dNSHostName '{dns_host_name}', not the manifest's "
    "'{fqdn}': the SPNs and delegation values hvlm uses name {fqdn}",
    fix="correct the manifest's fqdn for {name}, or the account (Set-ADComputer {name} "
        "-DNSHostName {fqdn}), then setspn -S \"{migration}/{fqdn}\" {name}",
    evidence="dNSHostName={dns_host_name}")
TICKETS_NOT_REFRESHED = Kind(
    "tickets-not-refreshed", WARNING, _P,
    "the delegation of {name} changes but {name} is not selected",
    fix="run `klist purge -li 0x3e7` on {name}, or plan it with --host")
DELEGATION_NOT_REPLICATED = Kind(
    "delegation-not-replicated", ERROR, _P,
    "the delegation written for {name} has not reached {server} after {seconds} s (missing: "
    "{missing}){effect}",
    fix="check replication (repadmin /showrepl {server}), then run hvlm apply again: it picks up "
        "where this one stopped", evidence="{server} still lacks {missing}")

CATALOGUE: Mapping[str, Kind] = MappingProxyType({k.code: k for k in (
    MANIFEST, HOST_UNREAD, HOST_READ_WARNING, DIRECTORY_UNREAD, HYPERV_ROLE_MISSING,
    NOT_DOMAIN_JOINED, OUTSIDE_DIRECTORY_DOMAIN, CREDSSP_ON_SERVER_2025, MIGRATION_DISABLED,
    NO_INCOMING_NETWORK, ANY_NETWORK, NETWORK_WITHOUT_ADDRESS, COMPUTER_ACCOUNT_MISSING,
    UNCONSTRAINED_DELEGATION, PROTOCOL_TRANSITION_MISSING, AUTHENTICATION_MISMATCH,
    DOMAIN_MISMATCH, DELEGATION_MISSING, STORAGE_DELEGATION_MISSING, VM_VERSION_UNSUPPORTED,
    TICKETS_NOT_REFRESHED, CREDSSP_WITH_CREDENTIAL_GUARD, CREDENTIAL_GUARD_CONFIGURED,
    MIGRATION_FIREWALL_CLOSED, MIGRATION_SPN_MISSING, CIFS_SPN_MISSING, SPN_DUPLICATE,
    DNSHOSTNAME_MISMATCH, DELEGATION_NOT_REPLICATED, VM_SWITCH_MISSING, VM_SWITCH_CASE_DIFFERS,
    PROCESSOR_VENDOR_MISMATCH, PROCESSOR_COMPATIBILITY_OFF,
)})
# Codes the planner reports in `hvlm plan` (check leaves them out in planned mode).
PLANNER_CODES = frozenset(k.code for k in CATALOGUE.values() if k.judge is Judge.PLANNER)


# --- the rules both stages need ------------------------------------------------------------------


def host_unread(spec: HostSpec, error: str) -> Finding:
    return HOST_UNREAD.make(f"host/{spec.name}", name=spec.name,
                            error=error or "no state was returned")


def directory_unread(error: str | None) -> Finding:
    return DIRECTORY_UNREAD.make("directory", error=error or "no directory state")


def read_warnings(spec: HostSpec, warnings: Iterable[str]) -> Iterator[Finding]:
    for warning in warnings:
        yield HOST_READ_WARNING.make(f"host/{spec.name}", warning=warning)


def domain_evidence(facts: HostFacts) -> str:
    return _DOMAIN_EVIDENCE.format(joined=facts.part_of_domain, domain=facts.domain or "?")


def not_domain_joined(spec: HostSpec, facts: HostFacts) -> Finding | None:
    """Only when the host said so (None: it did not say)."""
    if facts.part_of_domain is not False:
        return None
    return NOT_DOMAIN_JOINED.make(f"host/{spec.name}", name=spec.name,
                                  joined=facts.part_of_domain, domain=facts.domain or "?")


def stranded(enabled: bool, use_any_network: bool, networks: Iterable[object]) -> bool:
    """Migration enabled, not on any network, and no network listed: it cannot receive one."""
    return enabled and not use_any_network and not any(True for _ in networks)


def no_incoming_network(spec: HostSpec, *, refused: bool = False, evidence: str = "") -> Finding:
    """`refused`: the plan changes the host and leaves it so, which apply refuses to do."""
    suffix = "; the manifest leaves it so: apply refuses to change this host" if refused else ""
    return NO_INCOMING_NETWORK.make(f"host/{spec.name}", name=spec.name, refused=suffix,
                                    evidence=evidence)


def computer_account_missing(spec: HostSpec, kerberos: bool) -> Finding:
    """An error for a host that delegates with Kerberos, a warning otherwise."""
    return COMPUTER_ACCOUNT_MISSING.make(f"directory/{spec.name}", ERROR if kerberos else WARNING,
                                         name=spec.name)


def unconstrained_delegation(spec: HostSpec, account: DelegationState) -> Finding | None:
    if not account.unconstrained:
        return None
    return UNCONSTRAINED_DELEGATION.make(f"directory/{spec.name}", name=spec.name,
                                         uac=account.user_account_control)
