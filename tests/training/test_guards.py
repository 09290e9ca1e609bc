"""The collapse guard's parts: degenerate-output detection, and a stop after degenerate steps through the reward
wrappers."""


from transformers import TrainerControl, TrainerState

from tinyr1.tasks.reward_lookup import get_reward_funcs
from tinyr1.training.guards import DegenerateGuard, is_degenerate
from tinyr1.training.reward_observer import RewardObserver

from ..conftest import chat, read_jsonl


def test_is_degenerate_on_text_and_tokens():
    assert is_degenerate("!" * 30) and is_degenerate("ab", token_ids=[0] * 20)
    assert not is_degenerate("<reasoning>\n4 - 1 - 1 = 2\n</reasoning>\n<answer>\n2\n</answer>")
    assert not is_degenerate("!!!")  # too short to judge


def test_degenerate_steps_warn_then_stop(tmp_path, caplog):
    guard = DegenerateGuard(threshold=0.8, patience=3)
    recorder = RewardObserver(get_reward_funcs(["xmlcount", "correctness"]), tmp_path, sample_every=1,
                              degenerate_guard=guard)
    assert [f.__name__ for f in recorder.reward_funcs] == ["xmlcount_reward_func", "correctness_reward_func"]
    state = TrainerState()
    healthy = [chat("<reasoning>\nok\n</reasoning>\n<answer>\n2\n</answer>\n")] * 4
    collapsed = [chat("!" * 50)] * 4
    for step, completions in enumerate([collapsed, healthy, collapsed, collapsed, collapsed], start=1):
        for func in recorder.reward_funcs:  # as trl calls them, with dataset columns as keyword arguments
            func(prompts=[[{"role": "user", "content": "q"}]] * 4, completions=completions, answer=["2"] * 4)
        state.global_step = step
        control = recorder.on_step_end(None, state, TrainerControl())
        assert control.should_training_stop == (step == 5)  # three degenerate steps in a row, the healthy one resets
    assert "100% of completions are degenerate, e.g. '!!!!" in caplog.text
    assert "3 consecutive steps" in guard.collapsed
    samples = read_jsonl(tmp_path / "samples.jsonl")
    assert samples[1]["rewards"] == {"xmlcount_reward_func": 0.5, "correctness_reward_func": 2.0}


def test_a_reward_with_no_finite_value_stops_after_patience_steps(tmp_path, caplog):
    from tinyr1.training.guards import RewardGuard

    def flaky(completions, **kwargs):
        return flaky.values

    recorder = RewardObserver([flaky], tmp_path, sample_every=0, reward_guard=RewardGuard(patience=3))
    state, prompts, completions = TrainerState(), [[{"role": "user", "content": "q"}]] * 4, [chat("a")] * 4
    # None is trl's "does not apply": never counted, a whole batch of it included; one finite value resets
    steps = [[None] * 4, [float("nan")] * 4, [None, 1.0, None, None], [float("inf")] * 4, [None] * 4,
             [float("nan"), None, float("-inf"), None], [float("nan")] * 4]
    stops = []
    for step, values in enumerate(steps, start=1):
        flaky.values = values
        recorder.reward_funcs[0](prompts=prompts, completions=completions)
        state.global_step = step
        stops.append(recorder.on_step_end(None, state, TrainerControl()).should_training_stop)
    assert stops == [False, False, False, False, False, False, True]
    assert "reward flaky returned no finite value (4 x inf) (1/3 in a row)" in caplog.text
    why = recorder.reward_guard.collapsed
    assert why.startswith("reward flaky returned no finite value for any completion at 3 consecutive steps")
    assert "(last step: 4 x nan)" in why


def test_a_reward_of_the_wrong_length_or_type_is_one_line_naming_it(tmp_path):
    import fractions
    import re

    import numpy as np
    import pytest
    import torch

    from tinyr1.infra.errors import TinyR1Error

    def returning(value):
        def reward(completions, **kwargs):
            return value
        return reward

    completions = [chat("a")] * 2
    for value, message in ((1.0, "reward reward returned float 1.0; it must return a list"),
                           ("12", "returned str '12'"),
                           ([1.0], "returned 1 values for 2 completions"),
                           (["1", "2"], "returned a str among its values")):
        recorder = RewardObserver([returning(value)], tmp_path, sample_every=0)
        with pytest.raises(TinyR1Error, match=re.escape(message)):
            recorder.reward_funcs[0](prompts=[[]] * 2, completions=completions)
    for fine in ([1, None], (0.5, 2.0), np.array([0.5, 1.0]), torch.tensor([0.5, 1.0]), [True, False],
                 torch.tensor([[0.5], [1.0]]), [fractions.Fraction(1, 2), torch.tensor(1.0)]):  # what trl accepts
        recorder = RewardObserver([returning(fine)], tmp_path, sample_every=0)
        given = recorder.reward_funcs[0](prompts=[[]] * 2, completions=completions)
        assert len(given) == 2 and all(v is None or type(v) is float for v in given)  # converted once, for all
