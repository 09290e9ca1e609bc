"""One owner of a run's folder, for ``tinyr1 train`` and ``tinyr1 sft`` alike: claim, lock, resume, run.json, finish.

A user's folder is never written into or emptied by accident. ``RunDir.claim`` accepts a folder that does not
exist yet, an empty one, or one holding a tinyr1 run — recognised by the marker ``.tinyr1-run`` that tinyr1 writes
there before anything else (``tinyr1.run_folder.ownership``: the one rule for what is tinyr1's). Anything else is
refused with one line, with or without ``--overwrite_output_dir``. Overwriting removes only the files the run wrote,
each by name (``tinyr1.run_folder.cleanup``), so a user's own files beside a run or inside its checkpoints (notes,
a README of theirs, an eval saved in a checkpoint) survive it, named in one line.

One process writes a run folder at a time: the claim takes the folder's lock (``tinyr1.run_folder.lock``) and holds
it until the process ends; a second train, sft, resume or overwrite is refused naming the holder's PID. What a run
records survives a kill at any instant: a run.json left ``running`` by a dead process is marked ``killed`` by the
next command that looks (claim, eval, report); checkpoints are stamped as the run's before they are written
(``tinyr1.run_folder.checkpoints``); a resume drops the half-written last line of metrics.jsonl and samples.jsonl
and the rows of the steps it trains again (``tinyr1.run_folder.logs``), and checks what it resumes
(``tinyr1.run_folder.resume``). A full disk is one
line (``tinyr1.run_folder.disk_full``), run.json then says ``failed``, and no temporary file is left.

    run = RunDir.claim(training.output_dir, "train", resume=False, overwrite=False)
    run.write_run_json("running", model=...)        # once per state change: running, completed, failed...
    with run.training(global_step=lambda: trainer.state.global_step, remedies=...):  # OOM -> exit 4
        trainer.train(resume_from_checkpoint=run.resolve_resume(value, values))
    run.save_final(trainer, tokenizer)
"""

from __future__ import annotations

import contextlib
import logging
import platform
import time
from pathlib import Path

from tinyr1.infra.errors import CollapseError, OutOfMemoryError, TinyR1Error, first_line
from tinyr1.infra.files import drop_torn_last_line, is_disk_full, read_json
from tinyr1.infra.naming import on_command_line, setting
from tinyr1.infra.out_of_memory import is_out_of_memory
from tinyr1.infra.paths import check_output_dir, make_dirs
from tinyr1.infra.version import __version__
from tinyr1.run_folder import ownership
from tinyr1.run_folder import resume as resume_checks
from tinyr1.run_folder.checkpoints import (
    check_checkpoint,
    checkpoint_step,
    latest_checkpoint,
    refuse_foreign_ahead,
    write_manifest,
)
from tinyr1.run_folder.cleanup import kept_line, remove_written, to_rotate
from tinyr1.run_folder.disk_full import disk_full_error
from tinyr1.run_folder.lock import RunLock
from tinyr1.run_folder.logs import drop_rows_after
from tinyr1.run_folder.run_json import mark_if_killed, status_in_place, write_json

logger = logging.getLogger(__name__)

MARKER = ownership.MARKER


def wants_resume(value) -> bool:
    """Whether a ``resume_from_checkpoint`` value asks to resume (trl passes strings from the command line).

    >>> [wants_resume(v) for v in (None, "", "false", "False", "latest", "true", "outputs/run/checkpoint-5")]
    [False, False, False, False, True, True, True]
    """
    return value not in (None, "", "false", "False")


