"""Precision chosen by the hardware: bf16 on a CPU only where it has native bf16 matrix multiplies.

On an AVX-512-BF16 CPU (e.g. AMD Zen4/5, Intel Sapphire Rapids) a bf16 matmul ran 4.6x faster than fp32; on an
AVX2-only CPU (Zen3, most laptops and VMs before 2023) torch falls back to a scalar bf16 kernel that ran 6-10x
*slower* than fp32 (issue 10: ``make demo``'s first step took 482 s there). So the choice is made per machine:

1. the probe: torch's capability string and oneDNN's ``_is_mkldnn_bf16_supported()``;
2. a sub-second timing of fp32 vs bf16 matmuls at a small model's shapes, which confirms the probe (a VM can
   hide a flag) and gives the measured ratio that every command prints.

``train``, ``sft``, ``eval``, ``generate``, ``compare`` and ``doctor`` all ask ``cpu_bf16()``; a GPU's own
``torch.cuda.is_bf16_supported()`` decides there (``models.choose_precision``).

    python -m tinyr1.precision        # prints this CPU's decision
"""

from __future__ import annotations

import functools
import os
import platform
import time
from dataclasses import asdict, dataclass

import torch

from tinyr1.errors import TinyR1Error

# Shapes of a 135M-0.5B model's update: (tokens x hidden) @ (hidden x mlp). Small enough to time in well under a
# second even on the slow path, large enough that a kernel's real throughput shows.
_TIMING_SHAPE = (256, 576, 1536)
# bf16 must beat fp32 by this much to be chosen: the rest of a step (softmax, optimizer) stays fp32 either way.
_MIN_SPEEDUP = 1.2


@dataclass(frozen=True)
class CpuBf16:
    native: bool  # bf16 is used by default on this CPU
    capability: str  # torch.backends.cpu.get_cpu_capability(): DEFAULT, AVX2, AVX512, ...
    mkldnn_bf16: bool  # oneDNN's own probe for native bf16 instructions
    speedup: float  # measured fp32 time / bf16 time at _TIMING_SHAPE on the threads in use (>1: bf16 faster)
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


def _mkldnn_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def packs_weights(dtype: torch.dtype) -> bool:
    """Whether generation multiplies by weights pre-packed by oneDNN (``mkldnn._linear_pointwise``) in ``dtype``:
    bf16 where the probe says the CPU multiplies bf16 natively; fp32 on x86, where oneDNN's packed products of a
    decode step's 8 rows beat torch's own fp32 linear (one thread, Zen4: a layer's four products 0.98-1.08 vs
    1.23-1.66 ms capped at AVX2, 0.61-0.63 vs 0.92-1.04 ms with AVX-512; the 49k-row LM head 14.2-18.0 vs 22.2-27.4
    and 8.5-8.8 vs 21.5-22.9 ms; ``benchmarks/fast_path_pieces.py fp32-packing``)."""
    if not torch.backends.mkldnn.is_available():
        return False
    if dtype == torch.bfloat16:
        return _mkldnn_bf16()
    return dtype == torch.float32 and platform.machine().lower() in ("x86_64", "amd64")


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
    """Whether bf16 pays on this CPU, decided once per process. ``TINYR1_CPU_BF16=0|1`` overrides (tests, users)."""
    forced = os.environ.get("TINYR1_CPU_BF16")
    if forced not in (None, "", "0", "1"):
        raise TinyR1Error(f"TINYR1_CPU_BF16={forced!r}: use 1 (bf16 on this CPU), 0 (fp32) or leave it unset")
    capability, mkldnn = _capability(), _mkldnn_bf16()
    speedup = round(measure_speedup(), 2)
    if forced in ("0", "1"):
        native = forced == "1"
        why = f"TINYR1_CPU_BF16={forced}"
    elif not mkldnn:
        native = False
        why = f"no native bf16 matmul on this CPU ({capability}); bf16 measured {speedup:.2f}x fp32's speed"
    else:
        native = speedup >= _MIN_SPEEDUP
        verdict = "faster" if native else "not faster enough"
        why = f"native bf16 ({capability}); bf16 matmul measured {speedup:.2f}x fp32's speed, {verdict}"
    return CpuBf16(native, capability, mkldnn, speedup, cpu_name(), why)


def explicit_bf16_warning(info: CpuBf16) -> str | None:
    """The one-line warning for ``--bf16 true`` on a CPU where bf16 is slower, or None."""
    if info.native:
        return None
    slower = f"{1 / info.speedup:.1f}x slower" if info.speedup > 0 else "much slower"
    return (f"warning: --bf16 true on a CPU without native bf16 ({info.cpu_name}, {info.capability}): its matmuls "
            f"measured {slower} than fp32 here; honoured as asked (--bf16 false or leave it unset for fp32)")


if __name__ == "__main__":
    info = cpu_bf16()
    print(f"{info.cpu_name}: {'bf16' if info.native else 'fp32'} — {info.reason}")
