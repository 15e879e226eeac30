"""The lab: simulated Hyper-V hosts over real WinRM/PSRP, and a real Samba AD DC.

Not part of the reconcile pipeline: it is what the pipeline's integration tests, the demo and the
benchmarks run against.
"""
