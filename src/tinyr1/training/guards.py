"""The collapse guard: catch the recipe's failure (every completion ``!!!!``, loss 0, grad_norm NaN) in seconds.

Four checks, each ending the run with ``CollapseError`` (exit code 3) and a diagnosis instead of burning hours:

1. ``preflight_check`` before the first step: the loaded model, in the precision it will train in, runs one forward
   pass over a short prompt; non-finite weights or logits stop the run there.
2. ``NonFiniteGradGuard`` at every optimizer step: a non-finite loss or gradient never reaches the weights — the
   step is skipped (all gradients dropped, so AdamW leaves weights and moments alone) and counted; ``patience``
   consecutive skips stop the run. Checkpoints on disk stay as they were.
3. ``DegenerateGuard``: when most of a step's completions are one repeated character or token (``!!!!``), warn;
   when that persists for ``patience`` steps, stop.
4. ``RewardGuard``, fed by ``tinyr1.training.reward_observer``: a reward function whose values are all NaN or inf
   warns; ``patience`` such steps in a row stop the run, naming the reward and its values. trl reads None as "not
   applicable to this completion" (multi-task rewards), so None — for some completions or a whole batch — is never
   a collapse. A return of the wrong length or type is one line naming the reward at once (exit 2).

A run whose rewards never vary within a group has nothing to learn from: ``tinyr1.training.signal_guard`` stops
it, with its own diagnosis.

Once logits are NaN, sampling returns token id 0 forever; in Qwen's vocabulary that is ``!``. The Trainer's
``logging_nan_inf_filter`` then hides the NaN loss as 0.0 — tinyr1 turns that filter off.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections import Counter

import torch
from transformers import TrainerCallback

from tinyr1.infra.errors import CollapseError
from tinyr1.infra.naming import setting

logger = logging.getLogger(__name__)


def remedies() -> str:
    """What to try after a collapse, with settings named as the caller sets them (``tinyr1.infra.naming``)."""
    return ("likely causes: fp16 overflow (Qwen2.5 in float16 — use bf16 or fp32), NaN/inf in the checkpoint's "
            f"weights, a learning rate too high for this model, pad token = eos; try {setting('bf16', True)} on a "
            f"bf16 GPU or fp32 on CPU, a lower {setting('learning_rate')}, {setting('max_grad_norm', 0.1)}, and "
            "`tinyr1 doctor`")


def _autocast(model, bf16: bool):
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=next(model.parameters()).device.type, dtype=torch.bfloat16)


def preflight_check(model, tokenizer, bf16: bool = False) -> None:
    """One forward pass over a short chat prompt, in the precision training will use; raise CollapseError if any
    weight or logit is NaN/inf. A forward, not ``generate``: every logit of every position is checked at once, and
    the check does not depend on generation settings (or a test's stand-in for ``generate``)."""
    bad_weights = [name for name, p in model.named_parameters() if not torch.isfinite(p).all()]
    if bad_weights:
        raise CollapseError(
            f"preflight: {len(bad_weights)} weight tensors contain NaN/inf (first: {bad_weights[0]}) before any "
            f"training; this model would only ever emit token 0 ('!' for Qwen). Reload or re-download it; {remedies()}"
        )
    # A user turn only: every chat template takes one (Gemma's refuses a system turn), and finite logits are all
    # this checks.
    messages = [{"role": "user", "content": "What is 2 + 3?"}]
    device = next(model.parameters()).device
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                           return_dict=True).to(device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), _autocast(model, bf16):
            logits = model(**inputs).logits
    finally:
        model.train(was_training)
    finite = torch.isfinite(logits).all(dim=-1)[0]
    if not finite.all():
        dtype = "bf16 autocast" if bf16 else str(next(model.parameters()).dtype).replace("torch.", "")
        raise CollapseError(
            f"preflight: logits are NaN/inf from position {int((~finite).nonzero()[0])} of a short prompt in {dtype} "
            f"before any training; sampling would emit token 0 ('!' for Qwen) forever and the run would waste its "
            f"time; {remedies()}"
        )


class Streak:
    """Consecutive bad steps: each one warns; ``patience`` in a row is a collapse (``collapsed`` holds why)."""

    def __init__(self, patience: int):
        self.patience = patience
        self.consecutive = 0
        self.collapsed: str | None = None

    def reset(self) -> None:
        self.consecutive = 0

    def bad(self, step: int, warning: str, diagnosis: str) -> bool:
        """Count one bad step; True once the streak reaches ``patience``."""
        self.consecutive += 1
        logger.info(f"[tinyr1 guard] step {step}: {warning} ({self.consecutive}/{self.patience} in a row)")
        if self.consecutive >= self.patience:
            self.collapsed = f"{self.consecutive} consecutive {diagnosis}; {remedies()}"
        return self.collapsed is not None


