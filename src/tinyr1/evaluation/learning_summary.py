"""Did the run learn? The mean reward of the first and last steps and held-out accuracy before and after.

Printed at the end of ``make demo`` and written at the top of every run's report (``tinyr1.evaluation.report``):

    python -m tinyr1.evaluation.learning_summary outputs/demo/grpo [--base outputs/demo/eval-base]

"accuracy (in `<answer>`)" is ``tinyr1 eval``'s ``accuracy_strict`` (``tinyr1.tasks.answers.is_correct``: the last
``<answer>`` block equals the gold; a bare right number does not count). An eval folder written before that rule
is scored again from its samples (``tinyr1.tasks.scoring.rescored_metrics``); "—" where it cannot be. Beside it,
its 95% Wilson interval and the share of answers cut at the token limit (a model that never ends its answer shows
there at once), and where both evaluations asked the same questions, the question-by-question comparison
(wrong->right, right->wrong, McNemar's p: ``tinyr1.tasks.statistics``). Last, the warnings: held-out accuracy that
ended below its start, and answers that do not end (more than ``CUT_WARNING`` of them cut at the limit).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tinyr1.infra.errors import TinyR1Error
from tinyr1.infra.naming import command_line
from tinyr1.run_folder.logs import read_rows
from tinyr1.tasks.scoring import CUT_WARNING, cut_share, paired_evals, rescored_metrics
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


def paired(run_dir: str | Path) -> dict | None:
    """Before against after on the same questions (``paired_evals``); None when either evaluation's samples are
    missing or the two asked different questions."""
    before, after = Path(run_dir) / "eval" / "before", Path(run_dir) / "eval" / "after"
    if not ((before / "samples.jsonl").is_file() and (after / "samples.jsonl").is_file()):
        return None
    try:
        return paired_evals(before, after)
    except TinyR1Error:
        return None


def paired_lines(comparison: dict | None) -> list[str]:
    """Before against after on the same questions (``paired``'s comparison), one verdict each; nothing for None."""
    if comparison is None:
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
        lines += [f"| held-out (n={n}, greedy) | accuracy (in `<answer>`) | 95% CI | cut at the token limit | "
                  "accuracy (last number) | worked step | mean tokens |", "|---|---:|---:|---:|---:|---:|---:|"]
        lines += [f"| {label} | {_fmt(m.get('accuracy_strict'))} | {_interval(m)} | {_cut(m)} | "
                  f"{_fmt(m.get('accuracy_flexible'))} | {_fmt(m.get('worked_step_fraction'))} | "
                  f"{_fmt(m.get('mean_completion_tokens'))} |" for label, m in stages]
        lines.append("")
    comparison = paired(run_dir)
    return lines + paired_lines(comparison) + warning_lines(dict(stages), ends, comparison)


def _cut(metrics: dict) -> str:
    share, limit = cut_share(metrics)
    if share is None:
        return "—"
    return f"{share:.1%}" + (f" (at {limit})" if limit is not None else "")


def warning_lines(stages: dict, ends: dict, comparison: dict | None = None) -> list[str]:
    """What the table shows that a reader must not miss: held-out accuracy after training below the start's (the
    run unlearned, whatever its reward did; with McNemar's p where ``comparison``, the paired verdicts, is given),
    and a trained model whose greedy answers run to the token limit; [] when there is nothing to say."""
    lines = []
    before = next((m for label, m in stages.items() if label.startswith("before")), None)
    after = next((m for label, m in stages.items() if label.startswith("after")), None)
    start, end = ((m or {}).get("accuracy_strict") for m in (before, after))
    if isinstance(start, (int, float)) and isinstance(end, (int, float)) and end < start:
        reward = (f", while the mean reward went {_fmt(ends['first'])} -> {_fmt(ends['last'])}"
                  if ends.get("steps") else "")
        test, verdict = "", "This run did not learn what the held-out set measures."
        if comparison:
            test = (f" (right->wrong {comparison['right_to_wrong']}, wrong->right {comparison['wrong_to_right']}, "
                    f"McNemar p = {comparison['p_value']:.2g})")
            if comparison["p_value"] >= 0.05:
                verdict = (f"On {comparison['n']} questions a drop this size is within chance; evaluate on more "
                           "questions before trusting either way.")
            else:
                verdict = "This run unlearned what the held-out set measures."
        lines.append(f"- **Held-out accuracy ended below its start**: {start:.3f} before GRPO, {end:.3f} after"
                     f"{test}{reward}. {verdict}")
    trained = [(label, m) for label, m in stages.items() if label.startswith(("after", "before"))]
    for label, metrics in sorted(trained, key=lambda item: not item[0].startswith("after")):
        share, limit = cut_share(metrics)
        if share is not None and share > CUT_WARNING:
            lines.append(f"- **{share:.1%} of the greedy answers {label} are cut at the token limit"
                         f"{f' ({limit})' if limit is not None else ''}**: the model does not end its answers "
                         f"(more than {CUT_WARNING:.0%} is a warning).")
    return ["Warnings:", "", *lines, ""] if lines else []


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
