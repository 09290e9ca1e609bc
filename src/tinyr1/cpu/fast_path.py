"""The CPU fast path: trl's GRPO step with three costs of its CPU step removed and the algorithm unchanged.

A GRPO step samples ``num_generations`` completions of the *same* prompt, then scores them in one forward and
backward. On a CPU trl spends much of that step on work a GPU hides:

1. **The LM head.** trl's fused log-prob head is a Triton kernel; off-GPU its fallback projects *every* position,
   prompt included, onto the vocabulary (49k for SmolLM2) in many small chunks. Here the model's own head runs on
   the completion positions only (``logits_to_keep``), then an fp32 log-softmax over a few rows at a time with its
   own backward (``token_logps``), so no fp32 copy of all the logits is made or kept.
2. **The shared prompt, in the update.** The ~150-token prompt is identical for a group's completions, but trl runs
   it once per completion. Here each distinct prompt of a micro-batch runs once, its key/value cache is indexed out
   to its rows, and the completions attend to it; gradients flow through the cache into the prompt's forward.
   Positions, masks and padding are exactly trl's, so the log-probs are the same numbers (``tests/cpu/test_trainer``).
   Attention runs as two batched products (``tinyr1.cpu.attention``) instead of sdpa's flash kernel, which is slow
   on a CPU for these short sequences.
3. **Generation.** Each distinct prompt is prefilled once and its cache shared by the group (trl prefills it
   ``num_generations`` times). Under bf16, one autocast spans the whole ``generate`` so each weight is cast to
   bf16 once per generation instead of at every decode step (accelerate's per-forward autocast did that), and on
   a CPU with native bf16 every linear layer multiplies by a weight packed once per generation. The key/value
   cache has room for the new tokens instead of being concatenated (copied) at every step, a one-token decode
   step packs grouped query heads into one attention call, and each token is drawn by one uniform number against
   the cumulative probabilities (trl's distribution; ``torch.multinomial`` draws one per vocabulary entry). These
   pieces live in ``tinyr1.cpu.shared_prompts``. For Llama and Qwen2 models the decode steps themselves run in
   ``tinyr1.cpu.decode_loop`` (a ``custom_generate``: the same layer math with fused weights and batched fp32
   attention, without the modules' and the cache object's per-step costs).

``FastPath`` holds the two replacements; ``tinyr1.GRPOTrainer`` overrides trl's ``_get_per_token_logps_and_entropies``
and ``_generate_single_turn`` in its own body and hands them to it where it is ``on``. Everything else — rewards,
advantages, the loss, logging, checkpoints — is trl's own code. For one seed the sampled completions differ from
trl's (other random draws from the same distribution); ``fast_sampling = False`` gives trl's draws. The path is
taken only where it is known to be equal: on CPU, a text-only model, no activation checkpointing, no vLLM, and the
trl / transformers / torch versions it was verified on (``tinyr1.cpu.touchpoints``, which lists every private
internal it relies on); anything else is trl's own code, unchanged (``FastPath.on`` says which). ``cpu_fast_path``
false turns it off, true forces it outside the verified versions, with a warning; it is never used on a GPU, where
it has not been measured.
"""

from __future__ import annotations

import collections
import logging

import torch
import torch.nn.functional as F
from trl.extras.profiling import profiling_context
from trl.models.utils import unwrap_model_for_generation

from tinyr1.cpu import decode_loop, packing, touchpoints
from tinyr1.cpu.attention import cpu_attention
from tinyr1.cpu.shared_prompts import distinct_rows, generate_shared_prompts, loop_decodes
from tinyr1.infra.naming import setting

logger = logging.getLogger(__name__)


