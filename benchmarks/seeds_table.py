"""The Markdown tables of benchmarks/learning_seeds.sh: every model on the same held-out sums, arms over seeds.

    .venv/bin/python benchmarks/seeds_table.py outputs/seeds [--seeds 1 2 3] [--json out.json]

Per arm: held-out accuracy (the answer in <answer>, tinyr1 eval's accuracy_strict) as the mean over training seeds
with the range, each seed's value, the 95% Wilson interval of the pooled answers (all seeds' answers together:
the question sampling only, not the seed-to-seed spread, which the range shows), and question by question against
the model it started from (wrong->right, right->wrong, exact McNemar p), plus worked steps, length and answers cut
at the limit. Then the arms against each other, seed k against seed k on the same questions. Every statistic is
tinyr1.tasks.statistics', the one definition eval and compare use.
"""

from __future__ import annotations

import argparse
import json
import statistics as stats
import sys
from pathlib import Path

from tinyr1.infra.files import read_json, read_jsonl
from tinyr1.tasks.scoring import score_completion
from tinyr1.tasks.statistics import format_interval, paired_comparison, wilson_interval

# (arm, label, the model its seeds start from)
ARMS = (("recipe", "+ grpo-arith-from-sft-cpu.yaml (dapo loss, dynamic sampling)", "start"),
        ("control", "+ plain GRPO (dr_grpo loss, no dynamic sampling)", "start"),
        ("sft", "+ more SFT for about the recipe's minutes", "start"),
        ("demo", "+ the demo's GRPO", "demo-coldstart"))
SINGLE = (("base", "SmolLM2-135M-Instruct"), ("start", "the SFT recipe's 40-step cold start"),
          ("demo-coldstart", "make demo's 12-step cold start"))
VERSUS = (("recipe", "control", "RL's two choices: the recipe against plain GRPO"),
          ("recipe", "sft", "reinforcement against imitation for the same minutes"),
          ("control", "sft", "plain GRPO against more SFT"))


def load_eval(out: Path, name: str) -> dict | None:
    """One evaluation's verdicts, scored again from the completions under the current rules."""
    samples = read_jsonl(out / f"eval-{name}" / "samples.jsonl", missing_ok=True)
    if not samples:
        return None
    scored = [score_completion(s["completion"], str(s["answer"])) for s in samples]
    return {"questions": [(s["question"], str(s["answer"])) for s in samples],
            "right": [r["correct_strict"] for r in scored], "worked": [r["worked_step"] for r in scored],
            "tokens": [s.get("num_tokens", 0) for s in samples], "cut": [bool(s.get("truncated")) for s in samples]}


def training_facts(out: Path, name: str) -> dict:
    """Steps and training seconds (trl's train_runtime) of a run folder, and the stage's wall seconds."""
    runtime = [r["train_runtime"] for r in read_jsonl(out / name / "metrics.jsonl", missing_ok=True)
               if "train_runtime" in r]
    walls = {}
    if (out / "wall.tsv").is_file():
        for line in (out / "wall.tsv").read_text().splitlines():
            stage, _, seconds = line.partition("\t")
            walls[stage] = float(seconds)
    return {"steps": (read_json(out / name / "run.json") or {}).get("global_step"),
            "train_seconds": runtime[-1] if runtime else None, "wall_seconds": walls.get(name)}


def precision_of(out: Path, name: str) -> dict:
    """Where and in what precision a model was trained (its run.json: tinyr1 train and sft record both) and
    evaluated (eval's metrics.json); None for what a folder does not say (runs of earlier versions)."""
    run = read_json(out / name / "run.json") if (out / name).is_dir() else None
    run = run if isinstance(run, dict) else {}
    metrics = read_json(out / f"eval-{name}" / "metrics.json")
    metrics = metrics if isinstance(metrics, dict) else {}
    bf16, cpu = run.get("bf16"), run.get("cpu") if isinstance(run.get("cpu"), dict) else {}
    train_cpu = cpu.get("cpu_name")
    if train_cpu and cpu.get("capability"):
        train_cpu += f" ({cpu['capability']}, {'native bf16' if cpu.get('native') else 'no native bf16'})"
    return {"trained": "bf16 autocast" if bf16 else "fp32" if bf16 is False else None, "train_cpu": train_cpu,
            "evaluated": metrics.get("dtype"), "eval_cpu": metrics.get("cpu")}


def _acc(e: dict) -> float:
    return sum(e["right"]) / len(e["right"])


def _paired(before: dict, after: dict) -> dict:
    if before["questions"] != after["questions"]:
        raise SystemExit("the evaluations did not ask the same questions; evaluate every model with the same "
                         "--dataset_options, --split and --limit")
    return paired_comparison(before["right"], after["right"])


def _describe(evals: list[dict]) -> dict:
    right = sum(sum(e["right"]) for e in evals)
    n = sum(len(e["right"]) for e in evals)
    accs = [_acc(e) for e in evals]
    return {"accs": accs, "mean": stats.mean(accs), "ci95": wilson_interval(right, n), "n": n,
            "worked": sum(sum(e["worked"]) for e in evals) / n, "tokens": sum(sum(e["tokens"]) for e in evals) / n,
            "cut": sum(sum(e["cut"]) for e in evals) / n,
            "cut_each": [sum(e["cut"]) / len(e["cut"]) for e in evals]}


