"""Run ``tinyr1 train`` in two CPU processes, as ``accelerate launch`` runs it on two GPUs: plain data parallel
over gloo, or DeepSpeed ZeRO-2/3 with its CPU accelerator (also over gloo). For tests of what every rank must agree
on (stops, guards) and of partitioned weights; a 1-step tiny-model run takes 30-50 s on a 2-core machine.

    result = launch(["train", "--model_name_or_path", TINY, ...], tmp_path)                 # DDP, 2 processes
    result = launch([...], tmp_path, zero_stage=3)                                           # ZeRO-3, 2 processes
    assert result.returncode == 0, result.stderr[-3000:]

Each process's lines carry no rank prefix; ``run.json`` in the output folder has ``world_size``.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

# accelerate's DeepSpeed launcher with DeepSpeed's CPU accelerator: two processes, no GPU, gloo between them.
# zero3_init_flag: under ZeRO-3 the model is partitioned as it loads, as on GPUs with recipes/accelerate/zero3.yaml.
ZERO_CPU = """\
compute_environment: LOCAL_MACHINE
distributed_type: DEEPSPEED
deepspeed_config:
  zero3_init_flag: {stage3}
  zero3_save_16bit_model: {stage3}
  zero_stage: {stage}
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


def launch(tinyr1_args: list[str], folder: Path, *, processes: int = 2, zero_stage: int | None = None,
           env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """``accelerate launch`` of ``python -m tinyr1 <tinyr1_args>`` in ``processes`` CPU processes (one torch thread
    each), from the repository root, with this tree's ``src`` first on the path."""
    if zero_stage is not None:
        if importlib.util.find_spec("deepspeed") is None:
            pytest.skip("DeepSpeed is not installed (pip install -c constraints.txt -e '.[deepspeed]')")
        config = folder / f"zero{zero_stage}-cpu.yaml"
        stage3 = "true" if zero_stage == 3 else "false"
        config.write_text(ZERO_CPU.format(processes=processes, stage=zero_stage, stage3=stage3))
        launcher = ["--config_file", str(config)]
    else:
        # --multi_gpu only selects accelerate's torchrun launcher; with no GPU each process runs on CPU over gloo.
        launcher = ["--num_processes", str(processes), "--num_machines", "1", "--mixed_precision", "no",
                    "--dynamo_backend", "no", "--multi_gpu"]
    launcher += ["--main_process_port", str(free_port())]  # tests running side by side never share a port
    command = [sys.executable, "-m", "accelerate.commands.launch", *launcher, "-m", "tinyr1", *tinyr1_args]
    path = os.pathsep.join(p for p in [str(REPO / "src"), os.environ.get("PYTHONPATH", "")] if p)
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path, "DS_ACCELERATOR": "cpu", **(env or {})}
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=full_env)


def free_port() -> int:
    """A port nothing listens on now, for one launch's rendezvous."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
