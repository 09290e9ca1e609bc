"""Table-driven checks of the five rewards, their recipe (*_seed) variants and the registry."""

import pytest

from tinyr1.infra.errors import TinyR1Error
from tinyr1.tasks import rewards
from tinyr1.tasks.reward_lookup import get_reward_funcs
from tinyr1.tasks.rewards import DEFAULT_REWARDS, REWARD_FUNCS

from ..conftest import chat

SINGLE = "<reasoning>\n4 - 1 - 1 = 2\n</reasoning>\n<answer>\n2\n</answer>"
MULTI = "<reasoning>\nHe had 4.\nHe ate 1 and gave 1.\n4 - 1 - 1 = 2\n</reasoning>\n<answer>\n2\n</answer>\n"
NO_TAGS = "The answer is 2."
TRAILING = SINGLE + "\nHope this helps!"
DUPLICATE = SINGLE + "\n<answer>\n3\n</answer>"
DEGENERATE = "!!!!!!!!!!!!!!!!!!!!!!!!!"
INLINE = "<reasoning>4-1-1=2</reasoning><answer>2</answer>"


def score(name, texts, answer=None):
    func = REWARD_FUNCS[name]
    kwargs = {"answer": answer} if answer is not None else {}
    return func(completions=[chat(t) for t in texts], prompts=[None] * len(texts), **kwargs)


@pytest.mark.parametrize(
    "text,strict,soft,strict_seed,soft_seed",
    [
        # The recipe's soft pattern has no DOTALL, so it fails even the exact format its system prompt asks for.
        (SINGLE, 0.5, 0.5, 0.0, 0.0),  # the recipe's strict pattern also demands a final newline
        (SINGLE + "\n", 0.5, 0.5, 0.5, 0.0),
        (MULTI, 0.5, 0.5, 0.0, 0.0),  # the recipe's regex bug: multi-line reasoning scores 0
        (NO_TAGS, 0.0, 0.0, 0.0, 0.0),
        (TRAILING, 0.0, 0.5, 0.0, 0.0),
        (INLINE, 0.0, 0.5, 0.0, 0.5),
        ("", 0.0, 0.0, 0.0, 0.0),
        (DEGENERATE, 0.0, 0.0, 0.0, 0.0),
    ],
)
def test_format_rewards(text, strict, soft, strict_seed, soft_seed):
    assert score("strict_format", [text]) == [strict]
    assert score("soft_format", [text]) == [soft]
    assert score("strict_format_seed", [text]) == [strict_seed]
    assert score("soft_format_seed", [text]) == [soft_seed]


@pytest.mark.parametrize(
    "answer_text,gold,correct,correct_seed,is_int",
    [
        ("2", "2", 2.0, 2.0, 0.5),
        ("72.0", "72", 2.0, 0.0, 0.0),
        ("72.", "72", 2.0, 0.0, 0.0),
        ("$72", "72", 2.0, 0.0, 0.0),
        ("$1,000", "1000", 2.0, 0.0, 0.0),
        ("-3", "-3", 2.0, 2.0, 0.0),  # negative numbers are correct but not .isdigit(), as in the recipe
        ("-3", "3", 0.0, 0.0, 0.0),
        ("3", "4", 0.0, 0.0, 0.5),
        ("two", "2", 0.0, 0.0, 0.0),
        ("", "2", 0.0, 0.0, 0.0),
    ],
)
def test_answer_rewards(answer_text, gold, correct, correct_seed, is_int):
    text = f"<reasoning>\nwork\n</reasoning>\n<answer>\n{answer_text}\n</answer>"
    assert score("correctness", [text], [gold]) == [correct]
    assert score("correctness_seed", [text], [gold]) == [correct_seed]
    assert score("int", [text]) == [is_int]


def test_correctness_uses_last_answer_block_and_ignores_untagged_text():
    assert score("correctness", [DUPLICATE], ["3"]) == [2.0]
    assert score("correctness", [NO_TAGS], ["2"]) == [0.0]
    assert score("correctness", [DEGENERATE], ["2"]) == [0.0]


