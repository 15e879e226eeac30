"""Tests of the lab: the WSMan/PSRP server, the simulated Hyper-V hosts and the directory."""
