"""The precision policy: which dtype and mixed-precision flags a model gets, on a CPU or a GPU.

On a CPU the choice follows what the CPU can do (``tinyr1.infra.cpu_features``: bf16 only where it multiplies bf16
natively); on a GPU, ``torch.cuda.is_bf16_supported()``. fp16 with a Qwen2-family model is refused unless forced.
``train``, ``sft``, ``eval``, ``generate``, ``compare`` and ``doctor`` all ask ``choose_precision``. A run's
precision line says "requested" only for a dtype or ``--bf16`` the user gave that differs from the automatic choice.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tinyr1.infra.cpu_features import cpu_bf16, explicit_bf16_warning
from tinyr1.infra.device import default_device
from tinyr1.infra.errors import TinyR1Error
from tinyr1.infra.naming import setting

# ---------------------------------------------------------------- the policy, CPU and GPU

@dataclass
class PrecisionPlan:
    dtype: torch.dtype  # the dtype weights are loaded in
    bf16: bool  # mixed-precision flags for the Trainer
    fp16: bool
    device: str
    reason: str  # one printable line


# Model families whose activations overflow fp16: NaN logits, then the sampler emits token 0 (`!` in Qwen's
# vocabulary) forever — the exact collapse of the recipe tinyr1 reproduces.
FP16_UNSAFE_MODEL_TYPES = ("qwen2", "qwen2_moe", "qwen3", "qwen3_moe")



def _parse_dtype(requested: str | torch.dtype | None) -> str:
    if isinstance(requested, torch.dtype):
        return {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}[requested]
    aliases = {None: "auto", "auto": "auto", "bfloat16": "bf16", "bf16": "bf16", "float16": "fp16", "fp16": "fp16",
               "half": "fp16", "float32": "fp32", "fp32": "fp32", "float": "fp32"}
    if requested not in aliases:
        raise TinyR1Error(f"dtype {requested!r}: use auto, bfloat16, float16 or float32")
    return aliases[requested]


def training_request(training_args, dtype: str | None) -> str:
    """What the Trainer's flags ask ``choose_precision`` for. On CPU, ``--bf16`` equal to the automatic choice (the
    default the config got from ``tinyr1.training.config.MachineDefaults``) is the automatic choice, never
    "requested"; one that differs is a request: ``--bf16 false`` on a native-bf16 CPU means fp32, ``--bf16 true``
    elsewhere bf16."""
    if training_args.fp16:
        return "fp16"
    if default_device() == "cpu" and dtype in (None, "auto"):
        if bool(training_args.bf16) == cpu_bf16().native:  # what the automatic choice is anyway: no request
            return "auto"
        return "bf16" if training_args.bf16 else "fp32"
    return "bf16" if training_args.bf16 else dtype


def choose_precision(requested: str | torch.dtype | None = None, *, model_type: str | None = None,
                     force_fp16: bool = False, training: bool = True, lora: bool = False) -> PrecisionPlan:
    """The dtype and mixed-precision flags for this machine; fp16 with a Qwen2-family model is refused unless forced.

    GPU: bf16 where it is supported, else fp32; training every weight (``training`` and not ``lora``) keeps fp32
    master weights under bf16 autocast, since AdamW's steps at GRPO's learning rates are below bf16's resolution for
    most weights (measured on a GPU: docs/gpu.md);
    a LoRA base is frozen and stays bf16. CPU (``tinyr1.infra.cpu_features``): for training, bf16 autocast over fp32
    weights only where the CPU has native bf16 matmuls, else fp32; an explicit bf16 is honoured with a warning
    where it is slow. Generation-only commands (``training=False``) stay fp32 on CPU unless bf16 is asked for: a
    decode step is bound by reading the weights, and bf16 gained little there, not worth changing evaluation numbers.
    """
    want = _parse_dtype(requested)
    device = default_device()
    gpu_bf16 = device == "cuda" and torch.cuda.is_bf16_supported()
    if want == "fp16":
        if model_type in FP16_UNSAFE_MODEL_TYPES and not force_fp16:
            raise TinyR1Error(
                f"fp16 with a {model_type} model is refused: its activations overflow fp16, logits become NaN and "
                "the sampler emits token 0 ('!') forever — the recipe's collapse. Use bf16 (or fp32); "
                f"force with {setting('force_fp16', True)}"
            )
        if device != "cuda":
            raise TinyR1Error("fp16 mixed precision needs a CUDA GPU; on CPU use float32 or bfloat16")
        return PrecisionPlan(torch.float32, False, True, device, "precision: fp16 mixed precision (requested)")
    if device == "cuda":
        if want == "bf16" and not gpu_bf16:
            raise TinyR1Error("this GPU does not support bf16; use float32 (or float16 for non-Qwen models)")
        if want == "bf16" or (want == "auto" and gpu_bf16):
            why = "requested" if want == "bf16" else "auto: the GPU supports it; fp16 overflows Qwen2.5"
            if training and not lora:
                return PrecisionPlan(torch.float32, True, False, device,
                                     f"precision: bf16 autocast over fp32 master weights ({why})")
            return PrecisionPlan(torch.bfloat16, True, False, device, f"precision: bf16 ({why})")
        why = "requested" if want == "fp32" else "auto: GPU without bf16"
        return PrecisionPlan(torch.float32, False, False, device, f"precision: fp32 ({why})")
    cpu = cpu_bf16()
    if want == "bf16" or (want == "auto" and training and cpu.native):
        why = "requested" if want == "bf16" else f"auto: {cpu.reason}"
        warning = explicit_bf16_warning(cpu) if want == "bf16" else None
        # Training keeps fp32 master weights: pure-bf16 AdamW drops updates smaller than bf16's resolution.
        dtype = torch.float32 if training else torch.bfloat16
        kind = "bf16 autocast over fp32 weights" if training else "bf16 weights"
        return PrecisionPlan(dtype, training, False, device, f"precision: {kind} on CPU ({why})"
                             + (f"\n{warning}" if warning else ""))
    if want == "fp32":
        why = "requested"
    elif training:
        why = f"auto: {cpu.reason}"
    else:
        why = "auto: generation on CPU is bound by reading the weights"
    return PrecisionPlan(torch.float32, False, False, device, f"precision: fp32 on CPU ({why})")


# ---------------------------------------------------------------- what a run records about it

def run_facts(dtype: torch.dtype, reason: str, threads: int | None = None) -> dict:
    """run.json's facts about where and in what precision a run trained, the same for ``train`` and ``sft`` (each
    adds ``bf16``, its Trainer's autocast flag): the device, the weights' dtype, the precision line, the threads
    and, on a CPU, what the CPU is and whether it multiplies bf16 natively."""
    device = default_device()
    facts = {"device": device, "dtype": str(dtype).replace("torch.", ""), "precision_reason": reason,
             "num_threads": None if threads is None else int(threads),
             "threads_reason": getattr(threads, "why", None), "num_gpus": torch.cuda.device_count()}
    if device == "cpu":
        facts["cpu"] = cpu_bf16().as_dict()
    return facts


# ---------------------------------------------------------------- LoRA under CPU bf16 autocast

def keep_adapter_sums_fp32(model) -> int:
    """Under CPU bf16 autocast, make every LoRA layer of ``model`` add its adapter's output to the frozen layer's
    output in fp32; returns how many layers it changed (0 without LoRA layers).

    peft adds ``lora_B(lora_A(x)) * scaling`` to the frozen layer's output, and under autocast that output is bf16:
    the sum is rounded to bf16's 8 significant bits of the *frozen* output, so an adapter whose contribution is
    below that resolution (every adapter in its first steps, since ``lora_B`` starts at zero) vanishes from the
    forward pass the loss is computed on. Training then sees less of its own updates than fp32 training does and
    learns more slowly per step (docs/results.md has the cold start this cost). A forward hook that returns the
    frozen layer's output in fp32 makes peft's sum fp32 (peft keeps the dtype of the frozen output); the matmuls
    stay bf16, the next layer casts its input to bf16 as before, and the residual stream was fp32 already.
    """
    from peft.tuners.lora import LoraLayer

    changed = 0
    for module in model.modules():
        base = getattr(module, "base_layer", None)
        if isinstance(module, LoraLayer) and isinstance(base, torch.nn.Linear) and not hasattr(base, _HOOKED):
            base.register_forward_hook(_fp32_output)
            setattr(base, _HOOKED, True)
            changed += 1
    return changed


def keep_trainers_adapter_sums_fp32(model, args) -> int:
    """What both trainers call once trl has wrapped the model: ``keep_adapter_sums_fp32`` where the run trains under
    CPU bf16 autocast (``args``: its TrainingArguments), nothing elsewhere; returns the layers changed."""
    return keep_adapter_sums_fp32(model) if args.bf16 and args.device.type == "cpu" else 0


_HOOKED = "_tinyr1_fp32_output"


def _fp32_output(module, inputs, output):
    return output.float() if torch.is_autocast_enabled("cpu") and output.dtype == torch.bfloat16 else output
