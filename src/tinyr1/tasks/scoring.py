"""What ``tinyr1 eval`` counts: the per-question record of a completion, the metrics over many, and the re-scoring
of an eval folder written under the previous strict rule.

Right answers are ``tinyr1.tasks.answers.is_correct``'s (strict: the last closed ``<answer>`` block; flexible: the
last number); ``accuracy_recipe_reward`` is what the recipe's ``correctness`` reward pays for (a bare right number
counts); format metrics are the format rewards' own verdicts.
"""

from __future__ import annotations

from pathlib import Path

from tinyr1.infra.errors import TinyR1Error
from tinyr1.infra.files import read_json, read_jsonl
from tinyr1.infra.naming import setting
from tinyr1.tasks import answers, rewards
from tinyr1.tasks.statistics import paired_comparison, wilson_interval

METRIC_FLAGS = {"accuracy_strict": "correct_strict", "accuracy_flexible": "correct_flexible",
                "accuracy_recipe_reward": "correct_recipe_reward", "format_strict": "format_strict",
                "format_soft": "format_soft", "worked_step_fraction": "worked_step"}
# More than this share of greedy answers cut at the token limit is called out (eval's table, the learning summary):
# a model that repeats its tags until the limit instead of ending is not one whose accuracy reads at face value.
CUT_WARNING = 0.05


def cut_share(metrics: dict) -> tuple[float | None, int | None]:
    """An evaluation's share of answers cut at the token limit and that limit, each None where metrics.json lacks it.

    >>> cut_share({"truncated_fraction": 0.25, "decoding": {"max_new_tokens": 48}})
    (0.25, 48)
    >>> cut_share({"truncated_fraction": True})
    (None, None)
    """
    share = metrics.get("truncated_fraction")
    limit = (metrics.get("decoding") or {}).get("max_new_tokens")
    return (share if isinstance(share, (int, float)) and not isinstance(share, bool) else None,
            limit if isinstance(limit, int) and not isinstance(limit, bool) else None)
# The accuracies metrics.json gives a 95% Wilson interval for, as ``<name>_ci95`` (tinyr1.tasks.statistics).
INTERVAL_METRICS = ("accuracy_strict", "accuracy_flexible", "accuracy_recipe_reward")


def score_completion(completion: str, gold: str) -> dict:
    """The per-question record: extracted answers (``extracted`` is None without a closed ``<answer>`` block) and
    one boolean per metric.

    >>> r = score_completion("<reasoning>\\n4-1-1=2\\n</reasoning>\\n<answer>\\n2\\n</answer>", "2")
    >>> r["correct_strict"], r["correct_flexible"], r["format_strict"], r["format_soft"], r["worked_step"]
    (True, True, True, True, True)
    >>> r = score_completion("He has 4 - 1 - 1 = 2 apples left.", "2")
    >>> r["correct_strict"], r["correct_flexible"], r["extracted_flexible"]
    (False, True, '2')
    >>> r = score_completion("7", "7")
    >>> r["correct_strict"], r["extracted"], r["correct_flexible"], r["correct_recipe_reward"]
    (False, None, True, True)
    """
    chat = [[{"role": "assistant", "content": completion}]]
    return {
        "extracted": answers.strict_answer(completion),
        "extracted_flexible": answers.extract_last_number(completion),
        "correct_strict": answers.is_correct(completion, gold, scoring="strict"),
        "correct_flexible": answers.is_correct(completion, gold, scoring="flexible"),
        "correct_recipe_reward": rewards.correctness_reward_func(chat, [gold])[0] > 0,
        "format_strict": rewards.strict_format_reward_func(chat)[0] > 0,
        "format_soft": rewards.soft_format_reward_func(chat)[0] > 0,
        "worked_step": answers.has_worked_step(completion),
    }