class NonFiniteGradGuard(TrainerCallback):
    """Skip optimizer steps whose gradients are not finite; stop after ``patience`` in a row."""

    def __init__(self, patience: int = 3):
        self.streak = Streak(patience)
        self.skipped = 0

    @property
    def collapsed(self) -> str | None:
        return self.streak.collapsed

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        params = [p for p in model.parameters() if p.grad is not None]
        if not params:  # e.g. DeepSpeed ZeRO keeps gradients partitioned outside .grad; it has its own checks
            return control
        if torch.stack([torch.isfinite(p.grad).all() for p in params]).all().item():
            self.streak.reset()
            return control
        # Dropping every gradient makes AdamW skip all parameters: no weight, moment or decay update happens.
        for p in params:
            p.grad = None
        self.skipped += 1
        step = state.global_step + 1
        if self.streak.bad(step, "non-finite loss or gradient; optimizer step skipped",
                           f"optimizer steps had non-finite gradients (last at step {step}); training stopped "
                           "before the weights were touched"):
            control.should_training_stop = True
            control.should_save = False
        return control

    def on_step_end(self, args, state, control, **kwargs):
        if self.collapsed:  # no checkpoint of a collapsed run: the last one on disk stays the good one
            control.should_save = False
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is not None and "loss" in logs:
            logs["guard/skipped_steps"] = self.skipped


def is_degenerate(text: str, token_ids: list[int] | None = None, min_length: int = 8, share: float = 0.9) -> bool:
    """True when one character (or token) makes up at least ``share`` of a completion of ``min_length`` or more.

    >>> is_degenerate("!!!!!!!!!!!!"), is_degenerate("<reasoning>\\n4-1-1=2\\n</reasoning>")
    (True, False)
    """
    for seq in (token_ids, text.strip()):
        if seq is not None and len(seq) >= min_length:
            if Counter(seq).most_common(1)[0][1] >= share * len(seq):
                return True
    return False


class DegenerateGuard:
    """Counts steps where most completions are degenerate; fed by ``reward_observer.RewardObserver`` each step."""

    def __init__(self, threshold: float = 0.8, patience: int = 3):
        self.threshold = threshold
        self.streak = Streak(patience)

    @property
    def collapsed(self) -> str | None:
        return self.streak.collapsed

    def observe(self, step: int, texts: list[str], token_ids: list[list[int]] | None = None) -> bool:
        """Record one step's completions; True when the run should stop."""
        if not texts or self.threshold <= 0:
            return False
        flags = [is_degenerate(t, i) for t, i in zip(texts, token_ids or [None] * len(texts), strict=True)]
        fraction = sum(flags) / len(texts)
        if fraction < self.threshold:
            self.streak.reset()
            return False
        example = texts[flags.index(True)][:40]
        return self.streak.bad(step, f"{fraction:.0%} of completions are degenerate, e.g. {example!r}",
                               f"steps where {fraction:.0%} of completions were one repeated character or token "
                               f"(e.g. {example!r})")


def _kind(value: float) -> str:
    return "nan" if math.isnan(value) else str(value)


class RewardGuard:
    """Stops the run when a reward returns values and none is finite (NaN, inf) ``patience`` steps in a row
    (``collapsed`` holds why). None is trl's "does not apply to this completion" (multi-task rewards), so a reward
    that is None for some completions, or for a whole batch, is fine. Fed by
    ``tinyr1.training.reward_observer.RewardObserver``: ``saw`` per call, ``end_step`` per optimizer step."""

    def __init__(self, patience: int = 3):
        self.patience = patience
        self.collapsed: str | None = None
        self._streaks: dict[str, int] = {}
        self._seen: dict[str, list] = {}

    def saw(self, name: str, values: list[float | None]) -> None:
        """One call's rewards (``tinyr1.training.reward_observer.reward_values``'s floats or None)."""
        self._seen.setdefault(name, []).extend(values)

    def end_step(self, step: int) -> bool:
        """Count this step's rewards (if any were computed); True when the run should stop."""
        seen, self._seen = self._seen, {}
        for name, values in seen.items():
            values = [v for v in values if v is not None]  # None: "does not apply here", as trl reads it: no evidence
            if not values:
                continue
            if any(math.isfinite(v) for v in values):
                self._streaks[name] = 0
                continue
            count = self._streaks[name] = self._streaks.get(name, 0) + 1
            kinds = ", ".join(f"{n} x {k}" for k, n in Counter(map(_kind, values)).most_common())
            logger.info(f"[tinyr1 guard] step {step}: reward {name} returned no finite value ({kinds}) ({count}/"
                        f"{self.patience} in a row)")
            if count >= self.patience and self.collapsed is None:
                self.collapsed = (f"reward {name} returned no finite value for any completion at {count} consecutive "
                                  f"steps (last step: {kinds}), so it taught nothing; fix the function or drop it "
                                  f"from {setting('reward_funcs')} (return None where a reward does not apply)")
        return self.collapsed is not None
