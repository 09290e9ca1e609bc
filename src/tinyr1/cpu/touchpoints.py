"""The CPU fast path's version gate, and the one list of the private internals it relies on.

The fast path (``tinyr1.cpu``) computes trl's GRPO step and ``generate``'s tokens by other means, so it leans on
internals no release promises to keep: private trl methods it overrides, transformers' cache and module layout,
torch's oneDNN ops. ``TOUCHPOINTS`` lists each one: what it is, which tinyr1 module uses it, and the version it was
verified on. The equivalence tests (``tests/cpu/test_trainer.py``, ``tests/cpu/test_decode_loop.py``) passed on
each row of ``VERIFIED_ROWS`` together (the pins of constraints.txt, and the newest releases a plain ``pip install``
resolved); elsewhere nobody has run them, and a changed internal could crash a run or, worse, change its step
without a word. ``make test-latest`` (run by CI) checks the newest releases pip resolves against this list.

The rule, ``fast_path_check(part)``: the fast path is taken only where the packages the part relies on have the
major.minor versions of one verified row (e.g. trl ``1.16.*``, transformers ``5.25.*``, torch ``2.14.*``) and, for
training,
trl's two overridden methods still take exactly the parameters the override was written for (a renamed or added
parameter means the override no longer sees what trl passes). Three parts:

- ``"training"`` (``tinyr1.cpu.fast_path``): trl, transformers and torch;
- ``"generation"`` (the decode loop that ``eval``, ``compare`` and the before/after evaluation use): transformers
  and torch (it uses nothing of trl);
- ``"sampling"`` (``tinyr1.GRPOTrainer``'s overrides of trl's ``_calculate_rewards``,
  ``_generate_and_score_completions`` and ``_get_train_sampler``, CPU or GPU): trl and those three methods; outside
  it the opt-in ``dynamic_sampling`` and ``curriculum`` are refused with one line, not run unverified, and the
  no-signal guard (which reads the rewards there) is off, said in one line.

Outside them a run prints one line naming the versions found and the versions verified, and takes the plain path:
trl's own ``GRPOTrainer``, ``generate``'s own loop. The same step, slower. ``tinyr1 train --cpu_fast_path true``
forces the training fast path anyway, with a warning; ``--cpu_fast_path false`` turns it off; unset, this gate
decides. accelerate is not gated: its one touchpoint is read with ``getattr``. ``tinyr1 doctor`` prints the decision.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import logging
import re
from importlib.metadata import PackageNotFoundError, version
from typing import NamedTuple

from tinyr1.infra.naming import setting

logger = logging.getLogger(__name__)


class VerifiedRow(NamedTuple):
    """Versions whose equivalence suite (tests/cpu and the touchpoint tests) passed together, when, and how."""

    versions: dict
    date: str
    command: str


VERIFIED_ROWS = (
    VerifiedRow({"trl": "1.16.0", "transformers": "5.23.0", "torch": "2.13.0", "accelerate": "1.15.0",
                 "datasets": "5.2.0", "peft": "0.21.2"}, "2026-12-05",
                "make test (the pins of constraints.txt)"),
    VerifiedRow({"trl": "1.16.0", "transformers": "5.25.0", "torch": "2.14.1", "accelerate": "1.16.0",
                 "datasets": "5.2.0", "peft": "0.21.2"}, "2026-12-05",
                "make test-latest (pip install torch, then pip install -e '.[dev]': the newest releases resolved)"),
)
VERIFIED = VERIFIED_ROWS[0].versions  # the pins of constraints.txt, what make install installs
PARTS = {"training": ("trl", "transformers", "torch"), "generation": ("transformers", "torch"),
         "sampling": ("trl",)}


class Touchpoint(NamedTuple):
    package: str
    what: str
    used_in: str  # the tinyr1 module(s) that rely on it

    @property
    def verified(self) -> str:
        return f"{self.package} {' / '.join(sorted({row.versions[self.package] for row in VERIFIED_ROWS}))}"


TOUCHPOINTS = (
    Touchpoint("trl", "GRPOTrainer._get_per_token_logps_and_entropies (private): overridden with a copy of its "
               "signature; returns (logps, entropies, aux_loss)", "tinyr1.cpu.fast_path"),
    Touchpoint("trl", "GRPOTrainer._generate_single_turn (private): overridden with a copy of its signature; "
               "returns (completion ids cut after the first EOS, logprobs or None)", "tinyr1.cpu.fast_path"),
    Touchpoint("trl", "GRPOTrainer._entropy_bonus_enabled (private): whether the entropy needs a gradient",
               "tinyr1.cpu.fast_path"),
    Touchpoint("trl", "GRPOTrainer._tokenizer (private): the tokenizer, for its pad token", "tinyr1.cpu.fast_path"),
    Touchpoint("trl", "GRPOTrainer._is_vlm (private): a vision-language model takes trl's path",
               "tinyr1.cpu.fast_path"),
    Touchpoint("trl", "GRPOTrainer attributes use_vllm, use_transformers_continuous_batching, temperature, "
               "generation_config, generation_kwargs, eos_token_ids, model_wrapped", "tinyr1.cpu.fast_path"),
    Touchpoint("trl", "trl.extras.profiling.profiling_context (internal module)", "tinyr1.cpu.fast_path"),
    Touchpoint("trl", "trl.models.utils.unwrap_model_for_generation (internal module)", "tinyr1.cpu.fast_path"),
    Touchpoint("trl", "the update's batch layout: [left-padded prompt | right-padded completion], positions counted "
               "from the first column, no position_ids", "tinyr1.cpu.fast_path"),
    Touchpoint("trl", "each prompt repeated in num_generations consecutive rows (RepeatSampler); elsewhere the "
               "decode loop shares nothing (slower, same tokens)", "tinyr1.cpu.decode_loop"),
    Touchpoint("transformers", "cache_utils.DynamicLayer subclassed: lazy_initialization, is_initialized, "
               "get_seq_length, and keys/values replaced by batch_select_indices, crop and reorder_cache",
               "tinyr1.cpu.shared_prompts"),
    Touchpoint("transformers", "DynamicCache(config=...).layers replaced; batch_select_indices differentiable",
               "tinyr1.cpu.shared_prompts, tinyr1.cpu.fast_path"),
    Touchpoint("transformers", "config._attn_implementation (private) written for the length of a block; "
               "AttentionInterface / AttentionMaskInterface.register, masking_utils.sdpa_mask",
               "tinyr1.cpu.attention"),
    Touchpoint("transformers", "integrations.sdpa_attention.sdpa_attention_forward and the attention-function "
               "contract: kwargs dropout, softcap, sliding_window, s_aux; module.is_causal; a boolean mask or None "
               "(plain causal); returns ((b, q, heads, d), weights)", "tinyr1.cpu.attention"),
    Touchpoint("transformers", "generate(custom_generate=callable): the callable's arguments (logits_processor, "
               "stopping_criteria, generation_config, synced_gpus, streamer, model kwargs)",
               "tinyr1.cpu.decode_loop, tinyr1.models.generation"),
    Touchpoint("transformers", "generation_config._pad_token_tensor (private) and max_length as prepared by "
               "generate; stopping criteria with an eos_token_id attribute", "tinyr1.cpu.decode_loop"),
    Touchpoint("transformers", "generate with a prefilled cache (keyword cache, or past_key_values before 5.25; "
               "decode_loop.cache_keyword) runs only the uncached prompt tokens",
               "tinyr1.cpu.shared_prompts"),
    Touchpoint("transformers", "Llama/Qwen2 module layout: model.model.layers, self_attn.{q,k,v,o}_proj, "
               "attn.scaling, mlp.{gate,up,down}_proj, RMSNorm weight and variance_epsilon, model.model.rotary_emb, "
               "embed_tokens, norm, lm_head; config hidden_act, layer_types, head_dim", "tinyr1.cpu.decode_loop"),
    Touchpoint("transformers", "the RMSNorm, rotary (rotate_half) and attention math of those modules' forward",
               "tinyr1.cpu.decode_loop"),
    Touchpoint("transformers", "the sampling warpers generate applies and their order (temperature, top-k, top-p, "
               "min-p); GenerationConfig fields of the others (top_h, typical_p, epsilon/eta_cutoff...)",
               "tinyr1.cpu.shared_prompts"),
    Touchpoint("torch", "torch.ops.mkldnn._linear_pointwise (private op): x, packed weight, bias, 'none', [], ''",
               "tinyr1.cpu.packing"),
    Touchpoint("torch", "torch.ops.mkldnn._reorder_linear_weight (private op): weight, rows", "tinyr1.cpu.packing"),
    Touchpoint("torch", "torch.ops.mkldnn._is_mkldnn_bf16_supported (private op)",
               "tinyr1.models.precision, tinyr1.cpu.packing"),
    Touchpoint("torch", "nn.Linear.forward replaced on instances for the length of a generation",
               "tinyr1.cpu.packing"),
    Touchpoint("torch", "torch.ops.quantized.linear_prepack_fp16 / linear_dynamic_fp16 (fbgemm ops, not public "
               "API): fp32 weight and bias -> packed fp16; fp32 x -> fp32 result (cpu_generation_weights: fp16)",
               "tinyr1.cpu.packing"),
    Touchpoint("trl", "GRPOTrainer._calculate_rewards (private): called through with (inputs, prompts, "
               "completions, completion_ids_list); returns the rewards of every process's rows (rows x reward "
               "functions, NaN for None); attribute eos_token_ids",
               "tinyr1.training.grpo_trainer (no-signal guard, dynamic sampling, curriculum)"),
    Touchpoint("trl", "GRPOTrainer._generate_and_score_completions (private): called through, its batch filtered "
               "and refilled (keys prompt_ids, prompt_mask, completion_ids, completion_mask, advantages, "
               "num_items_in_batch, per-token log-probs)", "tinyr1.training.dynamic_sampling"),
    Touchpoint("trl", "GRPOTrainer._get_train_sampler (Trainer's hook) and RepeatSampler's layout; "
               "self._metrics['train'] lists averaged at logging; attributes reward_weights (a tensor), "
               "reward_func_names, num_generations, num_iterations, train_dataset",
               "tinyr1.training.curriculum, dynamic_sampling"),
    Touchpoint("transformers", "Trainer._save_checkpoint (private): overridden, calling it with "
               "args.save_total_limit set to None for the save so that the Trainer's rotation (which removes whole "
               "folders) is not run; tinyr1 rotates the run's own checkpoints after it, file by file",
               "tinyr1.training.run_session"),
    Touchpoint("transformers", "Trainer._load_optimizer_and_scheduler (private): overridden, calling it, then "
               "the run's own optimizer settings put back over the restored param groups; LambdaLR's base_lrs, "
               "lr_lambdas, last_epoch and _last_lr (torch) recomputed for a changed schedule",
               "tinyr1.training.run_session"),
    Touchpoint("accelerate", "model._hf_hook (private): a dispatched model keeps generate's loop (read with getattr; "
               "not gated)", "tinyr1.cpu.decode_loop"),
)

# The parameters of trl's methods that a part overrides, as trl 1.16.0 declares them.
SAMPLING_OVERRIDDEN = {
    "_calculate_rewards": ("self", "inputs", "prompts", "completions", "completion_ids_list"),
    "_generate_and_score_completions": ("self", "inputs"),
    "_get_train_sampler": ("self", "dataset"),
}
OVERRIDDEN = {
    "_get_per_token_logps_and_entropies": (
        "self", "model", "input_ids", "attention_mask", "logits_to_keep", "batch_size", "compute_entropy",
        "compute_aux_loss", "pixel_values", "image_grid_thw", "num_images", "pixel_attention_mask", "spatial_shapes",
        "num_tiles", "image_sizes", "token_type_ids", "mm_token_type_ids", "image_position_ids"),
    "_generate_single_turn": ("self", "prompt_ids", "images", "multimodal_fields", "num_generations",
                              "has_tool_images"),
}


class FastPathCheck(NamedTuple):
    allowed: bool
    reason: str  # the versions found against those verified, or the trl signature that changed
    part: str

    @property
    def summary(self) -> str:
        """"on: <reason>", or "off: <reason>. <what runs instead; how to force it>" (worded for the caller)."""
        if self.allowed:
            return f"on: {self.reason}"
        if self.part == "training":
            instead = ("Training uses trl's own GRPOTrainer (slower, the same step); "
                       f"{setting('cpu_fast_path', True)} forces it")
        elif self.part == "sampling":
            instead = "dynamic_sampling and curriculum override these trl internals and are refused here"
        else:
            instead = "Generation uses generate's own loop (slower, the same tokens)"
        return f"off: {self.reason}. {instead}"

    @property
    def line(self) -> str:
        """The one printable line: the decision, the versions found and verified, and how to force it."""
        return f"CPU fast path ({self.part}) {self.summary}"


def installed_version(package: str) -> str:
    """The version of ``package`` this process runs (its ``__version__``, else its installed metadata)."""
    try:
        found = getattr(importlib.import_module(package), "__version__", None)
        return str(found or version(package))
    except (ImportError, PackageNotFoundError):
        return "not installed"


def verified_pattern(package: str, row: VerifiedRow | None = None) -> str:
    """``1.16.*``: the versions of ``package`` a verified row accepts (its major.minor, any patch or build)."""
    return ".".join((row or VERIFIED_ROWS[0]).versions[package].split(".")[:2]) + ".*"


def verified_text(packages) -> str:
    """The verified combinations of ``packages``: ``trl 1.16.*, torch 2.13.* or trl 1.16.*, torch 2.14.*``."""
    combos = dict.fromkeys(", ".join(f"{p} {verified_pattern(p, row)}" for p in packages) for row in VERIFIED_ROWS)
    return " or ".join(combos)


def matching_row(found: dict) -> VerifiedRow | None:
    """The first verified row whose major.minor versions ``found`` (package -> version) has, or None."""
    return next((row for row in VERIFIED_ROWS
                 if all(same_minor(v, row.versions[p]) for p, v in found.items())), None)


def same_minor(found: str, verified: str) -> bool:
    """Whether ``found`` has ``verified``'s major.minor.

    >>> same_minor("2.13.0+cpu", "2.13.0"), same_minor("1.16.2", "1.16.0"), same_minor("1.17.0", "1.16.0")
    (True, True, False)
    """
    numbers = [re.match(r"(\d+)\.(\d+)", v) for v in (found, verified)]
    return all(numbers) and numbers[0].groups() == numbers[1].groups()


def changed_signatures(overridden: dict | None = None) -> list[str]:
    """The overridden trl methods whose parameters differ from ``overridden`` (default ``OVERRIDDEN``), each as one
    phrase."""
    from trl import GRPOTrainer

    changed = []
    for name, expected in (OVERRIDDEN if overridden is None else overridden).items():
        method = getattr(GRPOTrainer, name, None)
        if method is None:
            changed.append(f"GRPOTrainer.{name} is gone")
            continue
        found = tuple(inspect.signature(method).parameters)
        if found != expected:
            lost, new = [p for p in expected if p not in found], [p for p in found if p not in expected]
            what = ", ".join(filter(None, [lost and f"lost {', '.join(lost)}", new and f"gained {', '.join(new)}"]))
            changed.append(f"GRPOTrainer.{name}'s parameters changed ({what or 'reordered'})")
    return changed


@functools.cache
def fast_path_check(part: str = "training") -> FastPathCheck:
    """Whether the fast path's ``part`` (``"training"`` or ``"generation"``) may run with the installed packages."""
    packages = PARTS[part]
    found = {p: installed_version(p) for p in packages}
    found_text = ", ".join(f"{p} {v}" for p, v in found.items())
    outside = matching_row(found) is None
    overridden = {"training": OVERRIDDEN, "sampling": SAMPLING_OVERRIDDEN}.get(part)
    changed = changed_signatures(overridden) if overridden and not outside else []
    if not outside and not changed:
        return FastPathCheck(True, f"{found_text}, the versions it was verified on", part)
    if outside:
        reason = f"found {found_text}; verified on {verified_text(packages)}"
    else:
        reason = f"{found_text}, but trl's {'; '.join(changed)}"
    return FastPathCheck(False, reason, part)


def forced_line(part: str = "training") -> str:
    """The warning a run prints when ``--cpu_fast_path true`` forces the fast path outside the gate."""
    return (f"warning: CPU fast path forced by {setting('cpu_fast_path', True)}, unverified here: "
            f"{fast_path_check(part).reason}; "
            "its step may differ from trl's (leave cpu_fast_path unset for trl's own trainer)")


@functools.cache
def announce(part: str) -> bool:
    """``fast_path_check(part).allowed``; where it is False, its line is printed (once per process and part)."""
    check = fast_path_check(part)
    if not check.allowed:
        logger.info(check.line)
    return check.allowed
