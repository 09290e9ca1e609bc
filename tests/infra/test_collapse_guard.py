"""The collapse guard's parts: degenerate-output detection, and a stop after degenerate steps through the reward
wrappers."""


from transformers import TrainerControl, TrainerState

from tinyr1.infra.collapse_guard import DegenerateGuard, is_degenerate
from tinyr1.infra.run_callbacks import SampleRecorder
from tinyr1.tasks.rewards import get_reward_funcs

from ..conftest import chat, read_jsonl


def test_is_degenerate_on_text_and_tokens():
    assert is_degenerate("!" * 30) and is_degenerate("ab", token_ids=[0] * 20)
    assert not is_degenerate("<reasoning>\n4 - 1 - 1 = 2\n</reasoning>\n<answer>\n2\n</answer>")
    assert not is_degenerate("!!!")  # too short to judge


def test_degenerate_steps_warn_then_stop(tmp_path, capsys):
    guard = DegenerateGuard(threshold=0.8, patience=3)
    recorder = SampleRecorder(get_reward_funcs(["xmlcount", "correctness"]), tmp_path, sample_every=1,
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
    assert "100% of completions are degenerate, e.g. '!!!!" in capsys.readouterr().out
    assert "3 consecutive steps" in guard.collapsed
    samples = read_jsonl(tmp_path / "samples.jsonl")
    assert samples[1]["rewards"] == {"xmlcount_reward_func": 0.5, "correctness_reward_func": 2.0}


