"""``tinyr1 train``: GRPO with ``tinyr1.GRPOTrainer`` (trl's GRPOTrainer, guarded) from one YAML recipe plus
``--field value`` overrides.

    tinyr1 train                                                  # the recipe's run: Qwen2.5-0.5B-Instruct, GSM8K
    tinyr1 train --config recipes/smollm2-135m-instruct/grpo-gsm8k-cpu.yaml --max_steps 20
    accelerate launch --config_file recipes/accelerate/ddp.yaml -m tinyr1 train --config RECIPE.yaml

Field names are trl's own (``GRPOConfig``, ``ModelConfig``) plus tinyr1's (``tinyr1.training.fields``). The run
leaves ``metrics.jsonl``, ``samples.jsonl``, ``config.yaml``, ``run.json``, checkpoints and the final model in
``output_dir``; the collapse guard stops a NaN or ``!!!!`` run with exit code 3. This module only parses: the run
is ``tinyr1.training.grpo.run``, the same function ``tinyr1.train`` calls.
"""

from __future__ import annotations

import sys

from tinyr1.infra.device import configure_cpu
from tinyr1.infra.naming import command_line
from tinyr1.training import grpo


def parse_args(argv: list[str] | None, check_setup: bool = True):
    """The recipe and flags, parsed and range-checked once (``tinyr1.training.recipes.Recipe``)."""
    return grpo.parse(argv, check_setup=check_setup)


@command_line
def main(argv: list[str] | None = None) -> int:
    """parse -> rewards -> the CLI's CPU tuning -> the run."""
    recipe = parse_args(argv)
    funcs = grpo.reward_funcs(recipe)
    return grpo.run(recipe, funcs, configure_cpu(recipe.script.num_threads))


if __name__ == "__main__":
    sys.exit(main())
