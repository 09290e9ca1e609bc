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
   cache has room for the new tokens instead of being concatenated (copied) at every step, a one-token decode
   step packs grouped query heads into one attention call, and each token is drawn by one uniform number against
   the cumulative probabilities (trl's distribution; ``torch.multinomial`` draws one per vocabulary entry). These
   pieces live in ``tinyr1.fast_decode``. For Llama and Qwen2 models the decode steps themselves run in
   ``tinyr1.decode_loop`` (a ``custom_generate``: the same layer math with fused weights and batched fp32
   attention, without the modules' and the cache object's per-step costs).

Everything else — rewards, advantages, the loss, logging, checkpoints — is trl's own code. For one seed the sampled
completions differ from trl's (other random draws from the same distribution); ``fast_sampling = False`` gives trl's
draws. The path is taken only where it is known to be equal: on CPU, a text-only model, no activation
checkpointing, no vLLM; anything else falls back to trl (``uses_fast_path`` says which). ``tinyr1 train`` uses it
on CPU by default (``--cpu_fast_path false`` turns it off); it is never used on a GPU, where it has not been
measured.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from trl import GRPOTrainer
from trl.extras.profiling import profiling_context
from trl.models.utils import unwrap_model_for_generation

from tinyr1.fast_decode import (
    decode_attention,
    distinct_rows,
    generate_shared_prompts,
)


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
    logits = out.logits[inverse]  # predicts each row's first completion token
    if logits_to_keep > 1:
        cache = out.past_key_values
        cache.batch_select_indices(inverse)  # differentiable indexing: gradients reach the prompt's forward
        rest = model(input_ids=input_ids[:, prompt_len:-1], attention_mask=attention_mask[:, :-1],
                     past_key_values=cache, use_cache=True).logits
        logits = torch.cat([logits, rest], dim=1)
    logits = logits.float()
    if temperature != 1.0:  # a 1024 x 49k division is ~0.1 s on CPU; dividing by 1 changes nothing
        logits = logits / temperature
    log_probs = F.log_softmax(logits, dim=-1)
    targets = input_ids[:, prompt_len:]
    padding = attention_mask[:, prompt_len:] == 0
    logps = log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1).masked_fill(padding, 0.0)
    entropy = None
    if compute_entropy:
        with torch.set_grad_enabled(entropy_grad and torch.is_grad_enabled()):
            entropy = -(log_probs.exp() * log_probs).sum(-1).masked_fill(padding, 0.0)
    return logps, entropy


class CPUFastGRPOTrainer(GRPOTrainer):
    """``GRPOTrainer`` whose log-probs and generation take the CPU fast path where it applies (module docstring)."""

    # Sample by inverse CDF (``tinyr1.fast_decode``): trl's distribution, but not trl's draws for a given seed.
    # The whole-step equivalence test turns it off to compare sampled completions token for token.
    fast_sampling = True

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
              torch.no_grad(), autocast, decode_attention(unwrapped)):
            completion_ids = generate_shared_prompts(unwrapped, prompt_ids, self._tokenizer.pad_token_id,
                                                     self.generation_config, fast_sampling=self.fast_sampling,
                                                     pack_bf16=bool(self.args.bf16))
        # trl's rule: a completion ends at its first EOS (kept); what follows is padding.
        eos = set(self.eos_token_ids)
        completions = []
        for row in completion_ids.tolist():
            end = next((i + 1 for i, token in enumerate(row) if token in eos), len(row))
            completions.append(row[:end])
        return completions, None
