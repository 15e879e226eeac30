"""hvlm: declarative live-migration setup for non-clustered Hyper-V hosts.

Pipeline: manifest -> model -> (host state, directory state) -> plan -> apply -> verify.
"""

__version__ = "0.1.0"
