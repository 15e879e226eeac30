"""Shared fixtures of the lab tests.

- `lab_ca` (session): one throwaway lab CA for the whole run (issuing is cheap, creating too, but
  one CA keeps certificate paths stable across tests).
- `start_lab` (function): a factory `start_lab(hosts, **LabServer kwargs) -> LabServer` that starts
  a lab in-process in the test's tmp dir and stops it (nothing left listening) at teardown.
- `hyperv_endpoint(name, ...)`: a LabEndpointConfig for a fresh simulated Windows Server 2022
  Hyper-V host (user LAB_USER / LAB_PASSWORD), e.g.
  `lab = start_lab([hyperv_endpoint(f"HV{i:02d}") for i in range(1, 4)])`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from hvlm_lab.hyperv.host import HyperVHost, server_2022
from hvlm_lab.pki import LabCA
from hvlm_lab.wsman.server import Credentials, FaultSpec, LabEndpointConfig, LabServer, Transport

StartLab = Callable[..., LabServer]
LAB_USER = "labadmin"
LAB_PASSWORD = "Lab-Pass-1!"


def hyperv_endpoint(
    name: str,
    transport: Transport = Transport.HTTPS_BASIC,
    faults: FaultSpec | None = None,
    addresses: Sequence[str] = ("192.168.10.11/24",),
) -> LabEndpointConfig:
    return LabEndpointConfig(
        name,
        HyperVHost(server_2022(name, list(addresses))),
        Credentials(LAB_USER, LAB_PASSWORD),
        transport=transport,
        faults=faults or FaultSpec(),
    )


@pytest.fixture(scope="session")
def lab_ca(tmp_path_factory: pytest.TempPathFactory) -> LabCA:
    return LabCA.create(tmp_path_factory.mktemp("lab-ca"))


@pytest.fixture
def start_lab(lab_ca: LabCA, tmp_path: Path) -> Iterator[StartLab]:
    started: list[LabServer] = []

    def start(hosts: Sequence[LabEndpointConfig], **kwargs: Any) -> LabServer:
        lab = LabServer(hosts, lab_ca, tmp_path / f"lab{len(started)}", **kwargs)
        lab.start()
        started.append(lab)
        return lab

    yield start
    for lab in started:
        lab.stop()
