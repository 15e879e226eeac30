"""Hyper-V hosts over PowerShell Remoting (pypsrp 0.9.1): read, change safely, fleet-wide.

Pipeline position: observed state for the planner (hvlm.planner) and the writes of apply
(hvlm.reconcile); nothing above this package imports pypsrp.

    commands.py  pure: the read statements, HostCommand, host_commands() (safe ordered steps)
    parse.py     pure: deserialised objects of the read -> hvlm.state.HostState
    errors.py    the one mapping of pypsrp/requests/WSMan/PowerShell failures to hvlm.errors
    session.py   HostSession: one RunspacePool per host for read, writes and verification
    fleet.py     read_fleet / apply_fleet: a thread pool over hosts, with progress

Credentials: HVLM_WINRM_USER and HVLM_WINRM_PASSWORD (basic, ntlm, credssp; negotiate when set),
or the Kerberos ticket cache (kerberos; negotiate when the variables are not set). Never logged.
"""
