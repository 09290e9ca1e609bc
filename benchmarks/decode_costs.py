"""What a decode step of ``tinyr1.cpu.decode_loop`` costs and where: the numbers behind docs/benchmarks.md's "why 2x
the floor is out of reach" and docs/cpu-fast-path.md's shared-prompt cache.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/decode_costs.py breakdown   # kernels, then a decode step in place
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/decode_costs.py attention [--prompt-tokens 250]

``breakdown``: each 8-row bf16 product of a decode step of SmolLM2-135M (packed, 30 distinct weights per shape, so
none is found in a CPU cache) in GB/s of weight read; the gate/up product other ways (one row, unpacked, ``W @ x.T``,
fp32); a plain read (sum) of 270 MB of bf16; then three 128-token generations of one group of 8 rows through
``decode_loop`` (bf16 autocast) with its products, attention and norms timed in place. ``attention``: the decode
loop's attention (``decode_loop._GroupCache.attend``) over 128 decode steps of SmolLM2's 30 layers for one group
of 8 rows with a 90-token prompt, the prompt's keys and values held once for the group and copied per row,
alternated 3 times; then a whole 128-token generation of that group both ways (bf16 autocast), alternated 3 times.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from fast_path_pieces import _alternate, _model, _ms  # run from the checkout: benchmarks/ is on sys.path


def breakdown() -> None:
    from transformers import GenerationConfig

    from tinyr1.cpu import decode_loop, packing
    from tinyr1.cpu.attention import cpu_attention
    from tinyr1.cpu.shared_prompts import generate_shared_prompts

    # The 8-row products of a decode step against a plain read of as many bytes: bandwidth or the kernel?
    shapes = [(960, 576), (576, 576), (3072, 576), (576, 1536), (49152, 576)]  # SmolLM2: qkv, o, gate/up, down, head
    for n, k in shapes:
        copies = 30 if n < 49152 else 4  # distinct weights, so no product finds its weight in a CPU cache
        products = [packing.packed_linear(torch.randn(n, k), None, 8, torch.bfloat16) for _ in range(copies)]
        x = torch.randn(8, k, dtype=torch.bfloat16)
        seconds = _ms(lambda: [f(x) for f in products], 10) / 1e3 / copies  # noqa: B023
        print(f"8 x {k} x {n} bf16 packed product: {seconds * 1e6:.0f} us, {n * k * 2 / seconds / 1e9:.1f} GB/s")
    import torch.nn.functional as F

    def one_row(w):
        product = packing.packed_linear(w, None, 1, torch.bfloat16)
        return lambda x: product(x[:1])

    def unpacked(w):
        w = w.bfloat16()
        return lambda x: F.linear(x, w)

    def transposed(w):
        w = w.bfloat16()
        return lambda x: w @ x.T

    def fp32(w):
        product = packing.packed_linear(w, None, 8, torch.float32)
        return lambda x: product(x.float())

    # the 8 x 576 x 3072 product (gate/up) other ways, 30 distinct weights each
    others = {"packed, 1 row": one_row, "unpacked bf16 (F.linear)": unpacked, "W @ x.T": transposed,
              "packed fp32": fp32}
    x = torch.randn(8, 576, dtype=torch.bfloat16)
    for name, make in others.items():
        products = [make(torch.randn(3072, 576)) for _ in range(30)]
        print(f"8 x 576 x 3072 {name}: {_ms(lambda: [f(x) for f in products], 10) * 1e3 / 30:.0f} us")  # noqa: B023
    weights = torch.ones(135_000_000, dtype=torch.bfloat16)  # about SmolLM2's weights
    print(f"reading {weights.numel() * 2 / 1e6:.0f} MB of bf16 (sum): "
          f"{weights.numel() * 2 / (_ms(weights.sum, 5) / 1e3) / 1e9:.1f} GB/s")
    del weights
    # Where a decode step's time goes: decode_loop's products, attention and norms timed in place.
    spent: dict[str, float] = {}

    def timed(name, fn):
        def run(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - start
        return run

    originals = packing._packed_linear, decode_loop._GroupCache.attend, decode_loop._rms_norm
    packing._packed_linear = timed("linear products (LM head included)", originals[0])
    decode_loop._GroupCache.attend = timed("attention", originals[1])
    decode_loop._rms_norm = timed("RMS norms", originals[2])
    model, tokens = _model().eval(), 128
    config = GenerationConfig(max_new_tokens=tokens, min_new_tokens=tokens, do_sample=True, top_k=0, pad_token_id=2,
                              eos_token_id=[2])
    try:
        for run in range(3):
            spent.clear()
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16), cpu_attention(model):
                start = time.perf_counter()
                generate_shared_prompts(model, [list(range(100, 190))] * 8, 2, config, fast_sampling=True)
                total = time.perf_counter() - start
            parts = ", ".join(f"{name} {sec / tokens * 1e3:.1f}" for name, sec in spent.items())
            print(f"run {run + 1}: {total:.2f} s for {tokens} tokens of 8 rows: ms per decode step: {parts}, "
                  f"everything else {(total - sum(spent.values())) / tokens * 1e3:.1f}")
    finally:
        packing._packed_linear, decode_loop._GroupCache.attend, decode_loop._rms_norm = originals
    print(f"({torch.get_num_threads()} thread(s))")


def attention(prompt: int) -> None:
    from types import SimpleNamespace

    from tinyr1.cpu.decode_loop import _GroupCache

    # SmolLM2-135M's attention: 30 layers, 9 query heads over 3 key/value heads of 64; one group of 8 rows
    layers, heads, kv, dim, rows, new = 30, 9, 3, 64, 8, 128
    shape = SimpleNamespace(heads=heads, kv_heads=kv, head_dim=dim, layers=[None] * layers)

    def cache(g: int) -> _GroupCache:
        groups = rows // g  # g == 1: every row keeps its own copy of the prompt, as before _GroupCache
        prompt_layers = [SimpleNamespace(keys=torch.randn(groups, kv, prompt, dim),
                                         values=torch.randn(groups, kv, prompt, dim)) for _ in range(layers)]
        return _GroupCache(shape, groups, g, prompt_layers, torch.ones(groups, prompt, dtype=torch.long),
                           prompt + 1 + new, torch.bfloat16)

    qk, value = torch.randn(rows, heads + kv, dim), torch.randn(rows, kv * dim).bfloat16()
    seconds = {1: [], rows: []}
    for g in (1, rows) * 3:
        kv_cache = cache(g)
        start = time.perf_counter()
        for own in range(new):
            for layer in range(layers):
                kv_cache.attend(layer, qk, value, own, 0.125)
        seconds[g].append(time.perf_counter() - start)
    per_layer = {g: statistics.median(s) / new / layers * 1e6 for g, s in seconds.items()}
    print(f"decode-step attention, 8 rows, {prompt}-token prompt, {new} new tokens, {layers} layers, median of 3: "
          f"prompt copied per row {per_layer[1]:.0f} us a layer, shared by the group {per_layer[rows]:.0f} us "
          f"({torch.get_num_threads()} thread(s))")

    # The same in a whole generation (bf16 autocast, as a GRPO step on this CPU): one group of 8 rows, the group's
    # prompt shared, or copied per row by reporting every row as its own group.
    from transformers import GenerationConfig

    from tinyr1.cpu import decode_loop
    from tinyr1.cpu.attention import cpu_attention
    from tinyr1.cpu.shared_prompts import generate_shared_prompts

    model, sizes = _model().eval(), decode_loop.group_size
    config = GenerationConfig(max_new_tokens=new, min_new_tokens=new, do_sample=True, top_k=0, pad_token_id=2,
                              eos_token_id=[2])

    def generate(g: int) -> None:
        decode_loop.group_size = sizes if g == rows else (lambda ids, mask: 1)
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16), cpu_attention(model):
            generate_shared_prompts(model, [list(range(100, 100 + prompt))] * rows, 2, config, fast_sampling=True)

    try:
        seconds = _alternate(generate, (1, rows), 3)
    finally:
        decode_loop.group_size = sizes
    print(f"{new}-token generation of one group of 8 rows, median of 3: prompt copied per row "
          f"{statistics.median(seconds[1]):.2f} s, shared {statistics.median(seconds[rows]):.2f} s "
          f"({', '.join(f'{a:.2f}/{b:.2f}' for a, b in zip(seconds[1], seconds[rows], strict=True))})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("piece", choices=["breakdown", "attention"])
    p.add_argument("--prompt-tokens", type=int, default=90, help="attention: the group's prompt length")
    args = p.parse_args()
    if args.prompt_tokens < 1:
        p.error("--prompt-tokens must be at least 1")
    breakdown() if args.piece == "breakdown" else attention(args.prompt_tokens)


if __name__ == "__main__":
    main()
