"""The CPU fast path computes what trl computes: log-probs, entropies, gradients, generated tokens and whole steps.

Each test runs trl's own ``GRPOTrainer`` beside ``tinyr1.GRPOTrainer`` on its fast path, on the tiny model in fp32
(tinyr1's preflight and samples off: they would draw random numbers trl's run does not), so a trl upgrade
that changes trl's side of the computation makes these fail instead of letting the two silently diverge.
The generation pieces it uses have their own files (test_shared_prompts.py, test_packing.py, test_decode_loop.py).
Tolerance: 1e-5 absolute on log-probs and entropies; 1e-5 relative (Frobenius norm) on gradients, since fp32 sums
run in another order when a group shares one prompt forward and attention is two batched products instead of sdpa's
kernel (measured: 1e-6 on log-probs, 1.5e-6 on gradients); 5e-5 on weights after two Adam steps (see that test).
"""

import pytest
import torch
import torch.nn.functional as F
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed
from trl import GRPOConfig, GRPOTrainer

import tinyr1
from tinyr1.cpu.fast_path import _TokenLogProbs, generation_weights, token_logps
from tinyr1.cpu.packing import fp16_weights_reason
from tinyr1.models.loading import ensure_pad_token

from . import PROMPTS, TINY


def relative_error(got: torch.Tensor, expected: torch.Tensor) -> float:
    return ((got - expected).norm() / expected.norm().clamp(min=1e-12)).item()


def make_trainer(cls, tmp_path, seen=None, **overrides):
    set_seed(0)
    model = AutoModelForCausalLM.from_pretrained(TINY)
    tokenizer = AutoTokenizer.from_pretrained(TINY)
    ensure_pad_token(tokenizer, model)

    def length_reward(completions, **kwargs):
        if seen is not None:
            seen.append(list(completions))
        return [float(len(c)) for c in completions]

    fast = cls is tinyr1.GRPOTrainer
    settings = dict(output_dir=str(tmp_path / ("tinyr1" if fast else "trl")), use_cpu=True, bf16=False,
                    activation_checkpointing=False, per_device_train_batch_size=8, num_generations=4,
                    max_completion_length=12, learning_rate=1e-2, max_steps=2, logging_steps=1, report_to="none",
                    save_strategy="no", seed=0, disable_tqdm=True, log_level="error")
    if fast:
        settings.update(preflight=False, sample_every=0)
    settings.update(overrides)
    config = (tinyr1.GRPOConfig if fast else GRPOConfig)(**settings)
    return cls(model=model, reward_funcs=[length_reward], args=config,
               train_dataset=Dataset.from_list([{"prompt": p} for p in PROMPTS]), processing_class=tokenizer)


def padded_batch(tokenizer):
    """Two groups of three rows, prompts of different lengths (left-padded), completions of different lengths
    (right-padded), one truncated without EOS: every padding case of a real micro-batch."""
    prompts = [tokenizer(PROMPTS[0])["input_ids"], tokenizer(PROMPTS[1])["input_ids"]]
    width = max(map(len, prompts))
    generator = torch.Generator().manual_seed(1)
    completion_lengths = [6, 3, 8, 1, 8, 4]
    ids, mask = [], []
    for row, length in enumerate(completion_lengths):
        prompt = prompts[row // 3]
        completion = torch.randint(3, 1000, (length,), generator=generator).tolist()
        if row != 2:  # row 2 is truncated: it never reached EOS
            completion[-1] = tokenizer.eos_token_id
        pad_left, pad_right = width - len(prompt), 8 - length
        ids.append([tokenizer.pad_token_id] * pad_left + prompt + completion + [tokenizer.pad_token_id] * pad_right)
        mask.append([0] * pad_left + [1] * (len(prompt) + length) + [0] * pad_right)
    return torch.tensor(ids), torch.tensor(mask)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_logps_entropies_and_gradients_equal_trls(tmp_path, temperature):
    trl_trainer = make_trainer(GRPOTrainer, tmp_path, temperature=temperature)
    fast = make_trainer(tinyr1.GRPOTrainer, tmp_path, temperature=temperature)
    assert fast.uses_fast_path()
    ids, mask = padded_batch(fast.processing_class)
    weights = torch.randn(6, 8, generator=torch.Generator().manual_seed(2))
    results = []
    for trainer in (trl_trainer, fast):
        model = trainer.model
        model.zero_grad()
        logps, entropies, _ = trainer._get_per_token_logps_and_entropies(model, ids, mask, 8, compute_entropy=True)
        (logps * weights).sum().backward()
        grads = {name: p.grad.clone() for name, p in model.named_parameters()}
        results.append((logps.detach(), entropies.detach(), grads))
    (trl_logps, trl_ent, trl_grads), (fast_logps, fast_ent, fast_grads) = results
    assert (fast_logps[mask[:, -8:] == 0] == 0).all()  # padding scores 0, as in trl
    assert fast.fast_path_calls["logps"] == 1
    torch.testing.assert_close(fast_logps, trl_logps, atol=1e-5, rtol=0)
    torch.testing.assert_close(fast_ent, trl_ent, atol=1e-5, rtol=0)
    assert trl_grads.keys() == fast_grads.keys()
    for name, grad in trl_grads.items():
        assert relative_error(fast_grads[name], grad) < 1e-5, name


def test_two_training_steps_equal_trls(tmp_path):
    """Same seed, same data: the fast trainer samples the same completions and ends at the same weights."""
    seen_trl, seen_fast = [], []
    trl_trainer = make_trainer(GRPOTrainer, tmp_path, seen_trl)
    trl_trainer.train()
    fast = make_trainer(tinyr1.GRPOTrainer, tmp_path, seen_fast)
    fast.fast_path.fast_sampling = False  # trl's own draws (multinomial), so the sampled completions can be compared
    fast.train()
    # the fast path really ran (a closed version gate would make this compare trl with trl)
    assert fast.fast_path_calls["generation"] == 2 and fast.fast_path_calls["logps"] >= 2
    assert seen_fast == seen_trl and len(seen_trl) == 2
    losses = [[h["loss"] for h in t.state.log_history if "loss" in h] for t in (trl_trainer, fast)]
    assert losses[1] == pytest.approx(losses[0], rel=1e-4, abs=1e-6)
    # Weights after two Adam steps at lr 1e-2: Adam's first updates are ~lr per element however small the gradient,
    # so fp32 rounding in the smallest gradients shows up ~10x larger here than in the gradients (1.5e-6 above).
    # Measured: 1.4e-5 at most (a k_proj bias), 6.2e-6 when the fast path still used sdpa's flash kernel.
    for (name, p_trl), (_, p_fast) in zip(trl_trainer.model.named_parameters(), fast.model.named_parameters(),
                                          strict=True):
        assert relative_error(p_fast, p_trl) < 5e-5, name


def test_activation_checkpointing_falls_back_to_trl(tmp_path):
    trainer = make_trainer(tinyr1.GRPOTrainer, tmp_path, activation_checkpointing=True, max_steps=1)
    assert not trainer.uses_fast_path()
    trainer.train()
    assert trainer.state.global_step == 1


# token_logps, the chunked log-prob function the fast path's forward uses: the chunk boundaries and temperature
# a model run may not reach.
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_token_logps_in_chunks_equal_autograds(monkeypatch, temperature):
    monkeypatch.setattr(_TokenLogProbs, "CHUNK", 3 * 50)  # chunks of 3 rows of a 50-token vocabulary: 7 = 3+3+1
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 7, 50, generator=generator, requires_grad=True)
    targets = torch.randint(0, 50, (1, 7), generator=generator)
    logps, entropy = token_logps(logits, targets, temperature, compute_entropy=True)
    log_probs = F.log_softmax(logits / temperature, dim=-1)
    expected = log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(logps, expected)
    torch.testing.assert_close(entropy, -(log_probs.exp() * log_probs).sum(-1))
    assert not entropy.requires_grad
    weights = torch.randn(1, 7, generator=generator)
    got, want = (torch.autograd.grad((lp * weights).sum(), logits)[0] for lp in (logps, expected))
    torch.testing.assert_close(got, want)


