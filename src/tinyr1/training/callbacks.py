"""Trainer callbacks that leave a run's evidence on disk: metrics.jsonl, samples, and a clean stop on a signal.

- ``MetricsLogger``: every log trl makes, one JSON object per line in ``metrics.jsonl``, NaN/inf as null (never
  hidden, unlike the Trainer's ``logging_nan_inf_filter``). A resume first drops the half-written last line a
  killed run leaves (``tinyr1.infra.files.drop_torn_last_line``), so new lines never join onto it.
- ``SampleRecorder``: wraps the reward functions (``functools.wraps`` keeps their names, so trl still logs
  ``rewards/<name>/mean``) to see each step's completions and rewards; appends a sample to ``samples.jsonl`` every
  ``sample_every`` steps (printed in the recipe's layout when the user set it), and feeds the degenerate-completion
  guard and the broken-reward guard (``guards.RewardGuard``: a wrong return is one line at once, a reward with no
  finite value ``patience`` steps in a row stops the run).
- ``GracefulStop``: Ctrl-C or SIGTERM asks the Trainer to save a checkpoint at the end of the current step and stop;
  a second one stops the process at once, even in the middle of a long generation, saying what was lost.
- ``TimeBudget``: ``max_train_minutes`` of training wall time, then the same clean stop and the normal finish.
"""

from __future__ import annotations

import functools
import math
import os
import signal
import socket
import sys
import threading
import time
import traceback
from pathlib import Path

from transformers import TrainerCallback

from tinyr1.infra.errors import CollapseError, first_line
from tinyr1.infra.files import append_jsonl
from tinyr1.run_folder.checkpoints import stamp
from tinyr1.run_folder.folder import RunDir
from tinyr1.tasks.answers import strict_answer
from tinyr1.tasks.rewards import completion_text
from tinyr1.training.guards import DegenerateGuard, RewardGuard


