"""What a trl user writes works the same with ``from tinyr1 import GRPOTrainer``: the rewards trl accepts, the options
that write into ``output_dir`` while the trainer is built, trl's error types, chat templates without a system role,
``SFTTrainer`` with plain ``TrainingArguments`` — and a lifecycle a user can reason about (one trainer, one run)."""

import functools
import json
import signal
from fractions import Fraction

import pytest
import torch
import trl
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainingArguments

import tinyr1
from tinyr1 import GRPOTrainer
from tinyr1.infra.errors import CollapseError, TinyR1Error

from ..conftest import read_jsonl
from .test_grpo_trainer import ROWS, TINY, correctness, guarded_trainer, length, script_trainer


async def async_length(completions, **kwargs):
    """An ``async def`` reward, as trl 1.16 awaits on its event loop."""
    return [float(len(c[0]["content"])) for c in completions]


def scaled(completions, scale, **kwargs):
    return torch.tensor([scale * len(c[0]["content"]) for c in completions])  # a 1-D tensor, which trl accepts


class Judge:
    """A callable object: trl names it after its class."""

    def __call__(self, completions, **kwargs):
        return [[Fraction(len(c[0]["content"]), 2)] for c in completions]  # one-element lists are not numbers...


class ColumnJudge:
    def __call__(self, completions, **kwargs):
        return torch.tensor([[float(len(c[0]["content"]))] for c in completions])  # an (n, 1) tensor


def test_async_partial_and_callable_rewards_train_as_in_trl(tmp_path):
    out = tmp_path / "run"
    trainer = GRPOTrainer(model=AutoModelForCausalLM.from_pretrained(TINY),
                          reward_funcs=[async_length, functools.partial(scaled, scale=0.5), ColumnJudge()],
                          args=tinyr1.GRPOConfig(output_dir=str(out), max_steps=1, per_device_train_batch_size=4,
                                                 num_generations=4, max_completion_length=8, sample_every=1,
                                                 report_to="none"),
                          train_dataset=Dataset.from_list(ROWS), processing_class=AutoTokenizer.from_pretrained(TINY))
    assert trainer.reward_func_names == ["async_length", "scaled", "ColumnJudge"]  # trl's names
    assert trainer.train().global_step == 1
    sample = read_jsonl(out / "samples.jsonl")[0]
    assert set(sample["rewards"]) == {"async_length", "scaled", "ColumnJudge"}
    assert all(isinstance(v, float) for v in sample["rewards"].values())  # converted once: JSON writes them
    logged = next(row for row in read_jsonl(out / "metrics.jsonl") if "rewards/scaled/mean" in row)
    assert logged["rewards/async_length/mean"] == pytest.approx(2 * logged["rewards/scaled/mean"])


def test_a_reward_of_lists_is_one_line_naming_it(tmp_path):
    trainer = script_trainer(tmp_path / "run", reward_funcs=[Judge()], max_steps=1)
    with pytest.raises(ValueError, match=r"reward Judge returned a list among its values"):  # trl's error type
        trainer.train()


def test_log_completions_writes_into_the_run_folder_it_claims(tmp_path):
    out = tmp_path / "run"
    trainer = script_trainer(out, max_steps=1, log_completions=True)
    assert (out / "completions").is_dir()  # trl's constructor made it
    assert trainer.train().global_step == 1
    marker = json.loads((out / ".tinyr1-run").read_text())
    assert "completions" in marker["paths"]  # the run's own, deleted with it on an overwrite


GEMMA_LIKE = ("{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
              "{% for m in messages %}<start_of_turn>{{ m['role'] }}\n{{ m['content'] }}<end_of_turn>\n{% endfor %}"
              "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}")


