"""Batched chat generation shared by ``eval`` and ``compare``: left padding, longest prompts first, greedy by default.

Batching is where evaluation time goes on a CPU: a small model's decode step costs about the same for one sequence
as for sixteen (benchmarks/eval_throughput.py measures it). Sorting prompts by length keeps padding, which is
wasted work in every decode step, small.

    from tinyr1.models.generation import generate_batch
    outputs = generate_batch(model, tokenizer, [[{"role": "user", "content": "2+3?"}]], max_new_tokens=64)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tinyr1.cpu.decode_loop import on_cpu


@dataclass
class Generation:
    text: str
    num_tokens: int  # generated tokens up to and excluding the end-of-turn token
    truncated: bool  # stopped at max_new_tokens rather than at an end-of-turn token


def stop_token_ids(model, tokenizer) -> list[int]:
    ids = {tokenizer.eos_token_id}
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update(configured if isinstance(configured, list) else [configured])
    return sorted(i for i in ids if i is not None)


def generate_batch(model, tokenizer, conversations: list[list[dict]], *, max_new_tokens: int, batch_size: int = 16,
                   temperature: float = 0.0, progress: bool = True, desc: str = "generating") -> list[Generation]:
    """One completion per conversation, in the input order."""
    from tqdm.auto import tqdm

    prompts = [tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c in conversations]
    encoded = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))
    stops = stop_token_ids(model, tokenizer)
    device = next(model.parameters()).device
    tokenizer.padding_side = "left"
    results: list[Generation | None] = [None] * len(prompts)
    sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else \
        {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}

    loop = on_cpu(model)  # tinyr1's decode loop where it applies and its versions were verified, else generate's
    bar = tqdm(total=len(prompts), desc=desc, unit="q", disable=not progress, dynamic_ncols=True)
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            batch = tokenizer.pad({"input_ids": [encoded[i] for i in chunk]}, return_tensors="pt").to(device)
            out = model.generate(**batch, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                                 eos_token_id=stops, **sampling, **loop)
            for row, index in enumerate(chunk):
                new = out[row, batch["input_ids"].shape[1]:].tolist()
                stop_at = next((k for k, token in enumerate(new) if token in stops), None)
                kept = new if stop_at is None else new[:stop_at]
                results[index] = Generation(tokenizer.decode(kept, skip_special_tokens=True), len(kept),
                                            stop_at is None)
            bar.update(len(chunk))
    bar.close()
    return results  # type: ignore[return-value]
