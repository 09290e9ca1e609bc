"""Dynamic sampling (DAPO's): groups whose completions all earn the same reward are dropped before the update, and
the batch is refilled with groups from fresh prompts, up to a bound on extra generation rounds.

A GRPO group whose rewards are all equal has zero advantage everywhere: it teaches nothing, yet costs a forward and
a backward pass. ``DynamicSamplingMixin`` is one of ``tinyr1.GRPOTrainer``'s bases and overrides two of trl's
methods, each calling trl's own: ``_calculate_rewards`` (to keep the step's rewards, which trl gathers across
processes) and ``_generate_and_score_completions`` (to drop and refill). Everything else — advantages, the loss,
logging — is trl's. It is off unless the config says ``dynamic_sampling: true``; ``dynamic_sampling_max_rounds``
bounds the extra generation rounds a step may spend on refills (the trainer's ``tinyr1`` settings).

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
  run folder's ``tinyr1.training.run_trainer``), as the bound does: no loop in a step waits for more rounds;
- if the bound is reached with too few groups, the step trains on the groups with variance it has, rounded down to
  a size the step can split (``steps_per_generation`` slices of equal size); if none, it trains on the first
  generation as trl would have (every advantage zero: no update from the policy loss), and says so in its metrics.

Metrics, per step (in ``metrics.jsonl`` and the report): ``dynamic_sampling/groups_generated``, ``.../dropped_all
_right``, ``.../dropped_all_wrong``, ``.../dropped_other``, ``.../rounds``, ``.../groups_trained``.

One process only (CPU or one GPU): with several processes a group can straddle them (trl's sampler), and dropping
would leave processes with different batches. ``check_dynamic_sampling`` refuses that case before training.
"""

from __future__ import annotations

import torch

from tinyr1.infra.errors import TinyR1Error
from tinyr1.tasks.rewards import correctness_index

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


class DynamicSamplingMixin:
    """A base of ``tinyr1.GRPOTrainer`` (before trl's ``GRPOTrainer``); reads ``self.tinyr1`` (``GRPOFields``)."""

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self._tinyr1_rewards = rewards  # (rows of every process, reward functions), NaN where a reward gave None
        return rewards

    def _generate_and_score_completions(self, inputs):
        if not (self.tinyr1.dynamic_sampling and self.model.training):
            return super()._generate_and_score_completions(inputs)
        size = self.num_generations
        needed = len(inputs) // size
        batches, chosen, counts = [], [], {"all_right": 0, "all_wrong": 0, "other": 0}
        kept, rounds, generated = 0, 0, 0
        while True:
            batch = super()._generate_and_score_completions(inputs)
            unknown = set(k for k, v in batch.items() if v is not None) - _SUPPORTED
            if unknown:  # a multimodal batch: its extra tensors are not re-padded here, so keep trl's batch
                if not getattr(self, "_tinyr1_warned", False):
                    self._tinyr1_warned = True
                    print(f"warning: dynamic_sampling is off for batches with {', '.join(sorted(unknown))} "
                          "(text-only batches are supported); training on trl's batches", flush=True)
                return batch
            verdicts = group_verdicts(self._tinyr1_rewards, self.reward_weights, size,
                                      self.tinyr1.dynamic_sampling_tolerance,
                                      self._tinyr1_correctness_index())
            generated += len(verdicts)
            rows = []
            for group, verdict in enumerate(verdicts):
                if verdict == "keep" and kept < needed:
                    rows.extend(range(group * size, (group + 1) * size))
                    kept += 1
                elif verdict != "keep":
                    counts[verdict] += 1
            batches.append(batch)
            chosen.append(torch.tensor(rows, dtype=torch.long))
            if kept >= needed or rounds >= self.tinyr1.dynamic_sampling_max_rounds:
                break
            stop = self.stop_requested() if hasattr(self, "stop_requested") else None
            if stop:  # a signal or the time budget waits for no refill: the step trains on what it has
                print(f"dynamic_sampling: refills ended after {rounds} of {self.tinyr1.dynamic_sampling_max_rounds} "
                      f"rounds ({stop}); this step trains on the groups it has", flush=True)
                break
            rounds += 1
            inputs = self._tinyr1_fresh_inputs(len(inputs))
        trained = self._tinyr1_trainable_groups(kept)
        self._tinyr1_log(generated, counts, rounds, trained)
        if trained == 0:
            return batches[0]  # no group with variance: the first generation as plain trl trains on it
        if len(batches) == 1 and trained * size == len(inputs):
            return batches[0]  # every group of the first generation kept: nothing to drop or re-pad
        result = concat_batches(batches, chosen, self.processing_class.pad_token_id)
        if trained < kept:
            result = {k: v if k == "num_items_in_batch" else v[: trained * size] for k, v in result.items()}
            result["num_items_in_batch"] = result["completion_mask"].sum()
        return result

    def _tinyr1_trainable_groups(self, kept: int) -> int:
        # trl splits the generated batch into steps_per_generation equal slices; a smaller batch must still split
        slices = self.args.steps_per_generation
        for groups in range(kept, 0, -1):
            rows = groups * self.num_generations
            if rows % slices == 0:
                return groups
        return 0

    def _tinyr1_correctness_index(self) -> int | None:
        return correctness_index(self.reward_func_names)

    def _tinyr1_fresh_inputs(self, count: int) -> list[dict]:
        """``count`` rows for new groups: random training prompts, each repeated ``num_generations`` times."""
        generator = getattr(self, "_tinyr1_generator", None)
        if generator is None:
            generator = self._tinyr1_generator = torch.Generator().manual_seed(self.args.seed)
        picks = self._tinyr1_refill_prompts(count // self.num_generations, generator)
        return [self.train_dataset[i] for i in picks for _ in range(self.num_generations)]

    def _tinyr1_refill_prompts(self, groups: int, generator: torch.Generator) -> list[int]:
        """The rows of the refill's prompts: uniform at random (the curriculum draws them by pass rate instead)."""
        picks = torch.randperm(len(self.train_dataset), generator=generator)[:groups].tolist()
        while len(picks) < groups:  # a training set smaller than one batch of groups
            picks += torch.randint(len(self.train_dataset), (groups - len(picks),), generator=generator).tolist()
        return picks

    def _tinyr1_log(self, generated: int, counts: dict, rounds: int, trained: int) -> None:
        metrics = self._metrics["train"]
        metrics[METRIC + "groups_generated"].append(float(generated))
        for verdict, count in counts.items():
            metrics[METRIC + f"dropped_{verdict}"].append(float(count))
        metrics[METRIC + "rounds"].append(float(rounds))
        metrics[METRIC + "groups_trained"].append(float(trained))
