"""The side-by-side table of benchmarks/learning_sampling.sh: one row per arm, and its learning curve.

    .venv/bin/python benchmarks/sampling_table.py outputs/learning-sampling [--json out.json]

Per arm, from its metrics.jsonl and its held-out evaluations (eval-<arm>-checkpoint-N, eval-<arm>-final):
steps, GRPO minutes (the sum of trl's step_time), seconds per step, held-out right-in-<answer> at each checkpoint
(with its minute), worked step and mean tokens of the final model, last-step entropy, the smallest share of groups
with reward variance over any 10-step window (of the groups generated, refills included), and the share of sampled
completions that were right over the first and last 10 steps (the correctness reward pays 2.0 for a right answer);
with a difficulty schedule, the step at which each level opened.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

WINDOW = 10


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def variance_share(step: dict) -> float:
    """Of the groups generated this step, the share whose rewards differed."""
    generated = step.get("dynamic_sampling/groups_generated")
    if generated:
        dropped = sum(step.get(f"dynamic_sampling/dropped_{k}", 0.0) for k in ("all_right", "all_wrong", "other"))
        return 1.0 - dropped / generated
    return 1.0 - step.get("frac_reward_zero_std", 0.0)


def held_out(out: Path, name: str) -> dict | None:
    path = out / f"eval-{name}" / "metrics.json"
    return json.loads(path.read_text()) if path.exists() else None


def arm_summary(out: Path, arm: str) -> dict:
    steps = [m for m in read_rows(out / arm / "metrics.jsonl") if "loss" in m]
    minutes, curve = 0.0, []
    at_minute = {}
    for step in steps:
        minutes += step.get("step_time", 0.0) / 60
        at_minute[step["step"]] = minutes
    final = held_out(out, f"{arm}-final")
    for ckpt in sorted((out / arm).glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1])):
        number = int(ckpt.name.split("-")[1])
        metrics = held_out(out, f"{arm}-{ckpt.name}") if not (final and number == len(steps)) else None
        if metrics:
            curve.append({"step": number, "minutes": round(at_minute.get(number, 0.0), 1),
                          "right": metrics["accuracy_strict"]})
    windows = [steps[i:i + WINDOW] for i in range(0, len(steps) - WINDOW + 1, WINDOW)]
    right = [s.get("rewards/correctness_reward_func/mean", 0.0) / 2 for s in steps]
    return {
        "arm": arm, "steps": len(steps), "minutes": round(minutes, 1),
        "s_per_step": round(minutes * 60 / max(1, len(steps)), 1),
        "curve": curve + ([{"step": len(steps), "minutes": round(minutes, 1), "right": final["accuracy_strict"]}]
                          if final else []),
        "final": None if not final else {k: final[k] for k in ("accuracy_strict", "worked_step_fraction",
                                                                  "mean_completion_tokens", "truncated_fraction")},
        "entropy_last": round(steps[-1].get("entropy", float("nan")), 3) if steps else None,
        "variance_min_window": round(min(sum(map(variance_share, w)) / len(w) for w in windows), 2)
        if windows else None,
        "variance_last_window": round(sum(map(variance_share, steps[-WINDOW:])) / len(steps[-WINDOW:]), 2)
        if steps else None,
        "sampled_right_first": round(sum(right[:WINDOW]) / len(right[:WINDOW]), 3) if steps else None,
        "sampled_right_last": round(sum(right[-WINDOW:]) / len(right[-WINDOW:]), 3) if steps else None,
        "level_opened_at_step": level_steps(steps),
    }


def level_steps(steps: list[dict]) -> dict:
    """With a difficulty schedule: the first step logged at each level above 0."""
    opened = {}
    for step in steps:
        level = int(step.get("curriculum/level", 0))
        for k in range(1, level + 1):
            opened.setdefault(k, step["step"])
    return opened


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--arms", nargs="+", default=["control", "dynamic", "curriculum", "both"])
    parser.add_argument("--json")
    args = parser.parse_args()
    start = held_out(args.out, "coldstart")
    rows = [arm_summary(args.out, arm) for arm in args.arms if (args.out / arm / "metrics.jsonl").exists()]
    if start:
        print(f"cold start: right {start['accuracy_strict']:.3f}, worked step {start['worked_step_fraction']:.3f}, "
              f"{start['mean_completion_tokens']:.1f} tokens")
    print("| arm | steps | GRPO min | s/step | held-out right (step: value) | final right | worked step | tokens "
          "| entropy, last step | groups with variance, worst / last 10-step window "
          "| sampled right, first / last 10 |")
    print("|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        final = r["final"] or {}
        curve = ", ".join(f"{c['step']}: {c['right']:.3f}" for c in r["curve"])
        nan = float("nan")
        print(f"| {r['arm']} | {r['steps']} | {r['minutes']} | {r['s_per_step']} | {curve} | "
              f"{final.get('accuracy_strict', nan):.3f} | {final.get('worked_step_fraction', nan):.3f} "
              f"| {final.get('mean_completion_tokens', nan):.1f} | {r['entropy_last']} | "
              f"{r['variance_min_window']} / {r['variance_last_window']} | "
              f"{r['sampled_right_first']} / {r['sampled_right_last']} |")
    for r in rows:
        if r["level_opened_at_step"]:
            print(f"{r['arm']}: level opened at step " + ", ".join(
                f"{k}: {v}" for k, v in r["level_opened_at_step"].items()))
    if args.json:
        Path(args.json).write_text(json.dumps({"coldstart": start, "arms": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