def _number(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    return value if math.isfinite(value) else None


class MetricsLogger(TrainerCallback):
    def __init__(self, output_dir: str | Path):
        self.path = Path(output_dir) / "metrics.jsonl"

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and state.is_world_process_zero:
            append_jsonl(self.path, {"step": state.global_step, **{k: _number(v) for k, v in logs.items()}})


def reward_failure(name: str, err: BaseException, kwargs: dict, completions: int) -> str:
    """What a reward that raised (or called ``sys.exit``) mid-run did, in one line: the reward, the step, the call
    trl made and the line that failed."""
    state = kwargs.get("trainer_state")
    step = f" at step {state.global_step + 1}" if getattr(state, "global_step", None) is not None else ""
    what = (f"called sys.exit({err.code!r})" if isinstance(err, SystemExit)
            else f"raised {type(err).__name__}: {first_line(err)}")
    frames = traceback.extract_tb(err.__traceback__)
    where = f" ({Path(frames[-1].filename).name} line {frames[-1].lineno})" if frames else ""
    columns = ", ".join(f"{k}=..." for k in kwargs if k not in ("trainer_state", "log_extra", "log_metric"))
    return (f"reward {name} {what}{where}{step}, called as {name}(prompts=..., completions=<{completions}>"
            f"{', ' + columns if columns else ''}); fix the reward (it must return one float or None per "
            "completion, never raise or exit), or drop it from reward_funcs")


class SampleRecorder(TrainerCallback):
    """Sees every generation batch through the reward functions; prints and stores samples; watches for ``!!!!``."""

    def __init__(self, reward_funcs: list, output_dir: str | Path, sample_every: int | None = None,
                 degenerate_guard: DegenerateGuard | None = None, reward_guard: RewardGuard | None = None):
        self.path = Path(output_dir) / "samples.jsonl"
        # None (not asked for): kept every 5 steps, printed never; a number the user gave: kept and printed
        self.sample_every = 5 if sample_every is None else sample_every
        self.show = sample_every is not None
        self.guard = degenerate_guard
        # The broken-reward guard stops after as many steps as the degenerate guard (the run's collapse_patience).
        self.reward_guard = reward_guard or RewardGuard(degenerate_guard.streak.patience if degenerate_guard else 3)
        self._batch: dict | None = None
        self.reward_funcs = [self._wrap(f) if callable(f) and not hasattr(f, "forward") else f for f in reward_funcs]

    def _wrap(self, func):
        @functools.wraps(func)
        def observed(prompts=None, completions=None, **kwargs):
            try:
                rewards = func(prompts=prompts, completions=completions, **kwargs)
            except (Exception, SystemExit) as err:  # a reward's bug or exit ends the run as a collapse, said once
                raise CollapseError(reward_failure(func.__name__, err, kwargs, len(completions or []))) from None
            self.reward_guard.check(func.__name__, rewards, len(completions))
            if self._batch is None or self._batch["completions"] is not completions:
                self._batch = {"prompts": prompts, "completions": completions, "answer": kwargs.get("answer"),
                               "completion_ids": kwargs.get("completion_ids"), "rewards": {}}
            self._batch["rewards"][func.__name__] = list(rewards)
            return rewards

        return observed

    def on_step_end(self, args, state, control, **kwargs):
        batch, self._batch = self._batch, None
        if batch is None:  # this optimizer step reused an earlier generation batch
            return control
        texts = [completion_text(c) for c in batch["completions"]]
        stop = self.reward_guard.end_step(state.global_step)
        if self.guard is not None and self.guard.observe(state.global_step, texts, batch["completion_ids"]):
            stop = True
        if stop:
            control.should_training_stop = True
            control.should_save = False
        due = self.sample_every > 0 and (state.global_step % self.sample_every == 0 or state.global_step == 1)
        if due and state.is_world_process_zero:
            self._record(state.global_step, batch, texts)
        return control

    def _record(self, step: int, batch: dict, texts: list[str]) -> None:
        prompt = batch["prompts"][0]
        question = prompt[-1]["content"] if isinstance(prompt, list) else str(prompt)
        answer = batch["answer"][0] if batch["answer"] else None
        record = {"step": step, "question": question, "answer": answer, "completion": texts[0],
                  "extracted": strict_answer(texts[0]),  # eval's rule: None without a closed <answer> block
                  "rewards": {name: values[0] for name, values in batch["rewards"].items()}}
        append_jsonl(self.path, record)
        if self.show:  # the tutorial's layout, with what its bare "None" meant and what each reward paid
            extracted = record["extracted"]
            if extracted is None:
                extracted = "None (no closed <answer>...</answer> block in the response)"
            elif not extracted:
                extracted = "'' (the <answer>...</answer> block is empty)"
            rewards = ", ".join(f"{name} {value:g}" if isinstance(value, (int, float)) else f"{name} {value}"
                                for name, value in record["rewards"].items())
            print("-" * 20, f"\n[step {step}] Question:\n{question}", f"\nAnswer:\n{answer}",
                  f"\nResponse:\n{texts[0]}", f"\nExtracted:\n{extracted}", f"\nRewards: {rewards}", flush=True)


class GracefulStop(TrainerCallback):
    """First Ctrl-C/SIGTERM: checkpoint at the end of this step and stop. A second one: stop now, within a second.

    Python runs a signal handler only between bytecodes of the main thread, so a handler alone cannot interrupt
    one long native call (a 600 KB prompt's prefill ran for 15 minutes). The C-level handler also writes each
    signal to a wakeup socket; a small thread reading it sees the second signal at once, says what is lost, and
    ends the process with the shell's code (130 for SIGINT, 143 for SIGTERM). ``on_abort`` (e.g. noting
    ``aborted`` in run.json) runs first.

    The handlers, the wakeup fd and the thread are put back as they were at the end of training; after a run that
    raised (the Trainer then skips ``on_train_end``), ``GracefulStop.restore_all()`` does it, so a process that
    trains several times (the Python API, a notebook) keeps its own handlers.
    """

    _installed: list[GracefulStop] = []  # instances whose handlers are in place, oldest first

    def __init__(self, on_abort=None):
        self.received: int | None = None
        self.step = 0
        self.on_abort = on_abort
        self._count = 0
        self._lock = threading.Lock()
        self._previous: dict = {}
        self._sockets: tuple | None = None
        self._previous_fd = -1

    def _handle(self, signum, frame):
        self._seen(signum)

    def _seen(self, signum: int) -> None:
        with self._lock:
            self._count += 1
            first = self._count == 1
        if first:
            self.received = signum
            print(f"\n[tinyr1] {signal.Signals(signum).name}: saving a checkpoint at the end of step {self.step + 1}, "
                  "then stopping (Ctrl-C or SIGTERM again to stop at once without saving)", flush=True)
            return
        self.abort(signum)

    def abort(self, signum: int) -> None:
        """Stop the process now; the step in progress and anything after the last checkpoint are lost."""
        try:
            print(f"\n[tinyr1] second {signal.Signals(signum).name}: stopping now; lost: step {self.step + 1} (in "
                  f"progress) and everything after the last saved checkpoint", file=sys.stderr, flush=True)
            if self.on_abort is not None:
                self.on_abort()
        finally:
            os._exit(128 + signum)

    def _watch(self, reader: socket.socket) -> None:
        while True:
            try:
                data = reader.recv(16)
            except OSError:
                return
            if not data:
                return
            for signum in data:
                if signum in (signal.SIGINT, signal.SIGTERM):
                    self._seen(signum)

    def on_train_begin(self, args, state, control, **kwargs):
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._noop if self._arm_wakeup() else self._handle)
        except ValueError:  # not the main thread (e.g. a notebook worker): leave signals alone
            self._previous.clear()
        if self not in GracefulStop._installed:
            GracefulStop._installed.append(self)

    def _noop(self, signum, frame):
        # With the wakeup socket armed, the watcher thread counts signals; the Python handler must exist (so
        # SIGINT raises no KeyboardInterrupt and SIGTERM does not kill) but must not count them twice.
        pass

    def _arm_wakeup(self) -> bool:
        if self._sockets is not None:
            return True
        reader, writer = socket.socketpair()
        writer.setblocking(False)
        try:
            self._previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        except ValueError:
            reader.close()
            writer.close()
            return False
        self._sockets = (reader, writer)
        threading.Thread(target=self._watch, args=(reader,), daemon=True, name="tinyr1-signals").start()
        return True

    def on_step_begin(self, args, state, control, **kwargs):
        self.step = state.global_step

    def on_step_end(self, args, state, control, **kwargs):
        self.step = state.global_step
        if self.received is not None:
            control.should_save = True
            control.should_training_stop = True
        return control

    def on_train_end(self, args, state, control, **kwargs):
        self.restore()

    def restore(self) -> None:
        """Put back the handlers and wakeup fd found at the start of training, and end the watcher thread."""
        if self in GracefulStop._installed:
            GracefulStop._installed.remove(self)
        for sig, handler in reversed(list(self._previous.items())):
            if handler is not None:  # None: a handler installed outside Python, which cannot be put back
                signal.signal(sig, handler)
        self._previous.clear()
        if self._sockets is not None:
            signal.set_wakeup_fd(self._previous_fd)
            for sock in self._sockets:  # the watcher's recv fails and its thread returns
                sock.close()
            self._sockets = None

    @classmethod
    def restore_all(cls) -> None:
        """``restore`` every instance still installed, newest first (a run that raised skips on_train_end)."""
        for stop in reversed(list(cls._installed)):
            stop.restore()


