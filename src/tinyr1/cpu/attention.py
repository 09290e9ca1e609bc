"""Attention for the CPU fast path, its one owner: what the fast path (``tinyr1.cpu.fast_path``) runs in
place of sdpa, and the decode loop's attention (``group_decode_attention``, for ``tinyr1.cpu.decode_loop``).

transformers looks an attention function up by ``config._attn_implementation`` at every forward;
``cpu_attention(model)`` points a model on sdpa at ``cpu_attention_forward`` for the length of a block (generation,
the update's log-probs) and restores the name after, so a saved config never names tinyr1's function. The function
computes sdpa's attention, faster on a CPU in two cases:

- **one-token decode steps with grouped key/value heads**: the query heads that share a key/value head become the
  rows of one query (``(b, kv, groups, d)``) instead of torch's slower ``enable_gqa`` path (SmolLM2 has 9 query
  heads over 3 key/value heads);
- **short multi-token sequences** (the update's completion tokens over the prompt's cache, prompt prefills):
  two batched products with an fp32 softmax between them, where torch's flash-attention CPU kernel works in small
  tiles. The score tensor is materialised (and kept for the backward), so above ``BMM_MAX_SCORES`` elements per
  layer the call goes to sdpa, which keeps O(length).

docs/cpu-fast-path.md has the measurements (``benchmarks/fast_path_pieces.py update --profile``).

Anything else (dropout while training, soft-capping, sliding windows, attention sinks, non-causal modules) is sdpa's.
Masked keys get the dtype's lowest value, not -inf, as transformers' eager attention does: a query row with no key to
attend (a left-padding position) then averages its keys instead of dividing by zero, and nothing reads it.
``tests/cpu/test_attention.py`` compares outputs and gradients with sdpa's, ``tests/cpu/test_trainer.py`` log-probs,
entropies and gradients with trl's, in fp32.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F

NAME = "tinyr1_cpu"
# Scores of one layer call (batch x heads x queries x keys). Kept for the backward in bf16 and fp32 (~6 bytes each):
# 4M elements is ~25 MB a layer, ~0.75 GB for a 30-layer model; the GRPO benchmark's update uses 2M.
BMM_MAX_SCORES = 1 << 22


def _sdpa(module, query, key, value, attention_mask, **kwargs):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)


def _plain(module, kwargs: dict) -> bool:
    """True where the call is plain causal attention, the only kind this module rewrites."""
    dropout = kwargs.get("dropout", 0.0) if module.training else 0.0
    return (not dropout and kwargs.get("softcap") is None and kwargs.get("sliding_window") is None
            and kwargs.get("s_aux") is None and getattr(module, "is_causal", True))


def cpu_attention_forward(module, query, key, value, attention_mask, scaling=None, **kwargs):
    """sdpa's attention (``(b, heads, q, d)`` queries over ``(b, kv_heads, k, d)`` keys), by the paths named above;
    returns ``(b, q, heads, d)`` and no weights, as transformers' attention functions do."""
    batch, heads, length, dim = query.shape
    kv_heads, keys = key.shape[1], key.shape[2]
    groups = heads // kv_heads
    scaling = dim**-0.5 if scaling is None else scaling
    plain = _plain(module, kwargs)
    if plain and length == 1 and groups > 1:
        packed = query.reshape(batch, kv_heads, groups, dim)  # head h uses key/value head h // groups
        mask = attention_mask[:, :, :, :keys] if attention_mask is not None else None
        out = F.scaled_dot_product_attention(packed, key, value, attn_mask=mask, scale=scaling)
        return out.reshape(batch, heads, 1, dim).transpose(1, 2).contiguous(), None
    boolean_mask = attention_mask is None or attention_mask.dtype == torch.bool
    if plain and length > 1 and boolean_mask and batch * heads * length * keys <= BMM_MAX_SCORES:
        return _bmm_attention(query, key, value, attention_mask, scaling), None
    return _sdpa(module, query, key, value, attention_mask, scaling=scaling, **kwargs)


def _bmm_attention(query, key, value, attention_mask, scaling: float) -> torch.Tensor:
    batch, heads, length, dim = query.shape
    kv_heads, keys = key.shape[1], key.shape[2]
    groups = heads // kv_heads
    # Under autocast the products run in bf16 as sdpa's would; scaling the (smaller) query first, in its own dtype,
    # saves a pass over the scores.
    dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else query.dtype
    rows = batch * kv_heads
    q = (query * scaling).to(dtype).reshape(rows, groups * length, dim)  # the heads of one key/value head, stacked
    scores = torch.bmm(q, key.to(dtype).reshape(rows, keys, dim).transpose(1, 2)).view(batch, kv_heads, groups,
                                                                                      length, keys)
    if attention_mask is not None:
        allowed = attention_mask[:, :, None, :, :keys]  # (b, 1, 1, q, k): True where a query may attend
    else:  # sdpa's mask was skipped as plain causal: the queries are the last ``length`` positions
        allowed = torch.ones(length, keys, dtype=torch.bool, device=query.device).tril(keys - length)
    scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(dtype).view(rows, groups * length, keys)
    out = torch.bmm(probs, value.to(dtype).reshape(rows, keys, dim))
    return out.view(batch, heads, length, dim).transpose(1, 2).contiguous()


def group_decode_attention(query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, scaling: float,
                           shared: tuple | None = None) -> torch.Tensor:
    """One decode step's attention for ``tinyr1.cpu.decode_loop``, whose ``_GroupCache`` owns the layout: fp32
    batched products and an fp32 softmax.

    ``query`` is ``(batch, q, d)``: a batch row is one key/value head of one sequence, its ``q`` rows the query
    heads that share that key/value head. ``keys`` ``(batch, d, own)`` (transposed) and ``values``
    ``(batch, own, d)`` are each row's own tokens, the step's included. ``shared`` is None or ``(prompt_keys
    (n, d, prompt), prompt_values (n, prompt, d), bias)``: a prompt cached once for each block of ``batch // n``
    consecutive rows, attended before the own tokens; ``bias`` is None or ``(groups, 1, prompt)``, 0 where visible
    and -inf at left padding, one per block of ``batch // groups`` rows. Returns ``(batch, q, d)``.
    """
    batch, per_kv, dim = query.shape
    scores = torch.bmm(query, keys)
    if shared is not None:
        prompt_keys, prompt_values, bias = shared
        prompt = prompt_keys.size(-1)
        blocks = prompt_keys.size(0)
        scores = torch.cat([torch.bmm(query.view(blocks, -1, dim), prompt_keys).view(batch, per_kv, -1), scores],
                           dim=-1)
    scores.mul_(scaling)
    if shared is not None and bias is not None:
        scores.view(bias.size(0), -1, scores.size(-1))[..., :prompt].add_(bias)
    probs = torch.softmax(scores, dim=-1)
    if shared is None:
        return torch.bmm(probs, values)
    from_prompt = torch.bmm(probs[..., :prompt].view(blocks, -1, prompt), prompt_values)
    return torch.baddbmm(from_prompt.view(batch, per_kv, dim), probs[..., prompt:], values)


@contextmanager
def cpu_attention(model):
    """Run ``model`` with ``cpu_attention_forward`` inside the block, if it is on sdpa (others are left alone)."""
    config = model.config
    if config._attn_implementation != "sdpa":
        yield
        return
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(NAME, cpu_attention_forward)
    AttentionMaskInterface.register(NAME, sdpa_mask)
    config._attn_implementation = NAME
    try:
        yield
    finally:
        config._attn_implementation = "sdpa"
