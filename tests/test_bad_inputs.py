"""Bad input, as a hostile new user would type it, through the real CLI entry (``tinyr1.cli.main``).

Every case must: exit 2; print exactly one line on stderr naming the file or field; never a traceback; leave the
user's own files untouched; and fail *before* any model loads (``models.load_model`` is replaced by a tripwire, so
each case costs milliseconds). A few cases also run as real subprocesses to prove the installed entry point.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tinyr1.cli import main
from tinyr1.models import loading as models

from .conftest import ASSETS, REPO

TINY = str(ASSETS / "tiny-qwen2")
ALPACA = str(ASSETS / "alpaca_tiny.json")


class ModelLoaded(BaseException):
    """Raised by the tripwire: validation should have failed before any model loaded."""


def write(path: Path, content: str | bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return str(path)


def good_row(question="q", gold="1"):
    return json.dumps({"question": question, "answer": f"w #### {gold}"})


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    """Bad files and a user's folder full of their own files, made once."""
    root = tmp_path_factory.mktemp("bad")
    user = root / "user"
    for name, text in {"README.md": "# mine\n", "config.yaml": "mine: true\n", "data.csv": "a,b\n",
                       "sub/notes.txt": "notes\n", "metrics.json": '{"mine": 1}\n',
                       "data.jsonl": good_row() + "\n"}.items():
        write(user / name, text)
    ckpt = root / "garbage-ckpt"
    write(ckpt / "trainer_state.json", "not json{")
    damaged = root / "damaged-ckpt"
    write(damaged / "trainer_state.json", '{"global_step": 1}')
    write(damaged / "model.safetensors", b"\x00garbage")
    (root / "empty").mkdir()
    write(root / "trl-run" / "checkpoint-3" / "trainer_state.json", '{"global_step": 3, "log_history": []}')
    sft_run = root / "sft-run"
    write(sft_run / ".tinyr1-run", json.dumps({"command": "sft", "paths": ["run.json"]}))
    write(sft_run / "run.json", "{}")
    for run, paths, foreign in (("run-corrupt", ["metrics.jsonl"], []), ("run-plots", ["metrics.jsonl"], []),
                                ("run-latin1", ["metrics.jsonl"], []), ("theirs", ["metrics.jsonl"], ["report.md"]),
                                ("run-eval", ["run.json"], [])):
        # tinyr1 train runs (their marker), one holding a report.md of the user's
        write(root / run / ".tinyr1-run", json.dumps({"command": "train", "paths": paths, "foreign": foreign}))
    prompt_row = {"prompt": "What is 1 + 1?", "answer": "2"}
    return {
        "root": str(root), "user": str(user), "empty": str(root / "empty"), "ckpt": str(ckpt),
        "damaged": str(damaged), "sft_run": str(sft_run), "trl_run": str(root / "trl-run"),
        "afile": write(root / "afile.txt", "a file\n"),
        "latin1": write(root / "latin1.jsonl", '{"question": "caf\xe9", "answer": "#### 1"}\n'.encode("latin-1")),
        "corrupt": write(root / "corrupt.jsonl", good_row() + "\n{broken\n" + good_row() + "\n"),
        "str_prompt": write(root / "str_prompt.jsonl", json.dumps(prompt_row) + "\n"),
        "int_question": write(root / "int_question.jsonl", json.dumps({"question": 5, "answer": "#### 1"}) + "\n"),
        "null_answer": write(root / "null_answer.jsonl", json.dumps({"question": "q", "answer": None}) + "\n"),
        "msg_strings": write(root / "msg_strings.jsonl", json.dumps({"messages": ["hi", "hello"]}) + "\n"),
        "alpaca_list": write(root / "alpaca_list.jsonl", json.dumps({"instruction": ["x"], "output": "y"}) + "\n"),
        "null_completion": write(root / "null_completion.jsonl",
                                 json.dumps({"question": "q", "answer": "1", "completion": None}) + "\n"),
        "json_dict": write(root / "dict.json", '{"question": "q",\n "answer": "#### 1"}\n'),
        "yaml_abc": write(root / "abc.yaml", "num_generations: abc\n"),
        "yaml_neg": write(root / "neg.yaml", "max_steps: -5\n"),
        "yaml_list": write(root / "list.yaml", "learning_rate: [1, 2]\n"),
        "yaml_bool": write(root / "bool.yaml", "learning_rate: true\n"),
        "yaml_null": write(root / "null.yaml", "learning_rate:\n"),
        "yaml_half": write(root / "half.yaml", "per_device_train_batch_size: 1.5\n"),
        "yaml_choice": write(root / "choice.yaml", "lr_scheduler_type: sideways\n"),
        "yaml_latin1": write(root / "latin1.yaml", "system_prompt: caf\xe9\n".encode("latin-1")),
        "yaml_typo": write(root / "typo.yaml", "learnig_rate: 1\n"),
        "yaml_alias": write(root / "alias.yaml", "epochs: 2\n"),
        "yaml_env": write(root / "env.yaml", "env: [1, 2]\n"),
        "yaml_env_zero": write(root / "env_zero.yaml", "env:\n  OMP_NUM_THREADS: 0\n"),
        "yaml_env_name": write(root / "env_name.yaml", "env:\n  A=B: 1\n"),
        "yaml_env_nested": write(root / "env_nested.yaml", "env:\n  A: {b: 1}\n"),
        "yaml_sft_bad": write(root / "sft.yaml", "max_length: zero\n"),
        "metrics_corrupt": write(root / "run-corrupt" / "metrics.jsonl", '{"step": 1}\n{bad\n{"step": 3}\n'),
        "plots_file": write(root / "run-plots" / "plots", "a file where report wants a folder\n"),
        "plots_metrics": write(root / "run-plots" / "metrics.jsonl", '{"step": 1, "loss": 1.0}\n'),
        "theirs_metrics": write(root / "theirs" / "metrics.jsonl", '{"step": 1, "loss": 1.0}\n'),
        "theirs_report": write(root / "theirs" / "report.md", "# my own report\n"),
        "user_metrics": str(Path(write(root / "mine-metrics" / "metrics.jsonl", '{"step": 1, "loss": 1.0}\n')).parent),
        "run_eval": str(Path(write(root / "run-eval" / "run.json", "{}")).parent),
        "metrics_latin1": write(root / "run-latin1" / "metrics.jsonl", b'{"step": 1, "x": "\xe9"}\n'),
    }


