"""``tinyr1.GRPOConfig`` and ``tinyr1.SFTConfig``: trl's configs with tinyr1's trainer fields added
(``tinyr1.training.fields``), so a trl script keeps its config and sets tinyr1's fields beside trl's.

    from tinyr1 import GRPOConfig, GRPOTrainer
    args = GRPOConfig(output_dir="runs/a", max_steps=20, dynamic_sampling=True, max_train_minutes=30)

``tinyr1.GRPOTrainer`` also takes trl's own ``GRPOConfig``: ``trainer_settings`` reads tinyr1's fields from
whichever config it is given, with their defaults where a plain trl config lacks them, and checks their ranges.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import trl

from tinyr1.infra import validate
from tinyr1.infra.cpu_features import cpu_bf16
from tinyr1.infra.device import cuda_available
from tinyr1.training.fields import GRPOFields, SFTFields


@dataclass
class MachineDefaults:
    """Three of trl's fields whose right value depends on the machine, left unset (None) unless given: on a machine
    without a CUDA GPU ``use_cpu`` is true (trl's default stops with "doesn't support bf16/gpu"), ``bf16`` is
    true only where the CPU multiplies bf16 natively (``tinyr1.infra.cpu_features``: elsewhere it is several
    times slower), and activation checkpointing is off on a CPU (it trades speed for memory a small model does not
    need, and keeps the CPU fast path from sharing the prompt's cache); on a GPU it stays on, as trl has it."""

    use_cpu: bool | None = None
    bf16: bool | None = None
    gradient_checkpointing: bool | None = None
    # transformers' newer name for it (the older stays an alias there); declared here too so recipes and configs
    # can use it with transformers 5.20, the newest vLLM's (docs/gpu.md), which knows only gradient_checkpointing.
    activation_checkpointing: bool | None = None

    def __post_init__(self):
        if self.use_cpu is None:
            self.use_cpu = not cuda_available()
        if self.bf16 is None and self.use_cpu:
            self.bf16 = cpu_bf16().native
        if self.gradient_checkpointing is None and self.activation_checkpointing is None:
            self.gradient_checkpointing = self.activation_checkpointing = not self.use_cpu
        elif self.gradient_checkpointing is None:
            self.gradient_checkpointing = bool(self.activation_checkpointing)
        elif self.activation_checkpointing is None:
            self.activation_checkpointing = bool(self.gradient_checkpointing)
        super().__post_init__()


@dataclass
class GRPOConfig(MachineDefaults, GRPOFields, trl.GRPOConfig):
    """trl's ``GRPOConfig`` plus tinyr1's GRPO fields (``tinyr1.training.fields.GRPOFields``), with the machine's
    defaults for ``use_cpu``, ``bf16`` and activation checkpointing (``MachineDefaults``)."""


@dataclass
class SFTConfig(MachineDefaults, SFTFields, trl.SFTConfig):
    """trl's ``SFTConfig`` plus tinyr1's SFT fields (``tinyr1.training.fields.SFTFields``), with the machine's
    defaults (``MachineDefaults``)."""


def trainer_settings(args, kind: type[GRPOFields] | type[SFTFields]):
    """tinyr1's fields of ``kind`` as ``args`` sets them (their defaults where ``args`` is trl's own config),
    range-checked with the config's field names in the message."""
    values = {}
    for f in dataclasses.fields(kind):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        values[f.name] = getattr(args, f.name, default)
    rules = validate.GRPO_RULES if kind is GRPOFields else None
    validate.check(values, lambda name: f"{type(args).__name__}({name}={{value}})", rules)
    return kind(**values)
