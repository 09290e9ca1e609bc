"""Did the run learn? The mean reward of the first and last steps and held-out accuracy before and after.

Printed at the end of ``make demo`` and written at the top of every run's report (``tinyr1.evaluation.report``):

    python -m tinyr1.evaluation.learning_summary outputs/demo/grpo [--base outputs/demo/eval-base]

"accuracy (in `<answer>`)" is ``tinyr1 eval``'s ``accuracy_strict`` (``tinyr1.tasks.answers.is_correct``: the last
``<answer>`` block equals the gold; a bare right number does not count). An eval folder written before that rule
is scored again from its samples (``tinyr1.tasks.scoring.rescored_metrics``); "—" where it cannot be. Beside it,
its 95% Wilson interval, and where both evaluations asked the same questions, the question-by-question comparison
(wrong->right, right->wrong, McNemar's p: ``tinyr1.tasks.statistics``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tinyr1.infra.errors import TinyR1Error
from tinyr1.infra.naming import command_line
from tinyr1.run_folder.logs import read_rows
from tinyr1.tasks.scoring import paired_evals, rescored_metrics
from tinyr1.tasks.statistics import describe_paired, format_interval, wilson_interval


def _steps(run_dir: Path) -> list[dict]:
    # the report's reader: a row a kill cut or a hand edit damaged is skipped (tinyr1.run_folder.logs)
    return [r for r in read_rows(run_dir / "metrics.jsonl")[0] if isinstance(r.get("reward"), (int, float))]


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def reward_ends(steps: list[dict], window: int = 3) -> dict:
    """Mean reward of the first and last step, and of the first and last ``window`` steps (less noisy).

    >>> e = reward_ends([{"step": i, "reward": r} for i, r in enumerate([0.5, 1.0, 1.5, 2.0, 2.5], 1)], window=2)
    >>> e["first"], e["last"], e["first_window"], e["last_window"], e["steps"]
    (0.5, 2.5, 0.75, 2.25, 5)
    """
    rewards = [s["reward"] for s in steps if s.get("reward") is not None]
    if not rewards:
        return {"steps": 0}
    window = max(1, min(window, len(rewards) // 2 or 1))
    return {"steps": len(rewards), "first": rewards[0], "last": rewards[-1],
            "first_window": _mean(rewards[:window]), "last_window": _mean(rewards[-window:]), "window": window}


def _fmt(value) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "—"


def _interval(metrics: dict) -> str:
    accuracy, n = metrics.get("accuracy_strict"), metrics.get("n")
    if not isinstance(accuracy, (int, float)) or not isinstance(n, int) or n <= 0:
        return "—"
    return format_interval(*wilson_interval(round(accuracy * n), n))


def paired_lines(run_dir: str | Path) -> list[str]:
    """Before against after on the same questions, one verdict each; nothing when either evaluation's samples are
    missing or the two asked different questions."""
    before, after = Path(run_dir) / "eval" / "before", Path(run_dir) / "eval" / "after"
    if not ((before / "samples.jsonl").is_file() and (after / "samples.jsonl").is_file()):
        return []
    try:
        comparison = paired_evals(before, after)
    except TinyR1Error:
        return []
    return ["Question by question, before -> after:", "", *(f"- {line}" for line in describe_paired(comparison)), ""]


def learning_lines(run_dir: str | Path, base: str | Path | None = None, rows: list[dict] | None = None) -> list[str]:
    """A markdown table: reward at the first and last steps, held-out accuracy and reasoning before and after.
    ``rows``: the run's logged rows where they are not its metrics.jsonl (a trl run's log history)."""
    run_dir = Path(run_dir)
    steps = _steps(run_dir) if rows is None else [r for r in rows if isinstance(r.get("reward"), (int, float))]
    ends = reward_ends(steps)
    base_metrics = rescored_metrics(base) if base is not None else None
    stages = [("base model", base_metrics)] if base_metrics else []
    for stage, label in (("before", "before GRPO (step 0)"), ("after", f"after GRPO (step {ends.get('steps', '?')})")):
        metrics = rescored_metrics(run_dir / "eval" / stage)
        if metrics:
            stages.append((label, metrics))
    lines = []
    if ends.get("steps"):
        w = ends["window"]
        lines += [f"| mean reward | first step | last step | first {w} steps | last {w} steps |",
                  "|---|---:|---:|---:|---:|",
                  f"| | {_fmt(ends['first'])} | {_fmt(ends['last'])} | {_fmt(ends['first_window'])} | "
                  f"{_fmt(ends['last_window'])} |", ""]
    if stages:
        n = stages[-1][1].get("n")
        lines += [f"| held-out (n={n}, greedy) | accuracy (in `<answer>`) | accuracy (last number) | worked step | "
                  "mean tokens | accuracy (in `<answer>`), 95% CI |", "|---|---:|---:|---:|---:|---:|"]
        lines += [f"| {label} | {_fmt(m.get('accuracy_strict'))} | {_fmt(m.get('accuracy_flexible'))} | "
                  f"{_fmt(m.get('worked_step_fraction'))} | {_fmt(m.get('mean_completion_tokens'))} | "
                  f"{_interval(m)} |" for label, m in stages]
        lines.append("")
    return lines + paired_lines(run_dir)


@command_line
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run_dir", help="a tinyr1 train output_dir")
    p.add_argument("--base", help="an eval folder (metrics.json) of the model before any training, shown first")
    args = p.parse_args(argv)
    print("\n".join(learning_lines(args.run_dir, args.base)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
