"""The CPU fast path: trl's ``GRPOTrainer`` with three costs of its CPU step removed and the algorithm unchanged.

A GRPO step samples ``num_generations`` completions of the *same* prompt, then scores them in one forward and
backward. On a CPU trl spends much of that step on work a GPU hides:

1. **The LM head.** trl's fused log-prob head is a Triton kernel; off-GPU its fallback projects *every* position,
   prompt included, onto the vocabulary (49k for SmolLM2) in many small chunks. Here the model's own head runs on
   the completion positions only (``logits_to_keep``), then one fp32 log-softmax.
2. **The shared prompt, in the update.** The ~150-token prompt is identical for a group's completions, but trl runs
   it once per completion. Here each distinct prompt of a micro-batch runs once, its key/value cache is indexed out
   to its rows, and the completions attend to it; gradients flow through the cache into the prompt's forward.
   Positions, masks and padding are exactly trl's, so the log-probs are the same numbers (``tests/test_fast_grpo``).
3. **Generation.** Each distinct prompt is prefilled once and its cache shared by the group (trl prefills it
   ``num_generations`` times). Under bf16, one autocast spans the whole ``generate`` so each weight is cast to
   bf16 once per generation instead of at every decode step (accelerate's per-forward autocast did that), and on
   a CPU with native bf16 every linear layer multiplies by a weight packed once per generation. The key/value
   cache has room for the new tokens instead of being concatenated (copied) at every step, and a one-token decode
   step packs grouped query heads into one attention call.

Everything else — rewards, advantages, the loss, logging, checkpoints — is trl's own code. The path is taken only
where it is known to be equal: on CPU, a text-only model, no activation checkpointing, no vLLM; anything else falls
back to trl (``uses_fast_path`` says which). ``tinyr1 train`` uses it on CPU by default (``--cpu_fast_path false``
turns it off); it is never used on a GPU, where it has not been measured.
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import partial

import torch
import torch.nn.functional as F
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer
from trl import GRPOTrainer
from trl.extras.profiling import profiling_context
from trl.models.utils import unwrap_model_for_generation


def _distinct_rows(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(first row of each distinct row, in sorted order; for each row, the index of its distinct row)."""
    unique, inverse = torch.unique(rows, dim=0, return_inverse=True)
    first = torch.full((unique.size(0),), rows.size(0), dtype=torch.long)
    first = first.scatter_reduce(0, inverse, torch.arange(rows.size(0)), reduce="amin")
    return first, inverse


def completion_logps(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, logits_to_keep: int,
                     temperature: float = 1.0, compute_entropy: bool = False, entropy_grad: bool = False):
    """Per-token log-probs (and entropies) of the last ``logits_to_keep`` tokens, each distinct prompt run once.

    ``input_ids`` is trl's ``[left-padded prompt | right-padded completion]``; positions count from the first
    column as in trl's forward (no ``position_ids`` are passed there either). Padding positions get 0.
    """
    prompt_len = input_ids.size(1) - logits_to_keep
    prompt = torch.cat([input_ids[:, :prompt_len], attention_mask[:, :prompt_len]], dim=1)
    first, inverse = _distinct_rows(prompt)
    out = model(input_ids=input_ids[first, :prompt_len], attention_mask=attention_mask[first, :prompt_len],
                use_cache=True, logits_to_keep=1)
    logits = out.logits[inverse]  # predicts each row's first completion token
    if logits_to_keep > 1:
        cache = out.past_key_values
        cache.batch_select_indices(inverse)  # differentiable indexing: gradients reach the prompt's forward
        rest = model(input_ids=input_ids[:, prompt_len:-1], attention_mask=attention_mask[:, :-1],
                     past_key_values=cache, use_cache=True).logits
        logits = torch.cat([logits, rest], dim=1)
    logits = logits.float() / temperature
    log_probs = F.log_softmax(logits, dim=-1)
    targets = input_ids[:, prompt_len:]
    padding = attention_mask[:, prompt_len:] == 0
    logps = log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1).masked_fill(padding, 0.0)
    entropy = None
    if compute_entropy:
        with torch.set_grad_enabled(entropy_grad and torch.is_grad_enabled()):
            entropy = -(log_probs.exp() * log_probs).sum(-1).masked_fill(padding, 0.0)
    return logps, entropy


CPU_DECODE_ATTENTION = "tinyr1_cpu_decode"


