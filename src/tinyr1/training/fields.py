"""tinyr1's own fields, beside trl's ``GRPOConfig`` / ``SFTConfig`` and ``ModelConfig``: what a YAML recipe, a
``--field value`` flag and a keyword of the Python API may name. Plain dataclasses without torch or trl, so
``import tinyr1`` stays cheap and ``tinyr1.train``'s help lists them.

- ``GRPOFields`` / ``SFTFields``: how the trainer behaves (guards, run folder, sampling, the CPU fast path).
  ``tinyr1.GRPOConfig`` and ``tinyr1.SFTConfig`` (``tinyr1.training.config``) are trl's configs with these added;
  a plain trl config given to ``tinyr1.GRPOTrainer`` gets these defaults.
- ``GRPOScriptArguments`` / ``SFTScriptArguments``: what ``tinyr1 train`` / ``tinyr1 sft`` and ``tinyr1.train`` /
  ``tinyr1.sft`` do around the trainer (the data source, the rewards by name, the before/after evaluation, the
  CPU threads), as open-r1's script arguments sit beside trl's config.

``tinyr1 train --help`` and ``tinyr1 sft --help`` print each field's help.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tinyr1.tasks.answers import SYSTEM_PROMPT
from tinyr1.tasks.rewards import DEFAULT_REWARDS

RESUME_CHANGED_SETTINGS_HELP = ("resume even if the settings differ from the run's config.yaml or the checkpoint "
                                "has no optimizer state (the differences are printed; the first config.yaml is "
                                "kept as config.original.yaml)")
FOREIGN_HELP = ("with --resume_from_checkpoint PATH naming another run's checkpoint: start a new run in a new "
                "output_dir from it (its weights, optimizer state and step); without it such a path is refused")
OVERWRITE_HELP = ("start afresh in an output_dir that already holds a tinyr1 run of this kind (only the files that "
                  "run wrote are deleted)")


@dataclass
class RunFolderFields:
    """How a trainer treats its output_dir (``tinyr1.run_folder``): shared by GRPO and SFT."""

    overwrite_output_dir: bool = field(default=False, metadata={"help": OVERWRITE_HELP})
    resume_changed_settings: bool = field(default=False, metadata={"help": RESUME_CHANGED_SETTINGS_HELP})
    resume_from_foreign_checkpoint: bool = field(default=False, metadata={"help": FOREIGN_HELP})
    max_train_minutes: float | None = field(default=None, metadata={"help": "stop training after this many "
                                            "minutes (checkpoint saved), then finish normally: final model, "
                                            "after-evaluation, report"})


@dataclass
class GRPOFields(RunFolderFields):
    """tinyr1's GRPO trainer fields: the collapse guard, samples, dynamic sampling, the curriculum, the fast path."""

    preflight: bool = field(default=True, metadata={"help": "generate a few tokens before training and stop "
                            "(exit 3) if logits are NaN/inf"})
    collapse_patience: int = field(default=3, metadata={"help": "consecutive non-finite or degenerate steps "
                                   "that stop the run (exit 3)"})
    no_signal_patience: int = field(default=10, metadata={"help": "GRPO steps in a row in which no group's "
                                    "rewards vary (nothing to learn from) that stop the run (exit 3) with a "
                                    "diagnosis: completions cut at max_completion_length, no completion in the "
                                    "format the rewards pay for, a constant reward; 0 turns the guard off"})
    degenerate_threshold: float = field(default=0.8, metadata={"help": "fraction of a step's completions that "
                                        "must be one repeated character/token to count as degenerate; 0 = off"})
    sample_every: int | None = field(default=None, metadata={"help": "append a sample (question, answer, "
                                     "response, extracted answer, rewards) to samples.jsonl every N steps and print "
                                     "it; unset: one every 5 steps, kept but not printed; 0: none"})
    cpu_fast_path: bool | None = field(default=None, metadata={"help": "on CPU, train with tinyr1.cpu.fast_path (the "
                                       "same step as trl's, computed faster). Unset: where trl, transformers and "
                                       "torch are the versions it was verified on (tinyr1 doctor says); true: "
                                       "always, with a warning outside them; false: trl's GRPOTrainer as it is"})
    # The choices are tinyr1.cpu.packing.GENERATION_WEIGHTS, written out: importing the packer would load torch with
    # ``import tinyr1`` (tests/cpu/test_packing.py checks that the two agree).
    cpu_generation_weights: str = field(default="exact", metadata={"choices": ["exact", "fp16"], "help": (
        "on the CPU fast path with an fp32 decode (CPUs without native bf16): fp16 reads half the bytes per decode "
        "step, weights rounded to fp16 for sampling only (opt-in: the sampler then differs slightly from the trained "
        "policy; docs/cpu-fast-path.md)")})
    dynamic_sampling: bool = field(default=False, metadata={"help": "drop groups whose completions all earn the same "
                                   "reward and refill the batch from fresh prompts (DAPO); see "
                                   "tinyr1.training.dynamic_sampling"})
    dynamic_sampling_max_rounds: int = field(default=3, metadata={"help": "with dynamic_sampling: extra generation "
                                             "rounds a step may spend refilling its batch"})
    dynamic_sampling_tolerance: float = field(default=1e-6, metadata={"help": "with dynamic_sampling: rewards of a "
                                              "group within this (relative) range count as equal"})
    curriculum: bool = field(default=False, metadata={"help": "draw prompts by their running pass rate: retire "
                             "solved ones, revisit failed ones less often; see tinyr1.training.curriculum"})
    curriculum_min_groups: int = field(default=2, metadata={"help": "with curriculum: groups in a row all right "
                                       "(or all wrong) that make a prompt solved (or failed)"})
    curriculum_revisit: float = field(default=0.25, metadata={"help": "with curriculum: the weight of a failed "
                                      "prompt against 1 for the others"})
    curriculum_level_threshold: float = field(default=0.75, metadata={"help": "with curriculum_levels: the share of "
                                              "right completions at the newest open level that opens the next"})
    curriculum_level_window: int = field(default=32, metadata={"help": "with curriculum_levels: the groups at the "
                                         "newest open level that share is taken over"})


