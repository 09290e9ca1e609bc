"""The no-signal guard: a GRPO run in which no group's rewards vary has nothing to learn from, and says why.

GRPO learns from the differences between the completions of one prompt. When every completion of every group
earns the same reward — the model never writes the tags the rewards pay for, every completion is cut at
``max_completion_length``, every answer is already right, a reward gives the same value whatever it reads — every
advantage is zero and no gradient flows, yet trl trains on, logging ``frac_reward_zero_std`` 1.0. The seed's
tutorial run on a small model spent its whole budget that way.

``NoSignalGuard`` watches each scored batch (the trainer's ``_calculate_rewards`` hands it trl's rewards, gathered
across processes, so every process reaches the same verdict) and, at the end of each optimizer step that generated:

- a step where some group varies (after dynamic sampling's refills, where on) resets the count; a batch for which
  every reward returned None ("does not apply", which trl warns about) is no evidence either way;
- the first step without any varying group logs one warning with the diagnosis below — at step 1 when the first
  generations already show it;
- ``patience`` such steps in a row (``no_signal_patience``; 0 turns the guard off) save a checkpoint and stop the
  run: exit code 3, run.json ``collapsed`` with the reason.

The diagnosis names the cause it can see, from the steps without signal: nearly every completion cut at
``max_completion_length`` (trl's ``completions/clipped_ratio``); every answer right (too easy); no completion in
the ``<answer>`` format that the format and correctness rewards pay for (a cold start first); and every reward that
gave one value to every completion, by name (trl's ``rewards/<name>/mean`` and ``frac_reward_zero_std`` as the
evidence).
"""

from __future__ import annotations

import logging
import math

import torch
from transformers import TrainerCallback

from tinyr1.infra.naming import setting
from tinyr1.training.dynamic_sampling import group_verdicts

logger = logging.getLogger(__name__)

CUT = 0.95  # the share of completions cut at the length limit that names the limit as the cause


