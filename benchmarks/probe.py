"""Does GRPO have a signal on this task? Greedy accuracy, sampled accuracy, pass@k, groups with reward variance.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/probe.py --model smollm2-135m-instruct \
        --dataset_name reasoning-gym:chain_sum --dataset_options min_terms=2 max_terms=2 max_digits=1 \
        --greedy_questions 48 --prompts 16 --k 8 --temperature 1.0 --max_new_tokens 128

See ``tinyr1.evaluation.probe`` for what each number means; CHANGELOG.md holds the numbers that chose the CPU task.
"""

import sys

from tinyr1.evaluation.probe import main
from tinyr1.infra.errors import TinyR1Error

if __name__ == "__main__":
    try:
        main()
    except TinyR1Error as err:  # bad input: one line, exit 2, as tinyr1's commands do
        print(f"probe: error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
