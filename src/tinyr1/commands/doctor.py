"""``tinyr1 doctor``: a pre-flight checklist for a recipe; exits 1 when something would block the run.

    tinyr1 doctor                          # this machine: without a GPU make demo's CPU recipe, with one the GPU's
    tinyr1 doctor --config recipes/qwen2.5-0.5b-instruct/grpo-gsm8k.yaml
    tinyr1 doctor --command sft --config recipes/smollm2-135m-instruct/sft-coldstart-cpu.yaml

The recipe is parsed exactly as ``tinyr1 train`` (default) or ``tinyr1 sft`` (``--command sft``) parses it, so a
recipe that would not start is reported the same way: one line and exit code 2.

Checks versions against the ones tinyr1 was verified with, a CUDA build of torch on a machine without a GPU (its
size and the swap to the CPU build), the GPU (memory, bf16) or CPU threads, whether the model and dataset can be
found (offline too: local path or hub cache), an estimate of the memory the recipe needs against what this machine
has, and a two-token generation with a finite-logits check.

With no ``--config``, ``tinyr1 train``'s check is for the machine it runs on: with a CUDA GPU, the built-in defaults
(the Qwen2.5-0.5B-Instruct GSM8K recipe); without one, the CPU recipe ``make demo`` trains with
(``DEMO_RECIPE``), started from the demo's cold start where ``make demo`` has trained it, else from the model that
cold start is trained from (same architecture and size, so the same memory and generation checks).
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch

from tinyr1.cpu.packing import fp16_weights_reason
from tinyr1.cpu.touchpoints import VERIFIED_ROWS, fast_path_check, same_minor
from tinyr1.evaluation.probe import sample_groups
from tinyr1.infra.cpu_features import cpu_bf16
from tinyr1.infra.device import cuda_available, cuda_libraries
from tinyr1.infra.errors import CollapseError, TinyR1Error, one_line_errors
from tinyr1.infra.naming import command_line, setting
from tinyr1.infra.out_of_memory import oom_remedies
from tinyr1.infra.paths import looks_local
from tinyr1.infra.threads import choose_threads
from tinyr1.infra.validate import check_trainer_settings
from tinyr1.models.loading import choose_precision, load_model_and_tokenizer, resolve_model
from tinyr1.models.memory import estimate_memory, model_shape
from tinyr1.tasks.data import load_examples
from tinyr1.tasks.reward_lookup import callable_name, get_reward_funcs
from tinyr1.tasks.rewards import correctness_index
from tinyr1.training import grpo, sft
from tinyr1.training.guards import preflight_check
from tinyr1.training.recipes import untrained_model
from tinyr1.training.signal_guard import NoSignalGuard

GiB = 1024**3
OK, WARN, BLOCK = "ok", "warn", "BLOCK"


class Checklist:
    def __init__(self, quiet: bool = False):
        self.rows: list[tuple[str, str, str]] = []
        self.quiet = quiet  # rows kept, not printed: a look at the machine before the recipe is chosen

    def add(self, status: str, what: str, detail: str) -> None:
        self.rows.append((status, what, detail))
        if not self.quiet:
            print(f"[{status:>5}] {what}: {detail}", flush=True)

    @property
    def blocked(self) -> bool:
        return any(status == BLOCK for status, _, _ in self.rows)


def check_versions(checks: Checklist) -> None:
    for package in VERIFIED_ROWS[0].versions:
        try:
            found = version(package)
        except PackageNotFoundError:
            checks.add(BLOCK, package, "not installed; run make install")
            continue
        tested = sorted({row.versions[package] for row in VERIFIED_ROWS})
        same = any(same_minor(found, v) for v in tested)
        checks.add(OK if same else WARN, package, found + ("" if same else f" (verified with {' or '.join(tested)})"))


def check_hardware(checks: Checklist) -> dict:
    if cuda_available():
        props = torch.cuda.get_device_properties(0)
        memory = props.total_memory * torch.cuda.device_count()
        checks.add(OK, "GPU", f"{torch.cuda.device_count()} x {props.name}, {props.total_memory / GiB:.0f} GiB each, "
                   f"bf16 {'yes' if torch.cuda.is_bf16_supported() else 'no (fp32; fp16 overflows Qwen2.5)'}")
        return {"device": "cuda", "memory": props.total_memory, "total": memory}

    threads = choose_threads()
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    checks.add(OK, "CPU", f"{os.cpu_count()} CPUs, {ram / GiB:.0f} GiB RAM, no GPU; tinyr1 uses {threads} "
               f"thread(s): {threads.why} ({setting('num_threads')} or OMP_NUM_THREADS to change)")

    cpu = cpu_bf16()

    hint = "" if cpu.native or fp16_weights_reason(torch.float32) else \
        "; opt-in: cpu_generation_weights: fp16 halves the bytes a decode step reads (docs/cpu-fast-path.md)"
    checks.add(OK, "CPU precision", f"{cpu.cpu_name}, {cpu.capability}: training in "
               f"{'bf16 autocast' if cpu.native else 'fp32'} ({cpu.reason}){hint}")
    return {"device": "cpu", "memory": ram, "total": ram}


CPU_INDEX = "https://download.pytorch.org/whl/cpu"
def check_torch_build(checks: Checklist, hardware: dict) -> None:
    """A CUDA build of torch where no GPU runs it: gigabytes of NVIDIA libraries that do nothing (a plain ``pip
    install torch`` on Linux takes one); the CPU build trains the same, so say what it costs and how to swap."""
    if hardware["device"] == "cuda" or not torch.version.cuda:
        return
    size, names = cuda_libraries()
    release = torch.__version__.split("+")[0]
    checks.add(WARN, "torch build", f"{torch.__version__} is a CUDA {torch.version.cuda} build on a machine without a "
               f"GPU: {size / GiB:.1f} GiB of CUDA libraries ({len(names)} packages) that nothing here uses; the CPU "
               f"build trains the same: pip uninstall -y torch {' '.join(names) or 'nvidia-*'} && pip install "
               f"torch=={release} --index-url {CPU_INDEX}")


def check_fast_path(checks: Checklist, hardware: dict) -> None:
    """The CPU fast path's version gate (tinyr1.cpu.touchpoints): whether training and generation take it here."""
    if hardware["device"] != "cpu":
        checks.add(OK, "CPU fast path", "not used on a GPU")
        return

    for part in ("training", "generation"):
        check = fast_path_check(part)
        checks.add(OK if check.allowed else WARN, f"CPU fast path ({part})", check.summary)


