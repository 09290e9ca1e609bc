"""``from tinyr1 import GRPOTrainer`` in a trl script: trl's own config and objects, tinyr1's guards and run folder."""

import json

import pytest
import trl
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer

import tinyr1
from tinyr1 import GRPOTrainer
from tinyr1.infra.errors import CollapseError, TinyR1Error

from ..conftest import ASSETS, read_jsonl

TINY = ASSETS / "tiny-qwen2"
SYSTEM = "Respond in the format <reasoning>...</reasoning><answer>...</answer>"
ROWS = [{"prompt": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"What is {i} + {i}?"}],
         "answer": str(2 * i)} for i in range(8)]


def guarded_trainer(out, reward_funcs, model=None, **config):
    """``tinyr1.GRPOConfig`` (tinyr1's fields set in ``config``) on the tiny model and the script's rows."""
    settings = dict(output_dir=str(out), per_device_train_batch_size=4, num_generations=4, max_completion_length=4,
                    report_to="none")
    settings.update(config)
    return GRPOTrainer(model=model if model is not None else AutoModelForCausalLM.from_pretrained(TINY),
                       reward_funcs=list(reward_funcs), args=tinyr1.GRPOConfig(**settings),
                       train_dataset=Dataset.from_list(ROWS), processing_class=AutoTokenizer.from_pretrained(TINY))


def correctness(completions, answer, **kwargs):
    """Defined in the script, as in the tutorial: 2.0 when the gold answer appears."""
    return [2.0 if a in c[0]["content"] else 0.0 for c, a in zip(completions, answer, strict=True)]


def length(completions, **kwargs):
    return [float(len(c[0]["content"])) for c in completions]


def script_trainer(out, reward_funcs=(correctness, length), **config):
    """The tutorial's shape: trl's GRPOConfig, a model and tokenizer loaded by the script, rows built in Python."""
    settings = dict(output_dir=str(out), max_steps=2, per_device_train_batch_size=4, num_generations=4,
                    max_completion_length=8, use_cpu=True, bf16=False, gradient_checkpointing=False,
                    save_steps=1, logging_steps=1, report_to="none", seed=0)
    settings.update(config)
    return GRPOTrainer(model=AutoModelForCausalLM.from_pretrained(TINY),
                       reward_funcs=None if reward_funcs is None else list(reward_funcs),
                       args=trl.GRPOConfig(**settings), train_dataset=Dataset.from_list(ROWS),
                       processing_class=AutoTokenizer.from_pretrained(TINY))


def test_a_trl_script_with_one_changed_import_runs_in_a_run_folder_and_resumes(tmp_path, caplog):
    out = tmp_path / "run"
    trainer = script_trainer(out)
    assert isinstance(trainer, trl.GRPOTrainer) and trainer.uses_fast_path()
    trainer.train()
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "completed" and run["global_step"] == 2 and run["cpu_fast_path"]["used"]
    assert (out / ".tinyr1-run").is_file() and (out / "config.yaml").is_file()
    assert [m["step"] for m in read_jsonl(out / "metrics.jsonl") if "loss" in m] == [1, 2]
    samples = read_jsonl(out / "samples.jsonl")
    assert samples and set(samples[0]["rewards"]) == {"correctness", "length"}
    assert samples[0]["extracted"] is None  # eval's rule: no closed <answer> block, nothing extracted
    assert "Question:" not in caplog.text  # kept in samples.jsonl, not logged: nobody asked for it
    assert "reward_funcs:\n- correctness\n- length\n" in (out / "config.yaml").read_text()
    report = tinyr1.report(trainer)
    assert report.markdown_path == out / "report.md"

    (out / "checkpoint-2").rename(tmp_path / "elsewhere")  # as if the run had stopped after step 1
    again = script_trainer(out, max_steps=3)
    again.train(resume_from_checkpoint="latest")
    assert again.state.global_step == 3
    assert json.loads((out / "run.json").read_text())["global_step"] == 3
    assert "resuming" not in caplog.text  # the same settings: nothing to accept


def test_the_run_folder_refuses_a_folder_of_yours_and_a_changed_resume(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")
    with pytest.raises(TinyR1Error, match="not empty and not a tinyr1 run"):
        script_trainer(mine).train()
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]

    out = tmp_path / "run"
    script_trainer(out, max_steps=1).train()
    with pytest.raises(TinyR1Error, match=r"would change the run: learning_rate"):
        script_trainer(out, max_steps=2, learning_rate=1e-3).train(resume_from_checkpoint=True)


def test_a_reward_trl_could_not_call_is_refused_before_training(tmp_path):
    def per_string(text):
        return [len(text)]

    with pytest.raises(TinyR1Error, match=r"reward_funcs: per_string\(text\) cannot be called the way trl calls"):
        script_trainer(tmp_path / "run", reward_funcs=[per_string])
    assert not (tmp_path / "run").exists()


def test_a_reward_that_never_applies_is_no_collapse_as_in_trl(tmp_path):
    """None is trl's "does not apply to this sample" (multi-task rewards): a reward that is None for every completion
    of every step trains on beside the others, as trl does."""
    def other_task(completions, **kwargs):
        return [None] * len(completions)

    out = tmp_path / "run"
    trainer = script_trainer(out, reward_funcs=[other_task, length], max_steps=4)  # collapse_patience: 3
    assert trainer.train().global_step == 4
    assert json.loads((out / "run.json").read_text())["status"] == "completed"


def test_a_reward_that_never_gives_a_finite_number_stops_the_run(tmp_path):
    def broken(completions, **kwargs):
        return [float("nan")] * len(completions)

    out = tmp_path / "run"
    trainer = guarded_trainer(out, [broken, length], max_steps=4, max_completion_length=8, collapse_patience=1)
    with pytest.raises(CollapseError, match="reward broken returned no finite value"):
        trainer.train()
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "collapsed" and run["stopped_because"].startswith("reward broken returned no finite")


def test_registry_names_and_a_plain_config_get_tinyr1s_defaults(tmp_path):
    trainer = script_trainer(tmp_path / "run", reward_funcs=["correctness", length])
    assert trainer.reward_func_names == ["correctness_reward_func", "length"]
    assert trainer.tinyr1.collapse_patience == 3 and trainer.tinyr1.dynamic_sampling is False
    bad = tinyr1.GRPOConfig(output_dir=str(tmp_path / "x"), dynamic_sampling=True, dynamic_sampling_max_rounds=-1,
                            report_to="none")
    with pytest.raises(TinyR1Error, match=r"GRPOConfig\(dynamic_sampling_max_rounds=-1\): must be between 0 and 100"):
        GRPOTrainer(model=AutoModelForCausalLM.from_pretrained(TINY), reward_funcs=[length], args=bad,
                    train_dataset=Dataset.from_list(ROWS), processing_class=AutoTokenizer.from_pretrained(TINY))


def test_a_sample_is_printed_when_asked_for_and_says_what_none_means(tmp_path, caplog):
    args = tinyr1.GRPOConfig(output_dir=str(tmp_path / "run"), max_steps=1, per_device_train_batch_size=4,
                             num_generations=4, max_completion_length=8, sample_every=1, report_to="none")
    GRPOTrainer(model=AutoModelForCausalLM.from_pretrained(TINY), reward_funcs=[correctness, length], args=args,
                train_dataset=Dataset.from_list(ROWS), processing_class=AutoTokenizer.from_pretrained(TINY)).train()
    out = caplog.text
    assert "[step 1] Question:\nWhat is " in out and "Rewards: correctness 0, length " in out
    assert "Extracted:\nNone (no closed <answer>...</answer> block in the response)" in out
