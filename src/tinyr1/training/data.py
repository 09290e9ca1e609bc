"""``tinyr1 train``'s prompts: the source's rows (one set a level with a difficulty schedule), those longer than
``max_prompt_tokens`` dropped and counted, as a ``datasets.Dataset``."""

from __future__ import annotations

from tinyr1.infra.errors import TinyR1Error
from tinyr1.training.config import TrainScriptArguments


def prompt_length(tokenizer, prompt: list[dict]) -> int:
    """Tokens of a chat prompt as the model will see it. ``apply_chat_template(tokenize=True)`` returns a
    BatchEncoding under transformers 5, whose ``len()`` is its number of keys (2), not of tokens."""
    text = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def build_dataset(script: TrainScriptArguments, tokenizer):
    """The training prompts, without those longer than ``max_prompt_tokens`` (dropped and counted)."""
    from datasets import Dataset

    from tinyr1.tasks.data import load_prompt_rows
    from tinyr1.training.sampling import LEVEL, index_rows, level_rows

    def load(options):
        return load_prompt_rows(script.dataset_name, script.dataset_split, script.dataset_limit, script.dataset_seed,
                                script.system_prompt, script.skip_bad_rows, options)

    rows = level_rows(script, load) if script.curriculum_levels else load(script.dataset_options)
    kept = [{key: r[key] for key in ("prompt", "answer", LEVEL) if key in r} for r in rows
            if prompt_length(tokenizer, r["prompt"]) <= script.max_prompt_tokens]
    dropped = len(rows) - len(kept)
    print(f"data: {len(kept)} prompts from {script.dataset_name} ({script.dataset_split})"
          + (f" in {len(script.curriculum_levels)} levels" if script.curriculum_levels else "")
          + (f"; dropped {dropped} longer than max_prompt_tokens={script.max_prompt_tokens}" if dropped else ""))
    if not kept:
        raise TinyR1Error(f"max_prompt_tokens={script.max_prompt_tokens}: every prompt is longer; raise it")
    if script.curriculum:
        kept = index_rows(kept)
    return Dataset.from_list(kept)
