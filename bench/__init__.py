"""`make bench`: hvlm's benchmarks (issue 8), measured side by side in one run.

Run from the repository root as `python -m bench` (the Makefile runs it in a private network
namespace through tests/isolated.sh, so the lab's Samba DC has its fixed ports to itself).

Modules:
  __main__   orchestration: every section, the table on stdout, bench/results.json, the chart;
  fleet      the parent side: labs in their own processes (hvlm.lab.runner_process), client runs,
             the lab's counters and CPU, lower bounds;
  client     the client side, one process per measurement (`hvlm plan`, hvlm's read, a bare
             pypsrp read, the apply path);
  report     the table;
  chart      the PNG (matplotlib: the `bench` extra);
  plan_10k   pure planning of 10,000 hosts (the planner's own benchmark, reused here);
  read_fleet hvlm.hosts.fleet.read_fleet against a lab of plain LabServer hosts (standalone).
"""
