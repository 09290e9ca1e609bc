"""Every process of a multi-process run (DDP, DeepSpeed) stops in the same step, saves or not alike, and says the
same why.

Each stop decision of tinyr1 is taken on one process from what that process sees: the degenerate-output and
reward guards read its own completions, a signal may reach one process, each keeps its own clock for
``max_train_minutes``, and a reward that raises raises on the process that called it. A process that stops while
the others go on leaves them waiting in the next collective (a gather of rewards, a gradient all-reduce, a
checkpoint save) until the 30-minute timeout. ``RankAgreement``, the last of the trainer's callbacks, gathers each
process's decision at the end of every step — one collective — and applies the same one everywhere: stop if any
process stops; save only if every process that stops for a collapse would save (a broken step is not saved), else if
any process saves; the first process's reason, signal and time-budget step for all. The trainer's collapse check
then reads ``agreed`` on every process.

With one process it does nothing.
"""

from __future__ import annotations

from transformers import TrainerCallback


def gather_object(value) -> list:
    """``value`` from every process, in rank order (one process: ``[value]``)."""
    import torch.distributed as dist  # lazy: this module is imported before torch is needed

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [value]
    every = [None] * dist.get_world_size()
    dist.all_gather_object(every, value)
    return every


class RankAgreement(TrainerCallback):
    """One decision per step for every process (module docstring). ``reason``: this process's collapse reason
    (None where none); ``signals`` and ``budget``: the run's ``GracefulStop`` and ``TimeBudget``, whose
    first-seen signal and reached step it shares."""

    def __init__(self, reason, signals=None, budget=None, gather=gather_object):
        self.reason, self.signals, self.budget, self.gather = reason, signals, budget, gather
        self.agreed: str | None = None

    def on_step_end(self, args, state, control, **kwargs):
        if args.world_size <= 1:
            return control
        mine = {"stop": bool(control.should_training_stop), "save": bool(control.should_save),
                "reason": self.reason(), "signal": getattr(self.signals, "received", None),
                "budget": getattr(self.budget, "reached_at", None)}
        every = self.gather(mine)
        reasons = [e["reason"] for e in every if e["reason"]]
        control.should_training_stop = any(e["stop"] for e in every)
        if reasons:  # a collapse: save only where every collapsing process would (never a broken step)
            control.should_save = all(e["save"] for e in every if e["reason"])
        else:
            control.should_save = any(e["save"] for e in every)
        self.agreed = self.agreed or (reasons[0] if reasons else None)
        signal = next((e["signal"] for e in every if e["signal"] is not None), None)
        if self.signals is not None and signal is not None and self.signals.received is None:
            self.signals.received = signal
        reached = next((e["budget"] for e in every if e["budget"] is not None), None)
        if self.budget is not None and reached is not None and self.budget.reached_at is None:
            self.budget.reached_at = reached
        return control
