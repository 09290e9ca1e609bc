"""benchmarks/gpu_smoke/check.py, the one-call GPU check, on this CPU: it runs to its end with the GPU rows skipped,
and ``--rehearse`` runs the one-GPU rows' code on the CPU with a small model, so a GPU machine meets no script bug."""

import os
import subprocess
import sys

import pytest

from .conftest import REPO

SCRIPT = REPO / "benchmarks" / "gpu_smoke" / "check.py"


def check(*args: str) -> tuple[int, dict]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, str(SCRIPT), *args], cwd=REPO, capture_output=True, text=True,
                            timeout=600, env=env)
    table = {cells[1].strip(): cells[2].strip() for cells in
             (line.split("|") for line in result.stdout.splitlines() if line.startswith("| ") and "---" not in line)}
    assert table, result.stdout[-2000:] + result.stderr[-2000:]
    return result.returncode, table


@pytest.mark.slow
def test_without_a_gpu_the_check_skips_the_gpu_rows_and_passes():
    code, table = check()
    assert code == 0, table
    assert table["versions"] == "ok" and table["SFT, 4-bit"] == "ok"  # bitsandbytes' CPU backend
    for row in ("doctor", "eval on the GPU", "GRPO, Qwen2.5-0.5B shape", "DDP, 2 processes"):
        assert table[row] == "skipped: no GPU"


@pytest.mark.slow
def test_the_rehearsal_runs_the_one_gpu_rows_on_the_cpu():
    code, table = check("--rehearse")
    assert code == 0, table
    assert all(table[row] == "ok" for row in ("doctor", "eval on the GPU", "GRPO, Qwen2.5-0.5B shape", "SFT, 4-bit"))
    assert table["DDP, 2 processes"] == "skipped: no GPU"
