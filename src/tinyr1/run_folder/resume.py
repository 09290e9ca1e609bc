"""What a resume checks before it trains a step: that the checkpoint fits the model and the settings it resumes.

- A different model (another architecture than the checkpoint's) or a changed LoRA setting (``use_peft``,
  ``lora_r``, ``lora_target_modules``) cannot load: one line, exit 2, always.
- A missing ``optimizer.pt`` (Adam would restart from zero) or settings that differ from the run's ``config.yaml``
  are printed and refused, unless ``--resume_changed_settings true``: then the resume goes on with the new settings
  applied (a new learning rate, schedule or optimizer hyperparameter included: ``tinyr1.training.optimizer_state``)
  and the run's first settings stay beside them, in ``config.original.yaml``. Lists are compared in order
  (reordered ``reward_funcs`` or ``curriculum_levels`` are a change), except names of modules and generator
  options (``UNORDERED``). A new ``optim`` is refused even then: the checkpoint holds the first optimizer's state.
- A run that finished (run.json ``completed`` at ``max_steps``) is not trained again: it says so and exits 0.

Raising ``max_steps`` to continue a finished run, and the settings that only change how a step is computed or
logged (``IGNORED``), are not changes.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import yaml

from tinyr1.infra.errors import TinyR1Error
from tinyr1.infra.files import read_json, read_jsonl, read_text, write_text
from tinyr1.infra.naming import setting
from tinyr1.run_folder.checkpoints import stamped_by

logger = logging.getLogger(__name__)

IGNORED = {"resume_from_checkpoint", "output_dir", "overwrite_output_dir", "resume_changed_settings", "max_steps",
           "max_train_minutes", "num_threads", "cpu_fast_path", "save_steps", "save_strategy", "save_total_limit",
           "logging_steps", "logging_strategy", "logging_first_step", "sample_every", "report_to", "disable_tqdm",
           "run_name", "logging_dir", "config", "use_cpu", "bf16", "activation_checkpointing",
           "gradient_checkpointing", "dataloader_num_workers", "preflight", "resume_from_foreign_checkpoint"}
# Settings whose order means nothing (names of modules, generator options): compared as sets. Every other list is a
# sequence: reordered reward_funcs move their reward_weights to other rewards, reordered curriculum_levels are
# another schedule.
UNORDERED = {"lora_target_modules", "lora_modules_to_save", "dataset_options", "report_to"}
# A change that no resume can make exactly: the optimizer's state is the checkpoint's optimizer's.
FIXED = {"optim"}
_ARCHITECTURE = ("model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                 "intermediate_size", "vocab_size")


class FinishedRun(Exception):
    """The run this resume names has already finished: nothing to train (the command exits 0). ``step`` and
    ``loss``: its last step and its training loss (what trl's ``train`` would have returned), where known."""

    def __init__(self, message: str, step: int = 0, loss: float = 0.0):
        super().__init__(message)
        self.step, self.loss = step, loss


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
                          f"To train further, raise {setting('max_steps')}", step, _train_loss(run_dir))


def _train_loss(run_dir: Path) -> float:
    """The finished run's ``train_loss`` (the Trainer logs it once, at the end), or 0.0."""
    try:
        rows = read_jsonl(run_dir / "metrics.jsonl", missing_ok=True)
    except TinyR1Error:
        return 0.0
    losses = [row["train_loss"] for row in rows if isinstance(row.get("train_loss"), (int, float))]
    return float(losses[-1]) if losses else 0.0


def check_own(checkpoint: Path, run_id: str | None, run_dir: Path) -> None:
    """A checkpoint named by its path continues this run only if it is one of this run's (its stamp): another run's
    would roll this one back and save over its later checkpoints."""
    if not stamped_by(checkpoint, run_id):
        raise TinyR1Error(f"{setting('resume_from_checkpoint')} {checkpoint}: not a checkpoint of this run "
                          f"({run_dir}); a resume continues the run it names. To start a new run from it, give a new "
                          f"{setting('output_dir')} and {setting('resume_from_foreign_checkpoint', True)}")


def check_foreign_start(value) -> None:
    """``--resume_from_foreign_checkpoint true`` starts a new run from a checkpoint's path, nothing else."""
    if value in (None, "", "false", "False", "latest", "true", "True"):
        raise TinyR1Error(f"{setting('resume_from_foreign_checkpoint', True)} starts a new run from another run's "
                          f"checkpoint: name it with {setting('resume_from_checkpoint')} PATH (or drop "
                          f"{setting('resume_from_foreign_checkpoint')} to continue a run)")


