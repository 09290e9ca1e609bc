"""A run's checkpoints: which one is the newest complete one, and whether a folder is one trl can resume from."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tinyr1.infra.errors import TinyR1Error


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest *complete* ``checkpoint-N`` (one whose trainer_state.json was written, which happens last)."""
    found = []
    for child in run_dir.glob("checkpoint-*"):
        match = re.fullmatch(r"checkpoint-(\d+)", child.name)
        if match and child.is_dir() and (child / "trainer_state.json").is_file():
            found.append((int(match.group(1)), child))
    return max(found)[1] if found else None


def check_checkpoint(folder: Path) -> None:
    """A checkpoint trl can resume from, or one line: a folder with a readable trainer_state.json and weights."""
    state = folder / "trainer_state.json"
    if not folder.is_dir():
        raise TinyR1Error(f"--resume_from_checkpoint {folder}: no such checkpoint folder")
    try:
        data = json.loads(state.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or "global_step" not in data:
            raise ValueError
    except (OSError, ValueError):
        raise TinyR1Error(f"--resume_from_checkpoint {folder}: not a complete checkpoint (no readable "
                          "trainer_state.json)") from None
    weights = [f for f in ("model.safetensors", "adapter_model.safetensors", "model.safetensors.index.json")
               if (folder / f).is_file()]
    if not weights:
        raise TinyR1Error(f"--resume_from_checkpoint {folder}: no model weights (model.safetensors) in it")
    if weights[0].endswith(".safetensors"):
        from safetensors import safe_open

        try:
            with safe_open(str(folder / weights[0]), framework="pt"):
                pass
        except Exception as err:  # safetensors raises its own error types for a damaged header
            raise TinyR1Error(f"--resume_from_checkpoint {folder}: {weights[0]} is damaged ({err})") from None