def locate_model(name: str) -> tuple[str, str, str | None]:
    """(status, detail, local config folder or None) for a model string, without touching the network."""
    try:
        resolved = resolve_model(name)
    except TinyR1Error as err:
        return BLOCK, str(err), None
    if resolved.kind != "hub":
        return OK, f"{resolved.kind}: {resolved.path}", resolved.path
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(name, "config.json")
    if isinstance(cached, str):
        return OK, f"hub id, in the local cache ({Path(cached).parent})", str(Path(cached).parent)
    return WARN, "hub id, not in the local cache: the first run downloads it (needs internet)", None


def locate_dataset(name: str) -> tuple[str, str]:
    if name.startswith("reasoning-gym:"):
        return OK, "generated offline by reasoning-gym"
    if Path(name).expanduser().exists():
        return OK, f"local: {name}"

    if looks_local(name) or "/" not in name:  # the same rule as the loader's: a hub dataset is owner/name
        return BLOCK, f"{name}: no such file or folder"
    return WARN, "hub id: needs internet unless already in the datasets cache"


# The CPU recipe make demo trains with, the flags of its run that size the memory, and where make demo saves the
# cold start it trains from (the Makefile's demo target; tests/commands/test_doctor.py checks they agree).
DEMO_RECIPE = "recipes/smollm2-135m-instruct/grpo-arith-cpu.yaml"
DEMO_SIZES = ["--per_device_train_batch_size", "16", "--num_generations", "4", "--max_completion_length", "64"]
DEMO_COLD_START = "outputs/demo/coldstart"
DEMO_BASE = "smollm2-135m-instruct"


