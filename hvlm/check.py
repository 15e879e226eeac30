"""Preflight: what will break a live migration, per host and per pair (`hvlm check`). Pure core.

Pipeline position: beside the planner, after observation (manifest -> model -> host and
directory state -> **check**; hvlm.render shows its findings). `hvlm check` observes the fleet
exactly as `hvlm plan` does (hvlm.reconcile: one read per host, one directory search) and calls
`check_fleet`, which does no I/O. `hvlm plan` passes `check_fleet(..., mode=Mode.PLANNED)` to
`build_plan(findings=...)`: check then judges the fleet as it will be once the plan is applied and
leaves out the hosts that were not read and the codes the planner reports itself
(hvlm.findings.PLANNER_CODES), so that a plan shows each problem once. Every code, its severity
and its text are in the catalogue (hvlm.findings); the rules the planner shares live there too.

Subjects: `host/HV01`, `directory/HV01`, `directory`, a directed pair `HV01->HV02` (HV01 is the
source) or an unordered pair `HV01<->HV02`. Codes are stable (kebab-case):

    host-unread, host-read-warning, directory-unread                    what could not be judged
    hyperv-role-missing, not-domain-joined, outside-directory-domain    host requirements
    credssp-on-server-2025, migration-disabled, no-incoming-network     host settings
    any-network, network-without-address                                incoming networks
    computer-account-missing, unconstrained-delegation,
    protocol-transition-missing                                         computer accounts
    authentication-mismatch, domain-mismatch, processor-vendor-mismatch HV01<->HV02
    delegation-missing, storage-delegation-missing                      HV01->HV02
    vm-version-unsupported, vm-switch-missing, vm-switch-case-differs,
    processor-compatibility-off                                         HV01->HV02 (hvlm.readiness)

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

from hvlm import readiness
from hvlm.errors import Severity
from hvlm.findings import (
    ANY_NETWORK,
    AUTHENTICATION_MISMATCH,
    CIFS_SPN_MISSING,
    CREDENTIAL_GUARD_CONFIGURED,
    CREDSSP_ON_SERVER_2025,
    CREDSSP_WITH_CREDENTIAL_GUARD,
    DELEGATION_MISSING,
    DNSHOSTNAME_MISMATCH,
    DOMAIN_MISMATCH,
    HYPERV_ROLE_MISSING,
    MIGRATION_DISABLED,
    MIGRATION_FIREWALL_CLOSED,
    MIGRATION_SPN_MISSING,
    NETWORK_WITHOUT_ADDRESS,
    OUTSIDE_DIRECTORY_DOMAIN,
    PLANNER_CODES,
    PROTOCOL_TRANSITION_MISSING,
    SPN_DUPLICATE,
    STORAGE_DELEGATION_MISSING,
    Finding,
    computer_account_missing,
    directory_unread,
    finding_order,
    host_unread,
    no_incoming_network,
    not_domain_joined,
    read_warnings,
    stranded,
    unconstrained_delegation,
)
from hvlm.model import (
    AuthenticationType,
    DelegationService,
    HostSpec,
    IPNetwork,
    Manifest,
    desired_delegation,
    host_spns,
)
from hvlm.state import (
    MIGRATION_FIREWALL_RULE,
    DelegationState,
    DirectoryState,
    HostState,
    ObservationLike,
)

ERROR, WARNING = Severity.ERROR, Severity.WARNING
__all__ = ["PLANNER_CODES", "Mode", "check_fleet", "has_errors"]
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
        found.append(directory_unread(observation.directory_error))
    for spec in specs:
        view = views.get(spec.key)
        if view is None:
            if mode is Mode.LIVE:  # in a plan, the planner reports the hosts it could not read
                found.append(_unread(spec, observation.host_errors.get(spec.key, "")))
            continue
        found.extend(_host_findings(view, manifest))
        found.extend(_preflight_findings(view))
        if observation.directory is not None:
            found.extend(_account_findings(view))
            found.extend(_spn_findings(view, observation.directory))
    found.extend(_pair_findings(specs, views))
    if mode is Mode.PLANNED:
        found = [f for f in found if f.code not in PLANNER_CODES]
    return sorted(set(found), key=finding_order)


def has_errors(findings: Sequence[Finding]) -> bool:
    return any(f.severity is ERROR for f in findings)


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


def _unread(spec: HostSpec, error: str) -> Finding:
    if _HYPERV_MODULE_MISSING.search(error):
        return HYPERV_ROLE_MISSING.make(
            f"host/{spec.name}", name=spec.name, module=" (and its PowerShell module)",
            effect=": its migration settings could not be read", evidence=error)
    return host_unread(spec, error)


def _host_findings(view: _View, manifest: Manifest) -> Iterator[Finding]:
    spec, facts = view.spec, view.state.facts
    yield from read_warnings(spec, view.state.read_warnings)
    if facts.hyperv_installed is False:
        yield HYPERV_ROLE_MISSING.make(
            f"host/{spec.name}", name=spec.name, module="", effect="",
            evidence="Get-WindowsFeature -Name Hyper-V: not Installed")
    yield from _domain_findings(view, manifest)
    yield from _settings_findings(view)
    yield from _network_findings(view)


def _domain_findings(view: _View, manifest: Manifest) -> Iterator[Finding]:
    spec, facts = view.spec, view.state.facts
    outside = not_domain_joined(spec, facts)
    if outside is not None:
        yield outside
    elif facts.part_of_domain and manifest.directory is not None and facts.domain \
            and facts.domain.lower().rstrip(".") != manifest.directory.domain.lower():
        yield OUTSIDE_DIRECTORY_DOMAIN.make(
            f"host/{spec.name}", name=spec.name, domain=facts.domain,
            directory=manifest.directory.domain, joined=facts.part_of_domain)


def _settings_findings(view: _View) -> Iterator[Finding]:
    spec = view.spec
    if not view.enabled and spec.peers:
        yield MIGRATION_DISABLED.make(f"host/{spec.name}", name=spec.name)
    if stranded(view.enabled, view.use_any_network, view.networks):
        yield no_incoming_network(
            spec, evidence="Get-VMMigrationNetwork: none, UseAnyNetworkForMigration=False")


def _network_findings(view: _View) -> Iterator[Finding]:
    spec, addresses = view.spec, view.state.facts.addresses
    if view.use_any_network:
        yield ANY_NETWORK.make(f"host/{spec.name}", name=spec.name)
        return
    if not addresses or not view.networks:
        return
    empty = [net for net in view.networks if not any(a.ip in net for a in addresses)]
    severity = ERROR if len(empty) == len(view.networks) else WARNING
    owned = ", ".join(str(a) for a in addresses[:8])
    for net in empty:
        yield NETWORK_WITHOUT_ADDRESS.make(
            f"host/{spec.name}", severity, name=spec.name, network=net, addresses=owned,
            effect=": no migration can reach it" if severity is ERROR else "")


# --- computer accounts -------------------------------------------------------------------------


def _account_findings(view: _View) -> Iterator[Finding]:
    spec, account = view.spec, view.account
    if account is None:
        yield computer_account_missing(spec, view.kerberos)
        return
    unconstrained = unconstrained_delegation(spec, account)
    if unconstrained is not None:
        yield unconstrained
    if view.kerberos and not view.protocol_transition:
        yield PROTOCOL_TRANSITION_MISSING.make(
            f"directory/{spec.name}", name=spec.name, uac=account.user_account_control)


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
            yield from readiness.directed(spec.name, source.state.facts, target.spec.name,
                                          target.state.facts)


def _symmetric(a: _View, b: _View) -> Iterator[Finding]:
    subject = f"{a.spec.name}<->{b.spec.name}"
    if a.authentication is not b.authentication:
        yield AUTHENTICATION_MISMATCH.make(subject, a=a.spec.name, b=b.spec.name,
                                           auth_a=a.authentication.value,
                                           auth_b=b.authentication.value)
    da, db = a.state.facts.domain.lower().rstrip("."), b.state.facts.domain.lower().rstrip(".")
    if a.state.facts.part_of_domain and b.state.facts.part_of_domain and da and db and da != db:
        kerberos = a.kerberos or b.kerberos
        effect = ": constrained delegation works within one domain only" if kerberos \
            else ": they need a trust between the domains"
        yield DOMAIN_MISMATCH.make(subject, ERROR if kerberos else WARNING, a=a.spec.name,
                                   b=b.spec.name, effect=effect, domain_a=da, domain_b=db)
    yield from readiness.symmetric(a.spec.name, a.state.facts, b.spec.name, b.state.facts)


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
        yield DELEGATION_MISSING.make(subject, src=src.name, dst=dst.name, also=also,
                                      short=forms[0], fqdn=forms[1])
    elif cifs:
        yield STORAGE_DELEGATION_MISSING.make(subject, src=src.name, dst=dst.name,
                                              short=cifs[0], fqdn=cifs[1])


# --- what breaks migrations beyond the settings: Credential Guard, firewall, SPNs (issue 14) ----


def _receives(view: _View) -> bool:
    """A host that receives migrations: enabled, with peers that migrate to it."""
    return view.enabled and bool(view.spec.peers)


def _preflight_findings(view: _View) -> Iterator[Finding]:
    yield from _credential_guard(view)
    yield from _firewall(view)


def _credential_guard(view: _View) -> Iterator[Finding]:
    """CredSSP fails from a source running Credential Guard; the OS-build guess only where
    Win32_DeviceGuard could not be read."""
    spec, facts = view.spec, view.state.facts
    if view.kerberos:
        return
    guard, subject = facts.device_guard, f"host/{spec.name}"
    if guard is None:
        if facts.is_server_2025_or_later:
            yield CREDSSP_ON_SERVER_2025.make(
                subject, name=spec.name, build=facts.os_build or "?",
                caption=facts.os_caption or "?",
                reason=facts.device_guard_error or "not returned")
        return
    running, configured = _uints(guard.running), _uints(guard.configured)
    if guard.credential_guard_running:
        yield CREDSSP_WITH_CREDENTIAL_GUARD.make(subject, name=spec.name, running=running)
    elif guard.credential_guard_configured:
        yield CREDENTIAL_GUARD_CONFIGURED.make(subject, name=spec.name, running=running,
                                               configured=configured)


def _uints(values: Sequence[int]) -> str:
    return "{" + ", ".join(str(v) for v in values) + "}"


def _firewall(view: _View) -> Iterator[Finding]:
    rule = view.state.facts.migration_firewall
    if rule is None or not _receives(view) or (rule.exists and rule.enabled):
        return
    name = view.spec.name
    if rule.exists:
        yield MIGRATION_FIREWALL_CLOSED.make(
            f"host/{name}", name=name, rule=MIGRATION_FIREWALL_RULE,
            state=f"has its migration firewall rule {MIGRATION_FIREWALL_RULE} disabled",
            fix_command=f"Enable-NetFirewallRule -Name {MIGRATION_FIREWALL_RULE}",
            found="Enabled=False")
    else:
        yield MIGRATION_FIREWALL_CLOSED.make(
            f"host/{name}", name=name, rule=MIGRATION_FIREWALL_RULE,
            state=f"has no migration firewall rule {MIGRATION_FIREWALL_RULE}",
            fix_command="restore the Hyper-V firewall rules (Hyper-V (MIG-TCP-In): inbound TCP "
                        f"6600), then Enable-NetFirewallRule -Name {MIGRATION_FIREWALL_RULE}",
            found="ObjectNotFound")


def _spn_findings(view: _View, directory: DirectoryState) -> Iterator[Finding]:
    """The destination's SPNs: present (migration service; cifs or HOST), held by it alone, and
    its dNSHostName the manifest's fqdn."""
    spec, account = view.spec, view.account
    if account is None:
        return
    subject, sam = f"directory/{spec.name}", account.sam_account_name or f"{spec.key}$"
    held = {s.lower() for s in account.service_principal_names}
    listed = ", ".join(account.service_principal_names) or "(none)"
    if _receives(view):
        migration = DelegationService.MIGRATION.spn_class
        missing = [f"{migration}/{form}" for form in (spec.name, spec.fqdn)
                   if f"{migration}/{form}".lower() not in held]
        if missing:
            yield MIGRATION_SPN_MISSING.make(
                subject, account=sam, name=spec.name, missing=_quoted(missing), spns=listed,
                commands=_setspn("-S", missing, spec.name))
        forms = [form for form in (spec.name, spec.fqdn)
                 if not {f"cifs/{form}".lower(), f"host/{form}".lower()} & held]
        if forms:
            yield CIFS_SPN_MISSING.make(
                subject, account=sam, name=spec.name, missing=_quoted(forms), spns=listed,
                commands=_setspn("-S", [f"HOST/{f}" for f in forms], spec.name))
    dns = account.dns_host_name.rstrip(".")
    if dns.lower() != spec.fqdn.lower().rstrip("."):
        yield DNSHOSTNAME_MISMATCH.make(
            subject, account=sam, name=spec.name, fqdn=spec.fqdn, dns_host_name=dns or "(none)",
            migration=DelegationService.MIGRATION.spn_class)
    yield from _duplicates(spec, account, directory)


def _duplicates(spec: HostSpec, account: DelegationState,
                directory: DirectoryState) -> Iterator[Finding]:
    if directory.spn_holders is None:
        return
    held: list[str] = []
    commands: list[str] = []
    for spn in host_spns(spec.name, spec.fqdn):
        for other in directory.holders(spn):
            if other.dn.lower() != account.dn.lower():
                who = other.sam_account_name or other.dn
                held.append(f"'{spn}' on {who}")
                commands.append(_setspn("-D", [spn], who.rstrip("$")))
    if held:
        yield SPN_DUPLICATE.make(f"directory/{spec.name}", name=spec.name,
                                 held="; ".join(held), commands="; ".join(commands))


def _quoted(values: Sequence[str]) -> str:
    return " and ".join(f"'{v}'" for v in values)


def _setspn(flag: str, spns: Sequence[str], account: str) -> str:
    return "; ".join(f'setspn {flag} "{spn}" {account}' for spn in spns)
