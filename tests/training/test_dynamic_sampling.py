"""Dynamic sampling on the tiny model: groups without reward variance never reach the loss, the refill stops at its
bound, and ``tinyr1 train --dynamic_sampling true`` logs what it dropped."""

import json

import trl
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed

from tinyr1 import GRPOConfig, GRPOTrainer
from tinyr1.models.loading import ensure_pad_token

from ..conftest import ASSETS, REPO

TINY = ASSETS / "tiny-qwen2"
# "flat" prompts earn the same reward for every completion (no variance); the others earn their length
PROMPTS = [("What is 2 + 3?", "vary"), ("Add 4 and 9.", "flat"), ("Compute 12 - 7.", "vary"),
           ("Name a prime number.", "flat"), ("What is 6 times 7?", "vary"), ("Spell cat.", "flat")]


def kind_reward(completions, kind, **kwargs):
    return [float(len(c[-1]["content"] if isinstance(c, list) else c)) if k == "vary" else 1.0
            for c, k in zip(completions, kind, strict=True)]


def make_trainer(tmp_path, prompts, max_rounds, monkeypatch, **overrides):
    """tinyr1's GRPOTrainer with dynamic sampling on; records every generation trl runs (refills included) and
    every batch that reaches the loss."""
    set_seed(0)
    model = AutoModelForCausalLM.from_pretrained(TINY)
    tokenizer = AutoTokenizer.from_pretrained(TINY)
    ensure_pad_token(tokenizer, model)
    seen, calls = [], []
    generate = trl.GRPOTrainer._generate_and_score_completions

    def recording_generate(self, inputs):  # trl's own method, beneath dynamic sampling's loop
        calls.append([row["kind"] for row in inputs])
        return generate(self, inputs)

    monkeypatch.setattr(trl.GRPOTrainer, "_generate_and_score_completions", recording_generate)

    class Recording(GRPOTrainer):
        def compute_loss(self, model, inputs, *args, **kwargs):
            seen.append(self.processing_class.batch_decode(inputs["prompt_ids"], skip_special_tokens=True))
            return super().compute_loss(model, inputs, *args, **kwargs)

    settings = dict(output_dir=str(tmp_path / "out"), dynamic_sampling=True, dynamic_sampling_max_rounds=max_rounds,
                    use_cpu=True, bf16=False, activation_checkpointing=False,
                    per_device_train_batch_size=8, num_generations=4, max_completion_length=12, learning_rate=1e-2,
                    max_steps=2, logging_steps=1, report_to="none", save_strategy="no", seed=0, disable_tqdm=True,
                    log_level="error")
    settings.update(overrides)
    dataset = Dataset.from_list([{"prompt": p, "kind": k} for p, k in prompts])
    trainer = Recording(model=model, reward_funcs=[kind_reward], args=GRPOConfig(**settings),
                        train_dataset=dataset, processing_class=tokenizer)
    return trainer, seen, calls


def test_groups_without_variance_never_reach_the_loss(tmp_path, monkeypatch):
    trainer, seen, calls = make_trainer(tmp_path, PROMPTS, max_rounds=8, monkeypatch=monkeypatch)
    trainer.train()
    flat = {p for p, k in PROMPTS if k == "flat"}
    trained = [row for batch in seen for row in batch]
    assert trained and not any(any(f in row for f in flat) for row in trained)
    assert any("flat" in call for call in calls)  # flat prompts were drawn: they were dropped, not avoided
    logged = [h for h in trainer.state.log_history if "dynamic_sampling/groups_generated" in h]
    assert logged and all(h["dynamic_sampling/groups_trained"] == 2 for h in logged)
    assert sum(h["dynamic_sampling/dropped_other"] for h in logged) >= 1


def test_the_refill_stops_at_its_bound_and_trains_on_trls_batch(tmp_path, monkeypatch):
    only_flat = [(p, "flat") for p, _ in PROMPTS]
    trainer, seen, calls = make_trainer(tmp_path, only_flat, max_rounds=2, monkeypatch=monkeypatch, max_steps=1)
    trainer.train()
    assert len(calls) == 3  # the step's generation and two refills, no more
    step = next(h for h in trainer.state.log_history if "dynamic_sampling/rounds" in h)
    assert (step["dynamic_sampling/rounds"], step["dynamic_sampling/groups_trained"]) == (2, 0)
    assert step["dynamic_sampling/dropped_other"] == 6
    assert seen  # no group had variance: the step trained on the first generation, as plain trl would


def test_too_few_groups_trains_on_those_it_has(tmp_path, monkeypatch):
    one_varied = [PROMPTS[0]] + [(p, "flat") for p, _ in PROMPTS[1:]]
    trainer, seen, calls = make_trainer(tmp_path, one_varied, max_rounds=0, monkeypatch=monkeypatch, max_steps=1,
                                        per_device_train_batch_size=8, gradient_accumulation_steps=1)
    trainer.train()
    step = next(h for h in trainer.state.log_history if "dynamic_sampling/rounds" in h)
    assert step["dynamic_sampling/groups_trained"] in (0, 1)
    if step["dynamic_sampling/groups_trained"] == 1:
        assert all(PROMPTS[0][0] in row for batch in seen for row in batch)


def test_cli_logs_dynamic_sampling(cli, gsm8k_dir, tmp_path):
    out = tmp_path / "run"
    result = cli("train", "--model_name_or_path", str(TINY), "--dataset_name", str(gsm8k_dir), "--dataset_limit",
                 "16", "--num_generations", "4", "--per_device_train_batch_size", "4",
                 "--gradient_accumulation_steps", "1", "--max_completion_length", "12", "--output_dir", str(out),
                 "--reward_funcs", "tests.train_helpers:length_reward", "correctness", "--max_steps", "2",
                 "--save_steps", "100", "--dynamic_sampling", "true", "--dynamic_sampling_max_rounds", "1",
                 cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line]
    assert any("dynamic_sampling/groups_generated" in r for r in rows)
    assert "dynamic_sampling: true" in (out / "config.yaml").read_text()


def test_cli_refuses_a_negative_bound(cli, tmp_path):
    result = cli("train", "--model_name_or_path", str(TINY), "--dynamic_sampling", "true",
                 "--dynamic_sampling_max_rounds", "-1", "--output_dir", str(tmp_path / "x"))
    assert result.returncode == 2 and "dynamic_sampling_max_rounds" in result.stderr
    assert "Traceback" not in result.stderr
