"""tinyr1's lines go through ``logging.getLogger("tinyr1")``: a trl script with the one changed import sees them as
it sees any library's, silences them the way it silences trl's, and gets them once through its own handlers; the
command line prints them as it always has."""

import os
import subprocess
import sys
import textwrap

import pytest

from .conftest import ASSETS, REPO

SCRIPT = textwrap.dedent("""\
    import logging, sys
    {setup}
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from tinyr1 import GRPOConfig, GRPOTrainer

    def length(completions, **kwargs):
        return [float(len(c)) for c in completions]

    trainer = GRPOTrainer(model=AutoModelForCausalLM.from_pretrained({tiny!r}), reward_funcs=[length],
                          args=GRPOConfig(output_dir=sys.argv[1], max_steps=1, per_device_train_batch_size=4,
                                          num_generations=4, max_completion_length=4, sample_every=1,
                                          report_to="none", disable_tqdm=True),
                          train_dataset=Dataset.from_list([{{"prompt": "What is 1 + 1?", "answer": "2"}}] * 4),
                          processing_class=AutoTokenizer.from_pretrained({tiny!r}))
    trainer.train()
    """)


def run_script(tmp_path, setup: str) -> subprocess.CompletedProcess:
    tmp_path.mkdir(parents=True, exist_ok=True)
    script = tmp_path / "script.py"
    script.write_text(SCRIPT.format(setup=setup, tiny=str(ASSETS / "tiny-qwen2")))
    result = subprocess.run([sys.executable, str(script), str(tmp_path / "run")], capture_output=True, text=True,
                            cwd=REPO, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    return result


@pytest.mark.slow
def test_a_scripts_logging_settings_govern_tinyr1s_lines(tmp_path):
    plain = run_script(tmp_path / "plain", "")
    assert "trainer: CPU fast path" in plain.stdout and "[step 1] Question:" in plain.stdout  # printed by default
    quiet = run_script(tmp_path / "quiet", 'logging.getLogger("tinyr1").setLevel(logging.ERROR)')
    assert "trainer: CPU fast path" not in quiet.stdout + quiet.stderr and "[step 1]" not in quiet.stdout
    configured = run_script(tmp_path / "configured", "logging.basicConfig(level=logging.INFO)")
    both = configured.stdout + configured.stderr
    assert both.count("trainer: CPU fast path") == 1  # through the script's handler, never twice
    assert "INFO:tinyr1.cpu.fast_path:trainer: CPU fast path" in configured.stderr


def test_the_command_line_prints_the_librarys_lines(cli, tmp_path):
    result = cli("prepare", "--dataset_name", "reasoning-gym:chain_sum", "--limit", "2",
                 "--output", str(tmp_path / "rows.jsonl"))
    assert result.returncode == 0 and result.stdout.startswith("wrote 2 rows")
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "metrics.jsonl").write_text('{"step": 1, "loss": 0.5}\n{"step": 2, "lo')
    (folder / ".tinyr1-run").write_text('{"command": "train", "paths": ["metrics.jsonl"], "foreign": []}')
    report = cli("report", str(folder))
    assert report.returncode == 0 and "metrics.jsonl: 1 malformed row(s) skipped" in report.stderr  # a warning
