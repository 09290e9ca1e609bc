"""Dynamic sampling (DAPO's): groups whose completions all earn the same reward are dropped before the update, and
the batch is refilled with groups from fresh prompts, up to a bound on extra generation rounds.

A GRPO group whose rewards are all equal has zero advantage everywhere: it teaches nothing, yet costs a forward and
a backward pass. ``DynamicSampling`` is a plain object ``tinyr1.GRPOTrainer`` calls from its overrides of two of
trl's methods: ``_calculate_rewards`` (the step's rewards, which trl gathers across processes) and
``_generate_and_score_completions`` (to drop and refill). Everything else — advantages, the loss, logging — is
trl's. It is off unless the config says ``dynamic_sampling: true``; ``dynamic_sampling_max_rounds`` bounds the
extra generation rounds a step may spend on refills.

Rules:
- a group is dropped when the range of its summed, weighted rewards is within ``tolerance`` (relative to the largest
  reward magnitude, at least 1), so non-binary rewards that differ only by rounding count as equal; a group with no
  reward at all (every reward None) is dropped too;
- dropped groups are counted as all right / all wrong (by the correctness reward,
  ``tinyr1.tasks.rewards.correctness_index``) or other;
- fresh prompts are drawn at random from the training set (by pass rate, from the open levels, when the curriculum
  is on), each repeated ``num_generations`` times as trl's sampler lays them out; the batch keeps its size: the
  first groups with variance, in the order generated;
- a first Ctrl-C/SIGTERM or a spent ``max_train_minutes`` ends the refills at once (``stop_requested``, from the
  run folder's ``tinyr1.training.run_session``), as the bound does: no loop in a step waits for more rounds;
- if the bound is reached with too few groups, the step trains on the groups with variance it has, rounded down to
  a size the step can split (``steps_per_generation`` slices of equal size); if none, it trains on the first
  generation as trl would have (every advantage zero: no update from the policy loss), and says so in its metrics.

Metrics, per step (in ``metrics.jsonl`` and the report): ``dynamic_sampling/groups_generated``, ``.../dropped_all
_right``, ``.../dropped_all_wrong``, ``.../dropped_other``, ``.../rounds``, ``.../groups_trained``.

One process only (CPU or one GPU): with several processes a group can straddle them (trl's sampler), and dropping
would leave processes with different batches. ``check_dynamic_sampling`` refuses that case before training.
"""

from __future__ import annotations

import logging

import torch

from tinyr1.infra.errors import TinyR1Error

logger = logging.getLogger(__name__)

METRIC = "dynamic_sampling/"
# Row-aligned keys that hold per-prompt tokens (left-padded) or per-completion tokens (right-padded).
_PROMPT_KEYS = {"prompt_ids": "pad", "prompt_mask": 0}
_COMPLETION_KEYS = {"completion_ids": "pad", "completion_mask": 0, "old_per_token_logps": 0.0,
                    "ref_per_token_logps": 0.0, "sampling_per_token_logps": 0.0, "importance_sampling_ratio": 0.0,
                    "tool_mask": 0}
_SUPPORTED = {*_PROMPT_KEYS, *_COMPLETION_KEYS, "advantages", "num_items_in_batch"}


def check_dynamic_sampling(num_processes: int) -> None:
    """One line before anything heavy loads where dynamic sampling cannot run as documented (its fields' ranges are
    ``tinyr1.infra.validate.GRPO_RULES``')."""
    if num_processes > 1:
        raise TinyR1Error(f"dynamic_sampling: runs on one process (CPU or one GPU); this launch has {num_processes}. "
                          "Drop dynamic_sampling or launch one process")


def group_verdicts(rewards: torch.Tensor, weights: torch.Tensor, group_size: int, tolerance: float,
                   correctness: int | None) -> list[str]:
    """For each group of ``group_size`` consecutive rows of ``rewards`` (rows x reward functions, NaN for None):
    ``keep``, or why it is dropped: ``all_right``, ``all_wrong`` or ``other``.

    >>> r = torch.tensor([[2.0, .5], [0.0, .5], [2.0, .5], [2.0, .5], [0.0, 0.0], [0.0, 0.0]])
    >>> group_verdicts(r, torch.ones(2), 2, 1e-6, correctness=0)
    ['keep', 'all_right', 'all_wrong']
    >>> flat_then_unscored = torch.tensor([[1.0], [1.0 + 1e-9], [float("nan")], [float("nan")]])
    >>> group_verdicts(flat_then_unscored, torch.ones(1), 2, 1e-6, None)
    ['other', 'other']
    """
    total = (rewards * weights.to(rewards.device)).nansum(dim=1)
    total[torch.isnan(rewards).all(dim=1)] = torch.nan
    verdicts = []
    for start in range(0, total.size(0), group_size):
        group = total[start:start + group_size]
        scored = group[~torch.isnan(group)]
        if scored.numel() > 1:
            spread = (scored.max() - scored.min()).item()
            if spread > tolerance * max(1.0, scored.abs().max().item()):
                verdicts.append("keep")
                continue
        verdict = "other"
        if correctness is not None and scored.numel():
            right = rewards[start:start + group_size, correctness]
            if bool((right > 0).all()):
                verdict = "all_right"
            elif bool((torch.nan_to_num(right) == 0).all()):
                verdict = "all_wrong"
        verdicts.append(verdict)
    return verdicts


def _pad_to(tensor: torch.Tensor, width: int, value, left: bool) -> torch.Tensor:
    missing = width - tensor.size(1)
    if missing <= 0:
        return tensor
    pad = tensor.new_full((tensor.size(0), missing, *tensor.shape[2:]), value)
    return torch.cat([pad, tensor] if left else [tensor, pad], dim=1)


