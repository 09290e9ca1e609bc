"""The one weight packer of the CPU fast path: oneDNN's blocked layout for the few-row products of a decode step.

A decode step multiplies a handful of rows (a GRPO group) by every weight; unpacked, oneDNN re-lays a bf16 weight at
every call. Packing once per generation pays where ``packs_weights(dtype)`` says so (docs/cpu-fast-path.md has the
measurements). Weights change at every optimizer step, so they are packed per generation, never kept.

A decode step reads every weight; in fp32 (where a CPU has no native bf16) that is 4 bytes a weight. The opt-in
``weights="fp16"`` (``GENERATION_WEIGHTS``) packs them in 16 bits for fbgemm's fp16 product, which widens them to
fp32 inside the kernel: activations and sums stay fp32, only the weights are rounded to fp16, so the sampling
policy differs slightly from the trained one (``benchmarks/generation_weights.py`` measures by how much).
"""

from __future__ import annotations

import platform
from contextlib import contextmanager
from functools import partial

import torch
import torch.nn.functional as F

from tinyr1.infra.cpu_features import mkldnn_bf16

# Below this many rows torch's own fp32 product (MKL's matrix-vector kernels) beats oneDNN's packed one.
FP32_PACKED_MIN_ROWS = 4


def packs_weights(dtype: torch.dtype, rows: int | None = None) -> bool:
    """Whether generation multiplies ``rows``-row inputs (a decode step's batch; None: several) by weights
    pre-packed by oneDNN (``mkldnn._linear_pointwise``) in ``dtype``: bf16 where oneDNN says the CPU multiplies bf16
    natively; fp32 on x86 for ``FP32_PACKED_MIN_ROWS`` rows or more, where oneDNN's packed products beat torch's own
    fp32 linear (fewer rows, such as the single row ``compare`` decodes, stream the weights faster through
    torch's)."""
    if not torch.backends.mkldnn.is_available():
        return False
    if dtype == torch.bfloat16:
        return mkldnn_bf16()
    return (dtype == torch.float32 and platform.machine().lower() in ("x86_64", "amd64")
            and (rows is None or rows >= FP32_PACKED_MIN_ROWS))


GENERATION_WEIGHTS = ("exact", "fp16")  # exact: the weights as trained; fp16: rounded to fp16 for the decode steps


def fp16_weights_reason(dtype: torch.dtype) -> str | None:
    """Why ``weights="fp16"`` cannot apply to a decode in ``dtype`` here, or None where it can: it needs fbgemm
    (x86 builds of torch) and an fp32 decode (a bf16 decode already reads 2 bytes a weight)."""
    if dtype != torch.float32:
        return f"generation runs in {str(dtype).removeprefix('torch.')}, already 16 bits a weight"
    if "fbgemm" not in torch.backends.quantized.supported_engines:
        return "this torch build has no fbgemm (x86 only)"
    return None


def _fp16_linear(packed, x):
    return torch.ops.quantized.linear_dynamic_fp16(x, packed)


def fp16_linear(weight: torch.Tensor, bias: torch.Tensor | None):
    """``x -> x @ weight.T + bias`` with ``weight`` stored in fp16 and ``x``, the sums and the result in fp32."""
    packed = torch.ops.quantized.linear_prepack_fp16(weight.detach().float(),
                                                     None if bias is None else bias.detach().float())
    return partial(_fp16_linear, packed)


def _packed_linear(weight, bias, x):
    return torch.ops.mkldnn._linear_pointwise(x.to(weight.dtype), weight, bias, "none", [], "")


def packed_linear(weight: torch.Tensor, bias: torch.Tensor | None, rows: int, dtype: torch.dtype):
    """``x -> x @ weight.T + bias`` in ``dtype`` on ``weight`` packed once in oneDNN's blocked layout for ``rows``-row
    inputs (only where ``packs_weights(dtype)``): unpacked, oneDNN re-lays a bf16 weight at every
    call, and torch's own fp32 linear is slower than the packed one at a decode step's shapes
    (``benchmarks/fast_path_pieces.py fp32-packing``; docs/cpu-fast-path.md has the measurements)."""
    packed = torch.ops.mkldnn._reorder_linear_weight(weight.detach().to(dtype), rows)
    return partial(_packed_linear, packed, None if bias is None else bias.detach().to(dtype))


def fused_linear(weights: list[torch.Tensor], biases: list, dtype: torch.dtype, rows: int, pack: bool,
                 fp16: bool = False):
    """One matmul for ``weights`` stacked by output row, in ``dtype``; packed by oneDNN where ``pack``, or in fp16 for
    fbgemm where ``fp16`` (``fp16_weights_reason(dtype)`` must be None)."""
    weight = torch.cat([w.detach().to(dtype) for w in weights]) if len(weights) > 1 else weights[0].detach().to(dtype)
    bias = None
    if any(b is not None for b in biases):
        bias = torch.cat([b.detach() if b is not None else w.new_zeros(w.size(0))
                          for w, b in zip(weights, biases, strict=True)]).to(dtype)
    if fp16:
        return fp16_linear(weight, bias)
    return packed_linear(weight, bias, rows, dtype) if pack else partial(F.linear, weight=weight, bias=bias)


@contextmanager
def packed_bf16_linears(model, batch_size: int, enabled: bool = True):
    """While generating under bf16 on a CPU with native bf16: every ``nn.Linear`` multiplies by a bf16 copy of its
    weight packed once for this generation (``packed_linear``; a decode step multiplies
    ``batch_size`` rows by every weight). Same products as autocast's bf16 linear; weights change every optimizer
    step, so they are packed per generation (once per GRPO step), never kept."""
    if not (enabled and packs_weights(torch.bfloat16)):
        yield
        return
    patched = []
    try:
        for module in model.modules():
            if isinstance(module, torch.nn.Linear) and "forward" not in vars(module):
                module.forward = packed_linear(module.weight, module.bias, batch_size, torch.bfloat16)
                patched.append(module)
        yield
    finally:
        for module in patched:
            del module.forward  # back to nn.Linear.forward


