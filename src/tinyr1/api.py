"""The Python API: every stage ``tinyr1 <command>`` runs, called from Python or a notebook.

    import tinyr1
    run = tinyr1.train("recipes/smollm2-135m-instruct/grpo-arith-cpu.yaml", max_steps=20, output_dir="runs/a")
    run.status, run.output_dir, run.model_path, run.metrics      # metrics: metrics.jsonl's rows, as logged
    base = tinyr1.evaluate("smollm2-135m-instruct", dataset_name="reasoning-gym:chain_sum", limit=32)
    after = tinyr1.evaluate(run.model_path, dataset_name="reasoning-gym:chain_sum", limit=32)
    after["accuracy_strict"], after.samples[0]["completion"]
    tinyr1.compare("smollm2-135m-instruct", run, prompt="What is 12 + 7?"), tinyr1.report(run)

Keyword arguments are the CLI's option names: for ``train`` and ``sft`` the recipe's fields (trl's ``GRPOConfig`` /
``SFTConfig`` and ``ModelConfig`` plus ``tinyr1.training.config``), which override the recipe file given
first, exactly as ``--field value`` flags do; they go through the same parser, so a misspelt name, a wrong type or
a value out of range raises ``TinyR1Error`` with the CLI's message. ``None`` leaves a field as the recipe has it.
A list is a multi-value field (``reward_funcs=["correctness", "number"]``); ``dataset_options`` takes a dict.

Errors raise ``tinyr1.TinyR1Error`` (bad input; the CLI's exit code 2), ``tinyr1.CollapseError`` (3) or
``tinyr1.OutOfMemoryError`` (4); nothing calls ``sys.exit``. A first Ctrl-C (a notebook's interrupt) or SIGTERM
during training saves a checkpoint at the end of the step and returns the run with status ``interrupted``; a second
one stops the process at once (in Jupyter: the kernel), as in the CLI.

A call leaves the process as it found it (``tinyr1.api_process``): environment, torch's thread count, signal
handlers. It does not apply the CLI's CPU tuning (threads from ``$OMP_NUM_THREADS`` or the cores the process may
use; glibc keeping freed memory): pass ``num_threads=`` for a call, or call ``tinyr1.configure_cpu()`` once for
the whole process. Progress bars use ``tqdm.auto`` and the Trainer's notebook callback, so they render in Jupyter.
"""

from __future__ import annotations

import argparse
import difflib
import json
import tempfile
from pathlib import Path

from tinyr1.api_process import call_scope, run_threads
from tinyr1.api_results import Comparison, Evaluation, PromptRows, Report, Run
from tinyr1.infra.errors import TinyR1Error


def configure_cpu(num_threads: int | None = None) -> int | None:
    """Apply the CLI's CPU tuning to this whole process, for the rest of its life: torch threads (``num_threads``,
    else ``$OMP_NUM_THREADS``, else the cores this process may use) and glibc keeping freed memory for reuse
    (``tinyr1.infra.device``). Returns the thread count, or None (nothing set) where a CUDA GPU runs the model. API
    calls restore the thread count they found, so call this before them, not inside a recipe."""
    from tinyr1.infra.device import configure_cpu as tune

    return tune(num_threads)


# ---------------------------------------------------------------- keyword arguments -> the CLI's argv


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _model(value):
    return value.model_path if isinstance(value, Run) else (str(value) if isinstance(value, Path) else value)


def recipe_argv(config, fields: dict) -> list[str]:
    """``[--config RECIPE] --field=value ...`` as ``tinyr1 train``/``sft`` parse it.

    >>> recipe_argv("r.yaml", {"max_steps": 2, "use_peft": True, "reward_funcs": ["a", "b"], "seed": None,
    ...                        "dataset_options": {"min_terms": 2}})
    ['--config', 'r.yaml', '--max_steps=2', '--use_peft=true', '--reward_funcs', 'a', 'b', '--dataset_options', \
'min_terms=2']
    """
    argv = ["--config", str(config)] if config is not None else []
    for name, value in fields.items():
        value = _model(value) if name == "model_name_or_path" else value
        if value is None:
            continue
        if isinstance(value, dict) and name == "dataset_options":
            argv += [f"--{name}", *(f"{k}={_text(v)}" for k, v in value.items())]
        elif isinstance(value, dict):  # trl's dict-or-JSON fields (model_init_kwargs...)
            argv.append(f"--{name}={json.dumps(value)}")
        elif isinstance(value, (list, tuple)):
            argv += [f"--{name}", *map(_text, value)]
        else:
            argv.append(f"--{name}={_text(value)}")
    return argv


