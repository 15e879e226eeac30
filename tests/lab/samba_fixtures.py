"""Pytest fixtures for the lab's Samba AD DC (hvlm_lab.samba.dc). Import them into a conftest.py:

    from tests.lab.samba_fixtures import samba_ca, samba_dc, new_computers  # noqa: F401

- `samba_dc` (session): a started DC (realm LAB.EXAMPLE) holding HV01..HV03, created as Windows
  would, and the NON-privileged user `operator` (password OPERATOR_PASSWORD). Stopped at the end.
  Each test module may import the fixtures: they share one DC per process.
- `new_computers` (function): a factory creating fresh, uniquely named computer accounts, so tests
  sharing the session DC never see each other's writes.

Samba's ports are fixed: run the tests inside `unshare --net sh -c 'ip link set lo up && ...'`
(the DC refuses to start when 389/636/88 are taken). Without Samba the fixture FAILS (never skips):
`make test` installs it (Makefile: system-deps).
The provisioned domain is cached under pytest's cache dir, so only the first run pays ~10 s.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hvlm_lab.pki import LabCA
from hvlm_lab.samba.dc import LAB_ADMIN_PASSWORD, Computer, SambaDC, available

LAB_HOSTS = ("HV01", "HV02", "HV03")
OPERATOR = "operator"
OPERATOR_PASSWORD = "Operator-Pass-1!"
ADMIN_PASSWORD = LAB_ADMIN_PASSWORD

_serial = itertools.count(1)
_running: list[SambaDC] = []


def samba_template_dir(config: pytest.Config, factory: pytest.TempPathFactory) -> Path:
    """Where provisioned domains are cached: $HVLM_SAMBA_TEMPLATES, pytest's cache, or tmp."""
    if os.environ.get("HVLM_SAMBA_TEMPLATES"):
        return Path(os.environ["HVLM_SAMBA_TEMPLATES"])
    cache = getattr(config, "cache", None)
    if cache is not None:
        return Path(cache.mkdir("hvlm-samba-template"))
    return factory.getbasetemp() / "samba-template"


@pytest.fixture(scope="session")
def samba_ca(tmp_path_factory: pytest.TempPathFactory) -> LabCA:
    return LabCA.create(tmp_path_factory.mktemp("samba-ca"))


@pytest.fixture(scope="session")
def samba_dc(
    samba_ca: LabCA, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[SambaDC]:
    if not available():
        pytest.fail("Samba AD DC is not installed: run `make system-deps` as root (apt-get line in the Makefile)")
    if _running:  # imported by several test modules: one DC per process (its ports are fixed)
        yield _running[0]
        return
    dc = SambaDC.provision(
        tmp_path_factory.mktemp("samba-dc"), ca=samba_ca, admin_password=ADMIN_PASSWORD,
        template_dir=samba_template_dir(request.config, tmp_path_factory),
    )
    dc.start()
    _running.append(dc)
    try:
        dc.add_computers(LAB_HOSTS)
        dc.add_user(OPERATOR, OPERATOR_PASSWORD)
        yield dc
    finally:
        _running.remove(dc)
        dc.stop()


NewComputers = Callable[..., list[str]]


@pytest.fixture
def new_computers(samba_dc: SambaDC) -> NewComputers:
    """`new_computers(3)` -> ["T0001", ...] (created); keyword arguments go to Computer."""

    def create(count: int = 1, **kwargs: object) -> list[str]:
        names = [f"T{next(_serial):04d}" for _ in range(count)]
        samba_dc.add_computers([Computer(n, **kwargs) for n in names])  # type: ignore[arg-type]
        return names

    return create
