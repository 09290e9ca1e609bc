"""tinyr1's own numbers in the live view a run reports to (``report_to: trackio``, or another of trl's
integrations), beside trl's.

- Dynamic sampling's and the curriculum's counts go through trl's own per-step metrics, so every integration gets
  them. The collapse guard's ``guard/skipped_steps`` is added to a step's log by a tinyr1 callback; the Trainer
  runs the integrations' callbacks before the ones a trainer is given, so ``report_last`` moves them behind
  tinyr1's.
- The held-out evaluation before training (``eval_before_after``) is added to the first step's log
  (``eval_before/accuracy_strict``...); the one after training, which runs once training has ended, is logged to
  trackio's run at the last step, and that run finished again (``LiveView.after``).
"""

from __future__ import annotations

from pathlib import Path

from transformers import TrainerCallback
from transformers.integrations import INTEGRATION_TO_CALLBACK

# The held-out metrics logged, as tinyr1.evaluation.evaluate names them.
LOGGED = ("accuracy_strict", "accuracy_flexible", "format_strict", "worked_step_fraction", "mean_completion_tokens",
          "truncated_fraction")


def _reporters(trainer) -> list:
    wanted = tuple(INTEGRATION_TO_CALLBACK[name] for name in (trainer.args.report_to or [])
                   if name in INTEGRATION_TO_CALLBACK)
    return [cb for cb in trainer.callback_handler.callbacks if wanted and isinstance(cb, wanted)]


def report_last(trainer) -> None:
    """Move the integrations' callbacks behind every other, so they see what tinyr1's callbacks add to a log."""
    for callback in _reporters(trainer):
        trainer.callback_handler.remove_callback(callback)
        trainer.callback_handler.add_callback(callback)


def values(stage: str, metrics: dict | None) -> dict:
    """``eval_<stage>/<metric>`` for the numbers of an evaluation's metrics.json.

    >>> values("before", {"accuracy_strict": 0.25, "n": 32, "model": "m"})
    {'eval_before/accuracy_strict': 0.25}
    """
    return {f"eval_{stage}/{key}": float(metrics[key]) for key in LOGGED
            if isinstance((metrics or {}).get(key), (int, float)) and not isinstance(metrics[key], bool)}


class LiveView(TrainerCallback):
    """Adds values waiting to be logged (the evaluation before training) to the next log of the run."""

    def __init__(self, trainer):
        self.trainer = trainer
        self.pending: dict = {}
        trainer.add_callback(self)
        report_last(trainer)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is not None and self.pending:
            logs.update(self.pending)
            self.pending = {}

    def before(self, metrics: dict | None) -> None:
        self.pending.update(values("before", metrics))

    def after(self, metrics: dict | None) -> None:
        """The evaluation after training, to trackio's run of this training (the same project and run name), which
        is then finished again; other integrations ended their runs with training and are left alone."""
        trainer = self.trainer
        logged = values("after", metrics)
        for callback in _reporters(trainer):
            if logged and type(callback).__name__ == "TrackioCallback":
                callback.on_log(trainer.args, trainer.state, trainer.control, model=trainer.model, logs=dict(logged))
                callback.on_train_end(trainer.args, trainer.state, trainer.control, model=trainer.model)


def default_run_name(args) -> None:
    """A run name for the live view: the run folder's name, unless the recipe gives one (trackio would otherwise
    draw a random one, and the evaluation after training could not find the run again)."""
    if not args.run_name:
        args.run_name = Path(args.output_dir).name
