"""What a resume checks before it trains a step: that the checkpoint fits the model and the settings it resumes.

- A different model (another architecture than the checkpoint's) or a changed LoRA setting (``use_peft``,
  ``lora_r``, ``lora_target_modules``) cannot load: one line, exit 2, always.
- A missing ``optimizer.pt`` (Adam would restart from zero) or settings that differ from the run's ``config.yaml``
  are printed and refused, unless ``--resume_changed_settings true``: then the resume goes on and the run's first
  settings stay beside the new ones, in ``config.original.yaml``.
- A run that finished (run.json ``completed`` at ``max_steps``) is not trained again: it says so and exits 0.

Raising ``max_steps`` to continue a finished run, and the settings that only change how a step is computed or
logged (``IGNORED``), are not changes.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tinyr1.infra.errors import TinyR1Error
from tinyr1.infra.files import read_json, read_text, write_text

IGNORED = {"resume_from_checkpoint", "output_dir", "overwrite_output_dir", "resume_changed_settings", "max_steps",
           "max_train_minutes", "num_threads", "cpu_fast_path", "save_steps", "save_strategy", "save_total_limit",
           "logging_steps", "logging_strategy", "logging_first_step", "sample_every", "report_to", "disable_tqdm",
           "run_name", "logging_dir", "config", "use_cpu", "bf16", "activation_checkpointing",
           "gradient_checkpointing", "dataloader_num_workers", "preflight"}
_ARCHITECTURE = ("model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                 "intermediate_size", "vocab_size")


class FinishedRun(Exception):
    """The run this resume names has already finished: nothing to train (the command exits 0)."""


def check_not_finished(run_dir: Path, values: dict) -> None:
    """Raise FinishedRun when run.json says completed and the run reached this resume's ``max_steps``."""
    try:
        info = read_json(run_dir / "run.json") or {}
    except TinyR1Error:
        return
    if info.get("status") != "completed" or info.get("time_budget_reached_at_step") is not None:
        return
    step, target = info.get("global_step"), values.get("max_steps")
    if isinstance(step, int) and (not isinstance(target, int) or target <= 0 or step >= target):
        raise FinishedRun(f"{run_dir}: this run finished ({step} steps, final model saved); nothing to resume. "
                          "To train further, raise --max_steps")


def check_fits(checkpoint: Path, values: dict, model_config: dict | None = None) -> None:
    """One line when the checkpoint cannot load into this run's model: another architecture, or other LoRA.
    ``model_config``: the config.json of the model this run names, where it is on this machine."""
    adapter = _json(checkpoint / "adapter_config.json")
    lora = bool(values.get("use_peft"))
    name = checkpoint.name
    if lora and adapter is None:
        raise TinyR1Error(f"--use_peft true: {name} holds a full model, not a LoRA adapter; resume with the run's "
                          "setting (--use_peft false), or start a new run for LoRA in another --output_dir")
    if not lora and adapter is not None:
        raise TinyR1Error(f"--use_peft false: {name} holds a LoRA adapter; resume with --use_peft true, as the "
                          "run started")
    if adapter is not None:
        for key, field in (("r", "lora_r"), ("target_modules", "lora_target_modules")):
            new, old = values.get(field), adapter.get(key)
            if new is not None and old is not None and _normal(new) != _normal(old):
                raise TinyR1Error(f"--{field} {new}: {name} holds a LoRA adapter with {key} {old}; resume with "
                                  f"--{field} {old}, or start a new run in another --output_dir")
        return
    saved = _json(checkpoint / "config.json")
    model = values.get("model_name_or_path")
    current = model_config if saved is not None and model else None
    if current is None:
        return
    differ = [f"{k} {saved.get(k)} vs {current.get(k)}" for k in _ARCHITECTURE if saved.get(k) != current.get(k)]
    if differ:
        raise TinyR1Error(f"--model_name_or_path {model}: not the model {name} was trained from "
                          f"({'; '.join(differ)}); resume with the run's model_name_or_path (see its config.yaml)")


def differences(run_dir: Path, checkpoint: Path, values: dict) -> list[str]:
    """What differs from the run being resumed: settings against its config.yaml, and a missing optimizer state."""
    found = []
    if not (checkpoint / "optimizer.pt").is_file():
        found.append(f"{checkpoint.name} has no optimizer.pt (the optimizer would restart from zero)")
    old = _yaml(run_dir / "config.yaml")
    if old is not None:
        for key in sorted((set(old) | set(values)) - IGNORED):
            if _normal(old.get(key)) != _normal(values.get(key)):
                found.append(f"{key}: {old.get(key)!r} -> {values.get(key)!r}")
    return found


def check_changes(run_dir: Path, checkpoint: Path, values: dict, accept: bool) -> None:
    """Refuse a resume that changes what it resumes, unless ``accept``; then keep the first config.yaml."""
    found = differences(run_dir, checkpoint, values)
    if not found:
        return
    listing = "; ".join(found)
    if not accept:
        raise TinyR1Error(f"resuming {checkpoint} would change the run: {listing}. Resume with the run's settings "
                          f"(--config {run_dir / 'config.yaml'}), or pass --resume_changed_settings true to go on "
                          "(config.yaml's first version is kept as config.original.yaml)")
    print(f"resuming with changes (--resume_changed_settings true): {listing}", flush=True)
    original, current = run_dir / "config.original.yaml", run_dir / "config.yaml"
    if current.is_file() and not original.exists():
        write_text(original, read_text(current))


def _normal(value):
    if isinstance(value, (list, tuple)):
        return sorted(map(str, value)) if all(isinstance(v, str) for v in value) else [_normal(v) for v in value]
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _yaml(path: Path) -> dict | None:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    return data if isinstance(data, dict) else None
