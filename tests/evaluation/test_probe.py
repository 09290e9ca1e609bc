"""benchmarks/probe.py (tinyr1.evaluation.probe) on the tiny test model: the numbers that say whether GRPO has a
signal."""

import json
import re

import pytest

from tinyr1.evaluation.probe import main

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


@pytest.mark.parametrize("scoring,expected", [("strict", 0.5), ("flexible", 1.0)])
def test_probe_scores_a_bare_number_as_not_strict_correct(monkeypatch, scoring, expected):
    # The model's answers are fixed (a bare "7" and a tagged, worked "7" for gold 7) so only the probe's scoring
    # is measured; the tiny model still loads as in a real probe.
    from tinyr1.evaluation import probe
    from tinyr1.models.generation import Generation

    texts = ["7", "<reasoning>\n3 + 4 = 7\n</reasoning>\n<answer>\n7\n</answer>"]
    monkeypatch.setattr(probe, "load_examples", lambda *a, **k: ([{"question": "3 + 4?", "answer": "7"}] * 2, None))
    monkeypatch.setattr(probe, "generate_batch", lambda model, tok, conversations, **k: [
        Generation(texts[i % 2], 3, False) for i in range(len(conversations))])
    result = main(["--model", str(ASSETS / "tiny-qwen2"), "--greedy_questions", "2", "--prompts", "1", "--k", "2",
                   "--scoring", scoring, "--reward_funcs", "correctness"])
    assert result["greedy_accuracy_strict"] == 0.5
    assert result["greedy_accuracy"] == expected and result["sampled_accuracy"] == expected
    assert result["groups_with_reward_variance"] == 0.0  # the recipe's correctness pays 2.0 for both


@pytest.mark.parametrize("args,named", [(["--k", "1"], "--k 1"), (["--prompts", "0"], "--prompts 0"),
                                        (["--temperature", "0"], "--temperature 0.0"),
                                        (["--reward_weights", "1", "2"], "--reward_weights"),
                                        (["--dataset_options", "min_terms=x"], "min_terms=x")])
def test_bad_probe_input_is_one_line_before_the_model_loads(args, named):
    from tinyr1.infra.errors import TinyR1Error

    with pytest.raises(TinyR1Error, match=re.escape(named)):
        main(["--model", "no/such-model-is-loaded", *args])
