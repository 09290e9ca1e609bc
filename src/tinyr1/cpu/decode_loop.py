"""A decode loop for Llama-style models on CPU: ``generate``'s tokens, each decode step in less time.

With a GRPO group's handful of rows, a decode step of ``generate`` spends about as long around the weight reads as
in them: seven linear calls per layer, sdpa's flash kernel for a one-token query, the cache object's and mask
builders' bookkeeping, and the modules' Python. This loop runs the same layer math with q/k/v and gate/up weights
concatenated (four linear calls per layer), packed by oneDNN once per generation (bf16 on CPUs with native bf16,
fp32 on x86: ``tinyr1.cpu.packing``), rotary applied to queries and keys together, and attention as fp32 batched
products (``tinyr1.cpu.attention.group_decode_attention``) on a preallocated cache (``_GroupCache``) that holds a
GRPO group's shared prompt once. docs/cpu-fast-path.md has the measurements (``benchmarks/fast_path_pieces.py
decode``, ``benchmarks/decode_costs.py attention``).

It is a ``custom_generate`` for ``model.generate`` (``generate(..., custom_generate=decode_loop)``): ``generate``
still prepares the logits processors, stopping criteria and special tokens, so every processor and stop rule applies
as in ``generate``; only the loop over tokens is this one. ``supports`` says which models it knows (Llama and Qwen2
layers with plain ``nn.Linear`` weights, SiLU MLP, full attention); anything else keeps ``generate``'s own loop.
Precision follows the caller: under CPU autocast the matmuls run in the autocast dtype and the residual stream in
the weights' dtype, rounded where the model's forward rounds. ``tests/cpu/test_decode_loop.py`` checks the tokens
against ``generate``'s.
"""

from __future__ import annotations

import inspect
from functools import partial

import torch
import torch.nn.functional as F
from transformers import DynamicCache

from tinyr1.cpu import packing, touchpoints
from tinyr1.cpu.attention import group_decode_attention

# (model class, attention class, MLP class, norm class) whose forward this loop reproduces
_KNOWN = {
    "LlamaForCausalLM": ("LlamaAttention", "LlamaMLP", "LlamaRMSNorm"),
    "Qwen2ForCausalLM": ("Qwen2Attention", "Qwen2MLP", "Qwen2RMSNorm"),
}
_LINEARS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
            "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")


def supports(model) -> bool:
    """Whether ``decode_loop`` computes what ``model``'s own forward computes (else ``generate``'s loop is used)."""
    known = _KNOWN.get(type(model).__name__)
    config = model.config
    if known is None or getattr(config, "hidden_act", None) != "silu" or getattr(model, "_hf_hook", None) is not None:
        return False
    if any(kind != "full_attention" for kind in getattr(config, "layer_types", None) or ()):
        return False
    if model.training and getattr(config, "attention_dropout", 0.0):  # the loop has no dropout
        return False
    if type(model.lm_head) is not torch.nn.Linear:
        return False
    for layer in model.model.layers:
        if (type(layer.self_attn).__name__, type(layer.mlp).__name__, type(layer.input_layernorm).__name__) != known:
            return False
        if any(type(layer.get_submodule(name)) is not torch.nn.Linear for name in _LINEARS):
            return False
    return True


def on_cpu(model) -> dict:
    """``generate`` keyword arguments that decode with this loop where it applies: a supported model on CPU, with the
    transformers and torch versions it was verified on (``tinyr1.cpu.touchpoints``; elsewhere one line says why
    ``generate``'s own loop runs)."""
    if model.device.type == "cpu" and supports(model) and touchpoints.announce("generation"):
        return {"custom_generate": decode_loop}
    return {}


