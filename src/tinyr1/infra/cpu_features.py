"""What this CPU can do, probed once per process: native bf16 matrix multiplies, its name and instruction flags.

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
decision for one command. The precision policy built on it is ``tinyr1.models.precision``.

    python -m tinyr1.infra.cpu_features        # prints this CPU's decision
"""

from __future__ import annotations

import functools
import os
import platform
import time
from dataclasses import asdict, dataclass

import torch

from tinyr1.infra.errors import TinyR1Error
from tinyr1.infra.naming import setting

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
    return (f"warning: {setting('bf16', True)} on a CPU without native bf16 ({info.cpu_name}, {info.capability}): its "
            f"matmuls measured {slower} than fp32 here; honoured as asked ({setting('bf16', False)} or leave it unset "
            "for fp32)")


if __name__ == "__main__":
    info = cpu_bf16()
    print(f"{info.cpu_name}: {'bf16' if info.native else 'fp32'} — {info.reason}")
