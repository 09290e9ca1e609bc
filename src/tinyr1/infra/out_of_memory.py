"""Out of memory, for ``train``, ``sft`` and ``doctor``: recognised whatever raised it, answered with remedies sized
to the current settings (exit 4)."""

from __future__ import annotations

from tinyr1.infra.naming import setting


def is_out_of_memory(err: BaseException) -> bool:
    import torch

    if isinstance(err, torch.OutOfMemoryError):
        return True
    text = str(err).lower()
    return isinstance(err, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def oom_remedies(training, model_args, length_field: str = "max_length") -> str:
    """Out-of-memory remedies sized to the current settings, for ``sft`` and ``train`` (and ``doctor``).

    >>> from types import SimpleNamespace as N
    >>> print(oom_remedies(N(per_device_train_batch_size=2, gradient_accumulation_steps=4, max_length=2048),
    ...                    N(load_in_4bit=False)))
    out of memory; keep the effective batch and try, in order: per_device_train_batch_size 2 -> 1, \
gradient_accumulation_steps 4 -> 8; load_in_4bit=True (needs bitsandbytes and use_peft); max_length 2048 -> 1024
    """
    batch, accumulation = training.per_device_train_batch_size, training.gradient_accumulation_steps
    steps = []
    if batch > 1:
        smaller = max(1, batch // 2)
        steps.append(f"per_device_train_batch_size {batch} -> {smaller}, gradient_accumulation_steps "
                     f"{accumulation} -> {accumulation * batch // smaller}")
    if not getattr(model_args, "load_in_4bit", False):
        steps.append(f"{setting('load_in_4bit', True)} (needs bitsandbytes and use_peft)")
    length = getattr(training, length_field, None)
    if length:
        steps.append(f"{length_field} {length} -> {max(64, length // 2)}")
    generations = getattr(training, "num_generations", None)
    if generations and generations >= 4:
        steps.append(f"num_generations {generations} -> {generations // 2} (fewer completions per prompt)")
    return "out of memory; keep the effective batch and try, in order: " + "; ".join(steps)
