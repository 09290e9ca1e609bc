"""Run ``tinyr1 train`` in two CPU processes, as ``accelerate launch`` runs it on two GPUs: plain data parallel
over gloo, or DeepSpeed ZeRO-3 with its CPU accelerator (also over gloo). For tests of what every rank must agree
on (stops, guards) and of partitioned weights; a 1-step tiny-model run takes under a minute on a 2-core machine.

    result = launch(["train", "--model_name_or_path", TINY, ...], tmp_path)                 # DDP, 2 processes
    result = launch([...], tmp_path, zero3=True)                                             # ZeRO-3, 2 processes
    assert result.returncode == 0, result.stderr[-3000:]

Each process's lines carry no rank prefix; ``run.json`` in the output folder has ``world_size``.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

# accelerate's DeepSpeed launcher with DeepSpeed's CPU accelerator: two processes, no GPU, gloo between them.
ZERO3_CPU = """\
compute_environment: LOCAL_MACHINE
distributed_type: DEEPSPEED
deepspeed_config:
  zero3_init_flag: true
  zero3_save_16bit_model: true
  zero_stage: 3
  offload_optimizer_device: none
  offload_param_device: none
num_machines: 1
machine_rank: 0
num_processes: {processes}
mixed_precision: 'no'
rdzv_backend: static
same_network: true
use_cpu: true
"""


def launch(tinyr1_args: list[str], folder: Path, *, processes: int = 2, zero3: bool = False,
           env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """``accelerate launch`` of ``python -m tinyr1 <tinyr1_args>`` in ``processes`` CPU processes (one torch thread
    each), from the repository root, with this tree's ``src`` first on the path."""
    if zero3:
        if importlib.util.find_spec("deepspeed") is None:
            pytest.skip("DeepSpeed is not installed (pip install -c constraints.txt -e '.[deepspeed]')")
        config = folder / "zero3-cpu.yaml"
        config.write_text(ZERO3_CPU.format(processes=processes))
        launcher = ["--config_file", str(config)]
    else:
        # --multi_gpu only selects accelerate's torchrun launcher; with no GPU each process runs on CPU over gloo.
        launcher = ["--num_processes", str(processes), "--num_machines", "1", "--mixed_precision", "no",
                    "--dynamo_backend", "no", "--multi_gpu"]
    command = [sys.executable, "-m", "accelerate.commands.launch", *launcher, "-m", "tinyr1", *tinyr1_args]
    path = os.pathsep.join(p for p in [str(REPO / "src"), os.environ.get("PYTHONPATH", "")] if p)
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path, "DS_ACCELERATOR": "cpu", **(env or {})}
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=full_env)
