"""What tinyr1 sees of every reward call: each step's completions and rewards, for the samples and the guards.

``RewardObserver`` wraps each reward function the way trl will call it — a plain function, a ``functools.partial``,
a callable object, an ``async def`` (wrapped by an ``async`` function, so trl still awaits it on its event loop) —
keeping the name trl logs it under (``rewards/<name>/mean``). Models and hub ids are trl's to run and are not
wrapped. Each call's return is checked and converted once, here, into what trl reads: a list of one float or None
per completion (``reward_values``: numbers, bools, one-element tensors and arrays, ``Fraction``; a 1-D tensor or
array counts as a list). A wrong return is one line naming the reward (``TinyR1ValueError``, a ``ValueError`` as
trl's own check raises); a reward that raises or calls ``sys.exit`` ends the run as a collapse naming it and the
line that failed.

At the end of each optimizer step the observer feeds the step's completions to the degenerate-output guard and
the rewards to the no-finite-value guard (``tinyr1.training.guards``) and writes the sample of the step to
samples.jsonl every ``sample_every`` steps (5 when unset); it logs the sample in the recipe's layout only where the
user set ``sample_every``, with what an ``Extracted: None`` means and what each reward paid.
"""

from __future__ import annotations

import functools
import logging
import numbers
import traceback
from pathlib import Path

from transformers import TrainerCallback

from tinyr1.infra.errors import CollapseError, TinyR1ValueError, first_line
from tinyr1.infra.files import append_jsonl
from tinyr1.tasks.answers import strict_answer
from tinyr1.tasks.reward_lookup import callable_name, is_async_callable
from tinyr1.tasks.rewards import completion_text
from tinyr1.training.guards import DegenerateGuard, RewardGuard

logger = logging.getLogger(__name__)


def reward_values(name: str, rewards, expected: int) -> list[float | None]:
    """``rewards`` as trl reads them, one float (or None) per completion; a return trl could not read, or one of
    the wrong length, raises one line naming the reward.

    >>> import fractions, torch
    >>> reward_values("r", torch.tensor([[1.0], [0.5]]), 2), reward_values("r", [fractions.Fraction(1, 2), None], 2)
    ([1.0, 0.5], [0.5, None])
    """
    if getattr(rewards, "ndim", None) is not None:  # a tensor or an array: its rows (none for a scalar)
        rewards = list(rewards) if rewards.ndim >= 1 else rewards.item()
    if isinstance(rewards, (str, bytes, dict)) or not hasattr(rewards, "__len__"):
        raise TinyR1ValueError(f"reward {name} returned {type(rewards).__name__} {repr(rewards)[:40]}; it must "
                               f"return a list with one float (or None) per completion ({expected} here)")
    if len(rewards) != expected:
        raise TinyR1ValueError(f"reward {name} returned {len(rewards)} values for {expected} completions; it must "
                               "return one float (or None) per completion")
    try:
        return [_value(v) for v in rewards]
    except TypeError as err:
        raise TinyR1ValueError(f"reward {name} returned a {err} among its values; each must be a number or "
                               "None") from None


def _value(value) -> float | None:
    if value is None:
        return None
    size = value.numel() if hasattr(value, "numel") else getattr(value, "size", None)
    if hasattr(value, "item") and size == 1:  # a one-element tensor or array, a numpy scalar
        value = value.item()
    if isinstance(value, numbers.Real):  # bool, int, float, Fraction, numpy scalars: what trl's tensor takes
        return float(value)
    raise TypeError(type(value).__name__)


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


class RewardObserver(TrainerCallback):
    """Sees every generation batch through the reward functions (module docstring)."""

    def __init__(self, reward_funcs: list, output_dir: str | Path, sample_every: int | None = None,
                 degenerate_guard: DegenerateGuard | None = None, reward_guard: RewardGuard | None = None,
                 distributed: bool = False):
        self.path = Path(output_dir) / "samples.jsonl"
        # None (not asked for): kept every 5 steps, printed never; a number the user gave: kept and printed
        self.sample_every = 5 if sample_every is None else sample_every
        self.show = sample_every is not None
        self.guard = degenerate_guard
        # The broken-reward guard stops after as many steps as the degenerate guard (the run's collapse_patience).
        self.reward_guard = reward_guard or RewardGuard(degenerate_guard.streak.patience if degenerate_guard else 3)
        self.batch: dict | None = None  # the step's completions and each reward's values
        # With several processes a reward that raises must not stop its process alone (the others would wait in
        # trl's gather of the rewards): its values become None, and the step's end stops every process alike.
        self.distributed = distributed
        self.failure: str | None = None
        self.reward_funcs = [self._wrap(f) if callable(f) and not hasattr(f, "forward") else f for f in reward_funcs]

    def _wrap(self, func):
        name = callable_name(func)

        def seen(rewards, prompts, completions, kwargs):
            values = reward_values(name, rewards, len(completions))
            self.reward_guard.saw(name, values)
            self._keep(name, values, prompts, completions, kwargs)
            return values

        def failed(err, completions, kwargs):
            """A reward's bug or exit ends the run, said once: at once with one process, at the step's end with
            several (``distributed``)."""
            why = reward_failure(name, err, kwargs, len(completions or []))
            if not self.distributed:
                raise CollapseError(why) from err
            self.failure = self.failure or why
            return [None] * len(completions or [])

        if is_async_callable(func):
            async def observed(prompts=None, completions=None, **kwargs):
                try:
                    rewards = await func(prompts=prompts, completions=completions, **kwargs)
                except (Exception, SystemExit) as err:
                    return failed(err, completions, kwargs)
                return seen(rewards, prompts, completions, kwargs)
        else:
            def observed(prompts=None, completions=None, **kwargs):
                try:
                    rewards = func(prompts=prompts, completions=completions, **kwargs)
                except (Exception, SystemExit) as err:
                    return failed(err, completions, kwargs)
                return seen(rewards, prompts, completions, kwargs)

        with_name = getattr(func, "__name__", None) is not None and not isinstance(func, functools.partial)
        if with_name:
            functools.update_wrapper(observed, func)
        observed.__name__ = observed.__qualname__ = name
        return observed

    def _keep(self, name, values, prompts, completions, kwargs) -> None:
        if self.batch is None or self.batch["completions"] is not completions:
            self.batch = {"prompts": prompts, "completions": completions, "answer": kwargs.get("answer"),
                          "completion_ids": kwargs.get("completion_ids"), "rewards": {}}
        self.batch["rewards"][name] = values

    def on_step_end(self, args, state, control, **kwargs):
        batch, self.batch = self.batch, None
        if self.failure is not None:  # a reward raised (several processes): every process stops at this step's end
            control.should_training_stop = True
            control.should_save = False
            return control
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
            logger.info(" ".join(["-" * 20, f"\n[step {step}] Question:\n{question}", f"\nAnswer:\n{answer}",
                                  f"\nResponse:\n{texts[0]}", f"\nExtracted:\n{extracted}",
                                  f"\nRewards: {rewards}"]))
