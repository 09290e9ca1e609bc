"""Answer parsing and scoring, shared by the reward functions (training) and ``tinyr1 eval`` (measurement).

One module so that what training rewards and what evaluation counts can never drift apart. The rules follow
the GRPO recipe tinyr1 reproduces, except where the recipe is wrong (see ``STRICT_FORMAT`` below and
docs/training.md "Rewards").

One definition of a right answer, used by ``tinyr1 eval``, the probe, the learning summary and report tables
and the ``correctness_flexible`` reward (``is_correct``):

- **strict**: the text inside the last ``<answer>...</answer>`` block equals the gold (numbers compared as
  numbers, ``answers_match``). A completion without a closed answer block is never strict-correct: a bare ``7``
  is not, and neither is ``<answer>\n7`` cut off before ``</answer>`` (a truncated number may be a prefix of
  the one the model meant). Like lm-evaluation-harness's "strict-match", it needs the asked-for format.
- **flexible**: the last number anywhere in the text equals the gold (lm-evaluation-harness's
  "flexible-extract"), tags or not.

The recipe's ``correctness`` reward keeps the recipe's own rule (``extract_xml_answer``: without tags the whole
text is the answer, so a bare right number earns it); ``tinyr1 eval`` reports that rule separately as
``accuracy_recipe_reward``.

    python -m pytest --doctest-modules src/tinyr1/tasks/answers.py
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

SYSTEM_PROMPT = """
Respond in the following format:
<reasoning>
...
</reasoning>
<answer>
...
</answer>
"""

# The recipe's strict pattern is matched without re.DOTALL, so `.` stops at a newline and any multi-line
# reasoning scores 0 (a widely reported bug), and it ends in `\n$`, which a finished completion rarely has
# (generation stops at the end-of-turn token). tinyr1 matches with DOTALL on the right-stripped text instead.
STRICT_FORMAT = re.compile(r"<reasoning>\n.*?\n</reasoning>\n<answer>\n.*?\n</answer>", re.DOTALL)
SOFT_FORMAT = re.compile(r"<reasoning>.*?</reasoning>\s*<answer>.*?</answer>", re.DOTALL)
# The recipe's own patterns, kept verbatim for exact reproduction (the *_seed rewards).
STRICT_FORMAT_SEED = re.compile(r"^<reasoning>\n.*?\n</reasoning>\n<answer>\n.*?\n</answer>\n$")
SOFT_FORMAT_SEED = re.compile(r"<reasoning>.*?</reasoning>\s*<answer>.*?</answer>")

_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)")
# lm-evaluation-harness gsm8k "flexible-extract": the last number anywhere in the text.
_ANY_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?|-?\$?\.\d+")


def extract_xml_answer(text: str) -> str:
    """The text between the last ``<answer>`` and the following ``</answer>``, stripped (the recipe's rule).

    Without tags the whole text comes back stripped, as in the recipe, so a bare ``7`` extracts as ``7``: the
    ``correctness`` reward's rule, not strict scoring's (that is ``strict_answer``).

    >>> extract_xml_answer("<reasoning>\\n4-1-1=2\\n</reasoning>\\n<answer>\\n2\\n</answer>")
    '2'
    >>> extract_xml_answer("no tags at all ")
    'no tags at all'
    """
    return text.split("<answer>")[-1].split("</answer>")[0].strip()


def strict_answer(text: str) -> str | None:
    """The stripped text inside the last ``<answer>...</answer>`` block; None when the last ``<answer>`` is not
    closed or there is none (what strict scoring compares; unlike ``extract_xml_answer``, no tag means no answer).

    >>> strict_answer("<reasoning>\\n3 + 4 = 7\\n</reasoning>\\n<answer>\\n 7 \\n</answer>")
    '7'
    >>> strict_answer("<answer>1</answer> on second thought <answer>2</answer>")
    '2'
    >>> [strict_answer(t) for t in ["7", "<answer>\\n7", "<answer>1</answer> then <answer>2"]]
    [None, None, None]
    """
    _, tag, tail = text.rpartition("<answer>")
    if not tag or "</answer>" not in tail:
        return None
    return tail.split("</answer>", 1)[0].strip()


def is_correct(text: str, gold: str, scoring: str = "strict") -> bool:
    """Is this completion's answer right? ``strict``: the last ``<answer>`` block equals the gold; ``flexible``:
    the last number anywhere does. The one definition eval, the probe, the summaries and the rewards share.

    >>> worked = "<reasoning>\\n3 + 4 = 7\\n</reasoning>\\n<answer>\\n7\\n</answer>"
    >>> is_correct(worked, "7"), is_correct("7", "7"), is_correct("7", "7", scoring="flexible")
    (True, False, True)
    >>> is_correct("<answer>7.0</answer>", "7"), is_correct("<answer>8</answer> so 7", "7", scoring="flexible")
    (True, True)
    """
    if scoring == "strict":
        answer = strict_answer(text)
    elif scoring == "flexible":
        answer = extract_last_number(text)
    else:
        raise ValueError(f"scoring must be 'strict' or 'flexible', not {scoring!r}")
    return answer is not None and answers_match(answer, str(gold))


_BOXED = re.compile(r"^\\(?:boxed|fbox)\{(.*)\}$", re.DOTALL)


def extract_hash_answer(text: str) -> str | None:
    """GSM8K's gold answer: the text after ``####``, stripped, thousands separators removed; None without ``####``.

    A gold written as LaTeX ``\\boxed{12}`` (or ``$\\boxed{12}$``) is unwrapped to ``12``: kept verbatim, no
    completion could ever match it and a right answer would score 0 everywhere.

    >>> extract_hash_answer("48/2 = <<48/2=24>>24 clips.\\n#### 1,600")
    '1600'
    >>> extract_hash_answer("#### \\\\boxed{12}"), extract_hash_answer("#### $\\\\boxed{ 1,600 }$")
    ('12', '1600')
    >>> extract_hash_answer("no marker") is None
    True
    """
    if "####" not in text:
        return None
    gold = text.split("####")[-1].strip()
    inner = gold[1:-1].strip() if len(gold) > 1 and gold[0] == gold[-1] == "$" else gold
    boxed = _BOXED.match(inner)
    if boxed:
        gold = boxed.group(1).strip()
    return gold.replace(",", "")


def normalize_answer(text: str) -> str:
    """Strip, drop ``$`` and ``,``, drop one trailing ``.`` — the normalisation the correctness reward applies.

    >>> normalize_answer(" $1,000. ")
    '1000'
    """
    text = text.strip().replace("$", "").replace(",", "")
    return text[:-1] if text.endswith(".") else text


def _as_number(text: str) -> Decimal | None:
    if not _NUMBER.fullmatch(text):
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        return None


def answers_match(predicted: str, gold: str) -> bool:
    """True when the two answers agree after normalising: numerically when both are numbers, else as strings.

    >>> [answers_match(p, "72") for p in ["72", "72.0", "72.", "$72", "73", ""]]
    [True, True, True, True, False, False]
    >>> answers_match("-5", "-5.00"), answers_match("abc", "abc")
    (True, True)
    """
    predicted, gold = normalize_answer(predicted), normalize_answer(gold)
    p_num, g_num = _as_number(predicted), _as_number(gold)
    if p_num is not None and g_num is not None:
        return p_num == g_num
    return predicted == gold


def extract_last_number(text: str) -> str | None:
    """The last number anywhere in the text with ``$`` and ``,`` removed (lm-eval's flexible extraction).

    >>> extract_last_number("She pays $1,000 then 20 more, so 1,020 in total.")
    '1020'
    >>> extract_last_number("none") is None
    True
    """
    found = _ANY_NUMBER.findall(text)
    if not found:
        return None
    return found[-1].replace("$", "").replace(",", "")


# A worked step: an arithmetic expression with its result, e.g. ``3 + 4 = 7``, ``7 - 9 = -2``, ``$3 x 4 = $12``.
_OPERAND = r"\(?-?\$?\d[\d,]*(?:\.\d+)?\)?"
WORKED_STEP = re.compile(rf"{_OPERAND}\s*(?:[-+*/x×÷]\s*{_OPERAND}\s*)+=\s*-?\$?\d")


def reasoning_text(text: str) -> str:
    """The reasoning part of a completion: inside ``<reasoning>`` when present, else everything before ``<answer>``.

    >>> reasoning_text("<reasoning>\\n3 + 4 = 7\\n</reasoning>\\n<answer>\\n7\\n</answer>")
    '3 + 4 = 7'
    >>> reasoning_text("3 + 4 = 7, so <answer>7</answer>")
    '3 + 4 = 7, so'
    """
    if "<reasoning>" in text:
        return text.split("<reasoning>", 1)[1].split("</reasoning>")[0].strip()
    return text.split("<answer>")[0].strip()


def has_worked_step(text: str) -> bool:
    """True when the reasoning shows at least one arithmetic step with its result (``a op b = c``).

    The shared rule behind the ``reasoned_format`` reward and ``tinyr1 eval``'s ``worked_step_fraction``: a bare
    number, or words without a computed step, do not count.

    >>> [has_worked_step(t) for t in ["<reasoning>\\n3 + 4 = 7\\n7 - 9 = -2\\n</reasoning>\\n<answer>-2</answer>",
    ...                               "<reasoning>\\n1\\n</reasoning>\\n<answer>\\n1\\n</answer>",
    ...                               "He pays $1,200 / 4 = $300 a month.", "2.5 * 4=10", "The answer is 7."]]
    [True, False, True, True, False]
    """
    return WORKED_STEP.search(reasoning_text(text)) is not None


def is_number(text: str) -> bool:
    """True for a number after normalising: negative and decimal answers included (unlike the recipe's ``isdigit``).

    >>> [is_number(t) for t in ["72", "-4", "2.5", "$1,000", "", "x"]]
    [True, True, True, True, False, False]
    """
    return _as_number(normalize_answer(text)) is not None


def is_strict_format(text: str) -> bool:
    """The whole completion (trailing whitespace aside) is exactly reasoning then answer, each on its own lines.

    >>> is_strict_format("<reasoning>\\nline 1\\nline 2\\n</reasoning>\\n<answer>\\n7\\n</answer>\\n")
    True
    >>> is_strict_format("<reasoning>\\nx\\n</reasoning>\\n<answer>\\n7\\n</answer> and more")
    False
    """
    return STRICT_FORMAT.fullmatch(text.rstrip()) is not None


def is_soft_format(text: str) -> bool:
    """The completion starts with a reasoning block followed by an answer block, newlines optional.

    >>> is_soft_format("<reasoning>a\\nb</reasoning> <answer>7</answer>")
    True
    >>> is_soft_format("I think <reasoning>a</reasoning><answer>7</answer>")
    False
    """
    return SOFT_FORMAT.match(text) is not None


def count_xml(text: str) -> float:
    """The recipe's ``count_xml``: 0.125 per tag seen exactly once, minus 0.001 per character after the answer.

    >>> count_xml("<reasoning>\\nr\\n</reasoning>\\n<answer>\\n7\\n</answer>\\n")
    0.5
    >>> round(count_xml("<reasoning>\\nr\\n</reasoning>\\n<answer>\\n7\\n</answer>\\nextra"), 3)
    0.49
    """
    count = 0.0
    if text.count("<reasoning>\n") == 1:
        count += 0.125
    if text.count("\n</reasoning>\n") == 1:
        count += 0.125
    if text.count("\n<answer>\n") == 1:
        count += 0.125
        count -= len(text.split("\n</answer>\n")[-1]) * 0.001
    if text.count("\n</answer>") == 1:
        count += 0.125
        count -= (len(text.split("\n</answer>")[-1]) - 1) * 0.001
    return count
