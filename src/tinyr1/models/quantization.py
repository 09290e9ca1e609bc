"""4-bit and 8-bit loading (QLoRA) with bitsandbytes, for ``tinyr1 sft`` and ``tinyr1 train``: the checks made
before anything heavy loads, the quantization config with a real compute dtype, and what a quantized model needs
before it trains.

The compute dtype is the precision plan's (``tinyr1.models.precision``): the 16-bit type the plan computes in
(bf16 on a GPU that supports it and on a CPU that multiplies bf16 natively, fp16 where fp16 is asked for), else
fp32; never the recipe's ``dtype: auto`` word, which transformers would look up as ``torch.auto``.

bitsandbytes (the ``qlora`` extra, pinned in constraints.txt) runs 4-bit weights on a CUDA GPU and on a CPU, so
tinyr1's tests train the 4-bit path on a CPU (``tests/models/test_quantization.py``).
"""

from __future__ import annotations

import importlib.util

import torch

from tinyr1.infra.device import cuda_available, model_device
from tinyr1.infra.errors import TinyR1Error
from tinyr1.infra.naming import setting
from tinyr1.models.precision import PrecisionPlan

INSTALL = 'pip install -c constraints.txt -e ".[qlora]"'


def wanted(model_args) -> bool:
    """Whether the recipe asks for 4-bit or 8-bit weights."""
    return bool(getattr(model_args, "load_in_4bit", False) or getattr(model_args, "load_in_8bit", False))


def check(model_args, *, trains_adapter: bool) -> None:
    """One line, before anything heavy loads, where quantized loading cannot run: bitsandbytes missing, no LoRA
    adapter to train (quantized weights themselves cannot be trained), or 8-bit weights without a GPU
    (bitsandbytes' CPU backend trains 4-bit only)."""
    if not wanted(model_args):
        return
    if importlib.util.find_spec("bitsandbytes") is None:
        raise TinyR1Error(f"load_in_4bit/load_in_8bit need bitsandbytes: {INSTALL}; or train without "
                          f"quantization ({setting('load_in_4bit', False)})")
    if not trains_adapter:
        raise TinyR1Error("load_in_4bit/load_in_8bit: quantized weights cannot be trained themselves; add "
                          f"{setting('use_peft', True)} (QLoRA trains a LoRA adapter over them), or drop the "
                          "quantization")
    if model_args.load_in_8bit and not cuda_available():
        raise TinyR1Error("load_in_8bit needs a CUDA GPU (bitsandbytes' CPU backend trains 4-bit weights); use "
                          f"{setting('load_in_4bit', True)} on this machine")


def compute_dtype(plan: PrecisionPlan) -> torch.dtype:
    """The dtype a quantized layer computes in: the plan's 16-bit type where it has one, else its weights' dtype.

    >>> compute_dtype(PrecisionPlan(torch.float32, True, False, "cpu", "")), \\
    ...     compute_dtype(PrecisionPlan(torch.float32, False, False, "cpu", ""))
    (torch.bfloat16, torch.float32)
    """
    if plan.bf16:
        return torch.bfloat16
    if plan.fp16:
        return torch.float16
    return plan.dtype


def load_kwargs(model_args, plan: PrecisionPlan) -> dict:
    """What ``from_pretrained`` needs for quantized weights (a config and the device they are quantized on), or
    nothing when the recipe asks for none."""
    if not wanted(model_args):
        return {}
    from transformers import BitsAndBytesConfig

    if model_args.load_in_8bit:
        config = BitsAndBytesConfig(load_in_8bit=True)
    else:
        config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=compute_dtype(plan),
                                    bnb_4bit_quant_type=getattr(model_args, "bnb_4bit_quant_type", None) or "nf4",
                                    bnb_4bit_use_double_quant=bool(getattr(model_args, "use_bnb_nested_quant", False)),
                                    bnb_4bit_quant_storage=getattr(model_args, "bnb_4bit_quant_storage", None))
    # bitsandbytes quantizes each weight as it arrives, on the device it is placed on: this process's own.
    return {"quantization_config": config, "device_map": {"": model_device()}}


def describe(model_args, plan: PrecisionPlan) -> str:
    """The precision line's tail for a quantized model, e.g. ``; weights 4-bit nf4, computed in bfloat16``."""
    if not wanted(model_args):
        return ""
    if model_args.load_in_8bit:
        return "; weights 8-bit (bitsandbytes)"
    kind = getattr(model_args, "bnb_4bit_quant_type", None) or "nf4"
    return f"; weights 4-bit {kind}, computed in {str(compute_dtype(plan)).replace('torch.', '')}"


def is_quantized(model) -> bool:
    """Whether a model's weights are bitsandbytes 4-bit or 8-bit (a PEFT wrapper looks through to its base)."""
    return bool(getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False)
                or getattr(getattr(model, "base_model", None), "is_loaded_in_4bit", False))


def prepare_for_training(model) -> None:
    """Keep a 4-bit model trainable after it generates on a CPU.

    On a CPU with AVX-512 bf16, bitsandbytes (0.50) repacks a 4-bit weight the first time its layer runs in eval
    mode without gradients (generation), for a faster product; a repacked weight has no backward, so the training
    step after a generation fails (with a bias, "a view of a leaf Variable ... in-place operation") or passes no
    gradient to the layers below. GRPO generates before every step, so training turns the repacking off.
    """
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False
