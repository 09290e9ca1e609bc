"""Two CPU processes over gloo (torchrun), as DDP runs on GPUs: a guard that fires on one process only — a reward
with no finite value, a reward that raises — stops both in the same step with the same reason, and run.json says
why. Without the agreement (tinyr1.training.rank_agreement) the other process waits in trl's next gather until the
collective times out; here that would be the subprocess's timeout."""

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

from ..conftest import ASSETS, REPO

SCRIPT = textwrap.dedent("""\
    import os, sys
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    import tinyr1
    from tinyr1 import GRPOConfig, GRPOTrainer

    RANK = int(os.environ["RANK"])

    def flaky(completions, **kwargs):  # broken on the second process only
        if RANK == 1 and sys.argv[2] == "raise":
            raise RuntimeError("the judge went away")
        return [float("nan") if RANK == 1 else float(len(c)) for c in completions]

    trainer = GRPOTrainer(model=AutoModelForCausalLM.from_pretrained({tiny!r}), reward_funcs=[flaky],
                          args=GRPOConfig(output_dir=sys.argv[1], max_steps=4, per_device_train_batch_size=4,
                                          num_generations=4, max_completion_length=4, collapse_patience=1,
                                          report_to="none", disable_tqdm=True, save_steps=1000),
                          train_dataset=Dataset.from_list([{{"prompt": f"{{i}} + {{i}}?"}} for i in range(16)]),
                          processing_class=AutoTokenizer.from_pretrained({tiny!r}))
    try:
        trainer.train()
        print(f"rank {{RANK}}: completed at step {{trainer.state.global_step}}", flush=True)
    except tinyr1.CollapseError as err:
        print(f"rank {{RANK}}: collapsed at step {{trainer.state.global_step}}: {{err}}", flush=True)
    """)


@pytest.mark.slow
@pytest.mark.parametrize("broken", ["nan", "raise"])
def test_a_guard_on_one_process_stops_both_in_the_same_step(tmp_path, broken):
    script = tmp_path / "script.py"
    script.write_text(SCRIPT.format(tiny=str(ASSETS / "tiny-qwen2")))
    with socket.socket() as free:  # a port no other test's processes use
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port)]
    result = subprocess.run([*torchrun, str(script), str(tmp_path / "run"), broken], capture_output=True, text=True,
                            cwd=REPO, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    lines = sorted(line for line in result.stdout.splitlines() if line.startswith("rank "))
    assert [line.split(":")[0] for line in lines] == ["rank 0", "rank 1"], result.stderr[-3000:]
    assert all("collapsed at step 1: training collapsed: reward flaky" in line for line in lines), lines
    assert lines[0].split(": ", 2)[2] == lines[1].split(": ", 2)[2]  # the same reason on both
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["status"] == "collapsed" and run["stopped_because"].startswith("reward flaky")
