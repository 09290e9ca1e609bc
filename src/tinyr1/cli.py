"""The ``tinyr1`` command: dispatches ``tinyr1 <command> [options]`` to one module per pipeline stage.

Each command module exposes ``main(argv: list[str] | None) -> int`` and owns its own option parser, so
``tinyr1 <command> --help`` documents every option. Modules are imported only when their command runs,
so ``tinyr1 prepare`` does not pay for importing torch and trl.

    tinyr1 --help
    tinyr1 prepare --dataset_name ../shared/data/gsm8k --split train --output train.jsonl
"""

from __future__ import annotations

import importlib
import os
import sys

from tinyr1.infra.errors import TinyR1Error
from tinyr1.infra.log import cli_output
from tinyr1.infra.naming import CLI, speaking
from tinyr1.infra.quiet import quiet_dependencies
from tinyr1.infra.threads import openmp_defaults
from tinyr1.infra.version import __version__

# command -> (its module in tinyr1.commands, one-line summary), in pipeline order.
COMMANDS: dict[str, tuple[str, str]] = {
    "prepare": ("prepare", "Load GSM8K (hub, ModelScope, local files) or reasoning-gym data into prompt rows."),
    "train": ("train", "GRPO training with trl from a YAML recipe plus --field overrides."),
    "eval": ("evaluate", "Accuracy (strict and flexible) and format compliance on a test split."),
    "compare": ("compare", "Ask the same questions of two models and show the answers side by side."),
    "report": ("report", "Plots and a Markdown/HTML report for a training run directory."),
    "sft": ("sft", "LoRA/QLoRA supervised fine-tuning (alpaca, reasoning cold start, chat messages)."),
    "generate": ("generate", "Chat with a model: one prompt or an interactive loop, streamed."),
    "doctor": ("doctor", "Pre-flight check: versions, hardware, model, data, memory, a finite generation."),
}


def _usage() -> str:
    lines = [
        f"tinyr1 {__version__}: reproduce DeepSeek-R1-style GRPO reasoning training on small models.",
        "",
        "usage: tinyr1 <command> [options]     (tinyr1 <command> --help for its options)",
        "",
        "commands:",
    ]
    lines += [f"  {name:<9} {summary}" for name, (_, summary) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    try:
        return _dispatch(list(sys.argv[1:] if argv is None else argv))
    except BrokenPipeError:  # `tinyr1 --help | head -1`: the reader left; that is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the exit's flush must not fail again
        return 0


def _dispatch(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        print(f"tinyr1 {__version__}")
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"tinyr1: error: unknown command {command!r}; choose one of: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2

    os.environ.update(openmp_defaults())  # before torch loads libgomp, which reads it once
    # trl sends a usage ping per trainer (its class, the model type, the GPU's name) unless this is set; the command
    # turns it off unless the user set it, before huggingface_hub reads it (docs/troubleshooting.md#telemetry).
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    quiet_dependencies()
    try:
        with cli_output(), speaking(CLI):  # the library's lines printed as they are; settings named as flags
            module = importlib.import_module(f"tinyr1.commands.{COMMANDS[command][0]}")
            return int(module.main(rest) or 0)
    except TinyR1Error as err:
        print(f"tinyr1 {command}: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"tinyr1 {command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
