"""Precision chosen by the hardware: bf16 on a CPU only where it has native bf16 matrix multiplies.

On an AVX-512-BF16 CPU (e.g. AMD Zen4/5, Intel Sapphire Rapids) bf16 matmuls run several times faster than fp32;
on an AVX2-only CPU (Zen3, most laptops and VMs before 2023) torch falls back to a scalar bf16 kernel that is
several times *slower* (docs/cpu-fast-path.md has the measurements). So the choice is made per machine, from what
the CPU is, never from how busy it is:

1. oneDNN's own probe, ``_is_mkldnn_bf16_supported()``, must say yes, and
2. the CPU must list a native bf16 instruction among its flags in ``/proc/cpuinfo``: ``avx512_bf16`` or
   ``amx_bf16`` on x86, ``bf16`` in an Arm CPU's features. (Where ``/proc/cpuinfo`` cannot be read, e.g. macOS,
   the probe decides alone.)

A sub-second timing of fp32 vs bf16 matmuls is still made and printed, as a recorded fact (``speedup``): under
load it moves by several times, so it decides nothing. ``TINYR1_CPU_BF16=1`` (bf16) or ``0`` (fp32) overrides the
decision for one command.

``train``, ``sft``, ``eval``, ``generate``, ``compare`` and ``doctor`` all ask ``cpu_bf16()``; a GPU's own
``torch.cuda.is_bf16_supported()`` decides there (``choose_precision``). A run's precision line says
"requested" only for a dtype or ``--bf16`` the user gave that differs from this automatic choice.

    python -m tinyr1.models.precision        # prints this CPU's decision
"""

from __future__ import annotations

import functools
import os
import platform
import time
from dataclasses import asdict, dataclass

import torch

from tinyr1.infra.errors import TinyR1Error

# Shapes of a 135M-0.5B model's update: (tokens x hidden) @ (hidden x mlp). Small enough to time in well under a
# second even on the slow path, large enough that a kernel's real throughput shows.
_TIMING_SHAPE = (256, 576, 1536)
# Instruction flags that mean native bf16 matmuls: x86 AVX-512 BF16 and AMX, Arm's BF16 extension.
BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")


@dataclass(frozen=True)
class CpuBf16:
    native: bool  # bf16 is used by default on this CPU
    capability: str  # torch.backends.cpu.get_cpu_capability(): DEFAULT, AVX2, AVX512, ...
    mkldnn_bf16: bool  # oneDNN's own probe for native bf16 instructions
    bf16_flags: list | None  # the BF16_FLAGS this CPU lists (None: /proc/cpuinfo unreadable)
    speedup: float  # measured fp32 time / bf16 time at _TIMING_SHAPE on the threads in use (a fact, not a decision)
    cpu_name: str
    reason: str  # one printable line

    def as_dict(self) -> dict:
        return asdict(self)


def cpu_name() -> str:
    """The CPU's model name (``lscpu``'s), for every timing tinyr1 prints or records."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> set[str] | None:
    """The CPU's instruction flags (x86 ``flags``, Arm ``Features`` in ``/proc/cpuinfo``), None where unreadable."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def mkldnn_bf16() -> bool:
    """oneDNN's own probe for native bf16 matrix multiplies (the one place tinyr1 asks it)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _capability() -> str:
    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except AttributeError:
        return "unknown"


def measure_speedup(shape: tuple[int, int, int] = _TIMING_SHAPE, budget_s: float = 0.3) -> float:
    """fp32 time / bf16 time for one matmul shape, best of a few repeats each (well under a second)."""
    m, k, n = shape
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(m, k, generator=generator), torch.randn(k, n, generator=generator)

    def best(x, y) -> float:
        x @ y  # warm-up: first calls pick kernels and allocate
        times, deadline = [], time.perf_counter() + budget_s / 2
        while len(times) < 3 or (time.perf_counter() < deadline and len(times) < 20):
            start = time.perf_counter()
            x @ y
            times.append(time.perf_counter() - start)
        return min(times)

    return best(a, b) / best(a.bfloat16(), b.bfloat16())


@functools.lru_cache(maxsize=1)
def cpu_bf16() -> CpuBf16:
    """Whether this CPU multiplies bf16 natively, decided once per process from its probe and flags (module
    docstring). ``TINYR1_CPU_BF16=0|1`` overrides (tests, users)."""
    forced = os.environ.get("TINYR1_CPU_BF16")
    if forced not in (None, "", "0", "1"):
        raise TinyR1Error(f"TINYR1_CPU_BF16={forced!r}: use 1 (bf16 on this CPU), 0 (fp32) or leave it unset")
    capability, mkldnn, flags = _capability(), mkldnn_bf16(), cpu_flags()
    found = None if flags is None else [f for f in BF16_FLAGS if f in flags]
    speedup = round(measure_speedup(), 2)
    timing = f"bf16 matmul measured {speedup:.2f}x fp32's speed here (a timing, not the decision)"
    if forced in ("0", "1"):
        native = forced == "1"
        why = f"TINYR1_CPU_BF16={forced}"
    elif not mkldnn:
        native = False
        why = f"no native bf16 matmul on this CPU (oneDNN's probe says no; {capability}); {timing}"
    elif found == []:
        native = False
        why = (f"oneDNN's probe says bf16 but the CPU lists no {'/'.join(BF16_FLAGS[:2])} flag ({capability}); "
               f"{timing}")
    else:
        native = True
        shown = ", ".join(found) if found else "oneDNN's probe"
        why = f"native bf16 ({shown}; {capability}); {timing}"
    return CpuBf16(native, capability, mkldnn, found, speedup, cpu_name(), why)


def explicit_bf16_warning(info: CpuBf16) -> str | None:
    """The one-line warning for ``--bf16 true`` on a CPU where bf16 is slower, or None."""
    if info.native:
        return None
    slower = f"{1 / info.speedup:.1f}x slower" if info.speedup > 0 else "much slower"
    return (f"warning: --bf16 true on a CPU without native bf16 ({info.cpu_name}, {info.capability}): its matmuls "
            f"measured {slower} than fp32 here; honoured as asked (--bf16 false or leave it unset for fp32)")


# ---------------------------------------------------------------- the policy, CPU and GPU

@dataclass
class PrecisionPlan:
    dtype: torch.dtype  # the dtype weights are loaded in
    bf16: bool  # mixed-precision flags for the Trainer
    fp16: bool
    device: str
    reason: str  # one printable line


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


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
    default the Trainer flags got from ``trainer_device_defaults``) is the automatic choice, never "requested"; one
    that differs is a request: ``--bf16 false`` on a native-bf16 CPU means fp32, ``--bf16 true`` elsewhere bf16."""
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
    a LoRA base is frozen and stays bf16. CPU (``tinyr1.models.precision``): for training, bf16 autocast over fp32
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
                "force with --force_fp16 true"
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


def trainer_device_defaults() -> dict:
    """The Trainer flags for this machine, shared by ``train`` and ``sft``: on CPU, bf16 autocast only where the CPU
    multiplies bf16 natively and no activation checkpointing (it trades speed for memory a small model does not
    need); on a GPU, bf16 where supported and checkpointing on."""
    if default_device() == "cpu":
        return {"use_cpu": True, "bf16": cpu_bf16().native, "activation_checkpointing": False}
    return {"bf16": torch.cuda.is_bf16_supported(), "activation_checkpointing": True}


if __name__ == "__main__":
    info = cpu_bf16()
    print(f"{info.cpu_name}: {'bf16' if info.native else 'fp32'} — {info.reason}")
