"""`make bench`: hvlm's benchmarks (issue 8), measured side by side in one run.

Run from the repository root as `python -m bench` (the Makefile runs it in a private network
namespace through tests/isolated.sh, so the lab's Samba DC has its fixed ports to itself).

Modules:
  __main__   orchestration: every section, the table on stdout, bench/results.json, the chart;
  fleet      the parent side: labs in their own processes (hvlm_lab.runner.process), client runs,
             the lab's counters and CPU, lower bounds;
  client     the client side, one process per measurement (`hvlm plan`, hvlm's read, a bare
             pypsrp read, the apply path);
  report     the table;
  chart      the PNG (matplotlib: the `bench` extra);
  plan_10k   pure planning of 10,000 hosts (the planner's own benchmark, reused here);
  read_fleet hvlm's fleet read (hvlm.reconcile) against plain LabServer hosts (standalone).

Reading the figures (measured here, 2 cores shared with other work; see bench/results.json):
the fleet plan is bound by CPU, not by latency. Each host costs the client ~50 ms of pypsrp work
(TLS, CLIXML serialisation of the read pipeline, deserialisation of its output) under one GIL,
and the Python lab ~40-45 ms; a bare pypsrp script pays the same client cost (ratio ~1.0). With
the two sides pinned to separate cores, the wall time at 200 hosts is ~1.3 x the client's own CPU
time, ~35 x the 0.4 s latency bound: no pypsrp client can reach 2 x that bound at 200 hosts
(it would need < 4 ms of client CPU per host).
"""