@pytest.mark.parametrize(
    "text,expected",
    [
        (MULTI, 0.5),
        (SINGLE, 0.5 - 0.001 * len(SINGLE) + 0.001),  # recipe quirk: no newline after </answer>
        (DUPLICATE, 0.25),  # duplicated answer tags earn nothing for them
        (NO_TAGS, 0.0),
        (DEGENERATE, 0.0),
        ("", 0.0),
    ],
)
def test_xmlcount(text, expected):
    assert score("xmlcount", [text]) == [pytest.approx(expected)]


def test_plain_string_completions_are_accepted():
    assert rewards.strict_format_reward_func(completions=[SINGLE]) == [0.5]


def test_every_registry_name_resolves_to_the_name_trl_logs():
    for name, func in REWARD_FUNCS.items():
        assert get_reward_funcs([name]) == [func]
        assert func.__name__ == f"{name}_reward_func"
        assert getattr(rewards, func.__name__) is func  # importable as from tinyr1.tasks.rewards import <name>
    assert [f.__name__ for f in get_reward_funcs(DEFAULT_REWARDS)] == [
        "xmlcount_reward_func", "soft_format_reward_func", "strict_format_reward_func", "int_reward_func",
        "correctness_reward_func",
    ]


def test_dotted_path_and_unknown_names():
    assert get_reward_funcs("tinyr1.tasks.rewards:int_reward_func") == [rewards.int_reward_func]
    assert get_reward_funcs("int, correctness") == [rewards.int_reward_func, rewards.correctness_reward_func]
    with pytest.raises(TinyR1Error, match="unknown reward 'nope'.*correctness"):
        get_reward_funcs(["nope"])
    with pytest.raises(TinyR1Error, match="cannot import"):
        get_reward_funcs(["no_such_module:f"])


@pytest.mark.parametrize(
    "text,gold,correct,flexible,reasoned,number,both",
    [
        ("<reasoning>\n3 - 7 = -4\n</reasoning>\n<answer>\n-4\n</answer>", "-4", 2.0, 2.0, 0.5, 0.5, 2.0),
        ("<reasoning>\n-4\n</reasoning>\n<answer>\n-4\n</answer>", "-4", 2.0, 2.0, 0.0, 0.5, 0.0),  # no worked step
        ("<reasoning>\n5 / 2 = 2.5\n</reasoning>\n<answer>\n2.50\n</answer>", "2.5", 2.0, 2.0, 0.5, 0.5, 2.0),
        ("3 - 7 = -4", "-4", 0.0, 1.0, 0.0, 0.0, 0.0),  # right without tags: partial credit in the flexible one
        ("<reasoning>\n3 - 7 = 4\n</reasoning>\n<answer>\n4\n</answer>", "-4", 0.0, 0.0, 0.5, 0.5, 0.0),
    ],
)
def test_reasoned_rewards(text, gold, correct, flexible, reasoned, number, both):
    assert rewards.correctness_reward_func([chat(text)], [gold]) == [correct]
    assert rewards.correctness_flexible_reward_func([chat(text)], [gold]) == [flexible]
    assert rewards.reasoned_format_reward_func([chat(text)]) == [reasoned]
    assert rewards.number_reward_func([chat(text)]) == [number]
    assert rewards.correct_and_reasoned_reward_func([chat(text)], [gold]) == [both]
    assert rewards.int_reward_func([chat("<answer>-4</answer>")]) == [0.0]  # the recipe's int reward, unchanged


def test_the_collapsed_answer_earns_nothing_for_format_in_the_reasoned_set():
    collapsed = "<reasoning>\n1\n</reasoning>\n<answer>\n1\n</answer>"
    five = sum(f([chat(collapsed)], answer=["7"])[0] for f in get_reward_funcs(DEFAULT_REWARDS))
    reasoned = sum(f([chat(collapsed)], answer=["7"])[0] for f in get_reward_funcs(rewards.REASONED_REWARDS))
    assert five > 1.9 and reasoned == 0.5  # the five pay ~2.0 for a wrong one-number answer; only number pays here
