#!/usr/bin/env bash
# The GRPO step on the pinned versions beside the newest releases pip resolves, alternated in one run on one CPU
# (docs/benchmarks.md, "Newest releases beside the pinned ones"):
#   make install test-latest; bash benchmarks/versions_step.sh [OUT_DIR] [REPEATS]
# Each repeat runs benchmarks/grpo_step.py's tinyr1 variant (SmolLM2, 8 completions x 128 tokens, 1 thread, 4 steps)
# in .venv (constraints.txt) and in .venv-latest (make test-latest's environment), then trl's own fp32 step in
# .venv-latest: what a plain `pip install` gave before the newest releases were a verified row.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-outputs/versions-step}
REPEATS=${2:-2}
mkdir -p "$OUT"
for rep in $(seq 1 "$REPEATS"); do
  for env in .venv .venv-latest; do
    "$env/bin/python" benchmarks/grpo_step.py --variants tinyr1 --threads 1 --steps 4 \
      --json "$OUT/tinyr1-${env#.}-$rep.json" > /dev/null
  done
done
.venv-latest/bin/python benchmarks/grpo_step.py --variants trl-fp32 --threads 1 --steps 4 \
  --json "$OUT/trl-fp32-venv-latest.json" > /dev/null
for f in "$OUT"/*.json; do
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); v=next(iter(d['variants'].values())); \
print(sys.argv[1].split('/')[-1], d['torch'], v['median_s_per_step'], 'generation', v['generation_s'], v['step_seconds'])" "$f"
done
