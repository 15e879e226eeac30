"""Hyper-V hosts over PowerShell Remoting (pypsrp 0.9.1): read one host, change it safely.

Pipeline position: below the reconciler. hvlm.backends opens a HostSession per host for
hvlm.reconcile (the one orchestrator: fleet-wide threads, phases, verification, progress), whose
reads become observed state for the planner (hvlm.planner) and whose writes are apply's host
phase; nothing above this package imports pypsrp.

    commands.py  pure: the read statements, HostCommand, host_commands() (safe ordered steps)
    parse.py     pure: deserialised objects of the read -> hvlm.state.HostState
    records.py   pure: PowerShell error records -> what failed, with hints
    errors.py    the one mapping of pypsrp/requests/WSMan/PowerShell failures to hvlm.errors
    write.py     the steps of a write in ONE pipeline, each accounted for (applied/failed/...)
    session.py   HostSession: one RunspacePool per host for read, writes and verification

Credentials: HVLM_WINRM_USER and HVLM_WINRM_PASSWORD (basic, ntlm, credssp; negotiate when set),
or the Kerberos ticket cache (kerberos; negotiate when the variables are not set). Never logged.
"""