def build(out: Path, seeds: list[int]) -> dict:
    evals = {name: load_eval(out, name) for name, _ in SINGLE}
    result = {"single": {}, "arms": {}, "versus": [], "where": {}}
    for name, label in SINGLE:
        if evals[name]:
            result["single"][name] = {"label": label, **_describe([evals[name]])}
    for arm, label, start in ARMS:
        runs = [(k, load_eval(out, f"{arm}-s{k}")) for k in seeds]
        runs = [(k, e) for k, e in runs if e]
        if not runs:
            continue
        row = {"label": label, "seeds": [k for k, _ in runs], **_describe([e for _, e in runs]),
               "training": [training_facts(out, f"{arm}-s{k}") for k, _ in runs]}
        if evals.get(start):
            row["vs_start"] = [_paired(evals[start], e) for _, e in runs]
        result["arms"][arm] = row
        for k, e in runs:
            evals[f"{arm}-s{k}"] = e
    result["where"] = {name: precision_of(out, name) for name, e in evals.items() if e}
    for a, b, label in VERSUS:
        pairs = [(k, evals.get(f"{a}-s{k}"), evals.get(f"{b}-s{k}")) for k in seeds]
        pairs = [(k, x, y) for k, x, y in pairs if x and y]
        if pairs:
            result["versus"].append({"a": a, "b": b, "label": label, "seeds": [k for k, _, _ in pairs],
                                     "paired": [_paired(y, x) for _, x, y in pairs]})
    return result


def _spread(accs: list[float]) -> str:
    return f"{stats.mean(accs):.3f} ({min(accs):.3f}–{max(accs):.3f})" if len(accs) > 1 else f"{accs[0]:.3f}"


def markdown(result: dict) -> str:
    n = next(iter(result["single"].values()), next(iter(result["arms"].values()), {})).get("n")
    lines = ["| model | training | right (in `<answer>`), mean (range) over seeds | each seed | 95% CI, pooled "
             "answers | against its start, each seed: wrong→right / right→wrong (McNemar p) | worked step | "
             "tokens | cut |", "|---|---|---:|---|---:|---|---:|---:|---:|"]
    for row in result["single"].values():
        lines.append(f"| {row['label']} | — | {row['mean']:.3f} | — | {format_interval(*row['ci95'])} | — | "
                     f"{row['worked']:.3f} | {row['tokens']:.1f} | {row['cut']:.1%} |")
    for row in result["arms"].values():
        steps = {t["steps"] for t in row["training"]}
        minutes = [t["train_seconds"] / 60 for t in row["training"] if t["train_seconds"]]
        training = f"{'/'.join(str(s) for s in sorted(steps, key=str))} steps" + (
            f", {stats.mean(minutes):.1f} min" if minutes else "")
        versus = "; ".join(f"+{c['wrong_to_right']} / −{c['right_to_wrong']} ({c['p_value']:.2g})"
                           for c in row.get("vs_start", []))
        lines.append(f"| {row['label']} | {training} | **{_spread(row['accs'])}** | "
                     f"{' / '.join(f'{a:.3f}' for a in row['accs'])} | {format_interval(*row['ci95'])} | "
                     f"{versus or '—'} | {row['worked']:.3f} | {row['tokens']:.1f} | {row['cut']:.1%} "
                     f"({max(row['cut_each']):.1%}) |")
    lines += ["", f"n = {n} held-out questions per model; pooled: all seeds' answers together; cut: answers that "
              "ran to the token limit, pooled (worst seed).", "", *where_lines(result.get("where", {})), ""]
    if result["versus"]:
        lines += ["| comparison (seed k against seed k, the same questions) | difference, each seed (95% CI; "
                  "McNemar p) | mean difference |", "|---|---|---:|"]
        for v in result["versus"]:
            each = "; ".join(f"{c['difference']:+.3f} ({format_interval(*c['ci95'], signed=True)}; "
                             f"{c['p_value']:.2g})" for c in v["paired"])
            mean = stats.mean(c["difference"] for c in v["paired"])
            lines.append(f"| {v['a']} − {v['b']}: {v['label']} | {each} | {mean:+.3f} |")
        lines.append("")
    return "\n".join(lines)


def where_lines(where: dict) -> list[str]:
    """One line per (how trained, CPU) and per (how evaluated, CPU), naming the models it holds for."""
    groups: dict[str, list[str]] = {}
    for name, w in where.items():
        if name != "base":
            groups.setdefault(f"Trained in {w['trained'] or 'an unrecorded precision'} on "
                              f"{w['train_cpu'] or 'an unrecorded CPU'}", []).append(name)
        groups.setdefault(f"Evaluated in {w['evaluated'] or 'an unrecorded precision'} on "
                          f"{w['eval_cpu'] or 'an unrecorded CPU'}", []).append(name)
    return [f"{label}: {', '.join(names)}." for label, names in groups.items()]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", nargs="?", default="outputs/seeds", help="benchmarks/learning_seeds.sh's OUT_DIR")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--json", help="also write the numbers as JSON here (benchmarks/results/)")
    args = p.parse_args(argv)
    out = Path(args.out)
    if not out.is_dir():
        print(f"{out}: no such folder; run benchmarks/learning_seeds.sh {out} first", file=sys.stderr)
        return 2
    result = build(out, args.seeds)
    print(markdown(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=list) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
