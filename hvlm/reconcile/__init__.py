"""The reconciler: observe the fleet, plan, apply a plan in its phases, verify. Orchestration only.

Pipeline position: called by the CLI (hvlm.cli: `plan`, `apply`, `check`, `export`) and the
benchmarks; calls the host sessions (hvlm.hosts) and the directory session (hvlm.directory)
through two small protocols, and the pure planner (hvlm.planner). It is hvlm's one orchestrator:

    observe.py  Fleet (sessions kept open per host), open_fleet, Fleet.observe -> Observation,
                plan_fleet -> Plan; the HostSessionLike / DirectoryLike protocols
    apply.py    apply_plan: the phases, the Kerberos guard, verification -> ApplyReport

    with open_fleet(manifest) as fleet:              # real backends (hvlm.backends) by default
        observation = fleet.observe()
        plan = plan_fleet(fleet, observation)
        report = apply_plan(fleet, plan, observation)

No backend library is imported here (hvlm.backends is imported only when open_fleet is called
without openers). Only hvlm errors are results; any other exception is a bug and propagates.
"""

from hvlm.plan import switches_to_kerberos  # the rule lives with the plan; re-exported here
from hvlm.reconcile.apply import (
    UNREAD_CODES,
    ApplyReport,
    ChangeResult,
    Outcome,
    apply_plan,
)
from hvlm.reconcile.observe import (
    DirectoryLike,
    DirectoryOpener,
    Fleet,
    HostOpener,
    HostSessionLike,
    Observation,
    open_fleet,
    parallel,
    plan_fleet,
)

__all__ = [
    "UNREAD_CODES",
    "ApplyReport",
    "ChangeResult",
    "DirectoryLike",
    "DirectoryOpener",
    "Fleet",
    "HostOpener",
    "HostSessionLike",
    "Observation",
    "Outcome",
    "apply_plan",
    "open_fleet",
    "parallel",
    "plan_fleet",
    "switches_to_kerberos",
]
