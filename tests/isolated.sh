#!/usr/bin/env bash
# Run a command in a private network namespace (loopback only) when we may, so the lab's Samba DC
# (fixed ports 389/636/88) and simulated hosts never collide with another run or a real service.
# Falls back to running the command directly where namespaces are not available.
set -euo pipefail
# fd 9 keeps the namespace we came from, for the few tests that need PyPI (tests/unit/test_windows.py).
if [ "${HVLM_ISOLATED:-}" != 1 ] && unshare --net true 2>/dev/null; then
  exec 9</proc/self/ns/net
  exec unshare --net env HVLM_ISOLATED=1 bash -c 'ip link set lo up && exec "$0" "$@"' "$@"
fi
exec "$@"
