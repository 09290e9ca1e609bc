"""benchmarks/learning_seeds.sh measures what ``make demo`` runs: the demo arm's cold start and GRPO take the
Makefile's settings, so docs/results.md's demo rows describe the demo a user gets."""

import re
import shlex

from .conftest import REPO


def _flags(text: str) -> dict[str, str]:
    """``--name value`` pairs of a command line (flags with several values keep their first)."""
    tokens = shlex.split(text.replace("\\\n", " "))
    return {t: tokens[i + 1] for i, t in enumerate(tokens[:-1]) if t.startswith("--")}


def _make_demo() -> tuple[dict, dict]:
    makefile = (REPO / "Makefile").read_text()
    coldstart = _flags(re.search(r"^DEMO_COLDSTART := (.*)$", makefile, re.M).group(1))
    recipe = re.search(r"^demo: install\n(.*?)\n\n", makefile, re.S | re.M).group(1)
    grpo = _flags(recipe[recipe.index("$(TINYR1) train"):].split("\n\t@")[0])
    return coldstart, grpo


def _benchmark() -> tuple[dict, dict]:
    script = (REPO / "benchmarks" / "learning_seeds.sh").read_text()
    coldstart = _flags(re.search(r'demo-coldstart\) completed .*? sft "\$\{SFT\[@\]\}" (.*?);;', script, re.S)
                       .group(1))
    demo = re.search(r"^DEMO=\((.*?)\)$", script, re.S | re.M).group(1)
    grpo = _flags(demo.replace("$R/", "recipes/smollm2-135m-instruct/"))
    return coldstart, grpo


def test_the_benchmarks_demo_arm_runs_make_demos_settings():
    make_cold, make_grpo = _make_demo()
    bench_cold, bench_grpo = _benchmark()
    for flag in ("--max_steps", "--warmup_steps", "--learning_rate"):
        assert bench_cold[flag] == make_cold[flag], flag
    # The benchmark fixes the step count (DEMO_STEPS) where the demo has a 2-minute budget of at most that many.
    for flag in ("--config", "--reward_funcs", "--reward_weights", "--per_device_train_batch_size",
                 "--num_generations", "--max_completion_length", "--learning_rate", "--warmup_steps", "--loss_type",
                 "--scale_rewards", "--dynamic_sampling", "--dynamic_sampling_max_rounds"):
        assert bench_grpo[flag] == make_grpo[flag], flag
    assert make_grpo["--max_steps"] == "10"
    assert "DEMO_STEPS=${DEMO_STEPS:-10}" in (REPO / "benchmarks" / "learning_seeds.sh").read_text()
    for flag, value in make_grpo.items():  # nothing the demo sets that could change what it learns is left out
        if flag not in ("--model_name_or_path", "--max_train_minutes", "--save_steps", "--sample_every",
                        "--eval_limit", "--eval_max_new_tokens", "--output_dir", "--overwrite_output_dir",
                        "--max_steps"):
            assert bench_grpo.get(flag) == value, flag