def cache_keyword(model) -> str:
    """The keyword ``forward`` and ``generate`` take the key/value cache by: ``cache`` from transformers 5.25
    (``past_key_values`` is deprecated there and goes in 5.40), ``past_key_values`` before it. Read from the model's
    own ``forward``, so every verified row uses the name its transformers keeps."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(type(base).forward).parameters else "past_key_values"


def given_cache(model_kwargs: dict):
    """The cache ``generate`` passed a ``custom_generate`` (``cache`` from transformers 5.25, else
    ``past_key_values``), or None."""
    cache = model_kwargs.get("cache")
    return cache if cache is not None else model_kwargs.get("past_key_values")


def output_cache(output):
    """The cache a forward returned (its output's ``cache``, from transformers 5.25, else ``past_key_values``)."""
    return output["cache"] if "cache" in output else output.past_key_values


def prefill(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, cache) -> None:
    """Run every prompt token but the last into ``cache``, at ``generate``'s positions for left padding (real
    tokens counted from 0, pads at 0); generate's first decode step then runs the last one."""
    positions = (attention_mask.cumsum(-1) - 1).clamp_(min=0)
    with torch.no_grad():
        model(input_ids=input_ids[:, :-1], attention_mask=attention_mask[:, :-1], position_ids=positions[:, :-1],
              use_cache=True, logits_to_keep=1, **{cache_keyword(model): cache})


class _Weights:
    """The model's weights, laid out for one generation: fused q/k/v and gate/up, in the compute dtype."""

    def __init__(self, model, dtype: torch.dtype, rows: int, fp16: bool = False):
        linear = partial(packing.fused_linear, dtype=dtype, rows=rows, pack=packing.packs_weights(dtype, rows),
                         fp16=fp16)
        config = model.config
        self.heads, self.kv_heads = config.num_attention_heads, config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self.layers = []
        for layer in model.model.layers:
            attn, mlp = layer.self_attn, layer.mlp
            qkv = (attn.q_proj, attn.k_proj, attn.v_proj)
            self.layers.append((
                layer.input_layernorm.weight, layer.input_layernorm.variance_epsilon,
                linear([m.weight for m in qkv], [m.bias for m in qkv]),
                linear([attn.o_proj.weight], [attn.o_proj.bias]),
                layer.post_attention_layernorm.weight, layer.post_attention_layernorm.variance_epsilon,
                linear([mlp.gate_proj.weight, mlp.up_proj.weight], [mlp.gate_proj.bias, mlp.up_proj.bias]),
                linear([mlp.down_proj.weight], [mlp.down_proj.bias]),
                attn.scaling,
            ))
        self.embed = model.model.embed_tokens.weight
        self.norm = model.model.norm
        self.lm_head = linear([model.lm_head.weight], [model.lm_head.bias])
        self.rotary = model.model.rotary_emb


def _rms_norm(h: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    # the model's RMSNorm: normalise in fp32, back to the input's dtype, then scale; on an fp32 stream the fused
    # weight gives the same bits in one operation
    if h.dtype == torch.float32:
        return F.rms_norm(h, (h.size(-1),), weight, eps)
    return weight * F.rms_norm(h.float(), (h.size(-1),), eps=eps).to(h.dtype)


def group_size(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> int:
    """The largest ``g`` for which every block of ``g`` consecutive rows holds one prompt (trl's order: each prompt
    repeated for its group); 1 where no rows share.

    >>> group_size(torch.tensor([[1, 2]] * 4 + [[0, 3]] * 4), torch.tensor([[1, 1]] * 4 + [[0, 1]] * 4))
    4
    >>> group_size(torch.tensor([[1], [2], [1], [2]]), torch.ones(4, 1, dtype=torch.long))
    1
    """
    rows = input_ids.size(0)
    both = torch.cat([input_ids, attention_mask], dim=1)
    for g in range(rows, 1, -1):
        if rows % g == 0:
            blocks = both.view(rows // g, g, -1)
            if bool((blocks == blocks[:, :1]).all()):
                return g
    return 1


class _GroupCache:
    """Keys and values for attention over one cached prompt per group of ``g`` rows, and each row's own tokens.

    The rows of a GRPO group share their prompt: its keys and values are kept once per group, and the group's
    queries multiply them in one product instead of reading a copy per row (between two visits to a layer, a step
    streams every weight through the CPU's caches, so the copies are read from memory). Batch order is (group,
    key/value head, member): a group's queries for one key/value head are then consecutive, and the same query
    tensor serves both products as a view. Attention runs in fp32 on keys and values rounded to the compute dtype,
    as sdpa's bf16 kernel accumulates (bf16 products would round the scores, and were no faster for these small
    products); keys are kept transposed, so a prefix of them multiplies without a copy. This class owns the layout;
    the attention math is ``tinyr1.cpu.attention.group_decode_attention``'s.
    """

    def __init__(self, w: _Weights, groups: int, g: int, prompt_layers, prompt_mask: torch.Tensor, room: int,
                 dtype: torch.dtype):
        self.groups, self.g, self.kv, self.heads, self.dim = groups, g, w.kv_heads, w.heads, w.head_dim
        self.prompt = prompt_mask.size(1)  # cached prompt tokens (all but the last), one copy per group
        batch = groups * self.kv * g
        self.keys = [torch.empty(batch, self.dim, room - self.prompt) for _ in w.layers]
        self.values = [torch.empty(batch, room - self.prompt, self.dim) for _ in w.layers]
        # (groups x kv heads, head dim, prompt) and (groups x kv heads, prompt, head dim)
        self.prompt_keys = [layer.keys.to(dtype).float().flatten(0, 1).transpose(-1, -2).contiguous()
                            for layer in prompt_layers]
        self.prompt_values = [layer.values.to(dtype).float().flatten(0, 1) for layer in prompt_layers]
        padded = prompt_mask == 0
        # 0 where visible, -inf at left padding; only prompt tokens can be padding
        self.bias = torch.zeros(groups, 1, self.prompt).masked_fill_(padded[:, None], float("-inf")) \
            if bool(padded.any()) else None

    def attend(self, layer: int, qk: torch.Tensor, value: torch.Tensor, own: int, scaling: float) -> torch.Tensor:
        """Store the step's keys (rotated, in ``qk`` after the queries) and ``value`` at own position ``own`` of
        ``layer``; return the attention output (``tinyr1.cpu.attention.group_decode_attention``), (rows, heads x
        head dim) in fp32."""
        groups, g, kv, dim = self.groups, self.g, self.kv, self.dim
        per_kv = self.heads // kv
        batch = groups * kv * g
        keys, values = self.keys[layer], self.values[layer]
        keys.view(groups, kv, g, dim, -1)[..., own] = qk[:, self.heads:].view(groups, g, kv, dim).transpose(1, 2)
        values.view(groups, kv, g, -1, dim)[:, :, :, own] = value.view(groups, g, kv, dim).transpose(1, 2)
        # the query heads that share a key/value head are rows of one query
        query = qk[:, : self.heads].view(groups, g, kv, per_kv, dim).transpose(1, 2).contiguous()
        query = query.view(batch, per_kv, dim)
        shared = (self.prompt_keys[layer], self.prompt_values[layer], self.bias) if self.prompt else None
        out = group_decode_attention(query, keys[..., : own + 1], values[:, : own + 1], scaling, shared)
        return out.view(groups, kv, g, per_kv, dim).transpose(1, 2).reshape(groups * g, -1)


class _Rows:
    """A cache layer's keys and values at some rows (a cache with every row's copy of its group's prompt)."""

    def __init__(self, layer, rows: torch.Tensor):
        self.keys, self.values = layer.keys[rows], layer.values[rows]


def _step(w: _Weights, token: torch.Tensor, position: torch.Tensor, own: int, cache: _GroupCache,
          dtype: torch.dtype) -> torch.Tensor:
    """One token per row through every layer; its keys/values go to ``own``; returns fp32 logits."""
    rows, heads, kv_heads, dim = token.size(0), w.heads, w.kv_heads, w.head_dim
    h = F.embedding(token, w.embed)  # (rows, hidden), the residual stream in the weights' dtype
    cos, sin = w.rotary(h[:, None], position[:, None])  # (rows, 1, dim) in the residual dtype, as the model's
    half = dim // 2
    # rotate_half(x) * sin == roll(x, half) * (sin with its first half negated)
    sin = torch.cat([-sin[..., :half], sin[..., half:]], dim=-1)
    for index, (norm1, eps1, qkv_proj, o_proj, norm2, eps2, gate_up_proj, down_proj, scaling) \
            in enumerate(w.layers):
        qkv = qkv_proj(_rms_norm(h, norm1, eps1).to(dtype))
        # rotary on queries and keys at once, in the dtype the model's own products take (fp32 under autocast)
        qk = qkv[:, : (heads + kv_heads) * dim].view(rows, heads + kv_heads, dim).to(h.dtype)
        qk = (qk * cos + qk.roll(half, -1) * sin).to(dtype).float()  # rounded as its attention sees them
        attn = cache.attend(index, qk, qkv[:, (heads + kv_heads) * dim:], own, scaling)
        h = h + o_proj(attn.to(dtype))
        gate, up = gate_up_proj(_rms_norm(h, norm2, eps2).to(dtype)).chunk(2, dim=-1)
        h = h + down_proj(F.silu(gate) * up)
    return w.lm_head(_rms_norm(h, w.norm.weight, w.norm.variance_epsilon).to(dtype)).float()


def draw_inverse_cdf(scores: torch.Tensor) -> torch.Tensor:
    """One token per row from ``softmax(scores)``: one uniform number against the cumulative probabilities (the
    distribution of ``torch.multinomial``, which on CPU draws an exponential number for every vocabulary entry)."""
    cdf = torch.softmax(scores.float(), dim=-1).cumsum_(-1)
    u = torch.rand(cdf.size(0), 1, device=cdf.device) * cdf[:, -1:]
    # right=True: the first entry whose cumulative probability exceeds u, so zero-probability tokens never come
    return torch.searchsorted(cdf, u, right=True).clamp_(max=cdf.size(-1) - 1).squeeze(1)


def decode_loop(model, input_ids, logits_processor, stopping_criteria, generation_config, synced_gpus=False,
                streamer=None, fast_sampling=False, generation_weights="exact", **model_kwargs):
    """``generate``'s sampling/greedy loop (``GenerationMixin._sample`` without its optional outputs) over
    ``_step``. The cache passed in (``given_cache``) must hold every prompt token but the last (or be empty);
    with ``fast_sampling``, tokens are drawn by ``draw_inverse_cdf`` (same distribution, other draws); with
    ``generation_weights="fp16"``, the decode steps multiply by weights rounded to fp16 (``tinyr1.cpu.packing``;
    the prompt's prefill keeps the model's own)."""
    if synced_gpus or streamer is not None or generation_config.return_dict_in_generate:
        raise ValueError("decode_loop: synced_gpus, streamers and return_dict_in_generate are generate's own")
    rows, width = input_ids.shape
    dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else model.lm_head.weight.dtype
    if generation_weights not in packing.GENERATION_WEIGHTS:
        raise ValueError(f"decode_loop: generation_weights={generation_weights!r}, not one of "
                         f"{packing.GENERATION_WEIGHTS}")
    fp16 = generation_weights == "fp16"
    if fp16 and (reason := packing.fp16_weights_reason(dtype)):
        raise ValueError(f"decode_loop: generation_weights='fp16' cannot apply: {reason}")
    attention_mask = model_kwargs.get("attention_mask")
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    g = group_size(input_ids, attention_mask)
    first = torch.arange(0, rows, g)  # each group's first row
    cache = given_cache(model_kwargs)
    cached = cache.get_seq_length() if cache is not None else 0
    if cached == 0 and width > 1:  # prefill here, once per group, under the caller's precision
        cache = DynamicCache(config=model.config)
        prefill(model, input_ids[first], attention_mask[first], cache)
        cached = width - 1
    if cached != width - 1:
        raise ValueError(f"decode_loop: the cache holds {cached} tokens of a {width}-token prompt; it needs all but "
                         "the last")
    room = generation_config.max_length  # generate's prepared length: the prompt and the new tokens
    with torch.autocast("cpu", enabled=False), torch.no_grad():
        w = _Weights(model, dtype, rows, fp16)
        prompt_layers = [layer if layer.keys.size(0) == first.numel() else _Rows(layer, first)
                         for layer in (cache.layers if cached else ())]
        kv = _GroupCache(w, rows // g, g, prompt_layers, attention_mask[first, :cached], room, dtype)
        position = attention_mask.sum(-1) - 1
        token = input_ids[:, -1]
        unfinished = torch.ones(rows, dtype=torch.long)
        pad = generation_config._pad_token_tensor
        has_eos = any(hasattr(criterion, "eos_token_id") for criterion in stopping_criteria)
        while True:
            logits = _step(w, token, position, input_ids.size(1) - width, kv, dtype)
            scores = logits_processor(input_ids, logits)
            if generation_config.do_sample:
                token = draw_inverse_cdf(scores) if fast_sampling else \
                    torch.multinomial(F.softmax(scores, dim=-1), num_samples=1).squeeze(1)
            else:
                token = torch.argmax(scores, dim=-1)
            if has_eos:
                token = token * unfinished + pad * (1 - unfinished)
            input_ids = torch.cat([input_ids, token[:, None]], dim=-1)
            unfinished = unfinished & ~stopping_criteria(input_ids, None)
            if unfinished.max() == 0 or input_ids.size(1) >= room:
                return input_ids
            position = position + 1
