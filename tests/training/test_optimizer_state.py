"""What a resume puts back over a checkpoint's optimizer and scheduler (``keep_settings``): nothing when the
settings are the run's, the new ones exactly when a change was accepted, a refusal where it cannot be exact."""

import pytest
import torch
from transformers import get_scheduler

from tinyr1.infra.errors import TinyR1Error
from tinyr1.training.optimizer_state import keep_settings


def _optimizer(lr, schedule="cosine", weight_decay=0.1):
    params = [torch.nn.Parameter(torch.ones(2))]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    params[0].grad = torch.ones(2)
    return optimizer, get_scheduler(schedule, optimizer, num_warmup_steps=1, num_training_steps=10)


def _restored(lr, schedule="cosine", steps=3, weight_decay=0.1):
    """An optimizer and scheduler after ``steps`` steps, saved and loaded into fresh ones built with ``lr``."""
    optimizer, scheduler = _optimizer(1e-2)
    for _ in range(steps):
        optimizer.step()
        scheduler.step()
    state, schedule_state = optimizer.state_dict(), scheduler.state_dict()
    fresh_optimizer, fresh_scheduler = _optimizer(lr, schedule, weight_decay)
    fresh = [{k: v for k, v in g.items() if k != "params"} for g in fresh_optimizer.param_groups]
    fresh_optimizer.load_state_dict(state)
    fresh_scheduler.load_state_dict(schedule_state)
    return fresh_optimizer, fresh_scheduler, fresh, scheduler


def test_the_same_settings_change_nothing():
    optimizer, scheduler, fresh, original = _restored(1e-2)
    before = [dict(g) for g in optimizer.param_groups]
    keep_settings(optimizer, scheduler, fresh)
    assert [dict(g) for g in optimizer.param_groups] == before and scheduler.get_last_lr() == original.get_last_lr()


def test_a_new_rate_and_weight_decay_are_the_ones_that_train():
    optimizer, scheduler, fresh, original = _restored(4e-3, weight_decay=0.0)
    keep_settings(optimizer, scheduler, fresh)
    group = optimizer.param_groups[0]
    assert group["weight_decay"] == 0.0 and scheduler.base_lrs == [4e-3]
    assert group["lr"] == pytest.approx(original.get_last_lr()[0] * 0.4)  # same point of the schedule, new base
    assert optimizer.state[group["params"][0]]  # Adam's moments kept


def test_a_change_a_scheduler_cannot_recompute_is_refused():
    optimizer, scheduler, fresh, _ = _restored(4e-3)
    with pytest.raises(TinyR1Error, match="cannot take new settings exactly"):
        keep_settings(optimizer, object(), fresh)
