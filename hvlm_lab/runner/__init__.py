"""`hvlm lab up/status/stats/down`: a whole lab (hosts + Samba DC) started in-process (`lab`) or as
a background process (`process`), with its files (`files`: lab.json, manifest, CA, faults).
"""
