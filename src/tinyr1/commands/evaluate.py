"""``tinyr1 eval``: accuracy and format compliance on a test split, strict and flexible side by side.

    tinyr1 eval --model_name_or_path smollm2-135m-instruct --dataset_name ../shared/data/gsm8k --limit 50 \
        --output_dir d
    tinyr1 eval --predictions preds.jsonl --output_dir d     # score completions made elsewhere, no model

Right answers are scored by ``tinyr1.tasks.answers.is_correct``, the one definition the probe, the summaries and
the rewards share:

- ``accuracy_strict``: the text inside the last ``<answer>...</answer>`` equals the gold (numbers as numbers); a
  completion without a closed answer block never counts, so a bare ``7`` is not strict-correct.
- ``accuracy_flexible``: the last number anywhere in the completion equals the gold (lm-evaluation-harness's
  "flexible-extract"), so a model that answers right without the tags still counts there.
- ``accuracy_recipe_reward``: what the recipe's ``correctness`` reward pays for (without tags the whole text is
  the answer, so a bare right number counts) — what training rewarded, not a format check.

Format metrics go through the format rewards themselves; the per-question record and the metrics over them are
``tinyr1.tasks.scoring``'s. Writes ``metrics.json`` and ``samples.jsonl`` to ``--output_dir``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tinyr1.evaluation.evaluate import check_not_foreign, claim_output_dir, cut_warning, evaluate, format_metric
from tinyr1.infra.errors import TinyR1Error, one_line_errors
from tinyr1.infra.naming import command_line, setting
from tinyr1.infra.options import parse_command
from tinyr1.infra.paths import check_output_dir
from tinyr1.run_folder import ownership
from tinyr1.run_folder.run_json import warn_if_unfinished
from tinyr1.tasks.answers import SYSTEM_PROMPT
from tinyr1.tasks.scoring import METRIC_FLAGS


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tinyr1 eval", description="Accuracy (strict and flexible) and format "
                                "compliance of a model's greedy answers on a test split.")
    p.add_argument("--model_name_or_path", help="hub id, local folder, .gguf, smollm2-135m-instruct, or a run's "
                   "output folder or checkpoint")
    p.add_argument("--adapter", help="a LoRA adapter folder to apply on top of the model")
    p.add_argument("--dataset_name", default="openai/gsm8k", help="any source tinyr1 prepare accepts")
    p.add_argument("--dataset_options", nargs="+", metavar="KEY=VALUE", help="reasoning-gym generator options, "
                   "e.g. min_terms=2 max_terms=3 max_digits=1 (as in training)")
    p.add_argument("--split", default="test", help="split to score (default test)")
    p.add_argument("--limit", type=int, help="score the first N questions")
    p.add_argument("--batch_size", type=int, default=16, help="questions generated together (default 16)")
    p.add_argument("--max_new_tokens", type=int, default=256, help="generation length (default 256)")
    p.add_argument("--system_prompt", default=SYSTEM_PROMPT, help="system prompt (default: the recipe's)")
    p.add_argument("--dtype", default="auto", help="auto, bfloat16, float16 or float32",
                   choices=("auto", "bfloat16", "float16", "float32", "bf16", "fp16", "fp32"))
    p.add_argument("--use_vllm", action="store_true", help="generate with vLLM (needs vllm and a CUDA GPU)")
    p.add_argument("--predictions", help="score this JSON-lines file (question, answer, completion); no model")
    p.add_argument("--output_dir", required=True, help="where metrics.json and samples.jsonl go")
    return one_line_errors(p, "tinyr1 eval")


def parse_args(argv: list[str] | None = None, *, values: dict | None = None,
               caller: str | None = None) -> argparse.Namespace:
    """The options, range-checked, and the output folder checked, before any model loads or generates."""
    args = parse_command(build_parser(), argv, values, caller)
    check_output_dir(args.output_dir, setting("output_dir"))  # before any model loads or generates
    ownership.check_folder(args.output_dir, "eval", setting("output_dir"))  # train's rule: never a folder of yours
    check_not_foreign(Path(args.output_dir))
    if not args.predictions and not args.model_name_or_path:
        raise TinyR1Error(f"give {setting('model_name_or_path')} (or {setting('predictions')} to score existing "
                          "completions)")
    if args.model_name_or_path and not args.predictions:
        from tinyr1.models.loading import check_context, local_config  # lazy: loads torch; --predictions needs none

        check_context(local_config(args.model_name_or_path), args.model_name_or_path,
                      [(setting("max_new_tokens"), args.max_new_tokens)])
    return args


def run(args: argparse.Namespace) -> dict:
    """``evaluate`` with the parsed options: a missing model or adapter fails before the data loads, and the output
    folder is locked for the evaluation (released after it, for a caller that goes on, such as the Python API)."""
    if args.model_name_or_path:
        from tinyr1.models.loading import resolve_model  # lazy: loads torch, which --predictions needs not

        warn_if_unfinished(args.model_name_or_path)
        resolve_model(args.model_name_or_path, args.adapter)
    lock = claim_output_dir(Path(args.output_dir))
    try:
        return _evaluate_parsed(args)
    finally:
        lock.release()


def _evaluate_parsed(args: argparse.Namespace) -> dict:
    return evaluate(args.model_name_or_path, adapter=args.adapter, dataset_name=args.dataset_name,
                    split=args.split, limit=args.limit, batch_size=args.batch_size,
                    max_new_tokens=args.max_new_tokens, system_prompt=args.system_prompt,
                    output_dir=args.output_dir, predictions=args.predictions, use_vllm=args.use_vllm,
                    dtype=args.dtype, dataset_options=args.dataset_options)


def print_table(metrics: dict, title: str = "evaluation") -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{title} (n={metrics['n']})", caption=cut_warning(metrics))
    table.add_column("metric")
    table.add_column("value", justify="right")
    # the share cut at the limit next to accuracy: a model that never ends its answers shows at once
    others = [key for key in METRIC_FLAGS if key != "accuracy_strict"]
    for key in ("accuracy_strict", "truncated_fraction", *others, "mean_completion_tokens", "tokens_per_second",
                "seconds"):
        if metrics.get(key) is not None:
            table.add_row(key, format_metric(metrics, key))
    Console().print(table)


@command_line
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.model_name_or_path:
        from tinyr1.infra.device import configure_cpu  # lazy: loads torch, which --predictions needs not

        configure_cpu()
    metrics = run(args)
    print_table(metrics, args.model_name_or_path or args.predictions)
    print(f"wrote {Path(args.output_dir) / 'metrics.json'} and samples.jsonl")
    return 0


if __name__ == "__main__":
    sys.exit(main())
