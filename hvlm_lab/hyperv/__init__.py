"""The simulated Hyper-V host: its configuration and state (`config`), the cmdlets it answers
(`migration`: Get/Set-VMHost and the migration networks; `preflight`: CIM, features, addresses,
VMs, klist), parameter binding as PowerShell does it (`binding`, `runtime`) and the .NET/CIM
objects it writes (`objects`). `host.HyperVHost` ties them together; the WSMan server
(hvlm_lab.wsman) runs its statements. Fidelity to the real module: ../FIDELITY.md.
"""
