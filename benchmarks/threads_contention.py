"""Why two threads were erratically slower on a shared 2-core machine, and what fixes it.

    .venv/bin/python benchmarks/threads_contention.py                 # every condition, about 10 minutes
    .venv/bin/python benchmarks/threads_contention.py --json out.json

The workload (a child process per measurement, since libgomp reads its settings once, at load): SmolLM2-135M's
GRPO update for a small group (a 90-token prompt, 4 completions of 64 tokens; forward + backward under bf16
autocast, as ``benchmarks/fast_path_pieces.py update``) and a 16-token greedy decode of 4 rows through generate,
each repeated. Conditions:

- ``alone``: nothing else runs;
- ``spinner``: one pure-Python busy loop runs beside it (another program on one core);
- ``twin``: a second copy of the workload runs beside it with the same settings (two tinyr1 runs at once).

Each at 1 and 2 threads (torch's) and under libgomp's wait policies: its default (spin about 300k times at every
barrier before sleeping), ``OMP_WAIT_POLICY=PASSIVE`` (sleep at once) and ``GOMP_SPINCOUNT=10000`` (spin briefly).
Printed: the median seconds per update and per decode, and each against one thread alone.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

CHILD = r"""
import statistics, sys, time, torch
from transformers import AutoModelForCausalLM
from tinyr1.cpu.attention import cpu_attention
from tinyr1.cpu.fast_path import completion_logps
from tinyr1.models.loading import resolve_model

torch.set_num_threads(int(sys.argv[1]))
repeats = int(sys.argv[2])
torch.manual_seed(0)
model = AutoModelForCausalLM.from_pretrained(resolve_model("smollm2-135m-instruct").path)
ids = torch.cat([torch.randint(0, 49152, (1, 90)).repeat(4, 1), torch.randint(0, 49152, (4, 64))], dim=1)
mask, weights = torch.ones_like(ids), torch.randn(4, 64)
prompt = ids[:, :90]

def update():
    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16), cpu_attention(model):
        logps, _ = completion_logps(model, ids, mask, 64, 1.0, compute_entropy=True)
    (logps * weights).mean().backward()
    model.zero_grad(set_to_none=True)

def decode():
    model.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=16, min_new_tokens=16,
                       do_sample=False, pad_token_id=0)

times = {}
for name, fn in (("update", update), ("decode", decode)):
    fn()
    runs = []
    for _ in range(repeats):
        start = time.perf_counter(); fn(); runs.append(time.perf_counter() - start)
    times[name] = statistics.median(runs)
print("RESULT", times["update"], times["decode"], flush=True)
"""

SPINNER = "while True: pass"
POLICIES = {"default": {}, "passive": {"OMP_WAIT_POLICY": "PASSIVE"}, "spin10k": {"GOMP_SPINCOUNT": "10000"}}


def measure(threads: int, policy: str, condition: str, repeats: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS")}
    env.update(POLICIES[policy], OMP_NUM_THREADS=str(threads), PYTHONPATH="src")
    child = [sys.executable, "-c", CHILD, str(threads), str(repeats)]
    other = None
    if condition == "spinner":
        other = subprocess.Popen([sys.executable, "-c", SPINNER])
    elif condition == "twin":
        other = subprocess.Popen(child, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5 if other else 0)
        out = subprocess.run(child, env=env, capture_output=True, text=True, timeout=1800)
    finally:
        if other:
            other.kill()
            other.wait()
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT")), None)
    if line is None:
        raise SystemExit(f"child failed:\n{out.stderr[-2000:]}")
    update, decode = map(float, line.split()[1:])
    return {"threads": threads, "policy": policy, "condition": condition, "update_s": update, "decode_s": decode}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--policies", nargs="+", default=list(POLICIES), choices=list(POLICIES))
    parser.add_argument("--conditions", nargs="+", default=["alone", "spinner", "twin"],
                        choices=["alone", "spinner", "twin"])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--json")
    args = parser.parse_args()
    from tinyr1.infra.cpu_features import cpu_bf16

    rows = []
    for condition in args.conditions:
        for policy in args.policies:
            for threads in args.threads:
                rows.append(measure(threads, policy, condition, args.repeats))
                print(json.dumps(rows[-1]), flush=True)
    base = {r["condition"]: r for r in rows if r["threads"] == 1 and r["policy"] == "default"}
    print(f"\n{cpu_bf16().cpu_name}, {os.cpu_count()} CPUs")
    print(f"{'condition':9} {'policy':8} {'threads':>7} {'update s':>9} {'vs 1 thr':>8} {'decode s':>9} "
          f"{'vs 1 thr':>8}")
    for r in rows:
        one = base.get(r["condition"]) or r
        print(f"{r['condition']:9} {r['policy']:8} {r['threads']:7d} {r['update_s']:9.2f} "
              f"{r['update_s'] / one['update_s']:8.2f} {r['decode_s']:9.2f} {r['decode_s'] / one['decode_s']:8.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cpu": cpu_bf16().as_dict(), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