class RunDir:
    """A claimed run folder. Only the main process (``main``) locks it and writes the marker and run.json."""

    def __init__(self, path: Path, command: str, main: bool = True):
        self.path, self.command, self.main = Path(path), command, main
        self.started = time.time()
        self.facts: dict = {}
        self.run_id: str | None = None
        self.lock: RunLock | None = None
        self._written: set[str] = set()  # top-level names that are the run's
        self._foreign: set[str] = set()  # names that were here and are not tinyr1's

    # ------------------------------------------------------------ claiming

    @classmethod
    def claim(cls, path, command: str, *, resume: bool, overwrite: bool, main: bool = True,
              made_here: set[str] = frozenset()) -> RunDir:
        """Take ``path`` for a run, or raise one line saying why not (see the module docstring). ``made_here``: what
        the trainer claiming it wrote there while it was built (trl's ``completions/`` folder), the run's own."""
        if path is None or not str(path).strip():
            raise TinyR1Error(f"{setting('output_dir')}: empty; give a folder path")
        folder = Path(path).expanduser()
        run = cls(folder, command, main)
        if not main:  # the main process locks, claims (and may clear); the others only write inside the folder
            return run
        if folder.exists() and not folder.is_dir():
            raise TinyR1Error(f"{setting('output_dir')} {folder}: is a file, not a folder")
        # a user's folder gets not even a lock file
        ownership.check_folder(folder, command, setting("output_dir"), ignore=made_here)
        check_output_dir(folder, setting("output_dir"))  # probed only once the folder is known to be ours to use
        make_dirs(folder, setting("output_dir"))
        run.lock = RunLock.acquire(folder, command, setting("output_dir"))
        mark_if_killed(folder)
        names = ownership.entries(folder) - set(made_here)
        # again: now no other process changes it
        marker = ownership.check_folder(folder, command, setting("output_dir"), ignore=made_here)
        owned = ownership.owned_names(folder, marker, names)
        if owned and not resume:  # a claim that wrote nothing yet is no run
            if not overwrite:
                raise TinyR1Error(run._already_a_run(marker, owned))
            run._say_kept(remove_written(folder, owned))  # file by file (tinyr1.run_folder.cleanup)
            owned, names = set(), ownership.entries(folder)
        keep_id = resume and owned and marker is not None
        run._written = owned | set(made_here)
        run._foreign = set((marker or {}).get("foreign") or []) | (names - owned)
        run.run_id = ownership.write_marker(folder, command, owned, run._foreign,
                                            marker.get("run_id") if keep_id else None)
        if resume:
            for name in ("metrics.jsonl", "samples.jsonl"):
                drop_torn_last_line(folder / name)
        return run

    def _already_a_run(self, marker: dict, owned: set[str]) -> str:
        """The refusal of a fresh run into a run's folder; every way out it names works now (the lock is ours)."""
        try:
            status = (read_json(self.path / "run.json") or {}).get("status")
        except TinyR1Error:
            status = None
        resumable = latest_checkpoint(self.path, owned) is not None and status != "completed"
        said = f" ({status})" if status else ""
        return (f"{setting('output_dir')} {self.path}: already holds a tinyr1 {self.command} run{said}; "
                + (f"continue it with {setting('resume_from_checkpoint', 'latest')}, " if resumable else "")
                + f"pick another {setting('output_dir')}, or start afresh with "
                f"{setting('overwrite_output_dir', True)} (removes only the files that run wrote)")

    def checkpoint_saved(self, folder: Path, before: set[str], limit: int | None) -> None:
        """After the Trainer saved ``folder``: its manifest (what the save wrote, ``before`` being what was there
        already), then ``save_total_limit``'s rotation of the run's own checkpoints, file by file."""
        if not self.main or not folder.is_dir():
            return
        write_manifest(folder, before)
        removed = to_rotate(self.owned(), folder.name, limit)
        if removed:
            kept = remove_written(self.path, removed)
            self._written -= set(removed)
            self._foreign |= {path.split("/")[0] for path in kept}  # what a user left there: that folder is theirs
            ownership.write_marker(self.path, self.command, self._written, self._foreign, self.run_id)
            self._say_kept(kept)

    def _say_kept(self, kept: list[str]) -> None:
        if kept:
            logger.info(kept_line(self.path, kept))

    def owned(self) -> set[str]:
        """The top-level names here that are the run's, now."""
        return ownership.owned_names(self.path, ownership.read_marker(self.path))

    def record(self) -> None:
        """Note every new top-level entry tinyr1 writes as the run's (at each state change and checkpoint)."""
        if not self.main or not self.path.is_dir():
            return
        new = {n for n in ownership.entries(self.path) - self._foreign - self._written
               if ownership.ARTEFACTS.fullmatch(n) and (not ownership.CHECKPOINT.fullmatch(n) or n in self.owned())}
        if new:
            self._written |= new
            ownership.write_marker(self.path, self.command, self._written, self._foreign, self.run_id)

    # ------------------------------------------------------------ resuming

    def resolve_resume(self, value: str | None, values: dict | None = None, accept_changes: bool = False,
                       model_config: dict | None = None, foreign: bool = False):
        """None, or the checkpoint folder to resume from: ``latest`` (or true) is the run's newest complete one; a
        path must be one of this run's checkpoints, unless ``foreign`` (``--resume_from_foreign_checkpoint``): then
        this is a new run started from it. With the run's settings (``values``), also what
        ``tinyr1.run_folder.resume`` checks; a finished run raises ``FinishedRun``. A ``checkpoint-N`` here that the
        run would save into and that is not its own is refused now, not at step N."""
        checkpoint = self._resolve(value, values, accept_changes, model_config, foreign)
        if self.main:
            step = checkpoint_step(checkpoint) if checkpoint else None
            refuse_foreign_ahead(self.path, self.run_id, step or 0, (values or {}).get("max_steps"))
        return checkpoint

    def _resolve(self, value, values, accept_changes, model_config, foreign):
        latest = value in ("latest", "true", "True")
        if foreign or not wants_resume(value):
            return self._start_from(value, values, model_config) if foreign else None
        if values is not None:
            resume_checks.check_not_finished(self.path, values)
        if latest:
            found = latest_checkpoint(self.path, self.owned())  # every process picks the same one
            if found is None:
                others = sorted(p.name for p in self.path.glob("checkpoint-*") if p.name in self._foreign
                                or p.name not in self.owned())
                extra = f" ({', '.join(others)}: not this run's, never resumed)" if others else ""
                raise TinyR1Error(f"{setting('resume_from_checkpoint', 'latest')}: no complete checkpoint-N of this "
                                  f"run in {self.path}{extra}")
            value = str(found)
        check_checkpoint(Path(value))
        if not latest and self.main:
            resume_checks.check_own(Path(value), self.run_id, self.path)
        if values is not None:
            resume_checks.check_fits(Path(value), values, model_config)
            if self.main:
                resume_checks.check_changes(self.path, Path(value), values, accept_changes)
        return value

    def _start_from(self, value, values: dict | None, model_config: dict | None) -> str:
        """``--resume_from_foreign_checkpoint``: this new run starts from another run's checkpoint ``value``."""
        resume_checks.check_foreign_start(value)
        check_checkpoint(Path(value))
        if values is not None:
            resume_checks.check_fits(Path(value), values, model_config)
        if self.main:
            logger.info(f"a new run in {self.path}, started from {value} (its weights, optimizer state and step; "
                        f"{setting('resume_from_foreign_checkpoint', True)})")
        return value

    def drop_logs_after(self, checkpoint: str) -> None:
        """Before a resume trains: the logged rows of the steps after ``checkpoint``, which are trained again."""
        step = checkpoint_step(checkpoint)  # resolve_resume checked the checkpoint
        if self.main and step is not None:
            drop_rows_after(self.path, step)

    # ------------------------------------------------------------ run.json and the end of a run

    def write_run_json(self, status: str, **facts) -> None:
        """Write run.json once per state change: status, timing, versions and every fact given so far. A failed
        write (a full disk) leaves the previous run.json and no temporary file, and is one line."""
        self.facts.update(facts)
        if not self.main:
            return
        import torch
        import transformers
        import trl

        info = {"command": self.command, **{k: v for k, v in self.facts.items() if k in ("model", "dataset")},
                "status": status, "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(self.started)),
                "wall_seconds": round(time.time() - self.started, 1),
                "versions": {"tinyr1": __version__, "torch": torch.__version__, "trl": trl.__version__,
                             "transformers": transformers.__version__, "python": platform.python_version()},
                **self.facts}
        try:
            write_json(self.path / "run.json", info)
            self.record()
        except OSError as err:
            if not is_disk_full(err):
                raise TinyR1Error(f"{self.path / 'run.json'}: cannot write ({err.strerror or err})") from None
            status_in_place(self.path / "run.json", status, self.facts.get("global_step"))
            raise disk_full_error(self.path, "run.json") from None

    def note(self, status: str, **facts) -> None:
        """run.json's new status when a run fails; a failure to write it must not hide the first error."""
        try:
            self.write_run_json(status, **facts)
        except (TinyR1Error, OSError):
            pass

    def build_trainer(self, factory):
        """``factory()``, the trainer; trl, transformers and peft reject some settings only here (LoRA target
        modules the model lacks...): one line, not a traceback."""
        try:
            return factory()
        except TinyR1Error:  # the trainer's own checks of what it was given (SFT rows all cut by max_length...)
            self.note("failed")
            raise
        except (ValueError, ImportError, TypeError, RuntimeError) as err:
            if is_out_of_memory(err):
                raise
            raise TinyR1Error(f"cannot set up training: {first_line(err)}") from None

    @contextlib.contextmanager
    def training(self, global_step, remedies):
        """Around a trainer's ``train``: out of memory becomes exit 4 with ``remedies()``, a full disk one line, a
        package a setting needs one line; any failure is noted in run.json with ``global_step()``."""
        try:
            yield
        except BaseException as err:
            oom, full = is_out_of_memory(err), is_disk_full(err)
            collapsed = isinstance(err, CollapseError)  # a guard, or a reward that raised, stopped the run
            why = {"error": "disk full"} if full else {"stopped_because": str(err)} if collapsed else {}
            self.note("out of memory" if oom else "collapsed" if collapsed else "failed", global_step=global_step(),
                      **why)
            if oom:
                raise OutOfMemoryError(remedies()) from None
            if full:
                raise disk_full_error(self.path) from None
            if isinstance(err, ImportError):  # a package a setting needs (an optimizer's, a logger's) is missing
                raise TinyR1Error(f"cannot train: {first_line(err)}") from None
            raise
        self.facts["global_step"] = global_step()

    def interrupted(self, step: int, signum: int, resume: str | None = None) -> int:
        """After a first Ctrl-C/SIGTERM (a checkpoint of the finished step was saved): run.json ``interrupted``, how
        to resume (``resume``, default the CLI's command), and the shell's exit code for the signal (130 for Ctrl-C,
        143 for SIGTERM)."""
        self.write_run_json("interrupted")
        resume = resume or self._resume_hint()
        logger.info(f"stopped at step {step}; checkpoint saved in {self.path}\nresume with: {resume}")
        return 128 + signum

    def _resume_hint(self) -> str:
        """How the caller resumes this run: the command line, ``tinyr1.train("config.yaml", ...)`` or the trainer's
        ``train(resume_from_checkpoint='latest')``."""
        config, latest = self.path / "config.yaml", setting("resume_from_checkpoint", "latest")
        if on_command_line():
            return f"tinyr1 {self.command} --config {config} {latest}"  # the command line's own
        if latest.startswith("trainer.train("):
            return latest
        return f"tinyr1.{self.command}({str(config)!r}, resume_from_checkpoint='latest')"

    def save_final(self, trainer, tokenizer, merge_lora: bool = False) -> None:
        """The final model (or LoRA adapter) and tokenizer; with ``merge_lora`` also a merged model in merged/."""
        try:
            trainer.save_model(str(self.path))  # every process: DeepSpeed/FSDP gather the weights collectively
            if not self.main:
                return
            tokenizer.save_pretrained(self.path)
            if merge_lora and hasattr(trainer.model, "merge_and_unload"):
                trainer.model.merge_and_unload().save_pretrained(self.path / "merged")
                tokenizer.save_pretrained(self.path / "merged")
            self.record()
        except Exception as err:
            if not is_disk_full(err):
                raise
            self.note("failed", error="disk full while saving the final model")
            raise disk_full_error(self.path, "the final model") from None