def test_a_chat_template_without_a_system_role_passes_the_check_before_step_1(tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(TINY)
    tokenizer.chat_template = GEMMA_LIKE
    rows = [{"prompt": [{"role": "user", "content": f"What is {i} + {i}?"}]} for i in range(4)]
    trainer = GRPOTrainer(model=AutoModelForCausalLM.from_pretrained(TINY), reward_funcs=[length],
                          args=trl.GRPOConfig(output_dir=str(tmp_path / "run"), max_steps=1, use_cpu=True, bf16=False,
                                              per_device_train_batch_size=4, num_generations=4,
                                              max_completion_length=4, report_to="none"),
                          train_dataset=Dataset.from_list(rows), processing_class=tokenizer)
    assert trainer.train().global_step == 1


def test_no_reward_is_trls_value_error_and_a_misspelt_name_is_caught_before_the_hub(tmp_path):
    with pytest.raises(ValueError, match="reward_funcs: give at least one reward function") as raised:
        script_trainer(tmp_path / "a", reward_funcs=[None])
    assert isinstance(raised.value, TinyR1Error) and "--" not in str(raised.value)
    with pytest.raises(ValueError, match="reward_weights: 3 weights for 2 reward_funcs"):
        script_trainer(tmp_path / "b", reward_weights=[1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"unknown reward 'corectness'; did you mean 'correctness'\?"):
        script_trainer(tmp_path / "c", reward_funcs=["corectness"])
    assert not any((tmp_path / name).exists() for name in "abc")


def test_sft_trainer_takes_plain_training_arguments_as_trl_does(tmp_path):
    out = tmp_path / "sft"
    rows = [{"messages": [{"role": "user", "content": f"What is {i} + {i}?"},
                          {"role": "assistant", "content": str(2 * i)}]} for i in range(8)]
    trainer = tinyr1.SFTTrainer(model=AutoModelForCausalLM.from_pretrained(TINY),
                                args=TrainingArguments(output_dir=str(out), max_steps=1, use_cpu=True,
                                                       per_device_train_batch_size=4, report_to="none"),
                                train_dataset=Dataset.from_list(rows),
                                processing_class=AutoTokenizer.from_pretrained(TINY))
    assert isinstance(trainer.args, trl.SFTConfig) and trainer.train().global_step == 1
    assert json.loads((out / "run.json").read_text())["status"] == "completed"


def test_one_trainer_one_run_a_second_train_resumes_or_is_refused(tmp_path):
    out = tmp_path / "run"
    trainer = script_trainer(out, max_steps=1)
    first = trainer.train()
    assert first.global_step == 1
    with pytest.raises(TinyR1Error, match=r"already trained its run .*\(completed\); continue it with "
                                          r"trainer.train\(resume_from_checkpoint='latest'\)"):
        trainer.train()
    trainer.args.max_steps = 2
    assert trainer.train(resume_from_checkpoint="latest").global_step == 2
    assert [row["step"] for row in read_jsonl(out / "metrics.jsonl") if "loss" in row] == [1, 2]  # never 1, 2, 1, 2
    # resuming a finished run, from a new trainer: nothing to train, and trl's TrainOutput all the same
    again = script_trainer(out, max_steps=2).train(resume_from_checkpoint="latest")
    assert isinstance(again, tuple) and again.global_step == 2


def test_after_a_collapse_train_is_refused_and_the_signal_handlers_are_restored(tmp_path):
    def broken(completions, **kwargs):
        return [float("nan")] * len(completions)

    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    out = tmp_path / "run"
    trainer = guarded_trainer(out, [broken], max_steps=3, collapse_patience=1)
    with pytest.raises(CollapseError):
        trainer.train()
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    with pytest.raises(TinyR1Error, match="collapsed; fix the cause and build a new trainer"):
        trainer.train()
    assert json.loads((out / "run.json").read_text())["status"] == "collapsed"


def test_a_rerun_into_a_finished_run_names_the_fix_as_a_config_field(tmp_path):
    out = tmp_path / "run"
    script_trainer(out, max_steps=1).train()
    with pytest.raises(TinyR1Error) as raised:
        script_trainer(out, max_steps=1).train()
    message = str(raised.value)
    assert "GRPOConfig(overwrite_output_dir=True)" in message and "GRPOConfig(output_dir)" not in message
    assert "--" not in message.replace(str(out), "")
    trainer = guarded_trainer(out, [length], max_steps=1, overwrite_output_dir=True)
    assert trainer.train().global_step == 1


def test_a_run_of_trls_config_resumes_with_tinyr1s_config(tmp_path):
    """Settings are compared by their values, not by the class that holds them."""
    out = tmp_path / "run"
    script_trainer(out, max_steps=1, save_steps=1).train()
    settings = dict(output_dir=str(out), max_steps=2, per_device_train_batch_size=4, num_generations=4,
                    max_completion_length=8, use_cpu=True, bf16=False, gradient_checkpointing=False,
                    save_steps=1, logging_steps=1, report_to="none", seed=0)
    trainer = GRPOTrainer(model=AutoModelForCausalLM.from_pretrained(TINY), reward_funcs=[correctness, length],
                          args=tinyr1.GRPOConfig(**settings), train_dataset=Dataset.from_list(ROWS),
                          processing_class=AutoTokenizer.from_pretrained(TINY))
    assert trainer.train(resume_from_checkpoint="latest").global_step == 2


def test_a_model_that_cannot_train_is_refused_before_its_folder_is_made(tmp_path):
    model = AutoModelForCausalLM.from_pretrained(TINY)
    tokenizer = AutoTokenizer.from_pretrained(TINY)
    tokenizer.add_tokens([f"<extra_{i}>" for i in range(model.get_input_embeddings().weight.shape[0])])
    args = tinyr1.GRPOConfig(output_dir=str(tmp_path / "run"), max_steps=1, report_to="none")
    with pytest.raises(TinyR1Error, match=r"processing_class: the tokenizer has [\d,]+ tokens and the model's "
                                          r"embeddings [\d,]+ rows"):
        GRPOTrainer(model=model, reward_funcs=[length], args=args, train_dataset=Dataset.from_list(ROWS),
                    processing_class=tokenizer)
    model.requires_grad_(False)
    with pytest.raises(TinyR1Error, match="model: every parameter is frozen"):
        GRPOTrainer(model=model, reward_funcs=[length], args=args, train_dataset=Dataset.from_list(ROWS),
                    processing_class=AutoTokenizer.from_pretrained(TINY))
    assert not (tmp_path / "run").exists()


def test_a_nan_model_stopped_before_step_1_leaves_run_json_saying_why(tmp_path):
    model = AutoModelForCausalLM.from_pretrained(TINY)
    with torch.no_grad():
        model.get_input_embeddings().weight[5] = float("nan")
    out = tmp_path / "run"
    trainer = guarded_trainer(out, [length], model=model, max_steps=1)
    with pytest.raises(CollapseError, match="preflight"):
        trainer.train()
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "collapsed" and run["stopped_because"].startswith("preflight")


def test_no_reward_source_is_trls_own_error_and_beam_search_keeps_trls_step(tmp_path):
    with pytest.raises(ValueError, match="No reward source provided"):
        script_trainer(tmp_path / "none", reward_funcs=None)
    trainer = script_trainer(tmp_path / "beams", max_steps=1, generation_kwargs={"num_beams": 2})
    assert not trainer.uses_fast_path() and "beam search" in trainer.facts["cpu_fast_path"]["reason"]
    assert trainer.train().global_step == 1