def cpu_decode_attention(module, query, key, value, attention_mask, scaling=None, **kwargs):
    """sdpa, except a one-token decode step with grouped key/value heads packs the query heads that share a key/value
    head as rows of one query (``(b, kv, groups, d)``) instead of torch's ``enable_gqa`` path. Same attention; in
    bf16 on CPU the ``enable_gqa`` kernel took ~3 ms per layer per step against ~0.4 ms packed (SmolLM2: 9 query
    heads, 3 key/value heads), a third of a decode step."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    groups = getattr(module, "num_key_value_groups", 1)
    if query.shape[2] != 1 or groups == 1 or kwargs.get("softcap") is not None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, **kwargs)
    batch, heads, _, dim = query.shape
    packed = query.reshape(batch, heads // groups, groups, dim)  # head h uses key/value head h // groups
    mask = attention_mask[:, :, :, : key.shape[-2]] if attention_mask is not None else None
    out = F.scaled_dot_product_attention(packed, key, value, attn_mask=mask, scale=scaling)
    return out.reshape(batch, heads, 1, dim).transpose(1, 2).contiguous(), None


@contextmanager
def decode_attention(model):
    """Use ``cpu_decode_attention`` while generating, for models on sdpa; the saved config keeps its own name."""
    config = model.config
    if config._attn_implementation != "sdpa":
        yield
        return
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(CPU_DECODE_ATTENTION, cpu_decode_attention)
    AttentionMaskInterface.register(CPU_DECODE_ATTENTION, sdpa_mask)
    config._attn_implementation = CPU_DECODE_ATTENTION
    try:
        yield
    finally:
        config._attn_implementation = "sdpa"


class _RoomyLayer(DynamicLayer):
    """A ``DynamicLayer`` whose keys and values live in a buffer with room for the tokens still to come: a decode step
    writes its one position in place. ``DynamicLayer`` concatenates, copying the whole cache at every step and layer
    (a third of a decode step on CPU with a 150-token shared prompt). Same values as ``DynamicLayer``'s.
    """

    def __init__(self, room: int):
        super().__init__()
        self.room = room
        self._buffers = self._view = None

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        length = self.get_seq_length()
        end = length + key_states.shape[-2]
        # A buffer is reused only while it still holds what ``keys`` shows (batch_select_indices, crop and
        # reorder_cache replace ``keys`` with a tensor of their own).
        if self._buffers is None or self.keys is not self._view or end > self._buffers[0].shape[-2]:
            self._buffers = tuple(self._grow(old, new, end) for old, new in ((self.keys, key_states),
                                                                             (self.values, value_states)))
        for buffer, new in zip(self._buffers, (key_states, value_states), strict=True):
            buffer[..., length:end, :] = new
        self.keys, self.values = (buffer[..., :end, :] for buffer in self._buffers)
        self._view = self.keys
        return self.keys, self.values

    def _grow(self, old: torch.Tensor, new: torch.Tensor, end: int) -> torch.Tensor:
        shape = (*new.shape[:-2], end + self.room, new.shape[-1])
        dtype = torch.promote_types(old.dtype, new.dtype) if old.numel() else new.dtype
        if dtype == torch.float32 and torch.is_autocast_enabled(new.device.type):
            # Attention under autocast casts the whole cache to bf16 at every step; keeping it in bf16 gives the
            # attention the same values without the per-step cast.
            dtype = torch.get_autocast_dtype(new.device.type)
        buffer = torch.empty(shape, dtype=dtype, device=new.device)
        if old.numel():
            buffer[..., : old.shape[-2], :] = old
        return buffer


def roomy_cache(config, room: int):
    """A ``DynamicCache`` for ``config`` whose plain layers are ``_RoomyLayer``s (sliding-window layers unchanged)."""
    cache = DynamicCache(config=config)
    cache.layers = [_RoomyLayer(room) if type(layer) is DynamicLayer else layer for layer in cache.layers]
    return cache


def _packed_linear(weight, bias, x):
    return torch.ops.mkldnn._linear_pointwise(x.to(torch.bfloat16), weight, bias, "none", [], "")


@contextmanager
def packed_bf16_linears(model, batch_size: int, enabled: bool = True):
    """While generating under bf16 on a CPU with native bf16: every ``nn.Linear`` multiplies by a bf16 copy of its
    weight packed once (oneDNN's blocked layout) for this generation. A decode step multiplies ``batch_size`` rows by
    every weight; unpacked, oneDNN re-lays the weight at each call and the bf16 matmuls ran at 1.5-2.2x the time of
    packed ones here (the 49k-row LM head 11.2 vs 5.1 ms, Zen4). Same products as autocast's bf16 linear; weights
    change every optimizer step, so they are packed per generation (once per GRPO step), never kept."""
    if not (enabled and torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()):
        yield
        return
    patched = []
    try:
        for module in model.modules():
            if isinstance(module, torch.nn.Linear) and "forward" not in vars(module):
                weight = torch.ops.mkldnn._reorder_linear_weight(module.weight.detach().to(torch.bfloat16),
                                                                 batch_size)
                bias = None if module.bias is None else module.bias.detach().to(torch.bfloat16)
                module.forward = partial(_packed_linear, weight, bias)
                patched.append(module)
        yield
    finally:
        for module in patched:
            del module.forward  # back to nn.Linear.forward


def generate_shared_prompts(model, prompt_ids: list[list[int]], pad_token_id: int, generation_config):
    """``model.generate`` over left-padded prompts, each distinct prompt prefilled once and its cache shared.

    Returns the generated token ids (batch, new tokens), as ``generate(...)[:, prompt_len:]`` would.
    """
    width = max(len(p) for p in prompt_ids)
    ids = torch.tensor([[pad_token_id] * (width - len(p)) + list(p) for p in prompt_ids])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompt_ids])
    kwargs = {}
    if width > 1 and generation_config.cache_implementation in (None, "dynamic"):
        first, inverse = _distinct_rows(torch.cat([ids, mask], dim=1))
        head_ids, head_mask = ids[first, :-1], mask[first, :-1]
        # generate's own positions for left padding: count real tokens, pads at 0
        positions = (head_mask.cumsum(-1) - 1).masked_fill(head_mask == 0, 0)
        cache = roomy_cache(model.config, generation_config.max_new_tokens or 0)
        model(input_ids=head_ids, attention_mask=head_mask, position_ids=positions, past_key_values=cache,
              use_cache=True, logits_to_keep=1)
        cache.batch_select_indices(inverse)
        kwargs["past_key_values"] = cache  # generate runs only the last prompt token, then decodes
    out = model.generate(input_ids=ids, attention_mask=mask, generation_config=generation_config, **kwargs)
    return out[:, width:]


class CPUFastGRPOTrainer(GRPOTrainer):
    """``GRPOTrainer`` whose log-probs and generation take the CPU fast path where it applies (module docstring)."""

    def uses_fast_path(self) -> bool:
        # Activation checkpointing makes the model drop its key/value cache, which the shared prompt needs.
        checkpointing = getattr(self.args, "activation_checkpointing", False) or self.args.gradient_checkpointing
        return (self.accelerator.device.type == "cpu" and not self.use_vllm and not checkpointing
                and not getattr(self, "use_transformers_continuous_batching", False)
                and not getattr(self, "_is_vlm", False))

    def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep, batch_size=None,
                                           compute_entropy=False, compute_aux_loss=False, **multimodal):
        if compute_aux_loss or any(v is not None for v in multimodal.values()) or not self.uses_fast_path():
            return super()._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, logits_to_keep, batch_size=batch_size,
                compute_entropy=compute_entropy, compute_aux_loss=compute_aux_loss, **multimodal)
        batch_size = batch_size or input_ids.size(0)
        logps, entropies = [], []
        for start in range(0, input_ids.size(0), batch_size):  # trl's chunking, kept for its memory bound
            rows = slice(start, start + batch_size)
            with self.accelerator.autocast():
                lp, ent = completion_logps(model, input_ids[rows], attention_mask[rows], logits_to_keep,
                                           self.temperature, compute_entropy, self._entropy_bonus_enabled)
            logps.append(lp)
            entropies.append(ent)
        return torch.cat(logps), (torch.cat(entropies) if compute_entropy else None), None

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        if images is not None and any(i is not None for i in images) or multimodal_fields or has_tool_images \
                or not self.uses_fast_path():
            return super()._generate_single_turn(prompt_ids, images, multimodal_fields, num_generations,
                                                 has_tool_images)
        # One autocast around the whole generate: weights are cast to bf16 once, not at every decode step.
        autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=bool(self.args.bf16))
        with (profiling_context(self, "transformers.generate"),
              unwrap_model_for_generation(self.model_wrapped, self.accelerator,
                                          generation_kwargs=self.generation_kwargs) as unwrapped,
              torch.no_grad(), autocast, decode_attention(unwrapped),
              packed_bf16_linears(unwrapped, len(prompt_ids), enabled=bool(self.args.bf16))):
            completion_ids = generate_shared_prompts(unwrapped, prompt_ids, self._tokenizer.pad_token_id,
                                                     self.generation_config)
        # trl's rule: a completion ends at its first EOS (kept); what follows is padding.
        eos = set(self.eos_token_ids)
        completions = []
        for row in completion_ids.tolist():
            end = next((i + 1 for i, token in enumerate(row) if token in eos), len(row))
            completions.append(row[:end])
        return completions, None
