"""A run's checkpoints: which are the run's own, which one is the newest complete one, and whether a folder is one
trl can resume from.

Each ``checkpoint-N`` a run saves holds a stamp, ``.tinyr1-run-id``, with the run's id (from the folder's marker,
``tinyr1.run_folder.ownership``). The stamp is written at the end of the step, *before* the Trainer creates the
checkpoint's files, so a process killed at any instant of a save leaves either no folder, or a folder already
stamped as the run's. ``latest`` resumes only a stamped, complete checkpoint: never one copied in from another run,
nor one from before an ``--overwrite_output_dir``.

After the Trainer has saved a checkpoint, a manifest, ``.tinyr1-files``, lists by name every file that save wrote
(``write_manifest``): what an ``--overwrite_output_dir`` or ``save_total_limit``'s rotation deletes of that
checkpoint (``tinyr1.run_folder.cleanup``), and nothing else. A file a user put there is in no manifest, so it stays.
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

from tinyr1.infra.errors import TinyR1Error
from tinyr1.infra.files import write_text
from tinyr1.infra.naming import setting

STAMP = ".tinyr1-run-id"
MANIFEST = ".tinyr1-files"
# What a save writes at a checkpoint's top level (transformers, trl, peft, tinyr1): a checkpoint killed before its
# manifest was written is cleaned by these names alone.
CHECKPOINT_FILES = re.compile(
    r"(model(-\d+-of-\d+)?\.safetensors(\.index\.json)?|pytorch_model(-\d+-of-\d+)?\.bin(\.index\.json)?|"
    r"adapter_(config\.json|model\.safetensors|model\.bin)|config\.json|generation_config\.json|"
    r"tokenizer(_config)?\.json|tokenizer\.model|special_tokens_map\.json|chat_template\.(jinja|json)|vocab\.json|"
    r"merges\.txt|added_tokens\.json|optimizer\.(pt|bin)|scheduler\.pt|scaler\.pt|rng_state(_\d+)?\.pth|"
    r"trainer_state\.json|training_args\.bin|README\.md|curriculum\.json|entropy_ctrl_state\.json|"
    r"\.tinyr1-run-id|\.tinyr1-files|\..+\.\d+\.tmp)")


def stamp(folder: Path, run_id: str) -> None:
    """Mark ``folder`` (a checkpoint about to be saved) as the run's. A new folder is made stamped under a
    temporary name and renamed into place, so no instant exists at which it is there and not yet stamped."""
    if folder.is_dir():
        refuse_foreign(folder, run_id)
        write_text(folder / STAMP, run_id, raw_errors=True)
        return
    staging = folder.with_name(f".tinyr1-tmp-{folder.name}")
    staging.mkdir(parents=True, exist_ok=True)
    write_text(staging / STAMP, run_id, raw_errors=True)
    staging.rename(folder)


def refuse_foreign(folder: Path, run_id: str | None) -> None:
    """A ``checkpoint-N`` folder that is not this run's and holds a file a save writes (``CHECKPOINT_FILES``:
    another run's checkpoint, or weights of yours) is never saved into: trl would write over it. One line naming
    it, before the step's save. Files of yours under other names stay beside the save, as after an overwrite."""
    theirs = not stamped_by(folder, run_id) and folder.is_dir()
    if theirs and any(CHECKPOINT_FILES.fullmatch(p.name) for p in folder.iterdir() if not p.is_dir()):
        raise TinyR1Error(f"{folder}: not this run's checkpoint, and this run saves its step-{folder.name[11:]} "
                          f"checkpoint there; tinyr1 does not write over it: move it out of {folder.parent}, then run "
                          f"again ({setting('resume_from_checkpoint', 'latest')} continues this run)")


def refuse_foreign_ahead(run_dir: Path, run_id: str | None, after_step: int, max_steps: int | None = None) -> None:
    """Before training from ``after_step`` up to ``max_steps`` (None or < 1: no limit): every ``checkpoint-N`` in
    between, where the run could save, must be its own (``refuse_foreign``), so a run never stops mid-way at a
    folder it found at the start."""
    last = max_steps if isinstance(max_steps, int) and max_steps > 0 else None
    for folder in sorted(Path(run_dir).glob("checkpoint-*")):
        match = re.fullmatch(r"checkpoint-(\d+)", folder.name)
        if match and after_step < int(match.group(1)) <= (last or int(match.group(1))):
            refuse_foreign(folder, run_id)


def files_in(folder: Path) -> set[str]:
    """Every file (or symlink) under ``folder``, as paths relative to it (``/``-separated); symlinked folders are
    not followed."""
    folder = Path(folder)
    found = set()
    for path in folder.rglob("*") if folder.is_dir() else ():
        if path.is_symlink() or path.is_file():
            found.add(path.relative_to(folder).as_posix())
    return found