def command_argv(parser: argparse.ArgumentParser, fields: dict, caller: str) -> list[str]:
    """Keyword arguments as the flags of a plain argparse command (eval, compare, generate, prepare)."""
    actions = {a.dest: a for a in parser._actions if a.option_strings and a.dest != "help"}
    argv: list[str] = []
    for name, value in fields.items():
        if name not in actions:
            close = difflib.get_close_matches(name, list(actions), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; valid: {', '.join(sorted(actions))}"
            raise TinyR1Error(f"{caller}: unknown key {name!r}{hint}")
        action, flag = actions[name], actions[name].option_strings[0]
        if value is None:
            continue
        if isinstance(action, argparse._StoreTrueAction):
            if not isinstance(value, bool):
                raise TinyR1Error(f"{flag} {value!r}: expected True or False")
            argv += [flag] if value else []
        elif isinstance(value, dict):
            argv += [flag, *(f"{k}={_text(v)}" for k, v in value.items())]
        elif isinstance(value, (list, tuple)):
            one_each = isinstance(action, argparse._AppendAction)
            argv += [t for v in value for t in (flag, _text(v))] if one_each else [flag, *map(_text, value)]
        else:
            argv.append(f"{flag}={_text(value)}")
    return argv


# ---------------------------------------------------------------- train and sft


def train(config: str | Path | None = None, /, **fields) -> Run:
    """GRPO training (``tinyr1 train``): the recipe ``config`` (a YAML file; None: the built-in defaults), with
    ``fields`` overriding it; returns the ``Run`` (status ``completed``, or ``interrupted`` after a first Ctrl-C).

    Raises TinyR1Error for a bad recipe or field (before anything loads), CollapseError when the collapse guard
    stops the run, OutOfMemoryError with remedies sized to the settings; ``tinyr1.Run.load(output_dir)`` then
    reads what the run left. Fields (besides trl's):
    """
    from tinyr1.commands import train as command

    with call_scope():
        script, training, model_args, values = command.parse_args(recipe_argv(config, fields))
        reward_funcs = command.load_rewards(script, training)
        code = command.execute(script, training, model_args, values, reward_funcs, run_threads(script.num_threads))
    return Run.load(training.output_dir, exit_code=code)


def sft(config: str | Path | None = None, /, **fields) -> Run:
    """LoRA/QLoRA supervised fine-tuning (``tinyr1 sft``), e.g. the GRPO cold start: the recipe ``config`` with
    ``fields`` overriding it; returns the ``Run`` (``model_path`` is the adapter, which ``train`` and ``evaluate``
    accept). Fields (besides trl's):
    """
    from tinyr1.commands import sft as command

    with call_scope():
        script, training, model_args, values = command.parse_args(recipe_argv(config, fields))
        command.check_backend(script, model_args)
        run_threads(script.num_threads)
        code = command.execute(script, training, model_args, values)
    return Run.load(training.output_dir, exit_code=code)


def _fields_help(dataclass_type) -> str:
    import dataclasses
    import textwrap

    lines = []
    for f in dataclasses.fields(dataclass_type):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        shown = f" (default {default!r})" if len(repr(default)) <= 40 else ""
        text = _API_HELP.get(f.name, f.metadata.get("help", ""))
        lines.append(textwrap.fill(f"{f.name}{shown}: {text}", 112, initial_indent="    ",
                                   subsequent_indent="        "))
    return "\n".join(lines)


# Fields whose meaning differs in the API from the CLI's --help.
_API_HELP = {"num_threads": "torch's CPU threads for this call (unset: torch's setting as it is; the CLI uses "
                            "$OMP_NUM_THREADS or the usable cores, see tinyr1.configure_cpu)"}


def _document() -> None:
    import textwrap

    from tinyr1.training.config import SFTScriptArguments, TrainScriptArguments

    def trl_docs(config: str, command: str, examples: str) -> str:
        text = (f"Every other field is trl's {config} or ModelConfig (https://huggingface.co/docs/trl), e.g. "
                f"{examples}; ``tinyr1 {command} --help`` lists them all with their defaults.")
        return "\n\n" + textwrap.fill(text, 116, initial_indent="    ", subsequent_indent="    ") + "\n"

    if train.__doc__ and sft.__doc__:  # None under python -OO
        train.__doc__ += "\n" + _fields_help(TrainScriptArguments) + trl_docs(
            "GRPOConfig", "train", "model_name_or_path, output_dir, max_steps, learning_rate, num_generations, "
            "per_device_train_batch_size, max_completion_length, use_peft, lora_r")
        sft.__doc__ += "\n" + _fields_help(SFTScriptArguments) + trl_docs(
            "SFTConfig", "sft", "model_name_or_path, output_dir, max_steps, learning_rate, "
            "per_device_train_batch_size, max_length, packing, use_peft, lora_r")


_document()

# ---------------------------------------------------------------- the other commands


def evaluate(model_name_or_path=None, /, *, num_threads: int | None = None, **options) -> Evaluation:
    """Score a model (``tinyr1 eval``): greedy answers to a test split, strict and flexible accuracy, format.

    ``model_name_or_path``: any model form (hub id, folder, .gguf, ``smollm2-135m-instruct``, a run folder or a
    ``Run``). ``options`` are ``tinyr1 eval``'s: dataset_name, dataset_options (a dict), split (default test),
    limit, batch_size, max_new_tokens, system_prompt, dtype, adapter, predictions (score a file, no model),
    use_vllm, and output_dir (optional here: without it nothing is left on disk). Returns an ``Evaluation``:
    metrics.json's values as a dict, with ``samples``. ``num_threads``: torch's CPU threads for this call.
    """
    from tinyr1.commands import evaluate as command

    output_dir = options.get("output_dir")
    with call_scope(num_threads), tempfile.TemporaryDirectory(prefix="tinyr1-eval-") as scratch:
        fields = {"model_name_or_path": _model(model_name_or_path), **options, "output_dir": output_dir or scratch}
        args = command.parse_args(command_argv(command.build_parser(), fields, "tinyr1.evaluate()"))
        metrics = command.run(args)
        samples = Evaluation.load(args.output_dir).samples
    return Evaluation(metrics, samples, output_dir)


def compare(base, trained, /, prompt: str | list[str] | None = None, *, num_threads: int | None = None,
            **options) -> Comparison:
    """Ask the same questions of two models (``tinyr1 compare``), greedy, same system prompt.

    ``base``/``trained``: any model form or a ``Run``; ``prompt``: a question or a list (default: the recipe's
    apples question). ``options``: max_new_tokens, system_prompt, output (a Markdown file to write). Returns a
    ``Comparison`` (``str()`` is the Markdown; a notebook renders it)."""
    from tinyr1.commands import compare as command

    fields = {"base": _model(base), "trained": _model(trained), "prompt": prompt, **options}
    with call_scope(num_threads):
        args = command.parse_args(command_argv(command.build_parser(), fields, "tinyr1.compare()"))
        markdown = command.compare(args.base, args.trained, args.prompt, output=args.output,
                                   max_new_tokens=args.max_new_tokens, system_prompt=args.system_prompt)
    return Comparison(args.base, args.trained, markdown, Path(args.output) if args.output else None)


def report(run: Run | str | Path) -> Report:
    """Plots and a Markdown/HTML report of a training run (``tinyr1 report``), written into its folder."""
    from tinyr1.commands.report import write_report

    folder = run.output_dir if isinstance(run, Run) else Path(run)
    with call_scope(uses_torch=False):
        markdown = write_report(folder)
    return Report(markdown, markdown.with_suffix(".html"), sorted((folder / "plots").glob("*.png")))


def generate(model_name_or_path, prompt: str, /, *, stream: bool = False, num_threads: int | None = None,
             **options) -> str:
    """One reply of a model to ``prompt`` (``tinyr1 generate --prompt``), returned as text; ``stream`` also prints
    it token by token. ``options``: adapter, max_new_tokens, temperature (0: greedy), system_prompt ("" for
    none), seed."""
    from tinyr1.commands import generate as command

    if "interactive" in options:
        raise TinyR1Error("tinyr1.generate(): interactive is the CLI's chat loop; call generate once per prompt")
    fields = {"model_name_or_path": _model(model_name_or_path), "prompt": prompt, **options}
    with call_scope(num_threads):
        import torch

        args = command.parse_args(command_argv(command.build_parser(), fields, "tinyr1.generate()"))
        torch.manual_seed(args.seed)
        model, tokenizer = command.load_chat_model(args)
        messages = [{"role": "system", "content": args.system_prompt}] if args.system_prompt else []
        messages.append({"role": "user", "content": args.prompt})
        return command.reply(model, tokenizer, messages, args.max_new_tokens, args.temperature, stream, echo=False)


def prepare(dataset_name: str | None = None, /, *, output: str | Path | None = None, **options) -> PromptRows:
    """The recipe's prompt rows (``tinyr1 prepare``) from GSM8K (hub id, local folder or file, modelscope/gsm8k) or
    ``reasoning-gym:<name>``; written as JSON lines to ``output`` if given. ``options``: split (default train),
    limit, seed, dataset_options (a dict), system_prompt, skip_bad_rows. Returns the rows (a list)."""
    from tinyr1.commands import prepare as command

    with call_scope(uses_torch=False), tempfile.TemporaryDirectory(prefix="tinyr1-prepare-") as scratch:
        fields = {"dataset_name": dataset_name, **options, "output": output or Path(scratch) / "rows.jsonl"}
        args = command.parse_args(command_argv(command.build_parser(), fields, "tinyr1.prepare()"))
        rows, skipped = command.load_rows(args)
        if output is not None:
            command.write_rows(output, rows)
    return PromptRows(rows, args.dataset_name, args.split, skipped)