def completion_logps(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, logits_to_keep: int,
                     temperature: float = 1.0, compute_entropy: bool = False, entropy_grad: bool = False):
    """Per-token log-probs (and entropies) of the last ``logits_to_keep`` tokens, each distinct prompt run once.

    ``input_ids`` is trl's ``[left-padded prompt | right-padded completion]``; positions count from the first
    column as in trl's forward (no ``position_ids`` are passed there either). Padding positions get 0.
    """
    prompt_len = input_ids.size(1) - logits_to_keep
    prompt = torch.cat([input_ids[:, :prompt_len], attention_mask[:, :prompt_len]], dim=1)
    first, inverse = distinct_rows(prompt)
    out = model(input_ids=input_ids[first, :prompt_len], attention_mask=attention_mask[first, :prompt_len],
                use_cache=True, logits_to_keep=1)
    pieces = [out.logits[inverse]]  # predicts each row's first completion token
    if logits_to_keep > 1:
        cache = decode_loop.output_cache(out)
        cache.batch_select_indices(inverse)  # differentiable indexing: gradients reach the prompt's forward
        pieces.append(model(input_ids=input_ids[:, prompt_len:-1], attention_mask=attention_mask[:, :-1],
                            use_cache=True, **{decode_loop.cache_keyword(model): cache}).logits)
    targets = input_ids[:, prompt_len:]
    scored, start = [], 0
    for logits in pieces:  # scored apart: concatenating them would copy every logit once more
        end = start + logits.size(1)
        scored.append(token_logps(logits, targets[:, start:end], temperature, compute_entropy, entropy_grad))
        start = end
    padding = attention_mask[:, prompt_len:] == 0
    logps = torch.cat([lp for lp, _ in scored], dim=1).masked_fill(padding, 0.0)
    entropy = torch.cat([ent for _, ent in scored], dim=1).masked_fill(padding, 0.0) if compute_entropy else None
    return logps, entropy


def token_logps(logits: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0,
                compute_entropy: bool = False, entropy_grad: bool = False):
    """log p(target) under ``softmax(logits / temperature)`` in fp32, and the distribution's entropy if asked.

    ``_TokenLogProbs`` does it in chunks of rows with its own backward; with a gradient through the entropy (trl's
    entropy bonus) it is plain autograd over the whole fp32 tensor.
    """
    if not (compute_entropy and entropy_grad and torch.is_grad_enabled()):
        return _TokenLogProbs.apply(logits, targets, temperature, compute_entropy)
    log_probs = F.log_softmax(_scaled(logits, temperature), dim=-1)
    return (log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1),
            -(log_probs.exp() * log_probs).sum(-1))


