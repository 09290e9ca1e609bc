"""Where a tinyr1 process runs and how it uses the CPU: the one place that asks for a CUDA GPU and sets torch's
thread count, whether freed memory is kept for reuse, and what a CUDA build of torch installed here weighs.

``configure_cpu`` is called once by every command that runs a model (train, sft, eval, compare, generate, the
probe), before anything heavy loads; it does nothing where a CUDA GPU runs the model. Two settings, each measured
on the project's 2-core VMs (docs/cpu-fast-path.md has the measurements):

- **Threads**: ``--num_threads``, else ``$OMP_NUM_THREADS``, else the cores this process may run on (affinity,
  physical cores, cgroup quota: ``tinyr1.infra.threads``), with the reason for the run header.
- **Freed memory kept** (Linux with glibc): glibc hands every allocation above a threshold (at most 32 MB) to its
  own ``mmap`` and returns it on ``free``, so each large tensor of a training step — the logits, the LM head's bf16
  weight and its gradient — costs fresh page faults every step (``benchmarks/fast_path_pieces.py allocator``).
  ``keep_freed_memory`` tells glibc to serve them from its heap and keep up to 1 GiB of freed memory for reuse; a
  whole GRPO step gets faster, peak memory unchanged. ``TINYR1_KEEP_FREED_MEMORY=0`` leaves glibc's defaults (``1``
  or unset: keep).
"""

from __future__ import annotations

import ctypes
import os
import platform
import re
import sys
from importlib.metadata import distributions
from pathlib import Path

import torch

from tinyr1.infra.errors import TinyR1Error
from tinyr1.infra.threads import Threads, choose_threads

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc's mallopt parameter numbers (malloc.h)
KEEP_AT_MOST = 1 << 30  # freed memory above this at the heap's top goes back to the system


_configured: Threads | None = None  # what cpu_threads last set in this process, for the thread governor


def cuda_available() -> bool:
    """Whether a CUDA GPU runs the model (the one place tinyr1 asks)."""
    return torch.cuda.is_available()


def default_device() -> str:
    """``cuda`` where a CUDA GPU is available, else ``cpu``."""
    return "cuda" if cuda_available() else "cpu"


def model_device() -> str:
    """Where this process runs a model it loads for generation or evaluation: ``cuda:<local rank>`` (the GPU
    ``accelerate launch`` gives this process; ``cuda:0`` alone), else ``cpu``. The one answer to "where does this
    model run": ``tinyr1.models.loading.load_model`` places every model it loads here, unless a trainer places it."""
    if not cuda_available():
        return "cpu"
    rank = os.environ.get("LOCAL_RANK", "")
    return f"cuda:{int(rank)}" if rank.isdigit() else f"cuda:{torch.cuda.current_device()}"


def configured():
    """What ``cpu_threads`` last set in this process (a ``Threads`` with its reason), or None."""
    return _configured


def restore_configured(threads: Threads | None) -> None:
    """Put back what ``configured`` returned before an API call that picked its own threads for the call."""
    global _configured
    _configured = threads


def get_threads() -> int:
    """torch's CPU thread count now."""
    return torch.get_num_threads()


def set_threads(count: int) -> None:
    """Set torch's CPU thread count (the one place tinyr1 does), unless it already is ``count``."""
    if torch.get_num_threads() != count:
        torch.set_num_threads(count)


def cpu_threads(num_threads: int | None = None) -> Threads:
    """Use ``num_threads``, else ``$OMP_NUM_THREADS``, else the cores this process may use
    (``tinyr1.infra.threads.choose_threads``); returns the count with its reason (``.why``)."""
    global _configured
    threads = choose_threads(num_threads)
    set_threads(threads)
    _configured = threads
    return threads


def keep_freed_memory() -> bool:
    """Serve large allocations from glibc's heap and keep freed memory for reuse; False where it does not apply
    (not glibc, or ``TINYR1_KEEP_FREED_MEMORY=0``). Process-wide and not undone: call it only in a tinyr1 command."""
    wanted = os.environ.get("TINYR1_KEEP_FREED_MEMORY", "")
    if wanted not in ("", "0", "1"):
        raise TinyR1Error(f"TINYR1_KEEP_FREED_MEMORY={wanted!r}: use 1 (keep freed memory for reuse), 0 (glibc's "
                          "defaults) or leave it unset")
    if wanted == "0":
        return False
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return libc.mallopt(_M_MMAP_MAX, 0) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, KEEP_AT_MOST) == 1


def configure_cpu(num_threads: int | None = None) -> Threads | None:
    """Threads (``cpu_threads``) and allocator (``keep_freed_memory``) for a tinyr1 command that runs on the CPU;
    returns the thread count, or None (nothing set) where a CUDA GPU runs the model."""
    if cuda_available():
        return None
    keep_freed_memory()
    return cpu_threads(num_threads)


# pip distributions a CUDA build of torch brings along, which a machine without a GPU never uses.
CUDA_PACKAGES = re.compile(r"(nvidia-.+|cuda-.+|triton)")


def cuda_libraries() -> tuple[int, list[str]]:
    """Bytes and names of the installed CUDA distributions (``CUDA_PACKAGES``) in this environment."""
    size, names = 0, []
    for dist in distributions():
        name = (dist.metadata["Name"] or "").lower()
        if not CUDA_PACKAGES.fullmatch(name):
            continue
        names.append(name)
        for file in dist.files or []:
            try:
                size += Path(dist.locate_file(file)).stat().st_size
            except OSError:
                continue
    return size, sorted(set(names))