@dataclass
class SFTFields(RunFolderFields):
    """tinyr1's SFT trainer fields: the run folder's."""


@dataclass
class GRPOScriptArguments:
    """What ``tinyr1 train`` does around the trainer: the data source, the rewards by name, the before/after story."""

    dataset_name: str = field(default="openai/gsm8k", metadata={"help": "hub id, local folder/file, "
                              "modelscope/gsm8k or reasoning-gym:<name> (see tinyr1 prepare --help)"})
    dataset_split: str = field(default="train", metadata={"help": "split to train on"})
    dataset_limit: int | None = field(default=None, metadata={"help": "use the first N rows (reasoning-gym: "
                                      "generate N, default 1000)"})
    dataset_seed: int = field(default=0, metadata={"help": "seed for reasoning-gym generation"})
    dataset_options: list[str] | None = field(default=None, metadata={"help": "reasoning-gym generator options as "
                                              "key=value (a mapping in YAML), e.g. min_terms=2 max_terms=3"})
    skip_bad_rows: bool = field(default=False, metadata={"help": "skip rows without '#### <gold>' instead of "
                                "stopping"})
    reward_funcs: list[str] = field(default_factory=lambda: list(DEFAULT_REWARDS), metadata={
        "help": "reward registry names or package.module:function, in order (weights: --reward_weights)"})
    system_prompt: str = field(default=SYSTEM_PROMPT, metadata={"help": "system prompt (default: the recipe's)"})
    max_prompt_tokens: int = field(default=256, metadata={"help": "drop prompts longer than this many tokens "
                                   "(trl 1.x no longer truncates prompts); the count dropped is printed"})
    curriculum_levels: list[str] | None = field(default=None, metadata={"help": "with curriculum and a "
                                                "reasoning-gym source: a difficulty schedule, one set of generator "
                                                "options a level (each over dataset_options), e.g. 'max_terms=3' "
                                                "'min_terms=3 max_terms=4'; dataset_limit prompts a level"})
    eval_before_after: bool = field(default=False, metadata={"help": "evaluate on the test split before and "
                                    "after training, compare, and write report.md"})
    eval_limit: int = field(default=200, metadata={"help": "questions for the before/after evaluation"})
    eval_split: str = field(default="test", metadata={"help": "split for the before/after evaluation"})
    eval_max_new_tokens: int = field(default=256, metadata={"help": "generation length for evaluation"})
    force_fp16: bool = field(default=False, metadata={"help": "allow fp16 with Qwen2-family models (it overflows)"})
    merge_lora: bool = field(default=False, metadata={"help": "with --use_peft, also save a merged model in "
                             "output_dir/merged"})
    num_threads: int | None = field(default=None, metadata={"help": "CPU threads (default: $OMP_NUM_THREADS, "
                                                                   "else the cores this process may use)"})


@dataclass
class SFTScriptArguments:
    """What ``tinyr1 sft`` does around the trainer: the data source and its format, the backend, the sample."""

    dataset_name: str = field(default="yahma/alpaca-cleaned", metadata={"help": "hub id, local json/jsonl/parquet "
                              "file or folder, or any tinyr1 prepare source (reasoning format)"})
    dataset_format: str = field(default="alpaca", metadata={"help": "alpaca | reasoning | messages"})
    dataset_split: str = field(default="train", metadata={"help": "split to train on"})
    dataset_limit: int | None = field(default=None, metadata={"help": "use the first N rows"})
    dataset_seed: int = field(default=0, metadata={"help": "seed for reasoning-gym generation"})
    dataset_options: list[str] | None = field(default=None, metadata={"help": "reasoning-gym generator options as "
                                              "key=value (a mapping in YAML), e.g. min_terms=2 max_terms=3"})
    alpaca_as_chat: bool = field(default=False, metadata={"help": "render alpaca rows as chat turns with the "
                                 "model's chat template instead of the ### Instruction template"})
    system_prompt: str = field(default=SYSTEM_PROMPT, metadata={"help": "system prompt for --dataset_format "
                               "reasoning (default: the GRPO recipe's)"})
    backend: str = field(default="transformers", metadata={"help": "transformers (CPU or GPU); unsloth was dropped "
                                                                    "(docs/sft.md#unsloth)"})
    merge_lora: bool = field(default=False, metadata={"help": "also save a merged full model in output_dir/merged"})
    num_threads: int | None = field(default=None, metadata={"help": "CPU threads (default: $OMP_NUM_THREADS, "
                                                                   "else the cores this process may use)"})
    sample_prompt: str = field(default="Xiao Ming bought 4 apples, ate 1, and gave 1 to his sister. How many apples "
                               "were left?", metadata={"help": "asked of the fine-tuned model at the end"})
