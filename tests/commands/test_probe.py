"""benchmarks/probe.py (tinyr1.commands.probe) on the tiny test model: the numbers that say whether GRPO has a
signal."""

import json
import re

import pytest

from tinyr1.commands.probe import main

from ..conftest import ASSETS


def test_probe_reports_every_signal_number(tmp_path, capsys):
    out = tmp_path / "probe.json"
    result = main(["--model", str(ASSETS / "tiny-qwen2"), "--dataset_name", "reasoning-gym:chain_sum",
                   "--dataset_options", "min_terms=2", "max_terms=2", "max_digits=1", "--greedy_questions", "3",
                   "--prompts", "2", "--k", "3", "--max_new_tokens", "4", "--output", str(out)])
    for key in ("greedy_accuracy", "sampled_accuracy", "pass_at_k", "groups_with_correctness_variance",
                "groups_with_reward_variance", "mean_tokens", "truncated_fraction", "worked_step_fraction"):
        assert 0 <= result[key] <= (4 if key == "mean_tokens" else 1), key
    assert result["prompts"] == 2 and result["k"] == 3 and result["greedy_questions"] == 3
    assert json.loads(out.read_text())["dataset_options"] == ["min_terms=2", "max_terms=2", "max_digits=1"]
    assert '"pass_at_k"' in capsys.readouterr().out


@pytest.mark.parametrize("args,named", [(["--k", "1"], "--k 1"), (["--prompts", "0"], "--prompts 0"),
                                        (["--temperature", "0"], "--temperature 0.0"),
                                        (["--reward_weights", "1", "2"], "--reward_weights"),
                                        (["--dataset_options", "min_terms=x"], "min_terms=x")])
def test_bad_probe_input_is_one_line_before_the_model_loads(args, named):
    from tinyr1.infra.errors import TinyR1Error

    with pytest.raises(TinyR1Error, match=re.escape(named)):
        main(["--model", "no/such-model-is-loaded", *args])
