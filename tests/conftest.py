"""Top-level fixtures: whole labs (simulated Hyper-V hosts + the session's Samba AD DC).

- `lab_dc` (session): THE domain controller of the test session. Samba's ports are fixed, so there
  is one DC per process: this fixture and tests/lab/samba_fixtures.py's `samba_dc` share it
  (whichever starts first; it holds HV01..HV03 and the non-privileged user `operator`). It FAILS
  (never skips) when Samba is not installed: CI installs it (`make system-deps`).
- `lab` (session): `hvlm_lab.runner.lab.Lab` with HV01..HV03 and the directory: `lab.manifest_path`,
  `lab.env`, `lab.server`, `lab.hosts`, `lab.dc`, `lab.stats()`. Shared by the whole session:
  read it, or put back what you change; tests that change hosts or accounts use `new_lab`.
- `lab_hosts_only` (session): a Lab of 3 hosts without a directory (no DC needed).
- `new_lab` (function): `new_lab(hosts=2, directory=True, host_configs=None, faults=None,
  latency_ms=0)` -> a fresh Lab whose hosts have names no other test uses (L0001, L0002...) and
  fresh computer accounts in the session's DC; stopped after the test.
- `private_netns` (function): moves the test into its own network namespace (loopback up) and
  back afterwards; processes it starts (`hvlm lab up`) live there. For tests that start their own
  DC. Needs root (CAP_SYS_ADMIN): FAILS otherwise.

Run everything in a private namespace: `tests/isolated.sh .venv/bin/python -m pytest ...`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from hvlm_lab.hyperv.config import LabHostConfig, server_2022
from hvlm_lab.pki import LabCA
from hvlm_lab.runner.lab import Lab
from hvlm_lab.samba import dc as samba
from hvlm_lab.wsman.server import FaultSpec
from tests.lab import samba_fixtures

# The Samba fixtures are registered HERE only: a fixture imported into several conftest or test
# modules is a separate definition in each, so each would make its own CA for the shared DC.
from tests.lab.samba_fixtures import new_computers, samba_ca, samba_dc  # noqa: F401
from tests.netns import new_netns

NewLab = Callable[..., Lab]
_serial = itertools.count(1)
SAMBA_MISSING = (
    "Samba AD DC is not installed, and the lab's directory needs it: run `make system-deps` "
    "(apt-get install samba samba-ad-dc samba-ad-provision winbind krb5-user ldb-tools smbclient)"
)


@pytest.fixture(scope="session")
def lab_dc(
    samba_ca: LabCA,  # noqa: F811  (the session's CA: whichever fixture starts the DC signs with it)
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[samba.SambaDC]:
    if not samba.available():
        pytest.fail(SAMBA_MISSING, pytrace=False)
    running = samba_fixtures._running  # the DC of samba_dc, if it started first
    if running:
        yield running[0]
        return
    dc = samba.SambaDC.provision(
        tmp_path_factory.mktemp("lab-dc"),
        ca=samba_ca,
        admin_password=samba_fixtures.ADMIN_PASSWORD,
        template_dir=samba_fixtures.samba_template_dir(request.config, tmp_path_factory),
    )
    dc.start()
    running.append(dc)  # so that samba_dc reuses this one
    try:
        dc.add_computers(samba_fixtures.LAB_HOSTS)
        dc.add_user(samba_fixtures.OPERATOR, samba_fixtures.OPERATOR_PASSWORD)
        yield dc
    finally:
        running.remove(dc)
        dc.stop()


@pytest.fixture(scope="session")
def lab(lab_dc: samba.SambaDC, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with Lab.start(tmp_path_factory.mktemp("lab"), hosts=3, dc=lab_dc) as started:
        yield started


@pytest.fixture(scope="session")
def lab_hosts_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with Lab.start(tmp_path_factory.mktemp("lab-hosts"), hosts=3, directory=False) as started:
        yield started


def fresh_hosts(count: int) -> tuple[LabHostConfig, ...]:
    """Hosts named L0001, L0002... (never reused in a session), one address each in the subnet."""
    numbers = [next(_serial) for _ in range(count)]
    return tuple(
        server_2022(f"L{n:04d}", [f"192.168.10.{10 + i}/24"])
        for i, n in enumerate(numbers, start=1)
    )


@pytest.fixture
def new_lab(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[NewLab]:
    started: list[Lab] = []

    def start(
        hosts: int = 2,
        *,
        directory: bool = True,
        host_configs: Sequence[LabHostConfig] | None = None,
        faults: Mapping[str, FaultSpec] | None = None,
        latency_ms: float = 0.0,
    ) -> Lab:
        dc = request.getfixturevalue("lab_dc") if directory else None
        configs = host_configs if host_configs is not None else fresh_hosts(hosts)
        lab = Lab.start(
            tmp_path / f"lab{len(started)}",
            host_configs=configs,
            dc=dc,
            directory=directory,
            faults=faults,
            latency_ms=latency_ms,
        )
        started.append(lab)
        return lab

    yield start
    for lab in started:
        lab.stop()


# --- network namespaces ---------------------------------------------------------------------------


@pytest.fixture
def private_netns() -> Iterator[None]:
    """This test's thread (and what it starts) in a new network namespace with loopback up."""
    with new_netns():
        yield
