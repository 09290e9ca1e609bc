"""A resumed run's optimizer settings: the ones this run asks for, over those a checkpoint restored.

torch restores a checkpoint's learning rate, betas and weight decay with its optimizer state, so a change accepted
with ``resume_changed_settings`` would be announced and never applied; ``keep_settings`` puts the run's back.
"""

from __future__ import annotations

from tinyr1.infra.errors import TinyR1Error
from tinyr1.infra.naming import setting


def keep_settings(optimizer, scheduler, fresh: list[dict]) -> None:
    """Put the settings of the optimizer built for this run (``fresh``: its param groups before the restore) back
    over a checkpoint's, keeping the restored state (Adam's moments, the scheduler's step). The scheduler's base
    rates follow, and the rate of the next step is recomputed from its schedule: the same numbers when nothing
    changed, the new schedule's when something did. A scheduler that is not a ``LambdaLR`` (all of transformers'
    but ``reduce_lr_on_plateau``) cannot be recomputed: a change there is refused."""
    from torch.optim.lr_scheduler import LambdaLR  # lazy: imported with the trainers, before torch is needed

    groups = optimizer.param_groups
    base = [settings.get("initial_lr", settings["lr"]) for settings in fresh]
    changed = len(groups) != len(fresh) or any(
        _same(group.get(key)) != _same(value) for group, settings in zip(groups, fresh, strict=False)
        for key, value in settings.items() if key != "lr") or any(
        group.get("initial_lr") != rate for group, rate in zip(groups, base, strict=False))
    if not changed:
        return
    if len(groups) != len(fresh) or not isinstance(scheduler, LambdaLR):
        raise TinyR1Error(f"{setting('resume_changed_settings')}: the optimizer or its schedule "
                          f"({type(scheduler).__name__}) cannot take new settings exactly on a resume; resume with "
                          "the run's optimizer settings (its config.yaml), or start a new run")
    for group, settings, rate in zip(groups, fresh, base, strict=True):
        group.update({k: v for k, v in settings.items() if k != "lr"}, initial_lr=rate)
    scheduler.base_lrs = list(base)
    for group, rate, schedule in zip(groups, base, scheduler.lr_lambdas, strict=True):
        group["lr"] = rate * schedule(scheduler.last_epoch)
    scheduler._last_lr = [group["lr"] for group in groups]


def _same(value):
    """A setting as compared: betas restored from a checkpoint may come back a list where the optimizer has a tuple."""
    return tuple(value) if isinstance(value, list) else value
