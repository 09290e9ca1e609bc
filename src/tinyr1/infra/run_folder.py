"""One owner of a run's folder, for ``tinyr1 train`` and ``tinyr1 sft`` alike: claim, resume, run.json, finish.

A user's folder is never written into or emptied by accident. ``RunDir.claim`` accepts a folder that does not
exist yet, an empty one, or one holding a tinyr1 run — recognised by the marker file ``.tinyr1-run`` that tinyr1
writes there, listing every top-level file and folder the run created. Anything else is refused with one line,
with or without ``--overwrite_output_dir``. Overwriting removes only what the marker lists, so a user's own files
beside a run (notes, a README of theirs) survive it. The marker is brought up to date at every state change of
``run.json`` and at every checkpoint, so even a killed run's checkpoints are known to be tinyr1's.

    run = RunDir.claim(training.output_dir, "train", resume=False, overwrite=False)
    run.write_run_json("running", model=...)        # once per state change: running, completed, failed...
    run.train(trainer, resume_from_checkpoint=run.resolve_resume(value), remedies=...)   # OOM -> exit 4
    run.save_final(trainer, tokenizer)
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import time
from pathlib import Path

from tinyr1.infra.checkpoints import check_checkpoint, latest_checkpoint
from tinyr1.infra.errors import OutOfMemoryError, TinyR1Error, first_line
from tinyr1.infra.out_of_memory import is_out_of_memory
from tinyr1.infra.paths import check_output_dir, make_dirs

MARKER = ".tinyr1-run"
# What a run made before the marker existed leaves: such a folder, holding nothing else, is adopted as a run.
_LEGACY = re.compile(r"(run\.json|metrics\.jsonl|samples\.jsonl|config\.yaml|config\.json|generation_config\.json|"
                     r"tokenizer(_config)?\.json|special_tokens_map\.json|chat_template\.jinja|vocab\.json|"
                     r"merges\.txt|added_tokens\.json|model(-\d+-of-\d+)?\.safetensors(\.index\.json)?|"
                     r"adapter_(config\.json|model\.safetensors)|training_args\.bin|README\.md|report\.(md|html)|"
                     r"compare\.md|checkpoint-\d+|eval|plots|merged|reference-model|runs)")


class RunDir:
    """A claimed run folder. Only the main process (``main``) writes the marker and run.json."""

    def __init__(self, path: Path, command: str, main: bool = True):
        self.path, self.command, self.main = Path(path), command, main
        self.started = time.time()
        self.facts: dict = {}
        self._written: set[str] = set()  # top-level names tinyr1 created here
        self._foreign: set[str] = set()  # names that were here and are not tinyr1's

    # ------------------------------------------------------------ claiming

    @classmethod
    def claim(cls, path, command: str, *, resume: bool, overwrite: bool, main: bool = True) -> RunDir:
        """Take ``path`` for a run, or raise one line saying why not (see the module docstring)."""
        if path is None or not str(path).strip():
            raise TinyR1Error("--output_dir: empty; give a folder path")
        folder = Path(path).expanduser()
        run = cls(folder, command, main)
        if not main:  # the main process claims (and may clear); the others only write inside the folder
            return run
        if folder.exists() and not folder.is_dir():
            raise TinyR1Error(f"--output_dir {folder}: is a file, not a folder")
        entries = set(os.listdir(folder)) if folder.is_dir() else set()
        marker = run._read_marker()
        if entries and marker is None and _legacy_run(folder, entries):
            marker = {"command": command, "paths": sorted(entries)}  # a run from before the marker existed
        if entries and marker is None:
            raise TinyR1Error(f"--output_dir {folder}: not empty and not a tinyr1 run (no {MARKER}); tinyr1 never "
                              "writes into or deletes a folder it did not create: pick a new or empty folder")
        if marker is not None and marker["paths"] and marker.get("command") != command:
            raise TinyR1Error(f"--output_dir {folder}: holds a tinyr1 {marker.get('command')} run, not a "
                              f"{command} run; pick another folder")
        if marker is not None and not resume and marker["paths"]:  # a claim that wrote nothing yet is no run
            if not overwrite:
                raise TinyR1Error(f"--output_dir {folder}: already holds a tinyr1 {command} run; continue it with "
                                  "--resume_from_checkpoint latest, pick another --output_dir, or start afresh with "
                                  "--overwrite_output_dir true (removes only the files that run wrote)")
            check_output_dir(folder, "--output_dir")
            run._clear(marker["paths"])
            marker = None
        run._written = set(marker["paths"]) if marker else set()
        check_output_dir(folder, "--output_dir")  # probed only once the folder is known to be ours to use
        make_dirs(folder, "--output_dir")
        run._foreign = set(os.listdir(folder)) - run._written - {MARKER}
        run._save_marker()
        return run

    def _read_marker(self) -> dict | None:
        file = self.path / MARKER
        if not file.is_file():
            return None
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
            paths = [p for p in data["paths"] if isinstance(p, str)]
        except (ValueError, KeyError, TypeError):
            raise TinyR1Error(f"{file}: damaged tinyr1 run marker; remove it only if this folder is a tinyr1 "
                              "run, or pick another --output_dir") from None
        return {**data, "paths": paths}

    def _clear(self, names: list[str]) -> None:
        for name in names:
            if not name or "/" in name or name in (".", ".."):  # a hand-edited marker must not reach outside
                continue
            target = self.path / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
        (self.path / MARKER).unlink(missing_ok=True)

    def _save_marker(self) -> None:
        from tinyr1 import __version__

        data = {"tinyr1": __version__, "command": self.command, "paths": sorted(self._written)}
        tmp = self.path / f"{MARKER}.tmp"
        tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
        tmp.replace(self.path / MARKER)

    def record(self) -> None:
        """Note every new top-level entry as tinyr1's (called at each state change and checkpoint)."""
        if not self.main or not self.path.is_dir():
            return
        new = set(os.listdir(self.path)) - self._foreign - self._written - {MARKER, f"{MARKER}.tmp"}
        if new:
            self._written |= new
            self._save_marker()

    def callback(self):
        """A TrainerCallback that records checkpoints and logs as they appear."""
        from transformers import TrainerCallback

        run = self

        class _Record(TrainerCallback):
            def on_save(self, args, state, control, **kwargs):
                run.record()

            def on_log(self, args, state, control, logs=None, **kwargs):
                run.record()

        return _Record()

    # ------------------------------------------------------------ resuming

    def resolve_resume(self, value: str | None) -> str | None:
        """None, or the checkpoint folder to resume from: ``latest`` (or true) is the newest complete one here."""
        if value in (None, "", "false", "False"):
            return None
        if value in ("latest", "true", "True"):
            found = latest_checkpoint(self.path)
            if found is None:
                raise TinyR1Error(f"--resume_from_checkpoint latest: no complete checkpoint-N in {self.path}")
            value = str(found)
        check_checkpoint(Path(value))
        return value

    # ------------------------------------------------------------ run.json and the end of a run

    def write_run_json(self, status: str, **facts) -> None:
        """Write run.json once per state change: status, timing, versions and every fact given so far."""
        self.facts.update(facts)
        if not self.main:
            return
        import torch
        import transformers
        import trl

        from tinyr1 import __version__

        info = {"command": self.command, **{k: v for k, v in self.facts.items() if k in ("model", "dataset")},
                "status": status, "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(self.started)),
                "wall_seconds": round(time.time() - self.started, 1),
                "versions": {"tinyr1": __version__, "torch": torch.__version__, "trl": trl.__version__,
                             "transformers": transformers.__version__, "python": platform.python_version()},
                **self.facts}
        tmp = self.path / "run.json.tmp"
        tmp.write_text(json.dumps(info, indent=2), encoding="utf-8")
        tmp.replace(self.path / "run.json")
        self.record()

    def build_trainer(self, factory):
        """``factory()``, the trainer; trl, transformers and peft reject some settings only here (LoRA target
        modules the model lacks...): one line, not a traceback."""
        try:
            return factory()
        except (ValueError, ImportError, TypeError, RuntimeError) as err:
            if is_out_of_memory(err):
                raise
            raise TinyR1Error(f"cannot set up training: {first_line(err)}") from None

    def train(self, trainer, resume_from_checkpoint: str | None, remedies) -> None:
        """``trainer.train``; out of memory becomes exit 4 with ``remedies()``; any failure is noted in run.json."""
        try:
            trainer.train(resume_from_checkpoint=resume_from_checkpoint)
        except BaseException as err:
            oom = is_out_of_memory(err)
            self.write_run_json("out of memory" if oom else "failed", global_step=trainer.state.global_step)
            if oom:
                raise OutOfMemoryError(remedies()) from None
            if isinstance(err, ImportError):  # a package a setting needs (an optimizer's, a logger's) is missing
                raise TinyR1Error(f"cannot train: {first_line(err)}") from None
            raise
        self.facts["global_step"] = trainer.state.global_step

    def interrupted(self, trainer, signum: int) -> int:
        """After a first Ctrl-C/SIGTERM (a checkpoint of the finished step was saved): run.json ``interrupted``, the
        resume command, and the shell's exit code for the signal (130 for Ctrl-C, 143 for SIGTERM)."""
        self.write_run_json("interrupted")
        resume = f"tinyr1 {self.command} --config {self.path / 'config.yaml'} --resume_from_checkpoint latest"
        print(f"stopped at step {trainer.state.global_step}; checkpoint saved in {self.path}\nresume with: {resume}",
              flush=True)
        return 128 + signum

    def save_final(self, trainer, tokenizer, merge_lora: bool = False) -> None:
        """The final model (or LoRA adapter) and tokenizer; with ``merge_lora`` also a merged model in merged/."""
        trainer.save_model(str(self.path))  # every process: DeepSpeed/FSDP gather the weights collectively
        if not self.main:
            return
        tokenizer.save_pretrained(self.path)
        if merge_lora and hasattr(trainer.model, "merge_and_unload"):
            trainer.model.merge_and_unload().save_pretrained(self.path / "merged")
            tokenizer.save_pretrained(self.path / "merged")
        self.record()


def _legacy_run(folder: Path, entries: set[str]) -> bool:
    """A run folder from before the marker: only known artefacts, and a run.json that tinyr1 train wrote (or, from
    sft, which wrote none, its config.yaml, metrics.jsonl and saved model)."""
    if not all(_LEGACY.fullmatch(e) for e in entries):
        return False
    if "run.json" in entries:
        try:
            return "tinyr1" in json.loads((folder / "run.json").read_text(encoding="utf-8"))["versions"]
        except (OSError, ValueError, KeyError, TypeError):
            return False
    return {"config.yaml", "metrics.jsonl"} <= entries and bool({"adapter_config.json", "config.json"} & entries)