def write_manifest(folder: Path, before: set[str]) -> None:
    """List in ``folder``'s manifest what the save just made wrote: every file there now that was not there
    before it (``before``), except the ones an earlier save of this run listed or that trl names at the top level
    (a save replaces those)."""
    listed = manifest(folder) or set()
    theirs = {name for name in before if name not in listed and not ("/" not in name
                                                                       and CHECKPOINT_FILES.fullmatch(name))}
    written = sorted((files_in(folder) - theirs) | {STAMP, MANIFEST})
    write_text(Path(folder) / MANIFEST, json.dumps(written, indent=0), raw_errors=True)


def manifest(folder: Path) -> set[str] | None:
    """The files a checkpoint's manifest lists, or None where it has none (a save killed before its end, or a
    checkpoint from before manifests)."""
    try:
        data = json.loads((Path(folder) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return {n for n in data if isinstance(n, str)} if isinstance(data, list) else None


def stamped_by(folder: Path, run_id: str | None) -> bool:
    try:
        return run_id is not None and (folder / STAMP).read_text(encoding="utf-8").strip() == run_id
    except OSError:
        return False


def _trainer_state(folder: Path) -> dict | None:
    try:
        data = json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and "global_step" in data else None


def checkpoint_step(folder: str | Path) -> int | None:
    """The step a checkpoint was saved at (its trainer_state.json's ``global_step``), None where it has none: read
    once the checkpoint has been checked, without checking its files again."""
    step = (_trainer_state(Path(folder)) or {}).get("global_step")
    return step if isinstance(step, int) and not isinstance(step, bool) else None


def latest_checkpoint(run_dir: Path, owned: set[str] | None = None) -> Path | None:
    """The newest *complete* ``checkpoint-N`` (its trainer_state.json, written last, is readable) among ``owned``
    (every one when None). A newest one the process died writing is passed over for the one before."""
    found = []
    for child in run_dir.glob("checkpoint-*"):
        match = re.fullmatch(r"checkpoint-(\d+)", child.name)
        if match and child.is_dir() and (owned is None or child.name in owned) and _trainer_state(child):
            found.append((int(match.group(1)), child))
    return max(found)[1] if found else None


def check_checkpoint(folder: Path) -> dict:
    """A checkpoint trl can resume from, or one line naming the damaged or missing file; returns its
    trainer_state.json. A missing optimizer.pt is not checked here (``tinyr1.run_folder.resume`` reports it)."""
    if not folder.is_dir():
        raise TinyR1Error(f"{setting('resume_from_checkpoint')} {folder}: no such checkpoint folder")
    state = _trainer_state(folder)
    if state is None:
        raise TinyR1Error(f"{setting('resume_from_checkpoint')} {folder}: not a complete checkpoint (no readable "
                          "trainer_state.json)")
    weights = [f for f in ("model.safetensors", "adapter_model.safetensors", "model.safetensors.index.json")
               if (folder / f).is_file()]
    if not weights:
        raise TinyR1Error(f"{setting('resume_from_checkpoint')} {folder}: no model weights (model.safetensors) in it")
    if weights[0].endswith(".safetensors"):
        from safetensors import safe_open

        try:
            with safe_open(str(folder / weights[0]), framework="pt"):
                pass
        except Exception as err:  # safetensors raises its own error types for a damaged header
            raise TinyR1Error(f"{setting('resume_from_checkpoint')} {folder}: {weights[0]} is damaged "
                              f"({err})") from None
    for file in sorted(folder.glob("*.pt")) + sorted(folder.glob("*.pth")) + sorted(folder.glob("*.bin")):
        _check_torch_file(file)
    return state


def _check_torch_file(file: Path) -> None:
    """torch.save writes a zip archive whose directory is at its end: a truncated or empty file has none. Only the
    directory is read, not the tensors, so this stays cheap for a large optimizer state."""
    try:
        with zipfile.ZipFile(file):
            return
    except (zipfile.BadZipFile, OSError) as err:
        problem = "empty" if file.stat().st_size == 0 else f"damaged ({err})"
    with file.open("rb") as f:
        if f.read(1) == b"\x80" and file.stat().st_size > 64:  # torch's older pickle format: not checkable here
            return
    earlier = _earlier(file.parent)
    instead = (f"resume from the one before with {setting('resume_from_checkpoint')} {earlier}" if earlier else
               f"start afresh with {setting('overwrite_output_dir', True)} (removes only what the run wrote)")
    raise TinyR1Error(f"{setting('resume_from_checkpoint')} {file.parent}: {file.name} is {problem}; {instead}")


def _earlier(folder: Path) -> Path | None:
    """The newest complete checkpoint before ``folder`` in its run folder."""
    match = re.fullmatch(r"checkpoint-(\d+)", folder.name)
    if not match:
        return None
    older = [c for c in folder.parent.glob("checkpoint-*") if re.fullmatch(r"checkpoint-\d+", c.name)
             and int(c.name.split("-")[1]) < int(match.group(1)) and _trainer_state(c)]
    return max(older, key=lambda c: int(c.name.split("-")[1])) if older else None