class _TokenLogProbs(torch.autograd.Function):
    """``token_logps`` over chunks of ~4M logits at a time. The whole-tensor autograd version allocates, fills and
    keeps several fp32 copies of the ``(rows, 128, 49k)`` logits, a sizeable share of the update, much of it page
    faults on fresh memory (docs/cpu-fast-path.md has the measurements). The backward recomputes each chunk's softmax
    from the kept logits: d log p(t) / d logits = (onehot(t) - softmax) / temperature. Entropy has no gradient here.
    """

    CHUNK = 1 << 22

    @staticmethod
    def forward(ctx, logits, targets, temperature, compute_entropy):
        flat, flat_targets = logits.reshape(-1, logits.size(-1)), targets.reshape(-1, 1)
        logps = torch.empty(flat.size(0), dtype=torch.float32, device=logits.device)
        entropy = torch.empty_like(logps) if compute_entropy else None
        for rows in _TokenLogProbs._chunks(flat):
            log_probs = F.log_softmax(_scaled(flat[rows], temperature), dim=-1)
            logps[rows] = log_probs.gather(1, flat_targets[rows]).squeeze(1)
            if compute_entropy:
                entropy[rows] = -torch.linalg.vecdot(log_probs.exp(), log_probs)
        ctx.save_for_backward(logits, targets)
        ctx.temperature = temperature
        if compute_entropy:
            entropy = entropy.view(targets.shape)
            ctx.mark_non_differentiable(entropy)
        return logps.view(targets.shape), entropy

    @staticmethod
    def backward(ctx, grad_logps, _grad_entropy):
        logits, targets = ctx.saved_tensors
        flat, flat_targets = logits.reshape(-1, logits.size(-1)), targets.reshape(-1, 1)
        scale = grad_logps.reshape(-1, 1).float() / ctx.temperature
        grad = torch.empty_like(flat)
        for rows in _TokenLogProbs._chunks(flat):
            chunk = torch.softmax(_scaled(flat[rows], ctx.temperature), dim=-1).mul_(-scale[rows])
            grad[rows] = chunk.scatter_add_(1, flat_targets[rows], scale[rows])
        return grad.view_as(logits), None, None, None

    @staticmethod
    def _chunks(flat: torch.Tensor):
        step = max(1, _TokenLogProbs.CHUNK // flat.size(1))
        return (slice(start, start + step) for start in range(0, flat.size(0), step))


def _scaled(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    # Dividing every logit costs a pass over the whole tensor; dividing by 1 changes nothing.
    return logits.float() / temperature if temperature != 1.0 else logits.float()


class FastPath:
    """The CPU fast path of one trainer (module docstring): ``tinyr1.GRPOTrainer`` builds it, asks ``decide`` once
    trl's constructor has run, and hands it trl's two methods it replaces where it is ``on``.

    ``setting``: the config's ``cpu_fast_path`` (None: where the gate allows it; True: also outside the verified
    versions, with a warning; False: never). ``fast_sampling``: draw tokens by inverse CDF (trl's distribution, not
    trl's draws for a given seed; the whole-step equivalence test turns it off to compare sampled completions token
    for token). ``generation_weights``: what the decode steps multiply by (``tinyr1.cpu.packing
    .GENERATION_WEIGHTS``), set by ``decide``."""

    def __init__(self, setting: bool | None = None, weights: str = "exact"):
        self.setting, self.weights_setting = setting, weights
        self.forced = setting is True
        self.on = False
        self.fast_sampling = True
        self.generation_weights = "exact"
        self.calls: collections.Counter = collections.Counter()  # what a test of the fast path asserts ran

    def decide(self, trainer, lora: bool) -> dict:
        """Take the fast path where the gate and the run allow it, said in one line; run.json's facts about it."""
        blocker = blocker_of(trainer)
        if self.setting is False:
            reason = "cpu_fast_path false"
        elif blocker:
            reason = blocker
        else:
            reason = touchpoints.fast_path_check("training").reason
        self.on = self.setting is not False and blocker is None and (self.forced or touchpoints.announce("training"))
        if trainer.accelerator.is_main_process and blocker != "not on a CPU":
            if self.on:
                logger.info(touchpoints.forced_line("training") if self.forced else
                            "trainer: CPU fast path (tinyr1.cpu.fast_path; cpu_fast_path false for trl's own)")
            elif blocker and self.setting is not False:
                logger.warning(f"trainer: trl's own GRPOTrainer step, not the CPU fast path: {blocker}")
        weights = generation_weights(self.weights_setting, self.on, trainer.args,
                                     trainer.accelerator.unwrap_model(trainer.model), lora)
        self.generation_weights = weights["used"]
        wanted = {None: "auto", True: "true", False: "false"}[self.setting]
        return {"cpu_fast_path": {"setting": wanted, "used": self.on, "reason": reason}, "generation_weights": weights}

    def logps_and_entropies(self, trainer, trl_method, model, input_ids, attention_mask, logits_to_keep,
                            batch_size=None, compute_entropy=False, compute_aux_loss=False, **multimodal):
        """trl's ``_get_per_token_logps_and_entropies`` on the fast path (``trl_method`` where it does not apply)."""
        if compute_aux_loss or any(v is not None for v in multimodal.values()):
            return trl_method(model, input_ids, attention_mask, logits_to_keep, batch_size=batch_size,
                              compute_entropy=compute_entropy, compute_aux_loss=compute_aux_loss, **multimodal)
        self.calls["logps"] += 1
        batch_size = batch_size or input_ids.size(0)
        logps, entropies = [], []
        for start in range(0, input_ids.size(0), batch_size):  # trl's chunking, kept for its memory bound
            rows = slice(start, start + batch_size)
            with trainer.accelerator.autocast(), cpu_attention(trainer.accelerator.unwrap_model(model)):
                lp, ent = completion_logps(model, input_ids[rows], attention_mask[rows], logits_to_keep,
                                           trainer.temperature, compute_entropy, trainer._entropy_bonus_enabled)
            logps.append(lp)
            entropies.append(ent)
        return torch.cat(logps), (torch.cat(entropies) if compute_entropy else None), None

    def generate_single_turn(self, trainer, trl_method, prompt_ids, images, multimodal_fields, num_generations,
                             has_tool_images=False):
        """trl's ``_generate_single_turn`` on the fast path (``trl_method`` for images and tools)."""
        if images is not None and any(i is not None for i in images) or multimodal_fields or has_tool_images:
            return trl_method(prompt_ids, images, multimodal_fields, num_generations, has_tool_images)
        self.calls["generation"] += 1
        # One autocast around the whole generate: weights are cast to bf16 once, not at every decode step.
        autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=bool(trainer.args.bf16))
        with (profiling_context(trainer, "transformers.generate"),
              unwrap_model_for_generation(trainer.model_wrapped, trainer.accelerator,
                                          generation_kwargs=trainer.generation_kwargs) as unwrapped,
              torch.no_grad(), autocast, cpu_attention(unwrapped)):
            completion_ids = generate_shared_prompts(unwrapped, prompt_ids, trainer._tokenizer.pad_token_id,
                                                     trainer.generation_config, fast_sampling=self.fast_sampling,
                                                     pack_bf16=bool(trainer.args.bf16),
                                                     generation_weights=self.generation_weights)
        # trl's rule: a completion ends at its first EOS (kept); what follows is padding.
        eos = set(trainer.eos_token_ids)
        completions = []
        for row in completion_ids.tolist():
            end = next((i + 1 for i, token in enumerate(row) if token in eos), len(row))
            completions.append(row[:end])
        return completions, None


def blocker_of(trainer) -> str | None:
    """What in this run keeps trl's own path (versions aside: ``tinyr1.cpu.touchpoints``), or None."""
    if trainer.accelerator.device.type != "cpu":
        return "not on a CPU"
    # Activation checkpointing makes the model drop its key/value cache, which the shared prompt needs.
    if getattr(trainer.args, "activation_checkpointing", False) or trainer.args.gradient_checkpointing:
        return ("activation checkpointing is on (trl's GRPOConfig turns it on by default; a small model on a CPU "
                f"does not need it): {setting('gradient_checkpointing', False)} takes the fast path")
    if trainer.use_vllm or getattr(trainer, "use_transformers_continuous_batching", False):
        return "generation runs in vLLM or continuous batching"
    if getattr(trainer, "_is_vlm", False):
        return "a vision-language model"
    # The shared prompt's cache has one row per completion; beam search reorders and multiplies rows.
    if (trainer.args.generation_kwargs or {}).get("num_beams", 1) > 1:
        return "beam search (generation_kwargs num_beams above 1) keeps generate's own loop"
    # The decode loop multiplies by each layer's weight itself; bitsandbytes' packed weights need its own product.
    if getattr(trainer.model, "is_loaded_in_4bit", False) or getattr(trainer.model, "is_loaded_in_8bit", False):
        return "the weights are 4-bit or 8-bit (bitsandbytes)"
    return None


def generation_weights(wanted: str, fast_path: bool, args, model, lora: bool) -> dict:
    """The weights a run decodes with: ``wanted`` (``tinyr1.cpu.packing.GENERATION_WEIGHTS``) where that applies —
    the CPU fast path (``fast_path``), a model and generation settings (``args``, the run's GRPOConfig: ``bf16``,
    ``cache_implementation``, ``generation_kwargs``) that ``tinyr1.cpu.decode_loop`` runs, no LoRA, an fp32 decode
    on an x86 torch — else the exact weights, with one line saying why. Returns the fact for run.json
    (``used``: what the decode steps multiply by)."""
    from transformers import GenerationConfig

    if wanted == "exact":
        return {"setting": wanted, "used": "exact"}
    if not fast_path:
        reason = "it needs the CPU fast path (tinyr1.cpu.fast_path), which this run does not take"
    elif lora:
        reason = "a LoRA model generates through generate's own loop"
    elif not decode_loop.supports(model):
        reason = f"{type(model).__name__} does not decode through tinyr1.cpu.decode_loop"
    elif not loop_decodes(GenerationConfig(do_sample=True, cache_implementation=args.cache_implementation,
                                           **(args.generation_kwargs or {})), width=2):
        reason = "the run's generation settings (generation_kwargs, cache_implementation) keep generate's own loop"
    else:
        reason = packing.fp16_weights_reason(torch.bfloat16 if args.bf16 else torch.float32)
    if reason:
        logger.info(f"cpu_generation_weights={wanted} does not apply: {reason}; generating with the exact weights")
        return {"setting": wanted, "used": "exact", "reason": reason}
    logger.info(f"generation: decode steps multiply by weights rounded to {wanted} (cpu_generation_weights; the "
                "sampler differs slightly from the trained policy)")
    return {"setting": wanted, "used": wanted}