def summarize(samples: list[dict]) -> dict:
    """Fractions over the per-question records (what ``metrics.json`` holds besides the run facts), and each
    accuracy's 95% Wilson interval.

    >>> m = summarize([{"correct_strict": True}, {"correct_strict": False}])
    >>> m["n"], m["accuracy_strict"], [round(x, 3) for x in m["accuracy_strict_ci95"]]
    (2, 0.5, [0.095, 0.905])
    """
    n = len(samples)
    counts = {name: sum(bool(s.get(flag, False)) for s in samples) for name, flag in METRIC_FLAGS.items()}
    metrics = {"n": n, **{name: count / n for name, count in counts.items()}}
    metrics.update({f"{name}_ci95": list(wilson_interval(counts[name], n)) for name in INTERVAL_METRICS})
    if samples and "num_tokens" in samples[0]:
        metrics["mean_completion_tokens"] = sum(s["num_tokens"] for s in samples) / n
        metrics["truncated_fraction"] = sum(s["truncated"] for s in samples) / n
    return metrics


def rescored_metrics(eval_dir: str | Path) -> dict | None:
    """An eval folder's ``metrics.json`` (None when absent), its scores recomputed from ``samples.jsonl`` when it was
    written before strict accuracy needed the ``<answer>`` block (no ``accuracy_recipe_reward`` in it).

    Without the samples to score again, the old ``accuracy_strict`` (the recipe reward's rule) is moved to
    ``accuracy_recipe_reward`` and ``accuracy_strict`` becomes None, so a table never shows it under the new name.
    """
    folder = Path(eval_dir)
    metrics = read_json(folder / "metrics.json")
    if not isinstance(metrics, dict) or "accuracy_recipe_reward" in metrics or "accuracy_strict" not in metrics:
        return metrics
    samples = [s for s in read_jsonl(folder / "samples.jsonl", missing_ok=True)
               if isinstance(s.get("completion"), str) and s.get("answer") is not None]
    if samples and len(samples) == metrics.get("n"):
        scored = [{**s, **score_completion(s["completion"], str(s["answer"]))} for s in samples]
        return {**metrics, **summarize(scored), "rescored": True}
    return {**metrics, "accuracy_recipe_reward": metrics["accuracy_strict"], "accuracy_strict": None}


def eval_verdicts(eval_dir: str | Path, flag: str = "correct_strict") -> tuple[list[tuple[str, str]], list[bool]]:
    """An eval folder's questions (question, gold) in order and one verdict each, scored again from the completion
    under the current rules (so a folder written under an older rule pairs honestly with a new one)."""
    samples_file = Path(eval_dir) / "samples.jsonl"
    if not samples_file.is_file():
        raise TinyR1Error(f"{eval_dir}: no samples.jsonl; give a folder that tinyr1 eval wrote "
                          f"({setting('output_dir')})")
    questions, verdicts = [], []
    for index, s in enumerate(read_jsonl(samples_file), 1):
        if not isinstance(s.get("completion"), str) or s.get("answer") is None or "question" not in s:
            raise TinyR1Error(f"{samples_file} line {index}: needs question, answer and completion; write it "
                              "again with tinyr1 eval")
        questions.append((str(s["question"]), str(s["answer"])))
        verdicts.append(bool(score_completion(s["completion"], str(s["answer"]))[flag]))
    return questions, verdicts


def paired_evals(dir_a: str | Path, dir_b: str | Path, flag: str = "correct_strict") -> dict:
    """``paired_comparison`` of two eval folders (a before, b after); refused in one line when they did not answer
    the same questions in the same order."""
    questions_a, verdicts_a = eval_verdicts(dir_a, flag)
    questions_b, verdicts_b = eval_verdicts(dir_b, flag)
    if questions_a != questions_b:
        where = next((i for i, (x, y) in enumerate(zip(questions_a, questions_b, strict=False)) if x != y), None)
        detail = (f"question {where + 1} differs" if where is not None else
                  f"{len(questions_a)} questions against {len(questions_b)}")
        raise TinyR1Error(f"{setting('evals')} {dir_a} {dir_b}: not the same questions ({detail}); evaluate both with "
                          f"the same {setting('dataset_name')}, {setting('dataset_options')}, {setting('split')} and "
                          f"{setting('limit')}")
    if not questions_a:
        raise TinyR1Error(f"{setting('evals')} {dir_a} {dir_b}: no questions in either samples.jsonl")
    return paired_comparison(verdicts_a, verdicts_b)