TRAIN = ["train", "--model_name_or_path", TINY, "--dataset_name", "{gsm8k}", "--output_dir", "{out}",
         "--max_steps", "1"]
SFT = ["sft", "--model_name_or_path", TINY, "--dataset_name", ALPACA, "--output_dir", "{out}", "--max_steps", "1"]
EVAL = ["eval", "--model_name_or_path", TINY, "--dataset_name", "{gsm8k}", "--output_dir", "{out}"]
GEN = ["generate", "--model_name_or_path", TINY, "--prompt", "hi"]
CMP = ["compare", "--base", TINY, "--trained", TINY]

# (id, argv, what the one line on stderr must contain)
CASES = [
    # prepare
    ("prepare-output-empty", ["prepare", "--dataset_name", "{gsm8k}", "--output", ""], "--output: empty"),
    ("prepare-output-dir", ["prepare", "--dataset_name", "{gsm8k}", "--output", "{user}"], "is a folder"),
    ("prepare-output-under-file", ["prepare", "--dataset_name", "{gsm8k}", "--output", "{afile}/x.jsonl"],
     "afile.txt is a file, not a folder"),
    ("prepare-output-unwritable", ["prepare", "--dataset_name", "{gsm8k}", "--output", "/proc/tinyr1/x.jsonl"],
     "cannot write in /proc"),
    ("prepare-not-utf8", ["prepare", "--dataset_name", "{latin1}", "--output", "{out}/o.jsonl"],
     "latin1.jsonl: not UTF-8 text"),
    ("prepare-limit-0", ["prepare", "--dataset_name", "{gsm8k}", "--output", "{out}/o", "--limit", "0"],
     "--limit 0: must be at least 1"),
    ("prepare-limit-negative", ["prepare", "--dataset_name", "{gsm8k}", "--output", "{out}/o", "--limit", "-1"],
     "--limit -1: must be at least 1"),
    ("prepare-limit-abc", ["prepare", "--dataset_name", "{gsm8k}", "--output", "{out}/o", "--limit", "abc"],
     "--limit: invalid int value: 'abc'"),
    ("prepare-no-output", ["prepare", "--dataset_name", "{gsm8k}"], "required: --output"),
    ("prepare-unknown-flag", ["prepare", "--output", "{out}/o", "--bogus", "1"], "unrecognized arguments: --bogus"),
    ("prepare-missing-data", ["prepare", "--dataset_name", "./nope.jsonl", "--output", "{out}/o"],
     "./nope.jsonl: no such file or folder"),
    ("prepare-corrupt-middle-line", ["prepare", "--dataset_name", "{corrupt}", "--output", "{out}/o"],
     "corrupt.jsonl line 2: not valid JSON"),
    ("prepare-prompt-is-a-string", ["prepare", "--dataset_name", "{str_prompt}", "--output", "{out}/o"],
     "line 1: prompt must be a list of chat turns like [{\"role\": \"user\", \"content\": \"...\"}], got str"),
    ("prepare-question-not-text", ["prepare", "--dataset_name", "{int_question}", "--output", "{out}/o"],
     "line 1: question must be text"),
    ("prepare-answer-null", ["prepare", "--dataset_name", "{null_answer}", "--output", "{out}/o"],
     "answer must not be null"),
    ("prepare-output-is-input", ["prepare", "--dataset_name", "{user}/data.jsonl", "--output", "{user}/data.jsonl"],
     "is the input file"),
    ("prepare-dataset-empty", ["prepare", "--dataset_name", "", "--output", "{out}/o"], "dataset_name is empty"),
    ("prepare-json-object", ["prepare", "--dataset_name", "{json_dict}", "--output", "{out}/o"],
     "dict.json line 1: not valid JSON"),
    # train: ranges (flags)
    ("train-max-steps-negative", [*TRAIN, "--max_steps", "-5"], "--max_steps -5: must be -1"),
    ("train-max-steps-0", [*TRAIN, "--max_steps", "0"], "--max_steps 0: must be -1"),
    ("train-num-generations-0", [*TRAIN, "--num_generations", "0"], "--num_generations 0: must be at least 2"),
    ("train-num-generations-1", [*TRAIN, "--num_generations", "1"], "--num_generations 1: must be at least 2"),
    ("train-completion-length-0", [*TRAIN, "--max_completion_length", "0"], "--max_completion_length 0"),
    ("train-temperature-negative", [*TRAIN, "--temperature", "-1"], "--temperature -1.0: must be greater than 0"),
    ("train-temperature-0", [*TRAIN, "--temperature", "0"], "--temperature 0.0: must be greater than 0"),
    ("train-learning-rate-negative", [*TRAIN, "--learning_rate", "-1"], "--learning_rate -1.0: must be greater"),
    ("train-learning-rate-abc", [*TRAIN, "--learning_rate", "abc"], "--learning_rate: invalid float value: 'abc'"),
    ("train-batch-0", [*TRAIN, "--per_device_train_batch_size", "0"], "--per_device_train_batch_size 0"),
    ("train-accumulation-0", [*TRAIN, "--gradient_accumulation_steps", "0"], "--gradient_accumulation_steps 0"),
    ("train-dataset-limit-negative", [*TRAIN, "--dataset_limit", "-1"], "--dataset_limit -1: must be at least 1"),
    ("train-eval-limit-0", [*TRAIN, "--eval_limit", "0"], "--eval_limit 0: must be at least 1"),
    ("train-prompt-tokens-0", [*TRAIN, "--max_prompt_tokens", "0"], "--max_prompt_tokens 0"),
    ("train-eval-tokens-0", [*TRAIN, "--eval_max_new_tokens", "0"], "--eval_max_new_tokens 0"),
    ("train-learning-rate-nan", [*TRAIN, "--learning_rate", "nan"], "--learning_rate nan: must be a finite number"),
    ("train-steps-float", [*TRAIN, "--max_steps", "1e3"], "--max_steps: invalid int value"),
    ("train-save-strategy", [*TRAIN, "--save_strategy", "sometimes"], "--save_strategy: invalid choice"),
    ("train-epochs-0", [*TRAIN, "--num_train_epochs", "0"], "--num_train_epochs 0.0: must be greater than 0"),
    ("train-save-steps-0", [*TRAIN, "--save_steps", "0"], "--save_steps 0.0"),
    ("train-beta-negative", [*TRAIN, "--beta", "-1"], "--beta -1.0: must be 0 or more"),
    ("train-minutes-0", [*TRAIN, "--max_train_minutes", "0"], "--max_train_minutes 0.0"),
    ("train-sample-every-negative", [*TRAIN, "--sample_every", "-1"], "--sample_every -1"),
    # The recipe starts from its cold start, which this folder has not trained: named before anything loads.
    ("train-cold-start-missing", ["train", "--config", str(REPO / "recipes/smollm2-135m-instruct/grpo-arith-cpu.yaml"),
                                  "--output_dir", "{out}"],
     "model_name_or_path outputs/smollm2-135m-instruct-sft-arith-coldstart: not trained yet; it is what tinyr1 sft "
     f"--config {REPO}/recipes/smollm2-135m-instruct/sft-arith-coldstart-cpu.yaml writes"),
    ("report-trl-run-in-place", ["report", "{trl_run}"], "a trl run (checkpoint-3/trainer_state.json), not a tinyr1 "
     "run; tinyr1 writes nothing into it: give --output_dir NEW_FOLDER"),
    ("train-degenerate-2", [*TRAIN, "--degenerate_threshold", "2"], "--degenerate_threshold 2.0"),
    ("train-bool-maybe", [*TRAIN, "--bf16", "maybe"], "--bf16: Truthy value expected: got maybe"),
    ("train-choice", [*TRAIN, "--lr_scheduler_type", "sideways"], "--lr_scheduler_type: invalid choice"),
    ("train-generation-weights", [*TRAIN, "--cpu_generation_weights", "int4"],
     "--cpu_generation_weights: invalid choice"),
    ("train-int-given-float", [*TRAIN, "--num_generations", "2.5"], "--num_generations: invalid int value"),
    ("train-report-to-missing", [*TRAIN, "--report_to", "mlflow"], "--report_to mlflow: the mlflow package is not"),
    ("train-eval-strategy", [*TRAIN, "--eval_strategy", "steps"], "invalid configuration: The global eval batch"),
    ("sft-eval-strategy", [*SFT, "--eval_strategy", "epoch"], "--eval_strategy epoch"),
    ("train-reward-weights", [*TRAIN, "--reward_weights", "1", "2", "3", "4", "5", "6"], "reward_weights: 6 weights"),
    # train: every count bounded; an option of a feature that is off is refused, naming the flag that turns it on
    ("train-refill-rounds-huge", [*TRAIN, "--dynamic_sampling", "true", "--dynamic_sampling_max_rounds", "1000"],
     "--dynamic_sampling_max_rounds 1000: must be between 0 and 100"),
    ("train-level-window-huge", [*TRAIN, "--curriculum_level_window", "1000000"],
     "--curriculum_level_window 1000000: must be between 1 and 10,000"),
    ("train-refill-rounds-without-the-feature", [*TRAIN, "--dynamic_sampling_max_rounds", "5"],
     "dynamic_sampling_max_rounds 5: an option of dynamic_sampling, which is off, so it would do nothing; turn it "
     "on with --dynamic_sampling true"),
    ("train-curriculum-option-without-the-feature", [*TRAIN, "--curriculum_min_groups", "3"],
     "curriculum_min_groups 3: an option of curriculum, which is off"),
    ("train-level-window-without-levels", [*TRAIN, "--curriculum", "true", "--curriculum_level_window", "8",
                                           "--reward_funcs", "correctness"],
     "curriculum_level_window 8: an option of curriculum_levels, which is off"),
    ("train-merge-lora-without-lora", [*TRAIN, "--merge_lora", "true"], "merge_lora true: merges a LoRA adapter"),
    # train: the YAML file is named, not a flag
    ("train-yaml-type", [*TRAIN, "--config", "{yaml_abc}"], "abc.yaml: num_generations: 'abc' is not a valid int"),
    ("train-yaml-range", [*TRAIN[:-2], "--config", "{yaml_neg}"], "neg.yaml: max_steps -5: must be -1"),
    ("train-yaml-list", [*TRAIN, "--config", "{yaml_list}"], "list.yaml: learning_rate: expected one value"),
    ("train-yaml-bool-number", [*TRAIN, "--config", "{yaml_bool}"], "bool.yaml: learning_rate: expected a number"),
    ("train-yaml-null", [*TRAIN, "--config", "{yaml_null}"], "null.yaml: learning_rate: empty (null)"),
    ("train-yaml-half-batch", [*TRAIN, "--config", "{yaml_half}"], "half.yaml: per_device_train_batch_size"),
    ("train-yaml-choice", [*TRAIN, "--config", "{yaml_choice}"], "choice.yaml: lr_scheduler_type: 'sideways'"),
    ("train-yaml-not-utf8", [*TRAIN, "--config", "{yaml_latin1}"], "latin1.yaml: not UTF-8 text"),
    ("train-yaml-typo", [*TRAIN, "--config", "{yaml_typo}"], "did you mean 'learning_rate'?"),
    ("train-yaml-env", [*TRAIN, "--config", "{yaml_env}"], "env.yaml: env must be a mapping"),
    ("train-yaml-env-threads-0", [*TRAIN, "--config", "{yaml_env_zero}"],
     "env_zero.yaml: env: OMP_NUM_THREADS 0: must be a whole number of at least 1"),
    ("train-yaml-env-name", [*TRAIN, "--config", "{yaml_env_name}"], "env: 'A=B' is not an environment variable"),
    ("train-yaml-env-nested", [*TRAIN, "--config", "{yaml_env_nested}"], "env: A: expected text or a number"),
    ("train-yaml-missing", [*TRAIN, "--config", "{root}/none.yaml"], "none.yaml: no such file"),
    ("train-config-no-path", [*TRAIN, "--config"], "--config needs a path"),
    # train: the output folder
    ("train-user-folder", [*TRAIN, "--output_dir", "{user}"], "not empty and not a tinyr1 run"),
    ("train-user-folder-overwrite", [*TRAIN, "--output_dir", "{user}", "--overwrite_output_dir", "true"],
     "not empty and not a tinyr1 run"),
    ("train-user-folder-resume", [*TRAIN, "--output_dir", "{user}", "--resume_from_checkpoint", "latest"],
     "not empty and not a tinyr1 run"),
    ("train-output-is-file", [*TRAIN, "--output_dir", "{afile}"], "afile.txt: is a file, not a folder"),
    ("train-output-under-file", [*TRAIN, "--output_dir", "{afile}/run"], "is a file, not a folder"),
    ("train-output-unwritable", [*TRAIN, "--output_dir", "/proc/tinyr1-run"], "cannot write in /proc"),
    ("train-output-sft-run", [*TRAIN, "--output_dir", "{sft_run}"], "holds a tinyr1 sft run"),
    # train: data, checkpoints, rewards, models
    ("train-data-not-utf8", [*TRAIN, "--dataset_name", "{latin1}"], "latin1.jsonl: not UTF-8 text"),
    ("train-prompt-is-a-string", [*TRAIN, "--dataset_name", "{str_prompt}"], "prompt must be a list of chat turns"),
    ("train-garbage-checkpoint", [*TRAIN, "--resume_from_checkpoint", "{ckpt}"], "not a complete checkpoint"),
    ("train-damaged-weights", [*TRAIN, "--resume_from_checkpoint", "{damaged}"], "model.safetensors is damaged"),
    ("train-checkpoint-missing", [*TRAIN, "--resume_from_checkpoint", "{root}/nope"], "no such checkpoint folder"),
    ("train-resume-latest-empty", [*TRAIN, "--resume_from_checkpoint", "latest"], "no complete checkpoint-N"),
    ("train-reward-signature", [*TRAIN, "--reward_funcs", "tests.train_helpers:wrong_signature"],
     "wrong_signature failed on a sample call"),
    ("train-reward-returns-number", [*TRAIN, "--reward_funcs", "tests.train_helpers:returns_a_number"],
     "must return a list with one float"),
    ("train-reward-import", [*TRAIN, "--reward_funcs", "no_such_module:f"], "cannot import 'no_such_module:f'"),
    ("train-reward-import-fix", [*TRAIN, "--reward_funcs", "no_such_module:f"],
     "run tinyr1 from the folder that holds no_such_module/ or no_such_module.py"),
    ("train-reward-unknown", [*TRAIN, "--reward_funcs", "nope"], "unknown reward 'nope'"),
    ("train-reward-empty-module", [*TRAIN, "--reward_funcs", ":"], "reward_funcs: cannot import ':'"),
    ("train-model-missing", [*TRAIN, "--model_name_or_path", "./no-model"], "model path ./no-model does not exist"),
    ("train-model-empty-folder", [*TRAIN, "--model_name_or_path", "{empty}"], "not a model folder"),
    ("train-unknown-flag", [*TRAIN, "--learnig_rate", "1"], "unknown flag; did you mean --learning_rate?"),
    ("train-flag-model", [*TRAIN, "--model", "x"], "--model: unknown flag; did you mean --model_name_or_path?"),
    ("train-flag-dataset", [*TRAIN, "--dataset", "x"], "did you mean --dataset_name?"),
    ("train-flag-batch-size", [*TRAIN, "--batch_size", "2"], "did you mean --per_device_train_batch_size?"),
    ("train-flag-prompt-length", [*TRAIN, "--max_prompt_length", "9"], "did you mean --max_prompt_tokens?"),
    ("train-flag-max-length", [*TRAIN, "--max_length", "9"], "did you mean --max_completion_length?"),
    ("train-flag-lr", [*TRAIN, "--lr", "1e-5"], "--lr: unknown flag; did you mean --learning_rate?"),
    ("train-flag-lora", [*TRAIN, "--lora", "true"], "did you mean --use_peft?"),
    ("train-yaml-alias", [*TRAIN, "--config", "{yaml_alias}"], "alias.yaml: unknown key 'epochs'; did you mean "
     "'num_train_epochs'?"),
    ("train-beyond-context", [*TRAIN, "--max_completion_length", "3000"], "--max_completion_length 3000 (with "
     "--max_prompt_tokens 256: 3,256 tokens): beyond the 2,048-token context of"),
    ("train-eval-beyond-context", [*TRAIN, "--eval_before_after", "true", "--eval_max_new_tokens", "4096"],
     "--eval_max_new_tokens 4096: beyond the 2,048-token context"),
    ("train-missing-data", [*TRAIN, "--dataset_name", "./no-such-data"], "./no-such-data: no such file or folder"),
    # sft
    ("sft-dataset-limit-negative", [*SFT, "--dataset_limit", "-1"], "--dataset_limit -1: must be at least 1"),
    ("sft-dataset-limit-0", [*SFT, "--dataset_limit", "0"], "--dataset_limit 0"),
    ("sft-learning-rate-negative", [*SFT, "--learning_rate", "-1"], "--learning_rate -1.0"),
    ("sft-max-length-0", [*SFT, "--max_length", "0"], "--max_length 0"),
    ("sft-batch-0", [*SFT, "--per_device_train_batch_size", "0"], "--per_device_train_batch_size 0"),
    ("sft-epochs-negative", [*SFT, "--num_train_epochs", "-1"], "--num_train_epochs -1.0"),
    ("sft-lora-r-0", [*SFT, "--lora_r", "0"], "--lora_r 0"),
    ("sft-learning-rate-abc", [*SFT, "--learning_rate", "abc"], "--learning_rate: invalid float value"),
    ("sft-yaml-type", [*SFT, "--config", "{yaml_sft_bad}"], "sft.yaml: max_length: 'zero' is not a valid int"),
    ("sft-user-folder", [*SFT, "--output_dir", "{user}"], "not empty and not a tinyr1 run"),
    ("sft-user-folder-overwrite", [*SFT, "--output_dir", "{user}", "--overwrite_output_dir", "true"],
     "not empty and not a tinyr1 run"),
    ("sft-output-is-file", [*SFT, "--output_dir", "{afile}"], "is a file, not a folder"),
    ("sft-output-empty", [*SFT, "--output_dir", ""], "--output_dir: empty"),
    ("sft-merge-lora-without-lora", [*SFT, "--use_peft", "false", "--merge_lora", "true"], "add --use_peft true"),
    ("sft-format", [*SFT, "--dataset_format", "csv"], "--dataset_format 'csv'"),
    ("sft-not-utf8", [*SFT, "--dataset_name", "{latin1}"], "latin1.jsonl: not UTF-8 text"),
    ("sft-messages-strings", [*SFT, "--dataset_name", "{msg_strings}", "--dataset_format", "messages"],
     "line 1: messages must be a list of chat turns"),
    ("sft-alpaca-not-text", [*SFT, "--dataset_name", "{alpaca_list}"], "instruction and output must be text"),
    ("sft-unsloth", [*SFT, "--backend", "unsloth"], "backend unsloth was dropped: no Unsloth release installs"),
    ("sft-backend", [*SFT, "--backend", "jax"], "--backend 'jax': use transformers (unsloth was dropped)"),
    ("sft-4bit-no-lora", [*SFT, "--load_in_4bit", "true", "--use_peft", "false"],
     "quantized weights cannot be trained themselves; add --use_peft true"),
    ("sft-8bit-cpu", [*SFT, "--load_in_8bit", "true"], "load_in_8bit needs a CUDA GPU"),
    ("train-4bit-no-lora", [*TRAIN, "--load_in_4bit", "true"],
     "quantized weights cannot be trained themselves; add --use_peft true"),
    ("sft-alpaca-as-messages", [*SFT, "--dataset_format", "messages"], "needs a 'messages' list of chat turns"),
    ("sft-flag-seq-length", [*SFT, "--max_seq_length", "9"], "did you mean --max_length?"),
    ("sft-typo", [*SFT, "--lora_rr", "4"], "--lora_rr: unknown flag; did you mean --lora_r?"),
    ("sft-garbage-checkpoint", [*SFT, "--resume_from_checkpoint", "{ckpt}"], "not a complete checkpoint"),
    # eval
    ("eval-limit-0", [*EVAL, "--limit", "0"], "--limit 0: must be at least 1"),
    ("eval-limit-abc", [*EVAL, "--limit", "abc"], "--limit: invalid int value"),
    ("eval-batch-0", [*EVAL, "--batch_size", "0"], "--batch_size 0"),
    ("eval-max-new-tokens-0", [*EVAL, "--max_new_tokens", "0"], "--max_new_tokens 0"),
    ("eval-output-is-file", [*EVAL[:-1], "{afile}"], "afile.txt is a file, not a folder"),
    ("eval-output-empty", [*EVAL[:-1], ""], "--output_dir: empty"),
    ("eval-output-unwritable", [*EVAL[:-1], "/proc/tinyr1-eval"], "cannot write in /proc"),
    ("eval-null-completion", ["eval", "--predictions", "{null_completion}", "--output_dir", "{out}"],
     "line 1: completion must be text"),
    ("eval-predictions-not-utf8", ["eval", "--predictions", "{latin1}", "--output_dir", "{out}"], "not UTF-8"),
    ("eval-empty-adapter", [*EVAL, "--adapter", "{empty}"], "not a LoRA adapter folder"),
    ("eval-missing-adapter", [*EVAL, "--adapter", "{root}/nope"], "--adapter"),
    ("eval-users-folder", [*EVAL[:-1], "{user}"], "not empty and not a tinyr1 run (no .tinyr1-run)"),
    ("eval-into-a-train-run", [*EVAL[:-1], "{run_eval}"], "holds a tinyr1 train run, not a folder eval writes"),
    ("eval-dtype", [*EVAL, "--dtype", "float8"], "--dtype: invalid choice"),
    ("eval-adapter-is-file", [*EVAL, "--adapter", "{afile}"], "--adapter"),
    ("eval-beyond-context", [*EVAL, "--max_new_tokens", "4096"], "--max_new_tokens 4096: beyond the 2,048-token"),
    ("eval-no-model", ["eval", "--output_dir", "{out}"], "give --model_name_or_path"),
    # compare, generate, report, doctor, the dispatcher
    ("compare-output-dir", [*CMP, "--output", "{user}"], "is a folder"),
    ("compare-output-empty", [*CMP, "--output", ""], "--output: empty"),
    ("compare-output-under-file", [*CMP, "--output", "{afile}/c.md"], "is a file, not a folder"),
    ("compare-max-new-tokens-0", [*CMP, "--max_new_tokens", "0"], "--max_new_tokens 0"),
    ("compare-beyond-context", [*CMP, "--max_new_tokens", "5000"], "--max_new_tokens 5000: beyond the 2,048-token"),
    ("compare-missing-model", ["compare", "--base", TINY, "--trained", "./no-model"], "./no-model does not exist"),
    ("generate-temperature-negative", [*GEN, "--temperature", "-1"], "--temperature -1.0: must be 0 or more"),
    ("generate-temperature-abc", [*GEN, "--temperature", "abc"], "--temperature: invalid float value"),
    ("generate-max-new-tokens-0", [*GEN, "--max_new_tokens", "0"], "--max_new_tokens 0"),
    ("generate-beyond-context", [*GEN, "--max_new_tokens", "5000"], "lower --max_new_tokens to at most 2,048"),
    ("generate-empty-adapter", [*GEN, "--adapter", "{empty}"], "not a LoRA adapter folder"),
    ("report-no-folder", ["report", "{root}/nope"], "no such run folder"),
    ("report-not-a-run", ["report", "{user}"], "user: not empty and not a tinyr1 run (no .tinyr1-run)"),
    ("report-users-metrics", ["report", "{user_metrics}"], "mine-metrics: not empty and not a tinyr1 run"),
    ("report-empty-folder", ["report", "{empty}"], "no metrics.jsonl or run.json"),
    ("report-users-report", ["report", "{root}/theirs"], "report.md: not a report tinyr1 wrote"),
    ("report-plots-is-a-file", ["report", "{root}/run-plots"], "is a file, not a folder"),
    ("report-not-utf8", ["report", "{root}/run-latin1"], "metrics.jsonl: not UTF-8 text"),
    ("doctor-missing-config", ["doctor", "--config", "{root}/none.yaml"], "none.yaml: no such file"),
    ("doctor-yaml-type", ["doctor", "--config", "{yaml_abc}"], "abc.yaml: num_generations: 'abc'"),
    ("doctor-sft-recipe-as-sft", ["doctor", "--command", "sft", "--config", "{yaml_sft_bad}"], "sft.yaml: max_length"),
    ("doctor-command", ["doctor", "--command", "grpo"], "--command: invalid choice"),
    ("cli-unknown-command", ["trian"], "unknown command 'trian'"),
]


