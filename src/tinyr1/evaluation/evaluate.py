"""A model's held-out score: greedy answers to a test split, strict and flexible accuracy with intervals, format;
what ``tinyr1 eval`` and train's before/after evaluation run (the command only parses into it).

    metrics = evaluate("smollm2-135m-instruct", dataset_name="reasoning-gym:chain_sum", limit=32, output_dir="e")
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

from tinyr1.infra.errors import TinyR1Error
from tinyr1.infra.files import jsonl_bytes, write_together
from tinyr1.infra.naming import setting
from tinyr1.infra.paths import make_dirs
from tinyr1.infra.version import __version__
from tinyr1.run_folder import ownership
from tinyr1.run_folder.lock import RunLock
from tinyr1.tasks import answers
from tinyr1.tasks.answers import SYSTEM_PROMPT
from tinyr1.tasks.data import load_examples, read_rows_file
from tinyr1.tasks.reasoning_gym import parse_dataset_options
from tinyr1.tasks.rows import build_prompt
from tinyr1.tasks.scoring import CUT_WARNING, cut_share, score_completion, summarize
from tinyr1.tasks.statistics import format_interval


def read_predictions(path: str) -> list[dict]:
    file = Path(path)
    if not file.is_file():
        raise TinyR1Error(f"{setting('predictions')} {path}: no such file")
    rows = read_rows_file(file)
    for index, row in enumerate(rows, 1):
        missing = [k for k in ("question", "answer", "completion") if k not in row]
        if missing:
            raise TinyR1Error(f"{path} line {index}: missing field {' and '.join(missing)}; rows need question, "
                              "answer, completion")
        wrong = [k for k in ("question", "completion") if not isinstance(row[k], str)] + (
            ["answer"] if row["answer"] is None else [])
        if wrong:
            raise TinyR1Error(f"{path} line {index}: {' and '.join(wrong)} must be text, got "
                              f"{type(row[wrong[0]]).__name__}")
        gold = answers.extract_hash_answer(str(row["answer"]))
        row["answer"] = gold if gold is not None else str(row["answer"]).strip()
    if not rows:
        raise TinyR1Error(f"{path}: no rows")
    return rows


def _generate(model, tokenizer, examples, system_prompt, batch_size, max_new_tokens, use_vllm, model_path):
    conversations = [build_prompt(ex["question"], system_prompt) for ex in examples]
    start = time.perf_counter()
    if use_vllm:
        outputs = _generate_vllm(model_path, conversations, max_new_tokens)
    else:
        from tinyr1.models.generation import generate_batch  # lazy: loads torch; scoring files needs none

        outputs = generate_batch(model, tokenizer, conversations, max_new_tokens=max_new_tokens,
                                 batch_size=batch_size, desc="eval")
    return outputs, time.perf_counter() - start


def _generate_vllm(model_path: str, conversations, max_new_tokens: int):
    # Unverified here (no GPU in this project's CI): follows vLLM's documented LLM.chat API.

    try:
        from vllm import LLM, SamplingParams
    except ImportError:
        raise TinyR1Error(f"{setting('use_vllm')}: vllm is not installed; pip install vllm (needs a CUDA "
                          "GPU)") from None
    from tinyr1.infra.device import cuda_available  # lazy: loads torch

    if not cuda_available():
        raise TinyR1Error(f"{setting('use_vllm')} needs a CUDA GPU; drop the flag to use transformers")
    from tinyr1.models.generation import Generation  # lazy: loads torch; scoring files needs none

    params = SamplingParams(temperature=0.0, max_tokens=max_new_tokens)
    results = LLM(model=model_path).chat(conversations, params, use_tqdm=True)
    return [Generation(r.outputs[0].text, len(r.outputs[0].token_ids), r.outputs[0].finish_reason == "length")
            for r in results]


def evaluate(model_name_or_path: str | None = None, *, model=None, tokenizer=None, adapter: str | None = None,
             dataset_name: str = "openai/gsm8k", split: str = "test", limit: int | None = None,
             batch_size: int = 16, max_new_tokens: int = 256, system_prompt: str = SYSTEM_PROMPT,
             output_dir: str | Path | None = None, predictions: str | None = None, use_vllm: bool = False,
             dtype: str | None = None, dataset_options=None) -> dict:
    """Score a model (or a predictions file) and return the metrics; write both files when ``output_dir`` is set."""
    facts = {"dataset": dataset_name, "split": split, "limit": limit}
    if dataset_options:
        facts["dataset_options"] = parse_dataset_options(dataset_options)
    if predictions:
        rows = read_predictions(predictions)
        samples = [{"question": r["question"], "answer": r["answer"], "completion": r["completion"],
                    **score_completion(r["completion"], r["answer"])} for r in rows]
        metrics = summarize(samples)
        facts = {"predictions": str(predictions)}
    else:
        examples, _ = load_examples(dataset_name, split, limit, options=dataset_options)
        model_path = None
        if model is None:
            from tinyr1.models.loading import (  # lazy: loads torch; scoring files needs none
                load_model_and_tokenizer,
                resolve_model,
            )

            if not model_name_or_path:
                raise TinyR1Error(f"give {setting('model_name_or_path')} (or {setting('predictions')} to score "
                                  "existing completions)")
            resolved = resolve_model(model_name_or_path, adapter)
            model_path = resolved.path
            if not use_vllm:
                model, tokenizer = load_model_and_tokenizer(resolved, dtype=dtype)
        if model is not None:
            model.eval()
        outputs, seconds = _generate(model, tokenizer, examples, system_prompt, batch_size, max_new_tokens,
                                     use_vllm, model_path)
        samples = [{"question": ex["question"], "answer": ex["answer"], "completion": out.text,
                    "num_tokens": out.num_tokens, "truncated": out.truncated,
                    **score_completion(out.text, ex["answer"])} for ex, out in zip(examples, outputs, strict=True)]
        metrics = summarize(samples)
        generated = sum(s["num_tokens"] for s in samples)
        metrics.update(tokens_per_second=generated / seconds if seconds else None, seconds=round(seconds, 2))
        name = model_name_or_path or getattr(getattr(model, "config", None), "_name_or_path", "in-memory model")
        if model is not None:  # where and in what precision the answers were generated
            from tinyr1.infra.cpu_features import cpu_name  # lazy: loads torch

            weights = next(model.parameters())
            facts.update(dtype=str(weights.dtype).replace("torch.", ""), device=weights.device.type,
                         **({"cpu": cpu_name()} if weights.device.type == "cpu" else {}))
        facts.update(model=name, adapter=adapter, decoding={"greedy": True, "max_new_tokens": max_new_tokens,
                                                            "batch_size": batch_size, "backend": "vllm" if use_vllm
                                                            else "transformers", "system_prompt": system_prompt})
    metrics.update(facts, versions=_versions())
    if output_dir is not None:
        _write_pair(Path(output_dir), metrics, samples)
    return metrics


def _write_pair(out: Path, metrics: dict, samples: list[dict]) -> None:
    """``samples.jsonl`` and ``metrics.json`` as a pair: both written in full to hidden temporary files first, then
    renamed into place, metrics last. A failure while writing (a full disk: one line naming the path and the bytes
    needed) removes both temporary files and leaves the previous pair, or none, so the retry works."""
    make_dirs(out, setting("output_dir"))
    write_together([(out / "samples.jsonl", jsonl_bytes(samples)),
                    (out / "metrics.json", json.dumps(metrics, indent=2).encode("utf-8"))])


def _versions() -> dict:
    import torch
    import transformers


    return {"tinyr1": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version()}


def cut_warning(metrics: dict) -> str | None:
    """One line when more than ``CUT_WARNING`` of the answers ran to the token limit without ending, else None.

    >>> cut_warning({"truncated_fraction": 0.995, "decoding": {"max_new_tokens": 128}})
    'warning: 99.5% of the answers ran to the 128-token limit without ending; the model does not stop'
    >>> cut_warning({"truncated_fraction": 0.01}) is None
    True
    """
    share, limit = cut_share(metrics)
    if share is None or share <= CUT_WARNING:
        return None
    where = f"the {limit}-token limit" if limit is not None else "the token limit"
    return f"warning: {share:.1%} of the answers ran to {where} without ending; the model does not stop"


def format_metric(metrics: dict, key: str) -> str:
    """A metric's value as eval prints it; an accuracy with its 95% interval when metrics.json holds one.

    >>> format_metric({"n": 1000, "accuracy_strict": 0.412, "accuracy_strict_ci95": [0.3819, 0.4428]},
    ...               "accuracy_strict")
    '0.412 (95% CI 0.382–0.443, n=1000)'
    """
    value, interval = metrics[key], metrics.get(f"{key}_ci95")
    text = f"{value:.3f}" if isinstance(value, float) else str(value)
    if isinstance(interval, (list, tuple)) and len(interval) == 2:
        text += f" (95% CI {format_interval(*interval)}, n={metrics.get('n')})"
    return text


def check_not_foreign(out: Path) -> None:
    """eval replaces metrics.json and samples.jsonl in its folder: only ever ones tinyr1 wrote (the one rule,
    ``tinyr1.run_folder.ownership``). Only one process writes the folder (its lock, held until eval ends,
    ``claim_output_dir``), and the marker names both files before they are written."""
    for name in ("metrics.json", "samples.jsonl"):
        if (out / name).exists() and not ownership.is_ours(out / name):
            raise TinyR1Error(f"{setting('output_dir')} {out}: holds a {name} that tinyr1 eval did not write; pick "
                              "another folder (tinyr1 never replaces a file of yours)")


def claim_output_dir(out: Path):
    """The folder, locked for this process and its marker naming both files, before a model loads; the lock."""
    ownership.check_folder(out, "eval", setting("output_dir"))
    make_dirs(out, setting("output_dir"))
    lock = RunLock.acquire(out, "eval", setting("output_dir"))
    try:
        ownership.check_folder(out, "eval", setting("output_dir"))  # again: only now can no other process change it
        ownership.claim_outputs(out, "eval", ["metrics.json", "samples.jsonl"])
    except BaseException:
        lock.release()
        raise
    return lock
