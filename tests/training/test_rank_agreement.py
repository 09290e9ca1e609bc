"""Every process stops in the same step, saves alike and says the same why (tinyr1.training.rank_agreement): one
process's decisions, with the other's given as the gather would return them."""

import signal
from types import SimpleNamespace

from transformers import TrainerControl, TrainerState

from tinyr1.training.callbacks import GracefulStop, TimeBudget
from tinyr1.training.rank_agreement import RankAgreement

TWO = SimpleNamespace(world_size=2)


def other(stop=False, save=False, reason=None, sig=None, budget=None):
    return {"stop": stop, "save": save, "reason": reason, "signal": sig, "budget": budget}


def agree(mine_stop, mine_save, mine_reason, theirs, signals=None, budget=None):
    control = TrainerControl(should_training_stop=mine_stop, should_save=mine_save)
    agreement = RankAgreement(lambda: mine_reason, signals, budget, gather=lambda mine: [mine, theirs])
    agreement.on_step_end(TWO, TrainerState(), control)
    return control, agreement


def test_a_collapse_seen_on_the_other_process_stops_this_one_without_saving_the_broken_step():
    control, agreement = agree(False, True, None, other(stop=True, save=False, reason="degenerate completions"))
    assert control.should_training_stop and not control.should_save
    assert agreement.agreed == "degenerate completions"


def test_a_collapse_that_saves_saves_everywhere_and_a_save_anywhere_is_a_save_everywhere():
    control, _ = agree(False, False, None, other(stop=True, save=True, reason="no reward signal"))
    assert control.should_training_stop and control.should_save
    control, agreement = agree(False, False, None, other(save=True))
    assert control.should_save and not control.should_training_stop and agreement.agreed is None


def test_a_signal_or_a_spent_budget_on_one_process_is_every_processs():
    signals, budget = GracefulStop(), TimeBudget(1.0)
    control, _ = agree(False, False, None, other(stop=True, save=True, sig=signal.SIGTERM, budget=7),
                       signals=signals, budget=budget)
    assert control.should_training_stop and control.should_save
    assert signals.received == signal.SIGTERM and budget.reached_at == 7


def test_one_process_gathers_nothing():
    control = TrainerControl(should_training_stop=True)
    agreement = RankAgreement(lambda: "x", gather=lambda mine: (_ for _ in ()).throw(AssertionError("gathered")))
    agreement.on_step_end(SimpleNamespace(world_size=1), TrainerState(), control)
    assert control.should_training_stop and agreement.agreed is None
