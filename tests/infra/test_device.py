"""tinyr1.infra.device: the thread count, and glibc keeping freed memory (checked in a child process: it is global)."""

import subprocess
import sys

import pytest
import torch

from tinyr1.infra.device import cpu_threads, keep_freed_memory
from tinyr1.infra.errors import TinyR1Error

# mallinfo2().hblks counts the blocks glibc gave their own mmap; a 64 MB tensor is one by glibc's default.
CHILD = """
import ctypes, torch
from tinyr1.infra.device import keep_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
print(keep_freed_memory() if {keep} else "default")
before = libc.mallinfo2().hblks
big = torch.ones(16 * 2**20)  # 64 MB
print(libc.mallinfo2().hblks - before)
"""


def test_cpu_threads(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert cpu_threads() == 1 and torch.get_num_threads() == 1
    assert cpu_threads(2) == 2 and torch.get_num_threads() == 2
    cpu_threads(1)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
@pytest.mark.parametrize("keep", [False, True])
def test_keep_freed_memory_serves_large_tensors_from_the_heap(keep):
    out = subprocess.run([sys.executable, "-c", CHILD.format(keep=keep)], capture_output=True, text=True, check=True)
    said, new_mmaps = out.stdout.split()
    assert said == ("True" if keep else "default")
    assert int(new_mmaps) == (0 if keep else 1)


def test_keep_freed_memory_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("TINYR1_KEEP_FREED_MEMORY", "0")
    assert keep_freed_memory() is False


def test_keep_freed_memory_refuses_other_values(monkeypatch):
    monkeypatch.setenv("TINYR1_KEEP_FREED_MEMORY", "yes")
    with pytest.raises(TinyR1Error, match="TINYR1_KEEP_FREED_MEMORY='yes': use 1"):
        keep_freed_memory()


def test_with_no_setting_a_command_uses_the_cores_it_may_run_on():
    import os

    from tinyr1.infra.threads import usable_cores

    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    code = ("import torch; from tinyr1.infra.device import configure_cpu; t = configure_cpu(); "
            "print(int(t), torch.get_num_threads(), t.most, t.why, sep='|')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    count, torch_threads, most, why = out.stdout.strip().split("|")
    assert int(count) == int(torch_threads) and int(most) == usable_cores() and why.startswith(usable_cores().why)
    # Fewer only where other work (here, perhaps the suite's other worker) kept cores busy at the start, and said.
    assert int(count) == int(most) or "other work kept busy at the start" in why