def test_token_logps_with_an_entropy_gradient_is_plain_autograd():
    """trl's entropy bonus needs d entropy / d logits: that case takes the whole-tensor autograd path."""
    logits = torch.randn(2, 3, 11, generator=torch.Generator().manual_seed(0), requires_grad=True)
    targets = torch.tensor([[1, 2, 3], [4, 5, 6]])
    logps, entropy = token_logps(logits, targets, 0.7, compute_entropy=True, entropy_grad=True)
    log_probs = F.log_softmax(logits / 0.7, dim=-1)
    torch.testing.assert_close(entropy, -(log_probs.exp() * log_probs).sum(-1))
    torch.testing.assert_close(logps, log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1))
    assert entropy.requires_grad and entropy.grad_fn is not None


@pytest.mark.skipif(fp16_weights_reason(torch.float32) is not None, reason="this torch build has no fbgemm")
def test_fp16_generation_weights_reach_the_decode_steps_of_a_training_step(tmp_path, monkeypatch):
    """cpu_generation_weights=fp16: the trainer's decode steps multiply by fp16 weights (every fused linear of the
    loop, once per generation), and the step trains as usual."""
    from tinyr1.cpu import packing

    packed = []
    real = packing.fp16_linear
    monkeypatch.setattr(packing, "fp16_linear", lambda w, b: packed.append(w.shape) or real(w, b))
    trainer = make_trainer(tinyr1.GRPOTrainer, tmp_path, max_steps=1, cpu_generation_weights="fp16")
    assert trainer.fast_path.generation_weights == "fp16"
    assert trainer.facts["generation_weights"] == {"setting": "fp16", "used": "fp16"}
    trainer.train()
    layers = trainer.model.config.num_hidden_layers
    assert len(packed) == 4 * layers + 1  # q/k/v, o, gate/up, down per layer, and the LM head
    assert trainer.state.global_step == 1 and trainer.fast_path_calls["generation"] == 1


def test_fp16_generation_weights_say_why_they_do_not_apply(tmp_path, caplog):
    model = AutoModelForCausalLM.from_pretrained(TINY)

    def args(**settings):
        return GRPOConfig(output_dir=str(tmp_path / "args"), use_cpu=True, report_to="none",
                          **{"bf16": False, **settings})

    cases = [(False, args(), False, "needs the CPU fast path"),
             (True, args(bf16=True), False, "already 16 bits"),
             (True, args(), True, "LoRA"),
             (True, args(generation_kwargs={"num_beams": 2}), False, "generation settings"),
             (True, args(cache_implementation="static"), False, "generation settings")]
    for fast, settings, lora, why in cases:
        fact = generation_weights("fp16", fast, settings, model, lora)
        assert fact["used"] == "exact" and why in fact["reason"]
        assert why in caplog.text
    assert generation_weights("exact", True, args(), model, False) == {"setting": "exact", "used": "exact"}