def concat_batches(batches: list[dict], rows: list[torch.Tensor], pad_token_id: int) -> dict:
    """The chosen ``rows`` of each generated batch as one batch: prompts re-padded on the left and completions on
    the right to the widest; ``num_items_in_batch`` recounted from the kept completion tokens."""
    out = {}
    for key in batches[0]:
        if key == "num_items_in_batch" or batches[0][key] is None:
            continue
        parts = [b[key][r] for b, r in zip(batches, rows, strict=True)]
        if key in _PROMPT_KEYS or key in _COMPLETION_KEYS:
            table = _PROMPT_KEYS if key in _PROMPT_KEYS else _COMPLETION_KEYS
            value = pad_token_id if table[key] == "pad" else table[key]
            width = max(p.size(1) for p in parts)
            parts = [_pad_to(p, width, value, left=key in _PROMPT_KEYS) for p in parts]
        out[key] = torch.cat(parts)
    out["num_items_in_batch"] = out["completion_mask"].sum()
    if "tool_mask" in out:
        out["num_items_in_batch"] = (out["completion_mask"] * out["tool_mask"]).sum()
    return out


class DynamicSampling:
    """Drops groups without reward variance and refills the batch (module docstring). ``tinyr1.GRPOTrainer`` holds
    one where the config turns it on, tells it each round's rewards (``saw``) and hands it trl's
    ``_generate_and_score_completions`` to call (``generate``)."""

    def __init__(self, settings, seed: int):
        self.tolerance, self.max_rounds = settings.dynamic_sampling_tolerance, settings.dynamic_sampling_max_rounds
        self.generator = torch.Generator().manual_seed(seed)  # the refills' draws
        self.rewards: torch.Tensor | None = None  # the last round's (rows of every process, reward functions)
        self._warned = False

    def saw(self, rewards: torch.Tensor) -> None:
        """trl's rewards of the round just scored (NaN where a reward gave None), from ``_calculate_rewards``."""
        self.rewards = rewards

    def generate(self, inputs: list[dict], trl_generate, fresh_inputs, stop_requested, *, group_size: int,
                 weights: torch.Tensor, correctness: int | None, slices: int, pad_token_id: int):
        """The step's batch: ``trl_generate(inputs)`` rounds until ``len(inputs) // group_size`` groups with
        variance are found, the bound is reached or ``stop_requested()`` says why not; refills from
        ``fresh_inputs(count)``. Returns the batch and the step's metrics (``METRIC`` + name -> value)."""
        needed = len(inputs) // group_size
        batches, chosen, counts = [], [], {"all_right": 0, "all_wrong": 0, "other": 0}
        kept, rounds, generated = 0, 0, 0
        while True:
            batch = trl_generate(inputs)
            unknown = set(k for k, v in batch.items() if v is not None) - _SUPPORTED
            if unknown:  # a multimodal batch: its extra tensors are not re-padded here, so keep trl's batch
                if not self._warned:
                    self._warned = True
                    logger.warning(f"warning: dynamic_sampling is off for batches with {', '.join(sorted(unknown))} "
                                   "(text-only batches are supported); training on trl's batches")
                return batch, {}
            verdicts = group_verdicts(self.rewards, weights, group_size, self.tolerance, correctness)
            generated += len(verdicts)
            rows = []
            for group, verdict in enumerate(verdicts):
                if verdict == "keep" and kept < needed:
                    rows.extend(range(group * group_size, (group + 1) * group_size))
                    kept += 1
                elif verdict != "keep":
                    counts[verdict] += 1
            batches.append(batch)
            chosen.append(torch.tensor(rows, dtype=torch.long))
            if kept >= needed or rounds >= self.max_rounds:
                break
            stop = stop_requested()
            if stop:  # a signal or the time budget waits for no refill: the step trains on what it has
                logger.info(f"dynamic_sampling: refills ended after {rounds} of {self.max_rounds} rounds ({stop}); "
                            "this step trains on the groups it has")
                break
            rounds += 1
            inputs = fresh_inputs(len(inputs))
        trained = trainable_groups(kept, group_size, slices)
        metrics = {METRIC + "groups_generated": generated, **{METRIC + f"dropped_{v}": n for v, n in counts.items()},
                   METRIC + "rounds": rounds, METRIC + "groups_trained": trained}
        if trained == 0:
            return batches[0], metrics  # no group with variance: the first generation as plain trl trains on it
        if len(batches) == 1 and trained * group_size == len(inputs):
            return batches[0], metrics  # every group of the first generation kept: nothing to drop or re-pad
        result = concat_batches(batches, chosen, pad_token_id)
        if trained < kept:
            result = {k: v if k == "num_items_in_batch" else v[: trained * group_size] for k, v in result.items()}
            result["num_items_in_batch"] = result["completion_mask"].sum()
        return result, metrics


def trainable_groups(kept: int, group_size: int, slices: int) -> int:
    """The most of ``kept`` groups a step can train on: trl splits the generated batch into ``slices``
    (``steps_per_generation``) equal parts.

    >>> trainable_groups(3, 4, 2), trainable_groups(3, 3, 2), trainable_groups(1, 3, 2)
    (3, 2, 0)
    """
    for groups in range(kept, 0, -1):
        if groups * group_size % slices == 0:
            return groups
    return 0


def uniform_prompts(dataset_size: int, groups: int, generator: torch.Generator) -> list[int]:
    """``groups`` training rows for refills, uniformly at random (with replacement only past the set's size)."""
    picks = torch.randperm(dataset_size, generator=generator)[:groups].tolist()
    while len(picks) < groups:  # a training set smaller than one batch of groups
        picks += torch.randint(dataset_size, (groups - len(picks),), generator=generator).tolist()
    return picks