def machine_recipe(checks: Checklist, hardware: dict) -> tuple[str | None, list[str]]:
    """``tinyr1 train``'s recipe for this machine when none is given: (config, extra flags)."""
    if hardware["device"] == "cuda":
        checks.add(OK, "recipe", "tinyr1 train's defaults: the GPU recipe (Qwen2.5-0.5B-Instruct, GSM8K); --config "
                   "for another")
        return None, []
    if not Path(DEMO_RECIPE).is_file():
        checks.add(WARN, "recipe", f"no GPU, and make demo's CPU recipe ({DEMO_RECIPE}) is not under this folder: "
                   "checking tinyr1 train's defaults, the GPU recipe; run doctor in the tinyr1 checkout or give "
                   "--config")
        return None, []
    trained = Path(DEMO_COLD_START, "adapter_config.json").is_file() or Path(DEMO_COLD_START, "config.json").is_file()
    model = DEMO_COLD_START if trained else DEMO_BASE
    checks.add(OK, "recipe", f"no GPU: make demo's run, {DEMO_RECIPE} {' '.join(DEMO_SIZES)}, from " + (
        f"the demo's cold start ({DEMO_COLD_START})" if trained else
        f"{DEMO_BASE}, the model make demo's cold start is trained from ({DEMO_COLD_START} is not trained yet; "
        "the same size, so the same checks)") + "; --config for another")
    return DEMO_RECIPE, ["--model_name_or_path", model, *DEMO_SIZES]


def load_recipe(command: str, config: str | None, extra: list[str] | None = None):
    """(kind, script, training, model_args): the recipe parsed exactly as ``tinyr1 <command>`` parses it."""
    argv = (["--config", config] if config else []) + list(extra or [])  # the command line's own: parsed as train's
    if command == "sft":
        recipe = sft.parse(argv, check_setup=False)
        return "sft", recipe.script, recipe.args, recipe.model_args

    recipe = grpo.parse(argv, check_setup=False)
    grpo.reward_funcs(recipe)  # an empty or broken reward list is a recipe error too
    return "grpo", recipe.script, recipe.args, recipe.model_args


def check_memory(checks: Checklist, kind, script, training, model_args, shape, hardware) -> None:
    if shape is None:
        checks.add(WARN, "memory", "model size unknown offline; cannot estimate")
        return
    if kind == "grpo":
        tokens = training.per_device_train_batch_size * (script.max_prompt_tokens + training.max_completion_length)
        length_field = "max_completion_length"
    else:
        tokens = training.per_device_train_batch_size * (training.max_length or 1024)
        length_field = "max_length"

    def estimate(bytes_per: int) -> dict:
        return estimate_memory(shape["params"], shape["hidden"], shape["layers"], shape["vocab"], tokens, bytes_per,
                               model_args.use_peft, model_args.load_in_4bit, bool(training.gradient_checkpointing))

    wants_16bit = bool(training.bf16 or training.fp16) or model_args.dtype in ("bfloat16", "float16")
    here = estimate(2 if wants_16bit and hardware["device"] == "cuda" else 4)
    parts = ", ".join(f"{k} {v / GiB:.1f}" for k, v in here.items() if k != "total")
    where = "GPU memory" if hardware["device"] == "cuda" else "RAM"
    detail = (f"~{here['total'] / GiB:.1f} GiB needed here ({parts} GiB; {shape['params'] / 1e6:.0f}M parameters, "
              f"{tokens} tokens per micro-batch) vs {hardware['memory'] / GiB:.0f} GiB {where}")
    if hardware["device"] == "cpu" and wants_16bit:
        detail += f"; on a bf16 GPU about {estimate(2)['total'] / GiB:.1f} GiB per GPU"
    if here["total"] < 0.9 * hardware["memory"]:
        checks.add(OK, "memory", detail)
        return

    checks.add(BLOCK, "memory", f"{detail}; will not fit: {oom_remedies(training, model_args, length_field)}")


def check_generation(checks: Checklist, name: str, local: str | None, params: float | None, hardware: dict):
    """Two tokens of the model, finite; the loaded model and tokenizer, or None where it could not be checked."""
    if local is None:
        checks.add(WARN, "generation", "skipped: the model is not available locally")
        return None
    if params and params * 4 > 0.5 * hardware["memory"]:
        checks.add(WARN, "generation", "skipped: the model is too large to load on this machine for a check")
        return None

    plan = choose_precision()
    model, tokenizer = load_model_and_tokenizer(name, dtype=plan.dtype)
    try:
        preflight_check(model, tokenizer, bf16=plan.bf16)
    except CollapseError as err:
        checks.add(BLOCK, "generation", str(err))
        return None
    checks.add(OK, "generation", f"a forward pass, logits finite ({plan.reason})")
    return model, tokenizer


# The reward-signal probe: prompts, and completions each (at most: the recipe's num_generations if fewer).
SIGNAL_PROMPTS, SIGNAL_GROUP = 4, 4


