"""The one rule for "did tinyr1 write this?" and "may this command write here?", used by every command that writes,
replaces or deletes what it finds: ``check_folder`` for a folder (train, sft, eval's output_dir, report's run
folder), ``check_file`` for a single file (prepare, compare, the probe; ``tinyr1.infra.paths``' sidecars).

A folder tinyr1 writes into (a train or sft run, an eval output) holds the marker ``.tinyr1-run``:

    {"tinyr1": "0.1.0", "command": "train", "run_id": "...", "paths": [...], "foreign": [...]}

- ``paths``: top-level names tinyr1 created there;
- ``foreign``: names that were there, not tinyr1's, when the folder was claimed: never tinyr1's, whatever their name;
- a name tinyr1 writes (``ARTEFACTS``: metrics.jsonl, report.md, eval/...) that appeared after the claim is the
  run's even when the process died before listing it — the marker is written *before* anything else;
- a ``checkpoint-N`` is the run's only when it holds the run's stamp (``tinyr1.run_folder.checkpoints``), written into
  it before the Trainer saves, so a checkpoint copied in from another run is never resumed nor deleted.

A file is tinyr1's when the marker of its folder, or of a folder above it, says so. Folders written before the
marker existed are recognised by what tinyr1 wrote into their files (a run.json or metrics.json naming tinyr1's
version, a report's header), nothing else.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path

from tinyr1.infra.errors import TinyR1Error
from tinyr1.infra.files import write_text
from tinyr1.infra.naming import setting
from tinyr1.infra.paths import check_output_file
from tinyr1.infra.version import __version__
from tinyr1.run_folder.checkpoints import stamped_by
from tinyr1.run_folder.lock import LOCK

MARKER = ".tinyr1-run"
BOOKKEEPING = {MARKER, f"{MARKER}.tmp", LOCK}  # tinyr1's own files about a folder, never part of a run
# ``.<name>.<pid>.tmp``: a file tinyr1 was writing (tinyr1.infra.files) when its process was killed.
ARTEFACTS = re.compile(r"(\..+\.\d+\.tmp|"
                       r"run\.json(\.tmp)?|metrics\.jsonl|samples\.jsonl|config(\.original)?\.yaml|config\.json|"
                       r"generation_config\.json|tokenizer(_config)?\.json|tokenizer\.model|special_tokens_map\.json|"
                       r"chat_template\.jinja|vocab\.json|merges\.txt|added_tokens\.json|"
                       r"model(-\d+-of-\d+)?\.safetensors(\.index\.json)?|pytorch_model(-\d+-of-\d+)?\.bin|"
                       r"adapter_(config\.json|model\.safetensors)|training_args\.bin|README\.md|report\.(md|html)|"
                       r"compare\.md|checkpoint-\d+|eval|plots|merged|reference-model|runs|completions|metrics\.json|"
                       r"\.tinyr1-tmp-.+)")
CHECKPOINT = re.compile(r"checkpoint-\d+")


def read_marker(folder: Path) -> dict | None:
    """The folder's marker, or None; a damaged one is one line (a hand edit, never a crash: it is renamed in)."""
    file = Path(folder) / MARKER
    if not file.is_file():
        return None
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        paths = [p for p in data["paths"] if isinstance(p, str)]
        foreign = data.get("foreign")
        foreign = None if foreign is None else [p for p in foreign if isinstance(p, str)]
    except (ValueError, KeyError, TypeError, AttributeError):
        raise TinyR1Error(f"{file}: damaged tinyr1 marker; remove it only if tinyr1 wrote this folder, or pick "
                          "another folder") from None
    return {**data, "paths": paths, "foreign": foreign}


def write_marker(folder: Path, command: str, paths, foreign, run_id: str | None = None) -> str:
    """Write the marker (through a temporary file renamed into place); returns the run id."""
    run_id = run_id or uuid.uuid4().hex
    data = {"tinyr1": __version__, "command": command, "run_id": run_id, "paths": sorted(paths),
            "foreign": sorted(foreign)}
    write_text(Path(folder) / MARKER, json.dumps(data, indent=1), raw_errors=True)
    return run_id


def entries(folder: Path) -> set[str]:
    """The folder's top-level names, less tinyr1's bookkeeping."""
    return set(os.listdir(folder)) - BOOKKEEPING if Path(folder).is_dir() else set()


def owned_names(folder: Path, marker: dict | None, names: set[str] | None = None) -> set[str]:
    """The top-level names in ``folder`` that are tinyr1's under ``marker`` (see the module docstring)."""
    if marker is None:
        return set()
    names = entries(folder) if names is None else names
    listed = set(marker["paths"])
    if marker.get("foreign") is None:  # a marker from before "foreign" was kept: only what it lists
        return names & listed
    foreign = set(marker["foreign"])
    mine = set()
    for name in names:
        if name in listed:
            mine.add(name)
        elif CHECKPOINT.fullmatch(name):
            if stamped_by(Path(folder) / name, marker.get("run_id")):
                mine.add(name)
        elif name not in foreign and ARTEFACTS.fullmatch(name):
            mine.add(name)
    return mine


