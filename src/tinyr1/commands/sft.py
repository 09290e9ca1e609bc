"""``tinyr1 sft``: LoRA/QLoRA supervised fine-tuning with ``tinyr1.SFTTrainer`` (trl's SFTTrainer in a run folder),
the recipe's Unsloth-style part.

    tinyr1 sft --config recipes/deepseek-r1-distill-llama-8b/sft-alpaca.yaml            # GPU, 4-bit, alpaca
    tinyr1 sft --config recipes/smollm2-135m-instruct/sft-coldstart-cpu.yaml            # CPU, GRPO cold start
    tinyr1 train --config recipes/smollm2-135m-instruct/grpo-gsm8k-cpu.yaml --model_name_or_path <sft output_dir>

Field names are trl's (``SFTConfig``, ``ModelConfig``) plus tinyr1's (``tinyr1.training.fields``). LoRA is on by
default; the adapter and tokenizer are saved in ``output_dir`` (``--merge_lora true`` also saves a merged model in
``output_dir/merged``). Out of memory exits 4 with the recipe's four remedies sized to the current settings. This
module only parses: the run is ``tinyr1.training.sft.run``, the same function ``tinyr1.sft`` calls.
"""

from __future__ import annotations

import sys

from tinyr1.infra.device import configure_cpu
from tinyr1.infra.naming import command_line
from tinyr1.training import sft


def parse_args(argv: list[str] | None, check_setup: bool = True):
    """The recipe and flags, parsed and range-checked once (``tinyr1.training.recipes.Recipe``)."""
    return sft.parse(argv, check_setup=check_setup)


@command_line
def main(argv: list[str] | None = None) -> int:
    """parse -> check the backend -> the CLI's CPU tuning -> the run."""
    recipe = parse_args(argv)
    sft.check_backend(recipe)
    return sft.run(recipe, configure_cpu(recipe.script.num_threads))


if __name__ == "__main__":
    sys.exit(main())