def check_reward_signal(checks: Checklist, script, training, loaded) -> None:
    """GRPO learns only where a group's rewards vary: sample a few groups the way training will (the recipe's data,
    system prompt, rewards, length and temperature) and say whether any varies, with the no-signal guard's
    diagnosis (``tinyr1.training.signal_guard``) where none does."""
    model, tokenizer = loaded
    funcs = get_reward_funcs(script.reward_funcs)
    names = [callable_name(f) for f in funcs]
    size = max(2, min(SIGNAL_GROUP, training.num_generations))
    examples, _ = load_examples(script.dataset_name, script.dataset_split, SIGNAL_PROMPTS, script.dataset_seed,
                                options=script.dataset_options)
    groups = sample_groups(model, tokenizer, examples, funcs, size, training.max_completion_length,
                           training.temperature, script.system_prompt)
    guard = NoSignalGuard(1, names, correctness_index(names), training.max_completion_length)
    for group in groups:
        rewards = torch.tensor([[float("nan") if r is None else float(r) for r in row] for row in group["rewards"]])
        weights = torch.tensor(training.reward_weights or [1.0] * len(funcs))
        guard.observe(rewards, weights, size, [o.text for o in group["outputs"]],
                      [o.truncated for o in group["outputs"]])
    share, diagnosis = guard.verdict()
    said = f"{share:.0%} of {len(groups)} groups of {size} completions have rewards that vary"
    if share > 0:
        checks.add(OK, "reward signal", said)
        return
    checks.add(WARN, "reward signal", f"{said}: GRPO would learn nothing and the no-signal guard would stop the "
                                      f"run; {diagnosis}")


@command_line
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tinyr1 doctor", description="Pre-flight checklist for a recipe; exit 1 "
                                "when something blocks the run.")
    p.add_argument("--command", choices=("train", "sft"), default="train",
                   help="the command the recipe is for: train (GRPO, the default) or sft")
    p.add_argument("--config", help="a recipe for --command; default for train: this machine's run (make demo's "
                   "without a GPU, the GPU recipe with one); for sft: its defaults")
    p.add_argument("--skip_generation", action="store_true", help="skip loading the model for a generation check")
    args = one_line_errors(p, "tinyr1 doctor").parse_args(argv)
    config, extra = args.config, []
    if config is None and args.command == "train":
        checks = Checklist(quiet=True)
        config, extra = machine_recipe(checks, check_hardware(checks))
        said = checks.rows[-1]
    # A recipe that does not parse is bad input (exit 2, one line), as it is for train and sft themselves.
    kind, script, training, model_args = load_recipe(args.command, config, extra)
    checks = Checklist()
    print(f"tinyr1 doctor — Python {sys.version.split()[0]}")
    check_versions(checks)
    hardware = check_hardware(checks)
    check_torch_build(checks, hardware)
    check_fast_path(checks, hardware)
    if args.config is None and args.command == "train":
        checks.add(*said)
    else:
        checks.add(OK, "recipe", f"{args.config or f'tinyr1 {args.command} defaults'} ({kind})")
    try:  # settings that need packages or hardware this machine may lack: a finding here, not bad input
        check_trainer_settings(training)
    except TinyR1Error as err:
        checks.add(BLOCK, "trainer settings", str(err))
    status, detail, local = locate_model(model_args.model_name_or_path)
    untrained = untrained_model(model_args.model_name_or_path, Path(config) if config else None)
    status, detail = (BLOCK, untrained.split(": ", 1)[1]) if untrained else (status, detail)
    checks.add(status, f"model {model_args.model_name_or_path}", detail)
    data_status, data_detail = locate_dataset(script.dataset_name)
    checks.add(data_status, f"dataset {script.dataset_name}", data_detail)
    shape = model_shape(model_args.model_name_or_path, local)
    check_memory(checks, kind, script, training, model_args, shape, hardware)
    if not args.skip_generation and status != BLOCK:
        loaded = check_generation(checks, model_args.model_name_or_path, local, shape and shape["params"], hardware)
        if loaded and kind == "grpo" and args.config and data_status != BLOCK:
            check_reward_signal(checks, script, training, loaded)
    blockers = sum(s == BLOCK for s, _, _ in checks.rows)
    print(f"\n{blockers} blocking problem(s)" if blockers else "\nready to run")
    return 1 if checks.blocked else 0


if __name__ == "__main__":
    sys.exit(main())
