"""Trainer callbacks that leave a run's evidence on disk (metrics.jsonl, the run's files) and stop it cleanly.

The samples and the reward guards are ``tinyr1.training.reward_observer``'s.

- ``MetricsLogger``: every log trl makes, one JSON object per line in ``metrics.jsonl``, NaN/inf as null (never
  hidden, unlike the Trainer's ``logging_nan_inf_filter``). A resume first drops the half-written last line a
  killed run leaves (``tinyr1.infra.files.drop_torn_last_line``), so new lines never join onto it.
- ``RunRecorder``: stamps each checkpoint as the run's before the Trainer writes it and records what appears.
- ``GracefulStop``: Ctrl-C or SIGTERM asks the Trainer to save a checkpoint at the end of the current step and stop;
  a second one stops the process at once, even in the middle of a long generation, saying what was lost.
- ``TimeBudget``: ``max_train_minutes`` of training wall time, then the same clean stop and the normal finish.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import socket
import threading
import time
from pathlib import Path

from transformers import TrainerCallback

from tinyr1.infra.files import append_jsonl
from tinyr1.infra.log import TO_STDERR
from tinyr1.run_folder.checkpoints import stamp
from tinyr1.run_folder.folder import RunDir

logger = logging.getLogger(__name__)


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
            logger.info(f"\n[tinyr1] {signal.Signals(signum).name}: saving a checkpoint at the end of step "
                        f"{self.step + 1}, then stopping (Ctrl-C or SIGTERM again to stop at once without saving)")
            return
        self.abort(signum)

    def abort(self, signum: int) -> None:
        """Stop the process now; the step in progress and anything after the last checkpoint are lost."""
        try:
            logger.warning(f"\n[tinyr1] second {signal.Signals(signum).name}: stopping now; lost: step "
                           f"{self.step + 1} (in progress) and everything after the last saved checkpoint",
                           extra=TO_STDERR)
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
