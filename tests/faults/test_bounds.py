"""Every loop that can run long inside a step ends on a signal or the time budget: dynamic sampling's refills,
with a reward that never varies and a bound of 50 rounds, stop at the first SIGTERM or when max_train_minutes is
spent, and the step trains on what it has."""

import json
import signal

import pytest
import trl

from ..training.test_dynamic_sampling import PROMPTS, make_trainer


@pytest.fixture
def flat_trainer(tmp_path, monkeypatch):
    """Only prompts whose completions all earn the same reward: every refill round is spent, up to the bound."""
    return make_trainer(tmp_path, [(p, "flat") for p, _ in PROMPTS], max_rounds=50, monkeypatch=monkeypatch,
                        max_steps=3, save_strategy="steps", save_steps=100)


def test_a_signal_ends_the_refills_and_the_run_stops_at_the_end_of_the_step(flat_trainer, monkeypatch):
    trainer, _, calls = flat_trainer
    generate = trl.GRPOTrainer._generate_and_score_completions

    def signalled(self, inputs):  # a SIGTERM arrives while the step's first generation runs
        batch = generate(self, inputs)
        if len(calls) == 1:
            self._run.signals._seen(signal.SIGTERM)
        return batch

    monkeypatch.setattr(trl.GRPOTrainer, "_generate_and_score_completions", signalled)
    trainer.train()
    assert len(calls) == 1  # no refill after the signal (50 rounds were allowed)
    assert trainer.state.global_step == 1 and trainer.stopped_by == signal.SIGTERM


def test_the_time_budget_ends_the_refills(flat_trainer, tmp_path):
    trainer, _, calls = flat_trainer
    trainer.tinyr1.max_train_minutes = 1e-6
    trainer._run.budget.seconds = 1e-6 * 60  # spent before the first generation ends
    trainer.train()
    assert len(calls) == 1 and trainer.state.global_step == 1
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["time_budget_reached_at_step"] == 1
