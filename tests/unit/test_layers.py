"""The architecture's layering, enforced: pure stages never load a backend library.

(hvlm.directory.parse builds search filters with ldap3's own escaping, on purpose: it belongs to
the directory backend, not to the pure stages.)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PURE = [
    "hvlm.manifest",
    "hvlm.model",
    "hvlm.state",
    "hvlm.plan",
    "hvlm.planner",
    "hvlm.render",
    "hvlm.check",
    "hvlm.export",
    "hvlm.hosts.parse",
    "hvlm.hosts.commands",
    "hvlm.hosts.records",
    "hvlm.reconcile",
    "hvlm.progress",
    "hvlm.cli.options",
]
BACKENDS = ("pypsrp", "ldap3", "requests", "spnego", "psrpcore")


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_load_no_backend(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        f"loaded = sorted({{m.split('.')[0] for m in sys.modules}} & set({BACKENDS!r}))\n"
        "print(','.join(loaded))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"{module} loads {out.stdout.strip()}"


def test_import_contracts_hold() -> None:
    """pyproject.toml's [tool.importlinter] contracts: the layers of the pipeline, pure stages free
    of backends and click, the lab reached only by `hvlm lab` and importing nothing of hvlm, and
    no import cycle among hvlm's modules."""
    root = Path(__file__).resolve().parents[2]
    lint = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run([str(lint), "--no-cache"], cwd=root, capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "Contracts: 5 kept, 0 broken." in out.stdout
