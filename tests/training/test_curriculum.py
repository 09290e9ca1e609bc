"""The pass-rate curriculum on the tiny model: solved prompts are retired from the draws, failed ones revisited less,
and the rates and the sampler's state survive a resume."""

import json

import trl
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed

from tinyr1 import GRPOConfig, GRPOTrainer
from tinyr1.models.loading import ensure_pad_token
from tinyr1.training.curriculum import INDEX, LEVEL, CurriculumSampler, LevelSchedule, PassRates, load_curriculum

from ..conftest import ASSETS, REPO

TINY = ASSETS / "tiny-qwen2"
KINDS = ["solved", "solved", "failed", "failed", "mixed", "mixed", "mixed", "mixed"]


def correct_by_kind(completions, kind, **kwargs):
    """Right always, never, or for completions of odd length."""
    texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
    return [1.0 if k == "solved" or (k == "mixed" and len(t) % 2) else 0.0 for t, k in zip(texts, kind, strict=True)]


def train_recording(tmp_path, monkeypatch, rows, reward, record, **config):
    """Train the tiny model on ``rows`` with tinyr1's GRPOTrainer and the curriculum on; returns the trainer and
    ``record(inputs, num_generations)`` of every generation trl ran (dynamic sampling's refills included)."""
    set_seed(0)
    model = AutoModelForCausalLM.from_pretrained(TINY)
    tokenizer = AutoTokenizer.from_pretrained(TINY)
    ensure_pad_token(tokenizer, model)
    drawn = []
    generate = trl.GRPOTrainer._generate_and_score_completions

    def recording_generate(self, inputs):  # trl's own method, beneath the curriculum and dynamic sampling
        drawn.append(record(inputs, self.num_generations))
        return generate(self, inputs)

    monkeypatch.setattr(trl.GRPOTrainer, "_generate_and_score_completions", recording_generate)
    args = GRPOConfig(output_dir=str(tmp_path / "out"), curriculum=True, logging_steps=1, report_to="none",
                      save_strategy="no", seed=0, disable_tqdm=True, log_level="error", **config)
    trainer = GRPOTrainer(model=model, reward_funcs=[reward], args=args, train_dataset=Dataset.from_list(rows),
                          processing_class=tokenizer)
    trainer.train()
    return trainer, drawn


def test_solved_prompts_are_retired_and_failed_ones_revisited_less(tmp_path, monkeypatch):
    # curriculum_revisit 0: failed prompts at weight 0 too, so the draws must avoid both
    rows = [{"prompt": f"Question {i}: what is {i} + {i}?", "kind": k} for i, k in enumerate(KINDS)]
    trainer, drawn = train_recording(
        tmp_path, monkeypatch, rows, correct_by_kind,
        lambda inputs, size: [(row[INDEX], row["kind"]) for row in inputs[::size]],
        curriculum_min_groups=1, curriculum_revisit=0.0,
        per_device_train_batch_size=8, num_generations=4, max_completion_length=8, learning_rate=1e-3, max_steps=8)
    rates = trainer.curriculum.rates
    settled, previous = set(), set()
    for batch in drawn:
        for index, kind in batch:
            # a prompt judged solved or failed is not drawn again while 2+ live prompts remain; the loader fetches
            # one batch ahead, so the batch right after the judgement was drawn before it
            assert index not in settled or len(settled) > len(KINDS) - 2, (index, kind, drawn)
        settled |= previous
        previous = {i for i, k in batch if k in ("solved", "failed")}
    settled |= previous
    assert settled  # the run did meet solved/failed prompts, so the retirement was exercised
    counts = rates.counts()
    assert counts["solved"] + counts["failed"] >= len(settled)  # a mixed prompt can be all right by chance
    logged = [h for h in trainer.state.log_history if "curriculum/seen" in h]
    assert logged and logged[-1]["curriculum/seen"] == counts["seen"]


def test_state_round_trips(tmp_path):
    rates = PassRates(window=3, min_groups=2)
    rates.update([5, 5, 7, 7], [True, False, True, True], group_size=2)
    (tmp_path / "curriculum.json").write_text(json.dumps({"rates": rates.to_dict(), "generator": None}))
    again = PassRates(window=3, min_groups=2)
    load_curriculum(again, tmp_path)
    assert again.to_dict() == rates.to_dict()


def test_the_curriculum_survives_a_resume(cli, gsm8k_dir, tmp_path):
    out = tmp_path / "run"
    common = ["train", "--model_name_or_path", str(TINY), "--dataset_name", str(gsm8k_dir), "--dataset_limit", "16",
              "--num_generations", "4", "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "1",
              "--max_completion_length", "8", "--output_dir", str(out), "--save_steps", "1", "--curriculum", "true",
              "--reward_funcs", "tests.train_helpers:length_reward", "correctness"]
    first = cli(*common, "--max_steps", "2", cwd=REPO)
    assert first.returncode == 0, first.stderr[-2000:]
    saved = json.loads((out / "checkpoint-2" / "curriculum.json").read_text())
    assert len(saved["rates"]["history"]) == 2 and saved["generator"]
    again = cli(*common, "--max_steps", "3", "--resume_from_checkpoint", "latest", cwd=REPO)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "no curriculum state" not in again.stdout + again.stderr
    resumed = json.loads((out / "checkpoint-3" / "curriculum.json").read_text())
    assert set(saved["rates"]["history"]) <= set(resumed["rates"]["history"])  # restored, then one more group


