"""The table `make bench` prints: every figure of one run, read from the results document.

Where it sits: `bench.__main__` builds the results (bench.fleet, bench.plan_10k) and calls
`table(results)`; pure formatting, so the table always says what results.json says.
"""

from __future__ import annotations

from typing import Any


def target_row(figure: str, measured: float | None, target: float, unit: str, note: str = ""
               ) -> dict[str, Any]:
    """One row of the targets table (results.json `targets`): `met` is None when this run did
    not measure the figure (a TODO, not a pass). Every bench module's rows are made here."""
    return {"figure": figure, "measured": measured, "target": f"<= {target:g}{unit}",
            "limit": target, "unit": unit,
            "met": None if measured is None else bool(measured <= target), "note": note}


def _requests(figure: dict[str, Any]) -> str:
    low, high = figure["min"], figure["max"]
    return f"{high:g}" if low == high else f"{low:g}-{high:g} (mean {figure['mean']:g})"


def plan_table(rows: list[dict[str, Any]], latency_ms: float, parallelism: int) -> list[str]:
    lines = [f"Fleet plan (`hvlm plan`, lab in its own process, {latency_ms:g} ms per request, "
             f"parallelism {parallelism})",
             f"  {'hosts':>5} {'wall s':>8} {'bound s':>8} {'ratio':>6} {'req/host':>9} "
             f"{'client ms/host':>15} {'lab ms/host':>12} {'CPU floor s':>12} {'wall/floor':>11} "
             f"{'cores used':>11}"]
    for r in rows:
        label = f"{r['hosts']}{'*' if r['pinned'] else ''}"
        lines.append(
            f"  {label:>5} {r['wall_seconds']:>8.2f} {r['lower_bound_seconds']:>8.2f} "
            f"{r['ratio']:>6.1f} {_requests(r['requests_per_host']):>9} "
            f"{r['client_cpu_ms_per_host']:>15.1f} {r['lab_cpu_ms_per_host']:>12.1f} "
            f"{r['cpu_floor_seconds']:>12.2f} {r['ratio_to_cpu_floor']:>11.2f} "
            f"{r['cores_used']:>11.2f}")
    if any(r["pinned"] for r in rows):
        lines.append("  * lab pinned to CPU 0, client to CPU 1")
    main = ", ".join(f"{r['hosts']}{'*' if r['pinned'] else ''}: "
                     f"{r['client_main_thread_cpu_seconds']:.2f} s" for r in rows
                     if r.get("client_main_thread_cpu_seconds") is not None)
    if main:
        lines.append(f"  client main thread CPU (manifest, planner, findings, output; not the "
                     f"host sessions): {main}")
    return lines


def cpu_table(cpu: dict[str, Any]) -> list[str]:
    hvlm, bare = cpu["hvlm"], cpu["pypsrp"]
    return [f"Client CPU per host, fleet read of {cpu['hosts']} hosts (process time of the "
            f"client only, the lab in another process; least of {cpu['rounds']} interleaved "
            "rounds)",
            f"  hvlm (hvlm.reconcile read)     {hvlm['cpu_ms_per_host']:>6.1f} ms/host   "
            f"wall {hvlm['wall_seconds']:.2f} s   {_requests(hvlm['requests_per_host'])} req/host",
            f"  bare pypsrp, same pipeline     {bare['cpu_ms_per_host']:>6.1f} ms/host   "
            f"wall {bare['wall_seconds']:.2f} s   {_requests(bare['requests_per_host'])} req/host",
            f"  ratio hvlm / bare pypsrp       {cpu['ratio']}"]


def apply_table(apply: dict[str, Any]) -> list[str]:
    ldap = apply["ldap"]
    return [f"Apply with changes on {apply['hosts']} hosts (lab + Samba DC, "
            f"{apply['latency_ms']:g} ms per request, parallelism {apply['parallelism']})",
            f"  changes {apply['changes']} ({_outcomes(apply['outcomes'])}); "
            f"wall {apply['wall_seconds']:.2f} s (of which observe + plan "
            f"{apply['plan_part_seconds']:.2f} s)",
            f"  CPU seconds                    client {apply['client_cpu_seconds']:.1f}, "
            f"lab hosts {apply['lab_cpu_seconds']:.1f}, Samba DC "
            f"{apply['directory_cpu_seconds']:.1f}",
            f"  WSMan requests per host        {_requests(apply['requests_per_host'])} "
            "(read + write + verify, one pool)",
            f"  LDAP operations in all         {apply['ldap_operations']} "
            f"({ldap.get('binds', 0)} bind, {ldap.get('search_requests', 0)} search requests "
            f"in {ldap.get('searches', 0)} searches, {ldap.get('modifies', 0)} modify); "
            f"{apply['computer_accounts_written']} computer accounts written",
            f"  plan again                     {apply['replan']['summary']} "
            f"({apply['replan']['wall_seconds']:.2f} s, "
            f"{_requests(apply['replan']['requests_per_host'])} req/host)"]


def _outcomes(outcomes: dict[str, int]) -> str:
    return ", ".join(f"{n} {k}" for k, n in sorted(outcomes.items()))


def table(results: dict[str, Any]) -> str:
    machine = results["machine"]
    settings = results["settings"]
    lines = [f"hvlm bench — {machine['cores']} cores, load average {machine['load_before']} "
             f"before / {machine['load_after']} after, Python {machine['python']}, "
             f"pypsrp {machine['pypsrp']}", ""]
    if results.get("plan"):
        lines += plan_table(results["plan"], settings["latency_ms"], settings["parallelism"])
        lines.append("")
    if results.get("client_cpu"):
        lines += cpu_table(results["client_cpu"]) + [""]
    if results.get("apply"):
        lines += apply_table(results["apply"]) + [""]
    if results.get("planning"):
        from bench.plan_10k import table as planning_table  # the planner's own table

        lines += ["  " + line for line in planning_table(results["planning"]).splitlines()]
        lines.append("")
    if results.get("review"):
        from bench.review import table as review_table  # issue 20: plans for people

        lines += ["  " + line for line in review_table(results["review"]).splitlines()]
        lines.append("")
    lines.append(f"chart: {results.get('chart') or results.get('chart_error')}")
    sections = ", ".join(f"{k} {v:.0f} s" for k, v in results.get("section_seconds", {}).items())
    lines.append(f"bench took {results['seconds']:.0f} s ({sections})")
    return "\n".join(lines)
