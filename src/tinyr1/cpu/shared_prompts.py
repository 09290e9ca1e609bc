"""Generation on the CPU fast path: what ``tinyr1.cpu.fast_path`` wraps around ``generate``.

Each piece gives ``generate``'s own tokens (greedy) or its own sampling distribution, faster on a CPU:

- ``generate_shared_prompts``: each distinct prompt prefilled once, its cache shared by its group;
- ``roomy_cache``: a key/value cache with room for the new tokens (no concatenation at every step), kept in bf16
  under autocast;
- ``tinyr1.cpu.attention``: a one-token decode step packs grouped query heads into one attention call;
- ``packed_bf16_linears``: bf16 weights packed once per generation (CPUs with native bf16 only);
- ``inverse_cdf_sampling``: one uniform draw per row against the cumulative probabilities instead of
  ``torch.multinomial``'s exponential draw over the whole vocabulary;
- the decode loop itself, for Llama and Qwen2 models: ``tinyr1.cpu.decode_loop`` (the others keep ``generate``'s).

``tests/cpu/test_shared_prompts.py`` checks each against transformers' own (the decode loop: ``test_decode_loop.py``).
"""

from __future__ import annotations

import copy

import torch
from transformers import (
    DynamicCache,
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    MinPLogitsWarper,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)
from transformers.cache_utils import DynamicLayer
from transformers.generation import GenerationMode

from tinyr1.cpu import decode_loop
from tinyr1.cpu.packing import packed_bf16_linears


