"""The Python API: every stage ``tinyr1 <command>`` runs, called from Python or a notebook.

    import tinyr1
    cold = tinyr1.sft("recipes/smollm2-135m-instruct/sft-arith-coldstart-cpu.yaml", max_steps=8, output_dir="runs/c")
    run = tinyr1.train("recipes/smollm2-135m-instruct/grpo-arith-cpu.yaml", model=cold, max_steps=20,
                       output_dir="runs/a")                 # the GRPO recipe starts from that cold start
    run.status, run.output_dir, run.model_path, run.metrics      # metrics: metrics.jsonl's rows, as logged
    base = tinyr1.evaluate("smollm2-135m-instruct", dataset_name="reasoning-gym:chain_sum", limit=32)
    after = tinyr1.evaluate(run.model_path, dataset_name="reasoning-gym:chain_sum", limit=32)
    after["accuracy_strict"], after.samples[0]["completion"]
    tinyr1.compare("smollm2-135m-instruct", run, prompt="What is 12 + 7?"), tinyr1.report(run)

Keyword arguments are the CLI's option names: for ``train`` and ``sft`` the recipe's fields (trl's ``GRPOConfig`` /
``SFTConfig`` and ``ModelConfig`` plus ``tinyr1.training.fields``), which override the recipe file given first, as
``--field value`` flags do. They are checked by the same rules as the recipe's values, never turned into a command
line: a misspelt name, a wrong type or a value out of range raises ``TinyR1Error`` naming the argument
(``tinyr1.train(max_steps=0): must be ...``). ``None`` leaves a field as the recipe has it. A list is a
multi-value field; ``dataset_options`` takes a dict. ``train`` also takes Python objects: ``model=`` a loaded model
or ``(model, tokenizer)``, ``reward_funcs=`` functions mixed with registry names, ``dataset=`` rows (a list of
dicts, a ``datasets.Dataset`` or ``IterableDataset``). The CLI runs the same library functions
(``tinyr1.training.grpo.run``, ``tinyr1.training.sft.run``). For a trl script of your own, change its import to
``from tinyr1 import GRPOTrainer`` instead (``tinyr1.training.grpo_trainer``).

Errors raise ``tinyr1.TinyR1Error`` (bad input; the CLI's exit code 2), ``tinyr1.CollapseError`` (3) or
``tinyr1.OutOfMemoryError`` (4); nothing calls ``sys.exit``. A first Ctrl-C (a notebook's interrupt) or SIGTERM
during training saves a checkpoint at the end of the step and returns the run with status ``interrupted``; a second
one stops the process at once (in Jupyter: the kernel), as in the CLI.

A call leaves the process as it found it (``tinyr1.api_process``): environment, torch's thread count, signal
handlers. ``train`` and ``sft`` pick their threads as the CLI does (``$OMP_NUM_THREADS``, else the cores the process
may use) unless the caller set a count (``num_threads=``, ``tinyr1.configure_cpu()``, ``torch.set_num_threads``),
and the run's header says which; glibc keeping freed memory, the CLI's other CPU setting, cannot be undone, so only
``tinyr1.configure_cpu()`` applies it. Progress bars use ``tqdm.auto`` and the Trainer's notebook callback, so
they render in Jupyter.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from tinyr1 import api_inputs
from tinyr1.api_process import call_scope, run_threads
from tinyr1.api_results import Comparison, Evaluation, PromptRows, Report, Run
from tinyr1.infra.errors import TinyR1Error
from tinyr1.training.fields import GRPOFields, GRPOScriptArguments, SFTFields, SFTScriptArguments


def configure_cpu(num_threads: int | None = None) -> int | None:
    """Apply the CLI's CPU tuning to this whole process, for the rest of its life: torch threads (``num_threads``,
    else ``$OMP_NUM_THREADS``, else the cores this process may use) and glibc keeping freed memory for reuse
    (``tinyr1.infra.device``). Returns the thread count, or None (nothing set) where a CUDA GPU runs the model. API
    calls restore the thread count they found, so call this before them, not inside a recipe."""
    from tinyr1.infra.device import configure_cpu as tune  # lazy: loads torch, which import tinyr1 must not

    return tune(num_threads)


def _model(value):
    return value.model_path if isinstance(value, Run) else (str(value) if isinstance(value, Path) else value)


# ---------------------------------------------------------------- train and sft


def train(config: str | Path | None = None, /, *, model=None, reward_funcs=None, dataset=None, **fields) -> Run:
    """GRPO training (``tinyr1 train``): the recipe ``config`` (a YAML file; None: the built-in defaults), with
    ``fields`` overriding it; returns the ``Run`` (status ``completed``, or ``interrupted`` after a first Ctrl-C).

    ``model``: a name or path (as ``model_name_or_path``), a loaded transformers model or ``(model, tokenizer)``,
    trained as given. ``reward_funcs``: functions (trl's signature: ``f(completions, **kwargs)`` returning one float
    per completion) and registry names, in order. ``dataset``: a source name (as ``dataset_name``) or rows (a list
    of dicts with ``question`` and ``answer`` holding ``#### <gold>``, or prepared ``prompt`` and ``answer``; a
    ``datasets.Dataset`` or ``IterableDataset``), checked by the rules a file's rows follow.

    Raises TinyR1Error for a bad recipe, field or object (before anything loads), CollapseError when the collapse
    guard stops the run, OutOfMemoryError with remedies sized to the settings; ``tinyr1.Run.load(output_dir)`` then
    reads what the run left. Fields (besides trl's):
    """
    caller = "tinyr1.train"
    with call_scope(caller=caller):  # before the imports: importing the training stack sets environment variables
        from tinyr1.tasks.rows import prompt_rows_from  # lazy: after call_scope, as the next line
        from tinyr1.training import grpo  # lazy: loads torch and trl, which import tinyr1 must not

        given = None
        if model is not None:
            if "model_name_or_path" in fields:
                raise TinyR1Error(f"{caller}(): give model= or model_name_or_path=, not both")
            given = api_inputs.model_argument(model, caller)
            fields["model_name_or_path"] = given.name
        elif "model_name_or_path" in fields:
            fields["model_name_or_path"] = _model(fields["model_name_or_path"])
        funcs = None
        if reward_funcs is not None:
            funcs, fields["reward_funcs"] = api_inputs.reward_argument(reward_funcs, caller)
        rows = api_inputs.dataset_argument(dataset, fields) if dataset is not None else None
        recipe = grpo.parse(config=config, python_values=fields, caller=caller)
        if rows is not None:
            api_inputs.check_rows_with(recipe.script, fields, config, caller)
            rows = prompt_rows_from(rows, f"{caller}(dataset=...)", recipe.script.system_prompt,
                                    recipe.script.skip_bad_rows, recipe.script.dataset_limit)
        funcs = grpo.reward_funcs(recipe, funcs, f"{caller}(reward_funcs=...)")
        code = grpo.run(recipe, funcs, run_threads(recipe.script.num_threads),
                        model=given.model if given else None, tokenizer=given.tokenizer if given else None,
                        rows=rows)
    return Run.load(recipe.args.output_dir, exit_code=code)


def sft(config: str | Path | None = None, /, **fields) -> Run:
    """LoRA/QLoRA supervised fine-tuning (``tinyr1 sft``), e.g. the GRPO cold start: the recipe ``config`` with
    ``fields`` overriding it; returns the ``Run`` (``model_path`` is the adapter, which ``train`` and ``evaluate``
    accept). Fields (besides trl's):
    """
    if "model_name_or_path" in fields:
        fields["model_name_or_path"] = _model(fields["model_name_or_path"])
    with call_scope(caller="tinyr1.sft"):  # before the import: importing the training stack sets environment variables
        from tinyr1.training import sft as library  # lazy: loads torch and trl, which import tinyr1 must not

        recipe = library.parse(config=config, python_values=fields, caller="tinyr1.sft")
        library.check_backend(recipe)
        code = library.run(recipe, run_threads(recipe.script.num_threads))
    return Run.load(recipe.args.output_dir, exit_code=code)


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
_API_HELP = {"num_threads": "torch's CPU threads for this call (unset: a count the caller set with "
                            "torch.set_num_threads or tinyr1.configure_cpu, else the CLI's choice: $OMP_NUM_THREADS "
                            "or the usable cores)"}


def _document() -> None:
    import textwrap


    def trl_docs(config: str, command: str, examples: str) -> str:
        text = (f"Every other field is trl's {config} or ModelConfig (https://huggingface.co/docs/trl), e.g. "
                # the command line's own: its --help
                f"{examples}; ``tinyr1 {command} --help`` lists them all with their defaults.")
        return "\n\n" + textwrap.fill(text, 116, initial_indent="    ", subsequent_indent="    ") + "\n"

    if train.__doc__ and sft.__doc__:  # None under python -OO
        train.__doc__ += "\n" + _fields_help(GRPOScriptArguments) + "\n" + _fields_help(GRPOFields) + trl_docs(
            "GRPOConfig", "train", "model_name_or_path, output_dir, max_steps, learning_rate, num_generations, "
            "per_device_train_batch_size, max_completion_length, use_peft, lora_r")
        sft.__doc__ += "\n" + _fields_help(SFTScriptArguments) + "\n" + _fields_help(SFTFields) + trl_docs(
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
    from tinyr1.commands import evaluate as command  # lazy: each command loads what it needs

    output_dir = options.get("output_dir")
    with (call_scope(num_threads, caller="tinyr1.evaluate"),
          tempfile.TemporaryDirectory(prefix="tinyr1-eval-") as scratch):
        fields = {"model_name_or_path": _model(model_name_or_path), **options, "output_dir": output_dir or scratch}
        args = command.parse_args(values=fields, caller="tinyr1.evaluate")
        metrics = command.run(args)
        samples = Evaluation.load(args.output_dir).samples
    return Evaluation(metrics, samples, output_dir)


def compare(base, trained, /, prompt: str | list[str] | None = None, *, num_threads: int | None = None,
            **options) -> Comparison:
    """Ask the same questions of two models (``tinyr1 compare``), greedy, same system prompt.

    ``base``/``trained``: any model form or a ``Run``; ``prompt``: a question or a list (default: the recipe's
    apples question). ``options``: max_new_tokens, system_prompt, output (a Markdown file to write). Returns a
    ``Comparison`` (``str()`` is the Markdown; a notebook renders it)."""
    from tinyr1.commands import compare as command  # lazy: each command loads what it needs
    from tinyr1.evaluation.compare import compare as library  # lazy: as the line above

    fields = {"base": _model(base), "trained": _model(trained), "prompt": prompt, **options}
    with call_scope(num_threads, caller="tinyr1.compare"):
        args = command.parse_args(values=fields, caller="tinyr1.compare")
        markdown = library(args.base, args.trained, args.prompt, output=args.output,
                           max_new_tokens=args.max_new_tokens, system_prompt=args.system_prompt)
    return Comparison(args.base, args.trained, markdown, Path(args.output) if args.output else None)


def report(run, output_dir: str | Path | None = None) -> Report:
    """Plots and a Markdown/HTML report of a training run (``tinyr1 report``), written into its folder or into
    ``output_dir``: a ``Run``, its folder, a ``tinyr1.GRPOTrainer`` / ``SFTTrainer`` after ``train()``, or a plain
    trl run's output_dir (read from its trainer_state.json; ``output_dir`` then required, the trl folder untouched)."""
    from tinyr1.evaluation.report import write_report  # lazy: the report loads matplotlib

    if hasattr(run, "args") and hasattr(run, "state"):  # a trainer: its output_dir
        run = run.args.output_dir
    if not isinstance(run, (Run, str, Path)):
        raise TinyR1Error(f"tinyr1.report(run={run!r:.40}): expected a Run, a run folder's path or a trainer after "
                          f"train(); got {type(run).__name__}")
    folder = run.output_dir if isinstance(run, Run) else Path(run)
    with call_scope(uses_torch=False, caller="tinyr1.report"):
        markdown = write_report(folder, output_dir, flag="tinyr1.report(output_dir=...)")
    return Report(markdown, markdown.with_suffix(".html"), sorted((markdown.parent / "plots").glob("*.png")))


def generate(model_name_or_path, prompt: str, /, *, stream: bool = False, num_threads: int | None = None,
             **options) -> str:
    """One reply of a model to ``prompt`` (``tinyr1 generate --prompt``), returned as text; ``stream`` also prints
    it token by token. ``options``: adapter, max_new_tokens, temperature (0: greedy), system_prompt ("" for
    none), seed."""
    from tinyr1.commands import generate as command  # lazy: each command loads what it needs

    if "interactive" in options:
        raise TinyR1Error("tinyr1.generate(): interactive is the CLI's chat loop; call generate once per prompt")
    fields = {"model_name_or_path": _model(model_name_or_path), "prompt": prompt, **options}
    with call_scope(num_threads, caller="tinyr1.generate"):
        import torch

        args = command.parse_args(values=fields, caller="tinyr1.generate")
        torch.manual_seed(args.seed)
        model, tokenizer = command.load_chat_model(args)
        messages = [{"role": "system", "content": args.system_prompt}] if args.system_prompt else []
        messages.append({"role": "user", "content": args.prompt})
        return command.reply(model, tokenizer, messages, args.max_new_tokens, args.temperature, stream, echo=False)


def prepare(dataset_name: str | None = None, /, *, output: str | Path | None = None, **options) -> PromptRows:
    """The recipe's prompt rows (``tinyr1 prepare``) from GSM8K (hub id, local folder or file, modelscope/gsm8k) or
    ``reasoning-gym:<name>``; written as JSON lines to ``output`` if given. ``options``: split (default train),
    limit, seed, dataset_options (a dict), system_prompt, skip_bad_rows. Returns the rows (a list)."""
    from tinyr1.commands import prepare as command  # lazy: each command loads what it needs

    with (call_scope(uses_torch=False, caller="tinyr1.prepare"),
          tempfile.TemporaryDirectory(prefix="tinyr1-prepare-") as scratch):
        fields = {"dataset_name": dataset_name, **options, "output": output or Path(scratch) / "rows.jsonl"}
        args = command.parse_args(values=fields, caller="tinyr1.prepare")
        rows, skipped = command.load_rows(args)
        if output is not None:
            command.write_rows(output, rows)
    return PromptRows(rows, args.dataset_name, args.split, skipped)