class TimeBudget(TrainerCallback):
    """Stop after ``minutes`` of training wall time, at the end of a step, with a checkpoint; the run then finishes
    normally (final model, after-evaluation, report). Compute-bound users set a budget rather than guess steps."""

    def __init__(self, minutes: float | None):
        self.seconds = None if not minutes else minutes * 60
        self.reached_at: int | None = None
        self._start = 0.0

    def on_train_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def spent(self) -> bool:
        """Whether the budget is used up (asked inside long loops of a step, too: dynamic sampling's refills)."""
        return self.seconds is not None and self._start > 0 and time.perf_counter() - self._start >= self.seconds

    def on_step_end(self, args, state, control, **kwargs):
        if self.spent():
            self.reached_at = state.global_step
            control.should_save = True
            control.should_training_stop = True
        return control


class RunRecorder(TrainerCallback):
    """The Trainer callback of a run folder: stamps each checkpoint as the run's before the Trainer writes it
    (``tinyr1.run_folder.checkpoints``), and records checkpoints and logs as the run's as they appear. ``run`` may be
    set after the trainer is built (``tinyr1.GRPOTrainer`` claims its folder when it starts training)."""

    def __init__(self, run: RunDir | None = None):
        self.run = run

    def on_step_end(self, args, state, control, **kwargs):
        self._stamp(state, control)

    def on_epoch_end(self, args, state, control, **kwargs):
        self._stamp(state, control)

    def _stamp(self, state, control):
        run = self.run
        if run is not None and control.should_save and run.main and run.run_id:
            stamp(run.path / f"checkpoint-{state.global_step}", run.run_id)

    def on_save(self, args, state, control, **kwargs):
        if self.run is not None:
            self.run.record()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.run is not None:
            self.run.record()