def distinct_rows(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(first row of each distinct row, in sorted order; for each row, the index of its distinct row)."""
    unique, inverse = torch.unique(rows, dim=0, return_inverse=True)
    first = torch.full((unique.size(0),), rows.size(0), dtype=torch.long)
    first = first.scatter_reduce(0, inverse, torch.arange(rows.size(0)), reduce="amin")
    return first, inverse


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


def loop_decodes(generation_config, width: int) -> bool:
    """Whether ``generation_config`` asks only for what ``tinyr1.cpu.decode_loop`` does for prompts ``width`` tokens
    wide: sampling or greedy search, plain token ids out, and for prompts of more than one token a cache the prompt
    can be shared in (``generate_shared_prompts`` checks the model too)."""
    return generation_config.get_generation_mode() in (GenerationMode.SAMPLE, GenerationMode.GREEDY_SEARCH) \
        and not generation_config.return_dict_in_generate \
        and (width == 1 or generation_config.cache_implementation in (None, "dynamic"))


def generate_shared_prompts(model, prompt_ids: list[list[int]], pad_token_id: int, generation_config,
                            fast_sampling: bool = False, fast_loop: bool = True, pack_bf16: bool = False,
                            generation_weights: str = "exact"):
    """``model.generate`` over left-padded prompts, each distinct prompt prefilled once and its cache shared;
    with ``fast_sampling``, sampling by ``inverse_cdf_sampling`` where it applies (same distribution, other draws);
    with ``fast_loop``, tokens decoded by ``tinyr1.cpu.decode_loop`` where the model and the config allow it; with
    ``pack_bf16`` (generating under bf16 autocast), ``packed_bf16_linears`` for generate's own loop — the decode
    loop packs its own fused weights, and packing every layer for the prefill alone cost more than autocast's casts
    (docs/cpu-fast-path.md has the measurements); ``generation_weights`` goes to the decode loop, which alone can
    round the weights (a ValueError where it does not run).

    Returns the generated token ids (batch, new tokens), as ``generate(...)[:, prompt_len:]`` would.
    """
    width = max(len(p) for p in prompt_ids)
    ids = torch.tensor([[pad_token_id] * (width - len(p)) + list(p) for p in prompt_ids])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompt_ids])
    shared = width > 1 and generation_config.cache_implementation in (None, "dynamic")
    loop = fast_loop and decode_loop.supports(model) and loop_decodes(generation_config, width)
    if generation_weights != "exact" and not loop:
        raise ValueError(f"generation_weights={generation_weights!r} needs tinyr1.cpu.decode_loop, which does not "
                         "run for this model or generation config")
    kwargs = {}
    with packed_bf16_linears(model, len(prompt_ids), enabled=pack_bf16 and not loop):
        if shared:
            first, inverse = distinct_rows(torch.cat([ids, mask], dim=1))
            cache = roomy_cache(model.config, generation_config.max_new_tokens or 0)
            decode_loop.prefill(model, ids[first], mask[first], cache)
            cache.batch_select_indices(inverse)
            kwargs[decode_loop.cache_keyword(model)] = cache  # generate runs only the last prompt token, then decodes
        if loop:
            kwargs.update(custom_generate=decode_loop.decode_loop, fast_sampling=fast_sampling,
                          generation_weights=generation_weights)
        elif fast_sampling and (sampling := inverse_cdf_sampling(generation_config)) is not None:
            generation_config, kwargs["logits_processor"] = sampling
        out = model.generate(input_ids=ids, attention_mask=mask, generation_config=generation_config, **kwargs)
    return out[:, width:]


class InverseCDFSampler(LogitsProcessor):
    """Draws each row's next token from the softmax of its (warped) scores with one uniform number per row, found in
    the cumulative probabilities; returns scores that are 0 at the drawn token and -inf elsewhere, so a greedy
    ``generate`` emits it. The same distribution as ``torch.multinomial``, which on CPU draws an exponential number
    for every vocabulary entry, a noticeable share of a decode step (docs/cpu-fast-path.md has the measurements).

    >>> torch.manual_seed(0) and None
    >>> scores = torch.log(torch.tensor([[0.5, 0.3, 0.2, 0.0]])).repeat(20000, 1)
    >>> drawn = InverseCDFSampler(LogitsProcessorList())(None, scores).argmax(-1)
    >>> [round(f, 2) for f in torch.bincount(drawn, minlength=4).div(20000).tolist()]
    [0.5, 0.3, 0.2, 0.0]
    """

    def __init__(self, warpers: LogitsProcessorList):
        self.warpers = warpers

    def __call__(self, input_ids, scores: torch.Tensor) -> torch.Tensor:
        scores = self.warpers(input_ids, scores)
        token = decode_loop.draw_inverse_cdf(scores)
        return torch.full_like(scores, float("-inf")).scatter_(1, token[:, None], 0.0)


def inverse_cdf_sampling(generation_config) -> tuple[GenerationConfig, LogitsProcessorList] | None:
    """A greedy copy of a sampling ``generation_config`` and the processor that samples as it would: the warpers
    ``generate`` applies when sampling (temperature, top-k, top-p, min-p, in its order), then ``InverseCDFSampler``.
    None where the config asks for anything else (beams, other warpers), which then samples through ``generate``."""
    gc = generation_config
    other = (gc.num_beams or 1) > 1 or getattr(gc, "top_h", None) is not None or (gc.typical_p or 1.0) < 1.0 \
        or (gc.epsilon_cutoff or 0.0) > 0.0 or (gc.eta_cutoff or 0.0) > 0.0 or gc.watermarking_config is not None \
        or gc.renormalize_logits
    if not gc.do_sample or other:
        return None
    warpers = LogitsProcessorList()
    if gc.temperature is not None and gc.temperature != 1.0:
        warpers.append(TemperatureLogitsWarper(gc.temperature))
    if gc.top_k is not None and gc.top_k != 0:
        warpers.append(TopKLogitsWarper(top_k=gc.top_k))
    if gc.top_p is not None and gc.top_p < 1.0:
        warpers.append(TopPLogitsWarper(top_p=gc.top_p))
    if gc.min_p is not None:
        warpers.append(MinPLogitsWarper(min_p=gc.min_p))
    greedy = copy.deepcopy(gc)
    greedy.do_sample, greedy.temperature, greedy.top_k, greedy.top_p, greedy.min_p = False, None, None, None, None
    return greedy, LogitsProcessorList([InverseCDFSampler(warpers)])
