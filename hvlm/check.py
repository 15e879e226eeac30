"""Preflight: what will break a live migration, per host and per pair (`hvlm check`). Pure core.

Pipeline position: beside the planner. `hvlm check` observes the fleet exactly as `hvlm plan` does
(hvlm.reconcile.Fleet.observe: one read per host, one directory search) and calls `check_fleet`,
which does no I/O. `hvlm plan` can pass `check_fleet(..., mode=Mode.PLANNED)` to
`build_plan(findings=...)`: it then judges the fleet as it will be once the plan is applied and
leaves out what the planner reports itself (`PLANNER_CODES`).

Subjects: `host/HV01`, `directory/HV01`, `directory`, a directed pair `HV01->HV02` (HV01 is the
source) or an unordered pair `HV01<->HV02`. Codes are stable (kebab-case):

    host-unread, host-read-warning, directory-unread                    what could not be judged
    hyperv-role-missing, not-domain-joined, outside-directory-domain    host requirements
    credssp-on-server-2025, migration-disabled, no-incoming-network     host settings
    any-network, network-without-address                                incoming networks
    computer-account-missing, unconstrained-delegation,
    protocol-transition-missing                                         computer accounts
    authentication-mismatch, domain-mismatch                            HV01<->HV02
    delegation-missing, storage-delegation-missing, vm-version-unsupported   HV01->HV02

Decisions: delegation toward a destination counts when EITHER name form is present (short name or
FQDN, compared case-insensitively as the KDC does): hvlm writes both, but an administrator's
single form is enough for a migration started with that name. Delegation is judged only on pairs
where both hosts use Kerberos (a pair that differs is one authentication-mismatch, its root
cause); a missing migration value is one error that also names a missing cifs value, a missing
cifs value alone is a warning (storage moves only). Protocol transition is judged on the account
of every Kerberos host. The network check needs the host's addresses; a host
that did not report any is not judged. A host whose read failed because Get-VMHost does not
exist (CommandNotFoundException: no Hyper-V module) is reported as hyperv-role-missing, not as
host-unread.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

from hvlm.errors import Severity
from hvlm.model import (
    AuthenticationType,
    DelegationService,
    HostSpec,
    IPNetwork,
    Manifest,
    desired_delegation,
)
from hvlm.plan import Finding
from hvlm.state import DelegationState, HostState, ObservationLike

ERROR, WARNING = Severity.ERROR, Severity.WARNING
FORMAT_VERSION = 1
# Findings the planner reports itself (hvlm.planner): left out in Mode.PLANNED.
PLANNER_CODES = frozenset({
    "host-unread", "host-read-warning", "directory-unread", "computer-account-missing",
    "unconstrained-delegation",
})
_MAX_LISTED = 5
# A read that failed because the Hyper-V cmdlets do not exist (CommandNotFoundException).
_HYPERV_MODULE_MISSING = re.compile(r"'Get-VM\w*' is not recognized", re.IGNORECASE)


class Mode(str, Enum):
    LIVE = "live"  # the fleet as it is (hvlm check)
    PLANNED = "planned"  # as it will be once hvlm apply has made the manifest true (hvlm plan)


@dataclass(frozen=True)
class _View:
    """One read host as check judges it (live, or as planned)."""

    spec: HostSpec
    state: HostState
    authentication: AuthenticationType
    enabled: bool
    use_any_network: bool
    networks: tuple[IPNetwork, ...]
    account: DelegationState | None
    delegation: frozenset[str]  # lower-cased msDS-AllowedToDelegateTo values
    protocol_transition: bool

    @property
    def kerberos(self) -> bool:
        return self.authentication is AuthenticationType.KERBEROS


def check_fleet(
    manifest: Manifest,
    observation: ObservationLike,
    *,
    selection: Sequence[str] = (),
    mode: Mode = Mode.LIVE,
) -> list[Finding]:
    """Every finding for the selected hosts (all when empty) and the pairs they are part of."""
    wanted = {name.upper() for name in selection}
    specs = [s for s in manifest.hosts if not wanted or s.key in wanted]
    index = {spec.key: spec for spec in manifest.hosts}
    views = {s.key: _view(s, observation, index, mode) for s in specs
             if s.key in observation.hosts and s.key not in observation.host_errors}
    found: list[Finding] = []
    if manifest.directory is not None and observation.directory is None:
        found.append(_directory_unread(observation.directory_error))
    for spec in specs:
        view = views.get(spec.key)
        if view is None:
            found.append(_host_unread(spec, observation.host_errors.get(spec.key, "")))
            continue
        found.extend(_host_findings(view, manifest))
        if observation.directory is not None:
            found.extend(_account_findings(view))
    found.extend(_pair_findings(specs, views))
    if mode is Mode.PLANNED:
        found = [f for f in found if f.code not in PLANNER_CODES]
    return sorted(set(found), key=_order)


def has_errors(findings: Sequence[Finding]) -> bool:
    return any(f.severity is ERROR for f in findings)


def _order(finding: Finding) -> tuple[int, str, str, str]:
    return (0 if finding.severity is ERROR else 1, finding.subject, finding.code, finding.message)


# --- views -------------------------------------------------------------------------------------


def _view(
    spec: HostSpec, observation: ObservationLike, index: Mapping[str, HostSpec], mode: Mode
) -> _View:
    state = observation.hosts[spec.key]
    live = state.migration
    directory = observation.directory
    account = directory.account(spec.name) if directory is not None else None
    values = frozenset(v.lower() for v in (account.allowed_to_delegate_to if account else ()))
    transition = account.protocol_transition if account else False
    if mode is Mode.LIVE:
        return _View(spec, state, live.authentication, live.enabled, live.use_any_network,
                     tuple(n.subnet for n in live.networks), account, values, transition)
    wanted = spec.migration
    if account is not None:
        peers = tuple(index[p.upper()] for p in spec.peers if p.upper() in index)
        values |= {v.lower() for v in desired_delegation(spec, peers)}
        if spec.uses_kerberos and spec.delegation.protocol_transition is not None:
            transition = spec.delegation.protocol_transition
    any_network = live.use_any_network if wanted.use_any_network is None \
        else wanted.use_any_network
    networks = tuple(n.subnet for n in live.networks) if wanted.networks is None \
        else tuple(n.subnet for n in wanted.networks)
    return _View(
        spec, state, wanted.authentication or live.authentication,
        live.enabled if wanted.enabled is None else wanted.enabled,
        any_network, networks, account, values, transition,
    )


# --- hosts -------------------------------------------------------------------------------------


def _host_unread(spec: HostSpec, error: str) -> Finding:
    if _HYPERV_MODULE_MISSING.search(error):
        return Finding(
            ERROR, f"host/{spec.name}", "hyperv-role-missing",
            f"the Hyper-V role (and its PowerShell module) is not installed on {spec.name}: "
            "its migration settings could not be read",
            fix="Install-WindowsFeature -Name Hyper-V -IncludeManagementTools -Restart",
            evidence=error,
        )
    return Finding(
        ERROR, f"host/{spec.name}", "host-unread",
        f"could not read {spec.name}: {error or 'no state was returned'}",
        fix="check that the host answers over WinRM with these credentials",
    )


def _directory_unread(error: str | None) -> Finding:
    return Finding(
        ERROR, "directory", "directory-unread",
        f"the directory was not read: {error or 'no directory state'}; "
        "delegation and computer accounts were not checked",
        fix="check directory.servers and the directory credentials",
    )


def _host_findings(view: _View, manifest: Manifest) -> Iterator[Finding]:
    subject, facts = f"host/{view.spec.name}", view.state.facts
    for warning in view.state.read_warnings:
        yield Finding(WARNING, subject, "host-read-warning", warning,
                      fix="what this cmdlet reports was not checked: make sure it exists on "
                          "the host and that hvlm's account may run it")
    if facts.hyperv_installed is False:
        yield Finding(
            ERROR, subject, "hyperv-role-missing",
            f"the Hyper-V role is not installed on {view.spec.name}",
            fix="Install-WindowsFeature -Name Hyper-V -IncludeManagementTools -Restart",
            evidence="Get-WindowsFeature -Name Hyper-V: not Installed",
        )
    yield from _domain_findings(view, manifest)
    yield from _settings_findings(view)
    yield from _network_findings(view)


def _domain_findings(view: _View, manifest: Manifest) -> Iterator[Finding]:
    subject, facts = f"host/{view.spec.name}", view.state.facts
    evidence = f"Win32_ComputerSystem.PartOfDomain={facts.part_of_domain}, " \
               f"Domain={facts.domain or '?'}"
    if facts.part_of_domain is False:
        yield Finding(
            ERROR, subject, "not-domain-joined",
            f"{view.spec.name} is not a member of a domain: live migration without a cluster "
            "needs both hosts in the same (or a trusted) AD domain",
            fix=f"join {view.spec.name} to the domain", evidence=evidence,
        )
    elif facts.part_of_domain and manifest.directory is not None and facts.domain \
            and facts.domain.lower().rstrip(".") != manifest.directory.domain.lower():
        yield Finding(
            WARNING, subject, "outside-directory-domain",
            f"{view.spec.name} is in {facts.domain}, not in the manifest's directory "
            f"{manifest.directory.domain}: its computer account is not where hvlm looks",
            fix="manage it with a manifest for its own domain", evidence=evidence,
        )


def _settings_findings(view: _View) -> Iterator[Finding]:
    subject, facts = f"host/{view.spec.name}", view.state.facts
    if not view.kerberos and facts.is_server_2025_or_later:
        yield Finding(
            ERROR, subject, "credssp-on-server-2025",
            f"{view.spec.name} runs Windows Server 2025 with CredSSP: Credential Guard (on by "
            "default) breaks CredSSP live migration",
            fix="authentication: Kerberos, with constrained delegation (hvlm apply writes it)",
            evidence=f"OS build {facts.os_build or '?'} ({facts.os_caption or '?'}), "
                     "VirtualMachineMigrationAuthenticationType=CredSSP",
        )
    if not view.enabled and view.spec.peers:
        yield Finding(
            WARNING, subject, "migration-disabled",
            f"live migration is disabled on {view.spec.name}: it neither sends nor receives",
            fix="migration.enabled: true (Enable-VMMigration)",
            evidence="VirtualMachineMigrationEnabled=False",
        )
    if view.enabled and not view.use_any_network and not view.networks:
        yield Finding(
            ERROR, subject, "no-incoming-network",
            f"migration is enabled on {view.spec.name} with no incoming network: "
            "it cannot receive a migration",
            fix="declare migration.networks (a subnet the host has an address in)",
            evidence="Get-VMMigrationNetwork: none, UseAnyNetworkForMigration=False",
        )


def _network_findings(view: _View) -> Iterator[Finding]:
    subject, addresses = f"host/{view.spec.name}", view.state.facts.addresses
    if view.use_any_network:
        yield Finding(
            WARNING, subject, "any-network",
            f"{view.spec.name} accepts migrations on any network: the traffic is not encrypted",
            fix="list a dedicated, trusted migration subnet in migration.networks "
                "(useAnyNetwork: false)",
            evidence="UseAnyNetworkForMigration=True",
        )
        return
    if not addresses or not view.networks:
        return
    empty = [net for net in view.networks if not any(a.ip in net for a in addresses)]
    severity = ERROR if len(empty) == len(view.networks) else WARNING
    owned = ", ".join(str(a) for a in addresses[:8])
    for net in empty:
        yield Finding(
            severity, subject, "network-without-address",
            f"{view.spec.name} owns no address in its incoming migration network {net}"
            + (": no migration can reach it" if severity is ERROR else ""),
            fix=f"give {view.spec.name} an address in {net}, or correct the subnet",
            evidence=f"Get-NetIPAddress: {owned}",
        )


# --- computer accounts -------------------------------------------------------------------------


def _account_findings(view: _View) -> Iterator[Finding]:
    name, account = view.spec.name, view.account
    subject = f"directory/{name}"
    if account is None:
        yield Finding(
            ERROR if view.kerberos else WARNING, subject, "computer-account-missing",
            f"no computer account {name} in the directory: its delegation cannot be set",
            fix="join the host to the domain (or correct its name in the manifest)",
        )
        return
    uac = f"userAccountControl=0x{account.user_account_control:08x}"
    if account.unconstrained:
        yield Finding(
            ERROR, subject, "unconstrained-delegation",
            f"{name} is trusted for unconstrained delegation (any service, any user)",
            fix="set the account to 'Trust this computer for delegation to specified services "
                "only' (clears 0x00080000); hvlm never sets or clears this bit itself",
            evidence=f"{uac} includes TRUSTED_FOR_DELEGATION (0x00080000)",
        )
    if view.kerberos and not view.protocol_transition:
        yield Finding(
            ERROR, subject, "protocol-transition-missing",
            f"{name} delegates with Kerberos only: a migration started remotely (not signed in "
            "on the source) fails with 0x8009030E 'No credentials are available'; the source "
            "document requires 'use any authentication protocol'",
            fix="delegation.protocolTransition: true (\"use any authentication protocol\")",
            evidence=f"{uac} lacks TRUSTED_TO_AUTH_FOR_DELEGATION (0x01000000)",
        )


# --- pairs -------------------------------------------------------------------------------------


def _pair_findings(specs: Sequence[HostSpec], views: Mapping[str, _View]) -> Iterator[Finding]:
    order = {spec.key: i for i, spec in enumerate(specs)}
    for spec in specs:
        source = views.get(spec.key)
        for peer in spec.peers:
            target = views.get(peer.upper())
            if source is None or target is None:
                continue
            if order[spec.key] < order[target.spec.key]:
                yield from _symmetric(source, target)
            if source.kerberos and target.kerberos and source.account is not None:
                yield from _delegation(source, target)
            yield from _vm_versions(source, target)


def _symmetric(a: _View, b: _View) -> Iterator[Finding]:
    subject = f"{a.spec.name}<->{b.spec.name}"
    if a.authentication is not b.authentication:
        yield Finding(
            ERROR, subject, "authentication-mismatch",
            f"{a.spec.name} and {b.spec.name} migrate with different authentication",
            fix="use the same migration.authentication on both (Kerberos is recommended)",
            evidence=f"{a.spec.name}: {a.authentication.value}, "
                     f"{b.spec.name}: {b.authentication.value}",
        )
    da, db = a.state.facts.domain.lower().rstrip("."), b.state.facts.domain.lower().rstrip(".")
    if a.state.facts.part_of_domain and b.state.facts.part_of_domain and da and db and da != db:
        kerberos = a.kerberos or b.kerberos
        yield Finding(
            ERROR if kerberos else WARNING, subject, "domain-mismatch",
            f"{a.spec.name} and {b.spec.name} are in different domains"
            + (": constrained delegation works within one domain only" if kerberos
               else ": they need a trust between the domains"),
            fix="keep hosts that migrate among each other in one domain",
            evidence=f"{a.spec.name}: {da}, {b.spec.name}: {db}",
        )


def _missing(source: _View, target: HostSpec, service: DelegationService) -> tuple[str, ...]:
    """The two acceptable values, or () when either form is present."""
    forms = (f"{service.spn_class}/{target.name}", f"{service.spn_class}/{target.fqdn}")
    return () if any(f.lower() in source.delegation for f in forms) else forms


def _delegation(source: _View, target: _View) -> Iterator[Finding]:
    subject, src, dst = f"{source.spec.name}->{target.spec.name}", source.spec, target.spec
    forms = _missing(source, dst, DelegationService.MIGRATION)
    cifs = _missing(source, dst, DelegationService.CIFS) \
        if DelegationService.CIFS in src.delegation.services else ()
    if forms:
        also = " (nor to its cifs service, for storage moves)" if cifs else ""
        yield Finding(
            ERROR, subject, "delegation-missing",
            f"{src.name} may not delegate to {dst.name}'s migration service{also}: a Kerberos "
            f"migration from {src.name} to {dst.name} fails with 0x8009030D",
            fix=f"put {src.name} and {dst.name} in one group with authentication: Kerberos and "
                f"run hvlm apply, then klist purge -li 0x3e7 on {src.name}",
            evidence=f"msDS-AllowedToDelegateTo of {src.name} holds neither '{forms[0]}' "
                     f"nor '{forms[1]}'",
        )
    elif cifs:
        yield Finding(
            WARNING, subject, "storage-delegation-missing",
            f"{src.name} may not delegate to {dst.name}'s cifs service: storage moves from "
            f"{src.name} to {dst.name} fail",
            fix="delegation.services: [migration, cifs], then hvlm apply",
            evidence=f"msDS-AllowedToDelegateTo of {src.name} holds neither '{cifs[0]}' "
                     f"nor '{cifs[1]}'",
        )


def _version_key(version: str) -> tuple[int, ...] | str:
    try:
        parts = [int(p) for p in version.strip().split(".")]
    except ValueError:
        return version.strip().lower()
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def _vm_versions(source: _View, target: _View) -> Iterator[Finding]:
    supported = target.state.facts.supported_versions
    if not supported or not source.state.facts.vms:
        return
    keys = {_version_key(v) for v in supported}
    bad = [vm for vm in source.state.facts.vms if _version_key(vm.version) not in keys]
    if not bad:
        return
    listed = ", ".join(f"{vm.name} ({vm.version})" for vm in bad[:_MAX_LISTED])
    more = f" and {len(bad) - _MAX_LISTED} more" if len(bad) > _MAX_LISTED else ""
    yield Finding(
        ERROR, f"{source.spec.name}->{target.spec.name}", "vm-version-unsupported",
        f"{len(bad)} VM(s) on {source.spec.name} have a configuration version "
        f"{target.spec.name} cannot run",
        fix=f"keep them off {target.spec.name}, or upgrade {target.spec.name}'s OS",
        evidence=f"Get-VM on {source.spec.name}: {listed}{more}; "
                 f"Get-VMHostSupportedVersion on {target.spec.name}: {', '.join(supported)}",
    )


# --- output ------------------------------------------------------------------------------------


def findings_document(findings: Sequence[Finding], manifest: Manifest) -> dict[str, object]:
    """`hvlm check --format json` (format_version 1)."""
    errors = sum(1 for f in findings if f.severity is ERROR)
    return {
        "format_version": FORMAT_VERSION,
        "manifest": {"name": manifest.name, "source": manifest.source},
        "summary": {"errors": errors, "warnings": len(findings) - errors},
        "findings": [
            {"severity": f.severity.value, "subject": f.subject, "code": f.code,
             "message": f.message, "evidence": f.evidence, "fix": f.fix}
            for f in findings
        ],
    }


def render_findings(findings: Sequence[Finding], hosts: int, *, color: bool = False) -> str:
    from hvlm.render import safe

    def paint(code: str, text: str) -> str:
        return f"{code}{text}\x1b[0m" if color else text

    tint = {ERROR: "\x1b[31m", WARNING: "\x1b[33m"}
    out: list[str] = []
    for f in findings:
        out.append(f"{paint(tint[f.severity], f'{f.severity.value:<7}')} {safe(f.subject)}  "
                   f"[{f.code}] {safe(f.message)}")
        if f.evidence:
            out.append(f"        evidence: {safe(f.evidence)}")
        if f.fix:
            out.append(f"        fix: {safe(f.fix)}")
    errors = sum(1 for f in findings if f.severity is ERROR)
    out.append(f"Check: {errors} error(s), {len(findings) - errors} warning(s) on {hosts} "
               f"host(s)." if findings else f"Check: no findings on {hosts} host(s).")
    return "\n".join(out) + "\n"