class NoSignalGuard(TrainerCallback):
    """Stops a run whose groups never vary (module docstring). ``names``: the rewards as trl logs them;
    ``correctness``: the index of the correctness reward (or None); ``max_length``: ``max_completion_length``."""

    def __init__(self, patience: int, names: list[str], correctness: int | None, max_length: int,
                 tolerance: float = 1e-6):
        self.patience, self.names, self.correctness = patience, names, correctness
        self.max_length, self.tolerance = max_length, tolerance
        self.collapsed: str | None = None
        self.streak = 0
        self.warned = False
        self._step = self._empty()
        self._window = self._empty()

    @staticmethod
    def _empty() -> dict:
        return {"scored": 0, "groups": 0, "varied": 0, "cut": 0, "completions": 0, "formatted": 0, "right": 0,
                "low": {}, "high": {}, "sum": {}, "count": {}}

    def observe(self, rewards: torch.Tensor, weights: torch.Tensor, group_size: int, texts: list[str],
                cut: list[bool]) -> None:
        """One scored batch: ``rewards`` (rows x rewards, NaN for None) of every process, this process's completion
        ``texts`` and whether each was ``cut`` at the length limit."""
        if bool(torch.isnan(rewards).all()):  # every reward said "does not apply" (trl warns): no evidence either way
            return
        verdicts = group_verdicts(rewards, weights, group_size, self.tolerance, None)
        step = self._step
        step["scored"] += 1
        step["groups"] += len(verdicts)
        step["varied"] += verdicts.count("keep")
        step["completions"] += len(texts)
        step["cut"] += sum(cut)
        step["formatted"] += sum("<answer>" in text and "</answer>" in text for text in texts)
        for column, name in enumerate(self.names):
            values = [v for v in rewards[:, column].tolist() if not math.isnan(v)]
            if not values:
                continue
            step["low"][name] = min(values + [step["low"].get(name, math.inf)])
            step["high"][name] = max(values + [step["high"].get(name, -math.inf)])
            step["sum"][name] = step["sum"].get(name, 0.0) + sum(values)
            step["count"][name] = step["count"].get(name, 0) + len(values)
            if column == self.correctness:
                step["right"] += sum(v > 0 for v in values)

    def on_step_end(self, args, state, control, **kwargs):
        step, self._step = self._step, self._empty()
        if not step["scored"] or self.patience <= 0:  # a step that reused an earlier generation: no evidence
            return control
        if step["varied"]:
            self.streak, self._window = 0, self._empty()
            return control
        self.streak += 1
        self._merge(step)
        if not self.warned:
            self.warned = True
            logger.warning(f"[tinyr1 guard] step {state.global_step}: no group's rewards vary, so GRPO has nothing to "
                           f"learn from ({self.patience} such steps in a row stop the run): {self.diagnosis()}")
        if self.streak >= self.patience:
            self.collapsed = (f"no reward signal for {self.streak} consecutive steps (every completion of every group "
                              f"earned the same reward; trl logged frac_reward_zero_std 1.0): {self.diagnosis()}")
            control.should_training_stop = True
            control.should_save = True  # the weights are sound: a checkpoint to resume from after the fix
        return control

    def verdict(self) -> tuple[float, str]:
        """Outside training (``tinyr1 doctor``'s probe): the share of the groups observed so far whose rewards vary,
        and the diagnosis of what was observed."""
        step, self._step = self._step, self._empty()
        self._window = self._empty()
        self._merge(step)
        return step["varied"] / max(step["groups"], 1), self.diagnosis()

    def _merge(self, step: dict) -> None:
        window = self._window
        for key in ("scored", "groups", "varied", "cut", "completions", "formatted", "right"):
            window[key] += step[key]
        for name in step["low"]:
            window["low"][name] = min(window["low"].get(name, math.inf), step["low"][name])
            window["high"][name] = max(window["high"].get(name, -math.inf), step["high"][name])
            window["sum"][name] = window["sum"].get(name, 0.0) + step["sum"][name]
            window["count"][name] = window["count"].get(name, 0) + step["count"][name]

    def diagnosis(self) -> str:
        """What the steps without signal show: the cause it can see, the rewards that never varied, the evidence."""
        window = self._window
        completions = max(window["completions"], 1)
        cut, formatted = window["cut"] / completions, window["formatted"] / completions
        right = window["right"] / max(window["count"].get(self.names[self.correctness], 0), 1) \
            if self.correctness is not None else 0.0
        constant = [f"{name} gave {window['low'][name]:g} to every completion" for name in self.names
                    if name in window["low"] and window["low"][name] == window["high"][name]]
        causes = []
        if cut >= CUT:
            causes.append(f"{cut:.0%} of completions were cut at max_completion_length={self.max_length} before they "
                          "finished, so a reward that needs the closing </answer> cannot pay: raise "
                          f"{setting('max_completion_length', self.max_length * 2)}, or reward a partial answer")
        judged = self.correctness is not None and window["count"].get(self.names[self.correctness])
        if judged and right >= 1.0:
            causes.append("every completion is already right, so the task is too easy to learn from: a harder "
                          f"split, harder levels ({setting('curriculum_levels')}) or larger numbers")
        elif judged and right == 0.0 and formatted > 0.0:
            causes.append("every completion is wrong, so there is nothing to reinforce: easier questions (a "
                          f"curriculum, {setting('curriculum_levels')}), more completions per prompt "
                          f"({setting('num_generations')}) or a cold start on worked solutions")
        if formatted == 0.0:
            causes.append("no completion has the <reasoning>/<answer> format that the format and correctness "
                          "rewards pay for: a cold start teaches it first (tinyr1 sft on worked solutions, e.g. "
                          "recipes/smollm2-135m-instruct/sft-arith-coldstart-cpu.yaml, then train from its output), "
                          "or add a reward that pays partially for the format (xmlcount, soft_format)")
        if constant and not causes:
            causes.append("a reward gives the same value whatever the completion: check it")
        means = ", ".join(f"rewards/{name}/mean {window['sum'][name] / window['count'][name]:.2f}"
                          for name in self.names if window["count"].get(name))
        evidence = f"frac_reward_zero_std 1.00, completions/clipped_ratio {cut:.2f}" + (f", {means}" if means else "")
        parts = causes + ([f"rewards constant over every completion: {'; '.join(constant)}"] if constant else [])
        return "; ".join(parts or ["every group's completions scored alike"]) + f" ({evidence})"