def is_ours(path: str | Path) -> bool:
    """Whether tinyr1 wrote ``path``: the marker of its folder or of a folder above it says so; in a folder from
    before the marker, the file itself says so (see ``_signed``)."""
    path = Path(path).absolute()
    for folder in path.parents:
        marker = _read_quietly(folder)
        if marker is not None:
            top = path.relative_to(folder).parts[0]
            return top in owned_names(folder, marker, {top})
    return _signed(path)


def _read_quietly(folder: Path) -> dict | None:
    try:
        return read_marker(folder)
    except TinyR1Error:
        return None


def _signed(path: Path) -> bool:
    """tinyr1's signature inside a file written before the marker existed: a report's header, or a metrics.json
    (tinyr1 eval) or run.json (tinyr1 train) naming tinyr1's version."""
    try:
        if path.name in ("report.md", "report.html"):
            return "tinyr1 run report" in path.read_text(encoding="utf-8", errors="replace")[:300]
        if path.name == "samples.jsonl":  # eval's pair: tinyr1's exactly when its metrics.json is
            return _signed(path.with_name("metrics.json"))
        if path.name in ("metrics.json", "run.json"):
            return "tinyr1" in json.loads(path.read_text(encoding="utf-8"))["versions"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return False


def claim_outputs(folder: Path, command: str, names: list[str]) -> None:
    """Record ``names`` as tinyr1's in ``folder``'s marker *before* writing them (eval's own folder), refusing one
    that is there and is not tinyr1's."""
    for name in names:
        if (folder / name).exists() and not is_ours(folder / name):
            raise TinyR1Error(f"{setting('output_dir')} {folder}: holds a {name} that tinyr1 {command} did not "
                              "write; pick another folder (tinyr1 never replaces a file of yours)")
    marker = _read_quietly(folder)
    if marker is not None and set(names) <= set(marker["paths"]):
        return
    present = entries(folder)
    paths = set(names) | (set(marker["paths"]) if marker else set())
    foreign = (set(marker["foreign"] or []) if marker else set()) | (present - paths)
    write_marker(folder, marker.get("command", command) if marker else command, paths, foreign,
                 marker.get("run_id") if marker else None)


def legacy_run(folder: Path, entries: set[str]) -> bool:
    """A run folder from before the marker: only known artefacts, and a run.json that tinyr1 train signed (or, from
    sft, which wrote none, its config.yaml, metrics.jsonl and saved model)."""
    if not all(ARTEFACTS.fullmatch(e) for e in entries):
        return False
    if "run.json" in entries:
        return _signed(folder / "run.json")
    return {"config.yaml", "metrics.jsonl"} <= entries and bool({"adapter_config.json", "config.json"} & entries)


PICK = "pick a new or empty folder"
# The commands whose folders are runs (the rest write outputs: eval).
RUNS = ("train", "sft")


def check_folder(folder: str | Path, command: str, what: str, owners: tuple[str, ...] | None = None,
                 fix: str = PICK, ignore=frozenset()) -> dict | None:
    """May ``command`` write into ``folder``? Yes when it does not exist, is empty, or is tinyr1's (its marker, or a
    folder from before markers that tinyr1's own files sign) and was written by one of ``owners`` (default: the
    command itself); otherwise one line naming ``what`` and ``fix``. Returns the folder's marker (None if none).
    The same rule for every command: ``train`` and ``sft`` (their run folder), ``eval`` (its output_dir),
    ``report`` (a run folder, ``owners`` train and sft). ``ignore``: names the caller itself wrote there."""
    folder = Path(folder).expanduser()
    names = entries(folder) - set(ignore)
    marker = read_marker(folder) if folder.is_dir() else None
    if names and marker is None:
        if command == "eval" and _legacy_eval(folder, names):
            marker = {"command": "eval", "paths": sorted(names), "foreign": None}
        elif command != "eval" and legacy_run(folder, names):
            marker = {"command": command if command in RUNS else None, "paths": sorted(names), "foreign": None}
        else:
            raise TinyR1Error(f"{what} {folder}: not empty and not a tinyr1 run (no {MARKER}); tinyr1 never writes "
                              f"into or deletes a folder it did not create: {fix}")
    theirs = marker.get("command") if marker else None
    if theirs is not None and theirs not in (owners or (command,)) and owned_names(folder, marker, names):
        kind = "run" if theirs in RUNS else "output"
        wanted = f"a {command} run" if command in RUNS else f"a folder {command} writes"
        raise TinyR1Error(f"{what} {folder}: holds a tinyr1 {theirs} {kind}, not {wanted}; "
                          f"{'pick another folder' if fix == PICK else fix}")
    return marker


def check_file(path, command: str, what: str, inputs=()) -> Path:
    """May ``command`` write the single file ``path``? The sidecar rule of ``tinyr1.infra.paths``: a new file, or one
    tinyr1 ``command`` wrote and nobody changed since; never one of the command's ``inputs``."""
    return check_output_file(path, what, owner=command, inputs=inputs)


def _legacy_eval(folder: Path, names: set[str]) -> bool:
    """An eval output from before the marker: its pair, metrics.json signed by tinyr1's version."""
    return names <= {"metrics.json", "samples.jsonl"} and _signed(folder / "metrics.json")
