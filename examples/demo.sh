#!/usr/bin/env bash
# `make demo`: the main job end to end on the lab — start 3 simulated Hyper-V hosts and a real Samba
# AD DC, plan (changes on every host and computer account), apply the saved plan, plan again (no
# changes: exit 0 with --detailed-exitcode), stop the lab.
set -euo pipefail
dir=${1:-.lab-demo}
hvlm=${HVLM:-.venv/bin/hvlm}
cleanup() { "$hvlm" lab down --dir "$dir" >/dev/null 2>&1 || true; }
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "hvlm lab up --dir $dir --hosts 3"
"$hvlm" lab up --dir "$dir" --hosts 3
set -a; . "$dir/env"; set +a

step "hvlm validate $dir/manifest.yaml"
"$hvlm" validate "$dir/manifest.yaml"

step "hvlm plan (expect changes: exit 2)"
rc=0; "$hvlm" plan "$dir/manifest.yaml" --out "$dir/plan.json" --detailed-exitcode || rc=$?
[ "$rc" -eq 2 ] || { echo "expected exit 2 (changes), got $rc" >&2; exit 1; }

step "hvlm apply $dir/plan.json"
"$hvlm" apply "$dir/plan.json"

step "hvlm plan again (expect no changes: exit 0)"
"$hvlm" plan "$dir/manifest.yaml" --detailed-exitcode

step "hvlm check"
"$hvlm" check "$dir/manifest.yaml" || true

printf '\n\033[1mdemo: converged\033[0m\n'
