"""Weights that are not whole in this process's memory: DeepSpeed ZeRO-3 partitions every parameter across the
processes (each holds a slice; ``param.shape`` is then empty and ``param.ds_shape`` the full shape), and QLoRA
holds the base in 4 bits. What needs whole weights works on the full shapes, gathers them, or reads the saved files:

- the pad token's check reads the embedding's full row count (``rows``), never the local slice;
- the preflight and the before/after evaluation generate inside trl's ``unwrap_model_for_generation``, which gathers
  a ZeRO-3 model on every process for the duration (``tinyr1.training``);
- a LoRA adapter trained on partitioned or 4-bit weights is merged from its saved files into a base loaded whole on
  the main process (``merge_saved_adapter``), not in memory.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from tinyr1.models.precision import choose_precision


def rows(weight) -> int:
    """The full first dimension of a weight, partitioned (ZeRO-3: ``ds_shape``) or not."""
    return int(getattr(weight, "ds_shape", weight.shape)[0])


def finish_merge(run_dir, trainer, merge_lora: bool, base_path: str | None) -> bool:
    """After ``run_dir.save_final(trainer, tokenizer, merge_lora and not needs_merge_from_files(...))``: where the
    in-memory merge was skipped, merge from the saved adapter on the main process. Returns whether it did."""
    if not (merge_lora and base_path and needs_merge_from_files(trainer.model)):
        return False
    if run_dir.main:
        merge_saved_adapter(run_dir.path, run_dir.path / "merged", base_path)
        run_dir.record()
    return True


def is_partitioned(model) -> bool:
    """Whether DeepSpeed ZeRO-3 partitioned this model's parameters across processes."""
    return any(hasattr(p, "ds_id") for p in model.parameters())


def needs_merge_from_files(model) -> bool:
    """Whether merging a LoRA adapter in memory would merge into a slice (ZeRO-3) or into 4-bit weights."""
    quantized = getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False)
    return bool(quantized) or is_partitioned(model)


@contextlib.contextmanager
def process_alone():
    """Load and run a model in this process alone, even inside a ZeRO-3 run: transformers would otherwise partition
    it as it loads and make ``generate`` wait for the other processes at every token (``synced_gpus``), collectives
    that the other processes never join."""
    from transformers.integrations import deepspeed as hf_deepspeed

    live = getattr(hf_deepspeed, "_hf_deepspeed_config_weak_ref", None)
    config = live() if live is not None else None
    if config is None:
        yield
        return
    hf_deepspeed.unset_hf_deepspeed_config()
    try:
        yield
    finally:
        hf_deepspeed.set_hf_deepspeed_config(config)


def merge_saved_adapter(adapter_folder: Path, merged_folder: Path, base_path: str) -> None:
    """The saved adapter merged into the base model at ``base_path`` (a folder or hub id, resolved by the caller),
    loaded whole on this process in the precision generation uses here (bf16 on a GPU with bf16, else fp32), saved
    with the adapter's tokenizer in ``merged_folder``. Main process only."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    plan = choose_precision(None, training=False)
    with process_alone():
        model = AutoModelForCausalLM.from_pretrained(base_path, dtype=plan.dtype, use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(adapter_folder)
    if len(tokenizer) > rows(model.get_input_embeddings().weight):  # tokens the run added (a pad token)
        model.resize_token_embeddings(len(tokenizer))
    merged = PeftModel.from_pretrained(model, str(adapter_folder)).merge_and_unload()
    merged.save_pretrained(merged_folder)
    tokenizer.save_pretrained(merged_folder)
