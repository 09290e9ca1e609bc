"""A plain trl run's folder, read for ``tinyr1 report``: what a ``trl.GRPOTrainer`` (or any transformers Trainer)
left in its ``output_dir`` before tinyr1 was used.

The Trainer keeps its whole log history in ``trainer_state.json``: in each ``checkpoint-N`` folder, and in the
``output_dir`` itself when the script called ``trainer.save_state()``. Its rows are what tinyr1's metrics.jsonl
holds (``step``, ``loss``, ``reward``, ``rewards/<name>/mean``, ``grad_norm``...), so the same report and plots are
drawn from them. Nothing here writes: the folder is the user's, and the report goes to a folder they name.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from tinyr1.infra.errors import TinyR1Error
from tinyr1.infra.files import read_json, read_text
from tinyr1.run_folder.logs import usable_rows

STATE = "trainer_state.json"


@dataclass
class TrlRun:
    """The log history of a trl run and what its folder says about it."""

    folder: Path
    state_file: Path
    rows: list[dict]
    skipped: int
    facts: dict = field(default_factory=dict)


def _step_of(checkpoint: Path) -> int:
    return int(checkpoint.name.rsplit("-", 1)[1])


def state_file(folder: Path) -> Path | None:
    """``trainer_state.json`` of the folder itself, else of its newest ``checkpoint-N``; None if neither."""
    if (folder / STATE).is_file():
        return folder / STATE
    checkpoints = [p for p in folder.glob("checkpoint-*") if re.fullmatch(r"checkpoint-\d+", p.name)
                   and (p / STATE).is_file()]
    return max(checkpoints, key=_step_of) / STATE if checkpoints else None


def _base_model(folder: Path) -> str | None:
    """The model the run trained, where the folder says: a LoRA adapter's base, or the model card trl writes."""
    checkpoints = sorted((p for p in folder.glob("checkpoint-*") if re.fullmatch(r"checkpoint-\d+", p.name)),
                         key=_step_of, reverse=True)
    for adapter in (p / "adapter_config.json" for p in (folder, *checkpoints)):
        if adapter.is_file():
            try:
                return json.loads(read_text(adapter)).get("base_model_name_or_path")
            except (ValueError, AttributeError):
                return None
    card = folder / "README.md"
    if card.is_file():
        found = re.search(r"^base_model:\s*(\S+)\s*$", read_text(card)[:4000], flags=re.M)
        if found and found.group(1).strip("'\"") != "None":  # trl writes None for a model loaded from a folder
            return found.group(1).strip("'\"")
    return None


def read_trl_run(folder: str | Path) -> TrlRun | None:
    """The run's log history, or None where the folder holds no ``trainer_state.json`` (not a Trainer's folder)."""
    folder = Path(folder)
    path = state_file(folder)
    if path is None:
        return None
    state = read_json(path)  # a damaged file is one line naming it
    history = state.get("log_history")
    if not isinstance(history, list):
        raise TinyR1Error(f"{path}: no log_history list; is this a transformers Trainer's trainer_state.json?")
    rows, skipped = usable_rows(history)
    summary = next((r for r in reversed(rows) if "train_runtime" in r), {})
    facts = {"model": _base_model(folder), "source": str(path), "global_step": state.get("global_step"),
             "wall_seconds": summary.get("train_runtime")}
    return TrlRun(folder, path, rows, skipped, facts)