def check_fits(checkpoint: Path, values: dict, model_config: dict | None = None) -> None:
    """One line when the checkpoint cannot load into this run's model: another architecture, or other LoRA.
    ``model_config``: the config.json of the model this run names, where it is on this machine."""
    adapter = _json(checkpoint / "adapter_config.json")
    lora = bool(values.get("use_peft"))
    name = checkpoint.name
    if lora and adapter is None:
        raise TinyR1Error(f"{setting('use_peft', True)}: {name} holds a full model, not a LoRA adapter; resume with "
                          f"the run's setting ({setting('use_peft', False)}), or start a new run for LoRA in another "
                          f"{setting('output_dir')}")
    if not lora and adapter is not None:
        raise TinyR1Error(f"{setting('use_peft', False)}: {name} holds a LoRA adapter; resume with "
                          f"{setting('use_peft', True)}, as the run started")
    if adapter is not None:
        for key, field in (("r", "lora_r"), ("target_modules", "lora_target_modules")):
            new, old = values.get(field), adapter.get(key)
            if new is not None and old is not None and not same_setting(field, new, old):
                raise TinyR1Error(f"{setting(field, new)}: {name} holds a LoRA adapter with {key} {old}; resume with "
                                  f"{setting(field, old)}, or start a new run in another {setting('output_dir')}")
        return
    saved = _json(checkpoint / "config.json")
    model = values.get("model_name_or_path")
    current = model_config if saved is not None and model else None
    if current is None:
        return
    differ = [f"{k} {saved.get(k)} vs {current.get(k)}" for k in _ARCHITECTURE if saved.get(k) != current.get(k)]
    if differ:
        raise TinyR1Error(f"{setting('model_name_or_path')} {model}: not the model {name} was trained from "
                          f"({'; '.join(differ)}); resume with the run's model_name_or_path (see its config.yaml)")


def differences(run_dir: Path, checkpoint: Path, values: dict) -> list[str]:
    """What differs from the run being resumed: settings against its config.yaml, and a missing optimizer state."""
    found = []
    if not (checkpoint / "optimizer.pt").is_file():
        found.append(f"{checkpoint.name} has no optimizer.pt (the optimizer would restart from zero)")
    old = _yaml(run_dir / "config.yaml")
    if old is not None:
        for key in sorted((set(old) | set(values)) - IGNORED):
            if not same_setting(key, old.get(key), values.get(key)):
                found.append(f"{key}: {old.get(key)!r} -> {values.get(key)!r}")
    return found


def same_setting(key: str, old, new) -> bool:
    """Whether two values of a setting are the same: lists in order (except ``UNORDERED``), 2.0 equal to 2."""
    return _normal(old, key in UNORDERED) == _normal(new, key in UNORDERED)


def check_changes(run_dir: Path, checkpoint: Path, values: dict, accept: bool) -> None:
    """Refuse a resume that changes what it resumes, unless ``accept``; then keep the first config.yaml."""
    found = differences(run_dir, checkpoint, values)
    if not found:
        return
    fixed = [change for change in found if change.split(":")[0] in FIXED]
    if fixed:
        key = fixed[0].split(":")[0]
        raise TinyR1Error(f"resuming {checkpoint} would change {fixed[0]}, which no resume can do: the checkpoint "
                          f"holds the first optimizer's state. Resume with the run's {key} (see "
                          f"{run_dir / 'config.yaml'}), or start a new run in another {setting('output_dir')}")
    listing = "; ".join(found)
    if not accept:
        raise TinyR1Error(f"resuming {checkpoint} would change the run: {listing}. Resume with the run's settings "
                          f"({setting('config')} {run_dir / 'config.yaml'}), or pass "
                          f"{setting('resume_changed_settings', True)} to go on (config.yaml's first version is kept "
                          "as config.original.yaml)")
    logger.info(f"resuming with changes ({setting('resume_changed_settings', True)}): {listing}")
    original, current = run_dir / "config.original.yaml", run_dir / "config.yaml"
    if current.is_file() and not original.exists():
        write_text(original, read_text(current))


def _normal(value, unordered: bool = False):
    if isinstance(value, (list, tuple)):
        items = [_normal(v) for v in value]
        return sorted(map(str, items)) if unordered else items
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
