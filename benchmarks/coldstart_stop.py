"""Does a cold start end its answers? The probability it gives the end-of-turn token right after ``</answer>`` and the
share of its greedy answers that run to the token limit, on held-out sums (what docs/results.md's cold-start table
shows):

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/coldstart_stop.py outputs/demo/coldstart [--questions 64]

- **P(end)**: teacher-forced on the worked solution of each held-out sum (``tinyr1.tasks.sft_rows``' target, the
  chat template's rendering, as SFT trained on it), the fp32 probability of ``<|im_end|>`` at the position after
  ``</answer>``: mean and minimum over the questions. Greedy decoding ends there only where it beats ``\\n``.
- **loss**: the mean cross-entropy of the completion's tokens on the same sums.
- **cut**: the share of greedy answers (fp32, ``--max_new_tokens``) that reach the limit without the end-of-turn
  token, and **right**, the share whose ``<answer>`` is right (``tinyr1.tasks.scoring``).

Held-out sums are the task's test stream (chain_sum, 2-3 terms of 1-2 digits), the first ``--questions``. One line of
JSON per model, appended to ``--json`` if given. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json

import torch

from tinyr1.models import loading
from tinyr1.models.generation import generate_batch
from tinyr1.tasks.answers import extract_xml_answer
from tinyr1.tasks.scoring import score_completion
from tinyr1.tasks.sft_rows import load_sft_rows

TASK = {"min_terms": 2, "max_terms": 3, "min_digits": 1, "max_digits": 2}
END = "<|im_end|>"


def probe(path: str, questions: int, max_new_tokens: int) -> dict:
    tokenizer = loading.load_tokenizer(path)
    model = loading.load_model(path, dtype=torch.float32, merge_adapter=True).eval()
    rows = load_sft_rows("reasoning-gym:chain_sum", "reasoning", "test", questions, 0, options=TASK)
    end = tokenizer.convert_tokens_to_ids(END)
    total = count = 0.0
    p_end = []
    for row in rows:
        prompt = tokenizer.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=True,
                                               return_dict=True)["input_ids"]
        full = tokenizer.apply_chat_template(row["prompt"] + row["completion"], tokenize=True,
                                             return_dict=True)["input_ids"]
        with torch.no_grad():
            logps = torch.log_softmax(model(torch.tensor([full])).logits[0, :-1].float(), -1)
        targets = torch.tensor(full[1:])
        losses = -logps[torch.arange(len(targets)), targets]
        total += losses[len(prompt) - 1:].sum().item()
        count += len(targets) - len(prompt) + 1
        at = full.index(end, len(prompt))  # the completion's end-of-turn token
        p_end.append(logps[at - 1, end].exp().item())
    answers = generate_batch(model, tokenizer, [r["prompt"] for r in rows], max_new_tokens=max_new_tokens,
                             progress=False)
    golds = [extract_xml_answer(r["completion"][0]["content"]) for r in rows]
    right = sum(score_completion(a.text, g)["correct_strict"] for a, g in zip(answers, golds, strict=True))
    return {"model": path, "questions": len(rows), "loss": round(total / count, 4),
            "p_end": round(sum(p_end) / len(p_end), 3), "p_end_min": round(min(p_end), 3),
            "cut": sum(a.truncated for a in answers) / len(rows), "right": right / len(rows),
            "tokens": sum(a.num_tokens for a in answers) / len(rows), "max_new_tokens": max_new_tokens}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("models", nargs="+", help="cold-start folders (tinyr1 sft's output_dir) or any model")
    p.add_argument("--questions", type=int, default=64)
    p.add_argument("--max_new_tokens", type=int, default=128)
    p.add_argument("--json", help="append one line per model here")
    args = p.parse_args(argv)
    for path in args.models:
        result = probe(path, args.questions, args.max_new_tokens)
        print(json.dumps(result))
        if args.json:
            with open(args.json, "a", encoding="utf-8") as f:
                f.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
