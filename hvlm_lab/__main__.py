"""`python -m hvlm_lab serve DIR`: the background process of `hvlm lab up` (see runner/process.py).

Part of the lab. Not meant to be run by hand: it reads its options (pickled `LabOptions`) from
stdin, answers one line on stdout ("ready" or "error: ...") and serves until SIGTERM/SIGINT.
People use `hvlm lab up/down` instead.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "serve":
        print("usage: python -m hvlm_lab serve DIR  (started by `hvlm lab up`)", file=sys.stderr)
        return 2
    from hvlm_lab.runner.process import serve

    return serve(Path(argv[1]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
