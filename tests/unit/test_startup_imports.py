"""`hvlm validate` loads only what validating needs (issue 16: start-up time).

The commands are imported lazily (hvlm.cli.COMMANDS): an offline command must not pay for the
reconciler, the backends or structlog. The time itself is measured by `make bench`
(bench/startup.py), never by a unit test; this test fails for the right reason instead: it names
the module that came back.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "prod-east.yaml"
# Top-level packages, and hvlm's own packages, that only the fleet commands need.
HEAVY = ("pypsrp", "ldap3", "requests", "urllib3", "spnego", "psrpcore", "structlog", "rich",
         "hvlm.reconcile", "hvlm.hosts", "hvlm.directory", "hvlm.backends", "hvlm.planner")


def _loaded_after(*argv: str) -> tuple[int, list[str]]:
    code = (
        "import json, sys\n"
        "from hvlm.cli import main\n"
        "try:\n"
        f"    main({list(argv)!r})\n"
        "except SystemExit as exc:\n"
        "    code = exc.code\n"
        f"heavy = {HEAVY!r}\n"
        "loaded = sorted(m for m in sys.modules if any(m == h or m.startswith(h + '.')"
        " for h in heavy))\n"
        "print(json.dumps([code, loaded]), file=sys.stderr)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    code_, loaded = json.loads(out.stderr.strip().splitlines()[-1])
    return code_, loaded


def test_validate_loads_no_backend_reconciler_or_logging() -> None:
    code, loaded = _loaded_after("validate", str(EXAMPLE))
    assert code == 0
    assert loaded == [], f"`hvlm validate` loads {', '.join(loaded)}"


def test_schema_loads_no_backend() -> None:
    code, loaded = _loaded_after("schema")
    assert code == 0
    assert loaded == [], f"`hvlm schema` loads {', '.join(loaded)}"


def test_show_loads_no_backend_reconciler_or_logging(tmp_path: Path) -> None:
    """`hvlm show PLANFILE` contacts nothing: it renders a saved plan (a GitOps artifact)."""
    from hvlm.plan import ManifestRef, Plan, dumps_plan

    planfile = tmp_path / "plan.json"
    planfile.write_text(dumps_plan(Plan(ManifestRef("m"))), encoding="utf-8")
    for fmt in ("human", "markdown", "json"):
        code, loaded = _loaded_after("show", str(planfile), "--format", fmt)
        assert code is None or code == 0
        assert loaded == [], f"`hvlm show --format {fmt}` loads {', '.join(loaded)}"


def test_the_check_sees_a_fleet_command() -> None:
    """The control: `plan --help` does load the reconciler, so the probe above can see it."""
    code, loaded = _loaded_after("plan", "--help")
    assert code == 0
    assert "hvlm.reconcile" in loaded