def test_a_curriculum_without_a_correctness_reward_is_one_line(cli, tmp_path):
    result = cli("train", "--model_name_or_path", str(TINY), "--curriculum", "true", "--reward_funcs",
                 "tests.train_helpers:length_reward", "--output_dir", str(tmp_path / "x"), cwd=REPO)
    assert result.returncode == 2 and "curriculum: needs a correctness reward" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_level_is_never_drawn_before_it_opens():
    rows = [0] * 4 + [1] * 4 + [2] * 4
    levels = LevelSchedule(count=3, threshold=1.0, window=2)
    sampler = CurriculumSampler(len(rows), PassRates(), mini_repeat_count=1, batch_size=2, repeat_count=1, seed=0,
                                levels=levels, row_levels=rows)
    assert {rows[i] for _ in range(50) for i in sampler.draw()} == {0}
    levels.update([0, 0, 0, 0], [True] * 4, group_size=2)  # two all-right groups at level 0: level 1 opens
    assert levels.level == 1 and levels.opened_at == [2]
    drawn = {rows[i] for _ in range(50) for i in sampler.draw()}
    assert drawn == {0, 1}  # earlier levels stay in the draw; level 2 does not
    levels.update([1, 1, 0, 0], [True, False, True, True], group_size=2)  # level 1 at 0.5; level 0 not counted
    assert levels.level == 1 and list(levels.recent) == [0.5]


def test_levels_that_cannot_fill_a_batch_let_the_next_ones_in():
    rows = [0] + [1] * 3
    sampler = CurriculumSampler(len(rows), PassRates(), 1, batch_size=2, repeat_count=1, seed=0,
                                levels=LevelSchedule(count=2, threshold=1.0), row_levels=rows)
    assert len(set(sampler.draw())) == 2


def test_the_schedule_round_trips_with_the_rates(tmp_path):
    levels = LevelSchedule(count=3, threshold=0.5, window=2)
    levels.update([0, 0, 0, 0, 1, 1], [True, True, True, False, False, True], group_size=2)
    (tmp_path / "curriculum.json").write_text(json.dumps({"rates": PassRates().to_dict(), "generator": None,
                                                          "levels": levels.to_dict()}))
    again = LevelSchedule(count=3, threshold=0.5, window=2)
    load_curriculum(PassRates(), tmp_path, again)
    assert again.to_dict() == levels.to_dict() and again.level == 1


def test_the_difficulty_schedule_opens_levels_and_survives_a_resume(cli, tmp_path):
    out = tmp_path / "run"
    common = ["train", "--model_name_or_path", str(TINY), "--dataset_name", "reasoning-gym:chain_sum",
              "--dataset_options", "min_terms=2", "max_terms=2", "--dataset_limit", "4",
              "--curriculum", "true", "--curriculum_levels", "max_digits=1", "max_digits=3 min_digits=3",
              "--curriculum_level_threshold", "1.0", "--curriculum_level_window", "1", "--num_generations", "4",
              "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "1", "--max_completion_length",
              "8", "--output_dir", str(out), "--save_steps", "1", "--eval_before_after", "false",
              "--reward_funcs", "tests.train_helpers:correct_always", "tests.train_helpers:length_reward"]
    first = cli(*common, "--max_steps", "2", cwd=REPO)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "8 prompts from reasoning-gym:chain_sum (train) in 2 levels" in first.stdout
    saved = json.loads((out / "checkpoint-2" / "curriculum.json").read_text())
    assert saved["levels"]["level"] == 1 and saved["levels"]["opened_at"] == [1]  # the first right group opened it
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [row["curriculum/level"] for row in logged if "curriculum/level" in row] == [1.0, 1.0]
    again = cli(*common, "--max_steps", "3", "--resume_from_checkpoint", "latest", cwd=REPO)
    assert again.returncode == 0, again.stderr[-2000:]
    resumed = json.loads((out / "checkpoint-3" / "curriculum.json").read_text())
    assert resumed["levels"]["groups"] == 3 and resumed["levels"]["opened_at"] == [1]  # restored, then one group


def test_a_schedule_needs_the_curriculum_and_checks_each_level(cli, tmp_path):
    base = ["train", "--model_name_or_path", str(TINY), "--dataset_name", "reasoning-gym:chain_sum",
            "--output_dir", str(tmp_path / "x"), "--curriculum_levels", "max_terms=3", "max_termz=4"]
    alone = cli(*base, cwd=REPO)
    assert alone.returncode == 2 and "add --curriculum true" in alone.stderr
    bad = cli(*base, "--curriculum", "true", cwd=REPO)
    assert bad.returncode == 2 and "curriculum_levels[1] (max_termz=4)" in bad.stderr and "max_termz" in bad.stderr
    for result in (alone, bad):
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def correct_never(completions, **kwargs):
    """A correctness reward no completion earns: every group is all wrong, so dynamic sampling refills each step."""
    return [0.0] * len(completions)


def test_refills_of_dynamic_sampling_come_from_the_open_levels(tmp_path, monkeypatch):
    # a threshold of 1.0 is never reached here: level 1 stays closed
    rows = [{"prompt": f"Question {i}: what is {i} + {i}?", LEVEL: int(i >= 4)} for i in range(12)]
    trainer, drawn = train_recording(
        tmp_path, monkeypatch, rows, correct_never, lambda inputs, size: [row[LEVEL] for row in inputs],
        dynamic_sampling=True, dynamic_sampling_max_rounds=2, curriculum_level_threshold=1.0,
        curriculum_level_window=1, per_device_train_batch_size=4, num_generations=2, max_completion_length=4,
        max_steps=2)
    assert trainer.curriculum.levels.count == 2 and trainer.curriculum.levels.level == 0
    assert len(drawn) == 2 * 3  # each step: its batch and two refill rounds, all groups dropped
    assert {level for batch in drawn for level in batch} == {0}, drawn
