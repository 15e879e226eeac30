"""Network namespaces for tests (Linux, root): a thread enters a new loopback-only namespace, or
tests/isolated.sh's outer one (fd 9), and always comes back. One implementation for conftest's
`private_netns`, the two-DC module and the Windows resolution test."""

from __future__ import annotations

import ctypes
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

CLONE_NEWNET = 0x40000000
OUTER_NETNS_FD = 9  # tests/isolated.sh keeps the namespace `make test` came from open here


@contextmanager
def _returning() -> Iterator[ctypes.CDLL]:
    """Yield libc; afterwards this thread is back in the namespace it started in."""
    libc = ctypes.CDLL(None, use_errno=True)
    saved = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        try:
            yield libc
        finally:
            if libc.setns(saved, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back to the original network namespace")
    finally:
        os.close(saved)


@contextmanager
def new_netns() -> Iterator[None]:
    """This thread (and the threads and processes it starts) in a new namespace, loopback up."""
    with _returning() as libc:
        if libc.unshare(CLONE_NEWNET) != 0:
            pytest.fail(f"unshare(CLONE_NEWNET) failed ({os.strerror(ctypes.get_errno())}): "
                        "these tests need root, as `make test` has", pytrace=False)
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        yield


@contextmanager
def outer_netns() -> Iterator[None]:
    """This thread in the namespace tests/isolated.sh came from (the package registries are
    reachable there), when the suite runs isolated; otherwise nothing changes."""
    if os.environ.get("HVLM_ISOLATED") != "1":
        yield
        return
    with _returning() as libc:
        if libc.setns(OUTER_NETNS_FD, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns to tests/isolated.sh's fd 9")
        yield
