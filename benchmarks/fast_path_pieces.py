"""Pieces of the CPU fast path, timed one at a time (the numbers behind docs/cpu-fast-path.md).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/fast_path_pieces.py sampling   # multinomial vs inverse CDF
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/fast_path_pieces.py update     # the update's forward + backward
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/fast_path_pieces.py update --profile   # ... with torch.profiler
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/fast_path_pieces.py compiled-update  # norms + MLPs compiled
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/fast_path_pieces.py decode    # generate's loop vs decode_loop
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/fast_path_pieces.py fp32-packing  # torch's fp32 linear vs packed
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/fast_path_pieces.py allocator     # page faults of a large tensor

``sampling``: one decode step's token draw for 8 rows over SmolLM2's 49k vocabulary, then a whole 128-token
generation of 8 rows (bf16 autocast, packed weights, shared prompt) with and without ``fast_sampling``, alternated
4 times in one process. ``update``: ``tinyr1.cpu.fast_path.completion_logps`` and its backward for one group (a
90-token prompt, 8 completions of 128 tokens) under bf16 autocast, as a GRPO step on a native-bf16 CPU runs it.
``decode``: a 128-token generation of 8 rows (two prompts x 4, shared prefill, inverse-CDF sampling) through
``generate``'s own loop (packed weights, roomy cache) and through ``tinyr1.cpu.decode_loop``, alternated 3 times, in
bf16 autocast and in fp32; first counts the torch operations each loop dispatches per decode step and checks that
greedy decoding gives the same tokens both ways. ``fp32-packing``: each 8-row product of a decode step by torch's
fp32 linear and by oneDNN's packed weight (``packing.packed_linear``), then a 128-token fp32 generation through
``decode_loop`` of 8 rows and of one row with and without packing (``packing.packs_weights`` patched off),
alternated 3 times.
``allocator``: allocating and filling a 113 MB tensor (SmolLM2's embedding in fp32) with glibc's defaults, then
after ``tinyr1.infra.device.keep_freed_memory``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def _model():
    from transformers import AutoModelForCausalLM

    from tinyr1.infra.device import configure_cpu
    from tinyr1.models.loading import resolve_model

    configure_cpu()
    return AutoModelForCausalLM.from_pretrained(resolve_model("smollm2-135m-instruct").path)


def _ms(fn, repeats: int = 100) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats * 1e3


def _alternate(run, settings: tuple, times: int) -> dict:
    """Seconds of ``run(setting)`` for each setting, the settings taking turns ``times`` times, so a machine that
    slows down or speeds up during the piece weighs on each alike."""
    seconds = {setting: [] for setting in settings}
    for setting in settings * times:
        start = time.perf_counter()
        run(setting)
        seconds[setting].append(time.perf_counter() - start)
    return seconds


def sampling() -> None:
    from transformers import GenerationConfig, LogitsProcessorList

    from tinyr1.cpu.attention import cpu_attention
    from tinyr1.cpu.shared_prompts import InverseCDFSampler, generate_shared_prompts, packed_bf16_linears

    scores = torch.randn(8, 49152)
    sampler = InverseCDFSampler(LogitsProcessorList())
    print(f"one draw, 8 x 49152: multinomial {_ms(lambda: torch.multinomial(torch.softmax(scores, -1), 1)):.2f} ms, "
          f"inverse CDF {_ms(lambda: sampler(None, scores).argmax(-1)):.2f} ms")
    model = _model().eval()
    config = GenerationConfig(max_new_tokens=128, min_new_tokens=128, do_sample=True, top_k=0, pad_token_id=2,
                              eos_token_id=[2])
    rows, seconds = [list(range(100, 190))] * 8, {False: [], True: []}
    for fast in (False, True) * 4:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16), cpu_attention(model), \
                packed_bf16_linears(model, len(rows)):
            start = time.perf_counter()
            generate_shared_prompts(model, rows, 2, config, fast_sampling=fast, fast_loop=False)  # as measured
            seconds[fast].append(time.perf_counter() - start)
    for fast, name in ((False, "multinomial"), (True, "inverse CDF")):
        print(f"128-token generation, 8 rows, {name}: median {statistics.median(seconds[fast]):.2f} s "
              f"({', '.join(f'{s:.2f}' for s in seconds[fast])})")


def update(profile: bool) -> None:
    from tinyr1.cpu.attention import cpu_attention
    from tinyr1.cpu.fast_path import completion_logps

    torch.manual_seed(0)
    model = _model().train()
    prompt, completions, rows = 90, 128, 8
    shared_prompt = torch.randint(0, 49152, (1, prompt)).repeat(rows, 1)
    ids = torch.cat([shared_prompt, torch.randint(0, 49152, (rows, completions))], dim=1)
    mask, weights = torch.ones_like(ids), torch.randn(rows, completions)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16), cpu_attention(model):  # as the fast path runs it
            logps, _ = completion_logps(model, ids, mask, completions, 1.0, compute_entropy=True)
        (logps * weights).mean().backward()
        model.zero_grad(set_to_none=True)

    step()
    seconds = []
    for _ in range(3):
        start = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - start)
    print(f"update forward + backward: median {statistics.median(seconds):.2f} s "
          f"({', '.join(f'{s:.2f}' for s in seconds)}), {torch.get_num_threads()} thread(s)")
    if profile:
        from torch.profiler import ProfilerActivity
        from torch.profiler import profile as torch_profile

        with torch_profile(activities=[ProfilerActivity.CPU]) as trace:
            step()
        print(trace.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))


def decode() -> None:
    from transformers import GenerationConfig

    from tinyr1.cpu.attention import cpu_attention
    from tinyr1.cpu.shared_prompts import generate_shared_prompts

    model = _model().eval()
    rows = [list(range(100, 190))] * 4 + [list(range(300, 350))] * 4

    def run(loop: bool, sample: bool, bf16: bool, tokens: int = 128):
        config = GenerationConfig(max_new_tokens=tokens, min_new_tokens=tokens, do_sample=sample, top_k=0,
                                  pad_token_id=2, eos_token_id=[2])
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16), cpu_attention(model):
            return generate_shared_prompts(model, rows, 2, config, fast_sampling=True, fast_loop=loop,
                                           pack_bf16=bf16)  # as the fast path calls it

    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):  # every torch operation dispatched, views and composites' parts included
        calls = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            Count.calls += 1
            return func(*args, **(kwargs or {}))

    def dispatched(loop: bool, tokens: int) -> int:
        Count.calls = 0
        with Count():
            run(loop, False, True, tokens)
        return Count.calls

    for loop in (False, True):  # per decode step: the difference between 24 and 8 new tokens, over 16
        print(f"{'decode_loop' if loop else 'generate'}'s loop: "
              f"{(dispatched(loop, 24) - dispatched(loop, 8)) / 16:.0f} dispatched torch operations per decode step")
    for bf16 in (True, False):
        name = "bf16 autocast" if bf16 else "fp32"
        same = torch.equal(run(False, False, bf16), run(True, False, bf16))
        seconds = _alternate(lambda loop: run(loop, True, bf16), (False, True), 3)  # noqa: B023
        print(f"{name}: greedy tokens equal: {same}; 128-token generation of 8 rows, median of 3: generate's loop "
              f"{statistics.median(seconds[False]):.2f} s, decode_loop {statistics.median(seconds[True]):.2f} s "
              f"({torch.get_num_threads()} thread(s))")


def fp32_packing() -> None:
    import torch.nn.functional as F
    from transformers import GenerationConfig

    from tinyr1.cpu import packing
    from tinyr1.cpu.attention import cpu_attention
    from tinyr1.cpu.shared_prompts import generate_shared_prompts

    print(f"CPU capability {torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} thread(s)")
    for m, k, n in [(8, 576, 3072), (8, 576, 960), (8, 1536, 576), (8, 576, 576), (8, 576, 49152)]:
        x, w = torch.randn(m, k), torch.randn(n, k)
        packed = packing.packed_linear(w, None, m, torch.float32)
        print(f"{m}x{k}x{n}: F.linear {_ms(lambda: F.linear(x, w), 50):.3f} ms, "  # noqa: B023
              f"packed {_ms(lambda: packed(x), 50):.3f} ms")  # noqa: B023
    model = _model().eval()
    groups = {8: [list(range(100, 190))] * 4 + [list(range(300, 350))] * 4, 1: [list(range(100, 190))]}
    packs, min_rows = packing.packs_weights, packing.FP32_PACKED_MIN_ROWS

    def run(pack: bool, sample: bool = True, rows: int = 8):
        packing.packs_weights = packs if pack else (lambda dtype, rows=None: False)
        packing.FP32_PACKED_MIN_ROWS = 1  # packed at every row count when on
        config = GenerationConfig(max_new_tokens=128, min_new_tokens=128, do_sample=sample, pad_token_id=2,
                                  eos_token_id=[2])
        with torch.no_grad(), cpu_attention(model):
            return generate_shared_prompts(model, groups[rows], 2, config, fast_sampling=True, fast_loop=True)

    for rows in (8, 1):
        same = torch.equal(run(False, False, rows), run(True, False, rows))
        seconds = _alternate(lambda pack: run(pack, True, rows), (False, True), 3)  # noqa: B023
        print(f"fp32 decode_loop, 128-token generation of {rows} row(s), median of 3: unpacked "
              f"{statistics.median(seconds[False]):.2f} s, packed {statistics.median(seconds[True]):.2f} s; "
              f"greedy tokens equal: {same}")
    packing.packs_weights, packing.FP32_PACKED_MIN_ROWS = packs, min_rows


def allocator() -> None:
    from tinyr1.infra.device import keep_freed_memory

    # As the first thing in a fresh process, so glibc's defaults are what "fresh" measures.
    fresh = _ms(lambda: torch.empty(49152, 576).fill_(1), 10)
    kept = keep_freed_memory()
    reused = _ms(lambda: torch.empty(49152, 576).fill_(1), 10)
    print(f"allocate and fill a 113 MB tensor: {fresh:.1f} ms with glibc's defaults, {reused:.1f} ms with freed "
          f"memory kept ({kept})")


def compiled_update() -> None:
    """The update's forward + backward with its RMS norms and SwiGLU MLPs compiled (torch.compile, inductor,
    dynamic shapes) against eager, in bf16 autocast and in fp32: compile seconds, median step, and how far the
    compiled log-probs and one weight's gradient are from eager's at the same precision and from fp32 eager's."""
    import torch.nn.functional as F

    from tinyr1.cpu.attention import cpu_attention
    from tinyr1.cpu.fast_path import completion_logps

    torch.manual_seed(0)
    model = _model().train()
    prompt, completions, rows = 90, 128, 8
    ids = torch.cat([torch.randint(0, 49152, (1, prompt)).repeat(rows, 1),
                     torch.randint(0, 49152, (rows, completions))], dim=1)
    mask, weights = torch.ones_like(ids), torch.randn(rows, completions)

    def mlp(x, gate, up, down):  # LlamaMLP.forward with weights as inputs: one graph for every layer
        return F.linear(F.silu(F.linear(x, gate)) * F.linear(x, up), down)

    def rms_norm(x, weight, eps: float):  # LlamaRMSNorm.forward
        h = x.to(torch.float32)
        return weight * (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)

    fast_mlp, fast_norm = torch.compile(mlp, dynamic=True), torch.compile(rms_norm, dynamic=True)

    def compiled_mlp(m):
        return lambda x: fast_mlp(x, m.gate_proj.weight, m.up_proj.weight, m.down_proj.weight)

    def compiled_norm(n):
        return lambda x: fast_norm(x, n.weight, n.variance_epsilon)

    def patch(compiled: bool):  # instance attributes over the class's forward, removed again for eager
        norms = [model.model.norm] + [n for layer in model.model.layers
                                      for n in (layer.input_layernorm, layer.post_attention_layernorm)]
        for module, make in [(layer.mlp, compiled_mlp) for layer in model.model.layers] + \
                [(n, compiled_norm) for n in norms]:
            if compiled:
                module.forward = make(module)
            else:
                module.__dict__.pop("forward", None)

    def step(bf16: bool):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16), cpu_attention(model):
            logps, _ = completion_logps(model, ids, mask, completions, 1.0, compute_entropy=True)
        (logps * weights).mean().backward()
        grad = model.model.layers[3].mlp.gate_proj.weight.grad.clone()
        model.zero_grad(set_to_none=True)
        return logps.detach(), grad

    results = {}
    for bf16 in (True, False):
        for compiled in (False, True):
            patch(compiled)
            start = time.perf_counter()
            first = step(bf16)
            first_s = time.perf_counter() - start
            seconds = []
            for _ in range(3):
                start = time.perf_counter()
                step(bf16)
                seconds.append(time.perf_counter() - start)
            results[bf16, compiled] = first
            print(f"{'bf16' if bf16 else 'fp32'} {'compiled' if compiled else 'eager'}: first step {first_s:.1f} s, "
                  f"then median {statistics.median(seconds):.2f} s ({', '.join(f'{s:.2f}' for s in seconds)}), "
                  f"{torch.get_num_threads()} thread(s)")
    patch(False)
    for name, key, against in (("bf16 compiled vs bf16 eager", (True, True), (True, False)),
                               ("fp32 compiled vs fp32 eager", (False, True), (False, False)),
                               ("bf16 eager vs fp32 eager", (True, False), (False, False))):
        (lp, grad), (lp0, grad0) = results[key], results[against]
        print(f"{name}: log-probs differ by at most {(lp - lp0).abs().max():.2e}, the gradient by "
              f"{((grad - grad0).norm() / grad0.norm()):.2e} (relative)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("piece", choices=["sampling", "update", "compiled-update", "decode", "fp32-packing", "allocator"])
    p.add_argument("--profile", action="store_true", help="update: print a torch.profiler table of one step")
    args = p.parse_args()
    pieces = {"sampling": sampling, "decode": decode, "fp32-packing": fp32_packing, "allocator": allocator,
              "compiled-update": compiled_update}
    pieces.get(args.piece, lambda: update(args.profile))()


if __name__ == "__main__":
    main()
