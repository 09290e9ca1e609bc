"""tinyr1.tasks.answers: the one definition of a right answer (strict and flexible) and its edge cases."""

import pytest

from tinyr1.tasks import answers, rewards
from tinyr1.tasks.answers import is_correct, strict_answer

from ..conftest import chat

WORKED = "<reasoning>\n3 + 4 = 7\n</reasoning>\n<answer>\n7\n</answer>"


@pytest.mark.parametrize(
    "text,gold,strict,flexible",
    [
        (WORKED, "7", True, True),
        ("7", "7", False, True),  # a bare number has no <answer> block: never strict-correct
        ("The answer is 7.", "7", False, True),
        ("<answer>\n7", "7", False, True),  # cut off before </answer>: the number may be a truncated 75
        ("<answer>\n7\n</answer>", "7", True, True),
        ("<answer>  7.0 \n\n</answer>\n", "7", True, True),  # whitespace and 7.0 == 7
        ("<answer>$1,000</answer>", "1000", True, True),
        ("<answer>1</answer> no wait <answer>7</answer>", "7", True, True),  # the last block counts
        ("<answer>7</answer> no wait <answer>1</answer>", "7", False, False),
        ("<answer>7</answer> then <answer>8", "7", False, False),  # the last <answer> is unclosed
        ("<answer>7</answer> and 8 more", "7", True, False),  # flexible looks at the last number anywhere
        ("<answer>the answer is 7</answer>", "7", False, True),  # strict compares the whole block
        ("<answer>-4</answer>", "-4", True, True),
        ("<answer>\n</answer>", "7", False, False),
        ("", "7", False, False),
    ],
)
def test_strict_and_flexible(text, gold, strict, flexible):
    assert is_correct(text, gold, scoring="strict") is strict
    assert is_correct(text, gold, scoring="flexible") is flexible


def test_strict_is_the_default_and_an_unknown_scoring_is_refused():
    assert is_correct(WORKED, "7") and not is_correct("7", "7")
    with pytest.raises(ValueError, match="'exact'"):
        is_correct(WORKED, "7", scoring="exact")


def test_strict_answer_is_what_strict_scoring_compares():
    assert strict_answer(WORKED) == "7"
    assert strict_answer("7") is None and strict_answer("<answer>7") is None
    assert strict_answer("<answer><answer>7</answer>") == "7"
    # The recipe's extraction takes a bare text as the answer; strict scoring does not.
    assert answers.extract_xml_answer("7") == "7"


@pytest.mark.parametrize("text", [WORKED, "7", "<answer>\n7", "3 + 4 = 7", "<answer>8</answer> 7", "<answer>7"])
def test_the_recipe_reward_keeps_the_recipe_rule_and_flexible_reward_follows_is_correct(text):
    recipe = rewards.correctness_reward_func([chat(text)], ["7"])[0]
    assert recipe == (2.0 if answers.answers_match(answers.extract_xml_answer(text), "7") else 0.0)
    flexible_reward = rewards.correctness_flexible_reward_func([chat(text)], ["7"])[0]
    if strict_answer(text) is not None:
        assert flexible_reward == (2.0 if is_correct(text, "7") else 0.0)
    else:
        assert flexible_reward == (1.0 if is_correct(text, "7", scoring="flexible") else 0.0)


def test_a_bare_right_number_earns_the_recipe_reward_but_not_strict():
    assert rewards.correctness_reward_func([chat("7")], ["7"]) == [2.0]
    assert rewards.correctness_flexible_reward_func([chat("7")], ["7"]) == [1.0]
    assert not is_correct("7", "7")