def snapshot(world: dict) -> dict:
    """Bytes and modification times of every file of the user's (their folder, and their own report)."""
    folders = [Path(world["user"]), Path(world["root"]) / "theirs"]
    return {str(p): (p.read_bytes(), p.stat().st_mtime_ns) for folder in folders for p in folder.rglob("*")
            if p.is_file()}


@pytest.mark.parametrize("argv,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_exit_2(world, gsm8k_dir, tmp_path, monkeypatch, capsys, argv, expected):
    def tripwire(*args, **kwargs):
        raise ModelLoaded("a model loaded before the bad input was reported")

    monkeypatch.setattr(models, "load_model", tripwire)
    monkeypatch.chdir(tmp_path)  # default output folders land here, not in the repository
    monkeypatch.syspath_prepend(str(REPO))  # custom rewards: tests.train_helpers:...
    names = {**world, "gsm8k": str(gsm8k_dir), "out": str(tmp_path / "out")}
    before = snapshot(world)
    try:
        code = main([a.format(**names) for a in argv])
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1, err
    assert expected in lines[0] and "Traceback" not in err
    assert snapshot(world) == before, "a file of the user's was touched"


def test_report_skips_malformed_metrics_rows_and_says_how_many(tmp_path, capsys):
    run = tmp_path / "run"
    rows = ['{"step": 1, "loss": 0.5, "reward": 1}', "[1, 2]", '{"step": "x", "loss": 1}', "{broken",
            '{"step": 2, "loss": 0.5, "reward": "x"}', '{"step": 3, "loss": 0.5, "reward": 1e308}',
            '{"step": 4, "loss": 0.5, "reward": -1e308}', '{"loss": 1}']
    write(run / "metrics.jsonl", "\n".join(rows) + "\n")
    write(run / "run.json", json.dumps({"command": "train", "status": "completed", "versions": {"tinyr1": "x"}}))
    write(run / "eval" / "after" / "metrics.json", '{"n": "x", "accuracy_strict": "y"}')
    write(run / "eval" / "after" / "samples.jsonl", '{"question": 1}\n')
    write(run / "samples.jsonl", '{"step": 1, "question": ["q"]}\n5\n')
    assert main(["report", str(run)]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and "metrics.jsonl: 5 malformed row(s) skipped" in err
    assert "tinyr1 run report" in (run / "report.md").read_text()


@pytest.mark.parametrize("argv", [TRAIN, EVAL], ids=["train", "eval"])
def test_bad_keep_freed_memory_value_is_one_line_and_exit_2(gsm8k_dir, tmp_path, monkeypatch, capsys, argv):
    """TINYR1_KEEP_FREED_MEMORY (tinyr1.infra.device) is read before the run's folder is made or a model loads."""
    monkeypatch.setenv("TINYR1_KEEP_FREED_MEMORY", "yes")
    monkeypatch.chdir(tmp_path)
    code = main([a.format(gsm8k=str(gsm8k_dir), out=str(tmp_path / "out")) for a in argv])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    assert "TINYR1_KEEP_FREED_MEMORY='yes': use 1" in lines[0] and "Traceback" not in err
    assert not (tmp_path / "out").exists()


SUBPROCESS_CASES = ["train-max-steps-negative", "train-yaml-type", "train-user-folder-overwrite",
                    "prepare-not-utf8", "generate-temperature-negative"]


@pytest.mark.parametrize("case", SUBPROCESS_CASES)
def test_the_real_command_line_agrees(world, gsm8k_dir, tmp_path, cli, case):
    argv, expected = next(c[1:] for c in CASES if c[0] == case)
    names = {**world, "gsm8k": str(gsm8k_dir), "out": str(tmp_path / "out")}
    before = snapshot(world)
    result = cli(*[a.format(**names) for a in argv], cwd=REPO,
                 env={"PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])})
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert expected in lines[0] and "Traceback" not in result.stderr
    assert snapshot(world) == before


@pytest.mark.parametrize("argv", [GEN, [*EVAL, "--limit", "1"], CMP], ids=["generate", "eval", "compare"])
def test_good_input_reaches_the_tripwire(gsm8k_dir, tmp_path, monkeypatch, argv):
    """The tripwire the cases rely on does catch a model load: the same commands with good input reach it, so a
    bad-input case whose check went missing fails as 'a model loaded' instead of passing unnoticed."""
    def tripwire(*args, **kwargs):
        raise ModelLoaded("loaded")

    monkeypatch.setattr(models, "load_model", tripwire)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelLoaded):
        main([a.format(gsm8k=str(gsm8k_dir), out=str(tmp_path / "out")) for a in argv])


def test_every_command_has_bad_input_cases():
    from tinyr1.cli import COMMANDS

    assert len({c[0] for c in CASES}) == len(CASES), "two cases share an id"
    assert set(COMMANDS) <= {c[1][0] for c in CASES}, "a tinyr1 command has no bad-input case"


API_CASES = [
    ("train-model-object", lambda t: t.train(model=42), "tinyr1.train(model=...): expected a model name or path"),
    ("train-model-name", lambda t: t.train(model_name_or_path=42), "tinyr1.train(model_name_or_path=42): expected "
     "text, got int"),
    ("sft-model-name", lambda t: t.sft(model_name_or_path=42), "tinyr1.sft(model_name_or_path=42): expected text"),
    ("evaluate-model", lambda t: t.evaluate(42), "tinyr1.evaluate(model_name_or_path=42): expected text"),
    ("compare-model", lambda t: t.compare(42, TINY), "tinyr1.compare(base=42): expected text"),
    ("generate-model", lambda t: t.generate(42, "hi"), "tinyr1.generate(model_name_or_path=42): expected text"),
    ("report-run", lambda t: t.report(42), "tinyr1.report(run=42): expected a Run"),
    ("prepare-source", lambda t: t.prepare(42, output="x.jsonl"), "tinyr1.prepare(dataset_name=42): expected text"),
]


@pytest.mark.parametrize("call,expected", [c[1:] for c in API_CASES], ids=[c[0] for c in API_CASES])
def test_the_python_api_names_the_argument(tmp_path, monkeypatch, call, expected):
    import tinyr1

    def tripwire(*args, **kwargs):
        raise ModelLoaded("a model loaded before the bad argument was reported")

    monkeypatch.setattr(models, "load_model", tripwire)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(tinyr1.TinyR1Error) as raised:
        call(tinyr1)
    assert expected in str(raised.value) and "\n" not in str(raised.value)
