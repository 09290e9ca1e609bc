"""SFT data: alpaca, reasoning (the GRPO cold start) and chat-messages rows, as trl's SFTTrainer wants them.

Rows come out as prompt/completion pairs, so trl computes the loss on the completion only (the answer, not the
question). Three formats (``--dataset_format``):

- ``alpaca``: ``instruction``, ``input``, ``output`` rendered with the alpaca template (``### Instruction`` /
  ``### Input`` / ``### Response``), or as chat turns with ``--alpaca_as_chat`` for models with a chat template;
- ``reasoning``: any source ``tinyr1.tasks.data`` loads whose rows carry a worked solution (GSM8K, reasoning-gym),
  rendered as the recipe's system prompt + question -> ``<reasoning>...</reasoning>`` then ``<answer>...</answer>``,
  each tag on its own line;
- ``messages``: rows already holding a ``messages`` list of chat turns.
"""

from __future__ import annotations

from tinyr1.infra.errors import TinyR1Error
from tinyr1.infra.naming import setting
from tinyr1.tasks.answers import SYSTEM_PROMPT
from tinyr1.tasks.data import load_examples, load_raw_rows
from tinyr1.tasks.reasoning_gym import check_dataset_options
from tinyr1.tasks.rows import build_prompt, check_messages

ALPACA_PROMPT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n### Instruction:\n{}\n\n### Input:\n{}\n\n"
    "### Response:\n"
)
FORMATS = ("alpaca", "reasoning", "messages")


def reasoning_completion(solution: str, gold: str) -> str:
    """The target the GRPO rewards ask for, built from a worked solution.

    >>> reasoning_completion("4 - 1 - 1 = 2", "2")
    '<reasoning>\\n4 - 1 - 1 = 2\\n</reasoning>\\n<answer>\\n2\\n</answer>'
    """
    return f"<reasoning>\n{solution.strip()}\n</reasoning>\n<answer>\n{gold}\n</answer>"


def _raw_rows(source: str, split: str):
    return load_raw_rows(source, split)


def alpaca_rows(source: str, split: str, limit: int | None, as_chat: bool, eos_token: str) -> list[dict]:
    rows, raw = [], _raw_rows(source, split)
    for index, row in enumerate(raw[:limit]):
        missing = [k for k in ("instruction", "output") if k not in row]
        if missing:
            raise TinyR1Error(f"{raw.where(index)}: missing field {' and '.join(missing)}; alpaca rows need "
                              "instruction, input (may be empty) and output — or pick another "
                              f"{setting('dataset_format')}")
        if not all(isinstance(row.get(k), str) for k in ("instruction", "output")):
            raise TinyR1Error(f"{raw.where(index)}: instruction and output must be text")
        instruction, extra, output = row["instruction"], str(row.get("input") or ""), row["output"]
        if as_chat:
            user = instruction + (f"\n\n{extra}" if extra else "")
            rows.append({"prompt": [{"role": "user", "content": user}],
                         "completion": [{"role": "assistant", "content": output}]})
        else:
            # The end-of-text token teaches the model to stop (the recipe appended EOS_TOKEN the same way).
            rows.append({"prompt": ALPACA_PROMPT.format(instruction, extra), "completion": output + eos_token})
    return rows


def reasoning_rows(source: str, split: str, limit: int | None, seed: int, system_prompt: str,
                   options=None) -> list[dict]:
    examples, _ = load_examples(source, split, limit, seed, options=options)
    rows = [{"prompt": build_prompt(ex["question"], system_prompt),
             "completion": [{"role": "assistant", "content": reasoning_completion(ex["solution"], ex["answer"])}]}
            for ex in examples if ex.get("solution")]
    if not rows:
        raise TinyR1Error(f"{source}: no row carries a worked solution; {setting('dataset_format', 'reasoning')} "
                          "needs GSM8K-style answers or reasoning-gym's answer_cot")
    return rows


def messages_rows(source: str, split: str, limit: int | None) -> list[dict]:
    rows, raw = [], _raw_rows(source, split)
    for index, row in enumerate(raw[:limit]):
        messages = row.get("messages")
        if not isinstance(messages, list) or not messages:
            raise TinyR1Error(f"{raw.where(index)}: needs a 'messages' list of chat turns ending with the "
                              f"assistant's; or pick another {setting('dataset_format')}")
        check_messages(messages, raw.where(index), "messages")
        if messages[-1]["role"] != "assistant":
            raise TinyR1Error(f"{raw.where(index)}: needs a 'messages' list of chat turns ending with the "
                              f"assistant's; or pick another {setting('dataset_format')}")
        rows.append({"prompt": messages[:-1], "completion": messages[-1:]})
    return rows


def load_sft_rows(source: str, dataset_format: str, split: str = "train", limit: int | None = None, seed: int = 0,
                  system_prompt: str = SYSTEM_PROMPT, alpaca_as_chat: bool = False, eos_token: str = "",
                  options=None) -> list[dict]:
    """Prompt/completion rows for SFTTrainer from any supported source and format."""
    if dataset_format not in FORMATS:
        raise TinyR1Error(f"{setting('dataset_format')} {dataset_format!r}: use one of {', '.join(FORMATS)}")
    if dataset_format != "reasoning":
        check_dataset_options(source, options)
    if dataset_format == "alpaca":
        rows = alpaca_rows(source, split, limit, alpaca_as_chat, eos_token)
    elif dataset_format == "reasoning":
        rows = reasoning_rows(source, split, limit, seed, system_prompt, options)
    else:
        rows = messages_rows(source, split, limit)
    if not rows:
        raise TinyR1Error(f"{source}: no rows")
    return rows
