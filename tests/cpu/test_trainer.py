"""The CPU fast path computes what trl computes: log-probs, entropies, gradients, generated tokens and whole steps.

Each test runs trl's own ``GRPOTrainer`` beside ``CPUFastGRPOTrainer`` on the tiny model in fp32, so a trl upgrade
that changes trl's side of the computation makes these fail instead of letting the two silently diverge.
Tolerance: 1e-5 absolute on log-probs and entropies; 1e-5 relative (Frobenius norm) on gradients, since fp32 sums
run in another order when a group shares one prompt forward and attention is two batched products instead of sdpa's
kernel (measured: 1e-6 on log-probs, 1.5e-6 on gradients); 5e-5 on weights after two Adam steps (see that test).
"""

import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed
from trl import GRPOConfig, GRPOTrainer

from tinyr1.cpu.attention import cpu_attention
from tinyr1.cpu.packing import packed_bf16_linears, packs_weights
from tinyr1.cpu.shared_prompts import generate_shared_prompts, inverse_cdf_sampling, roomy_cache
from tinyr1.cpu.trainer import CPUFastGRPOTrainer
from tinyr1.infra.models import ensure_pad_token

from ..conftest import ASSETS

TINY = ASSETS / "tiny-qwen2"
PROMPTS = ["What is 2 + 3?", "A farmer has 17 sheep and buys 5 more. How many sheep are there now?",
           "Add 4 and 9.", "Compute 12 - 7, then double it and subtract one."]


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

    settings = dict(output_dir=str(tmp_path / cls.__name__), use_cpu=True, bf16=False,
                    activation_checkpointing=False, per_device_train_batch_size=8, num_generations=4,
                    max_completion_length=12, learning_rate=1e-2, max_steps=2, logging_steps=1, report_to="none",
                    save_strategy="no", seed=0, disable_tqdm=True, log_level="error")
    settings.update(overrides)
    return cls(model=model, reward_funcs=[length_reward], args=GRPOConfig(**settings),
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
    fast = make_trainer(CPUFastGRPOTrainer, tmp_path, temperature=temperature)
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
    torch.testing.assert_close(fast_logps, trl_logps, atol=1e-5, rtol=0)
    torch.testing.assert_close(fast_ent, trl_ent, atol=1e-5, rtol=0)
    assert trl_grads.keys() == fast_grads.keys()
    for name, grad in trl_grads.items():
        assert relative_error(fast_grads[name], grad) < 1e-5, name


def greedy_setup(prompt_a: str, prompt_b: str, repeats: int):
    """The tiny model, a greedy 10-token config, and ``repeats`` rows of each of two prompts, left-padded."""
    from transformers import GenerationConfig

    model = AutoModelForCausalLM.from_pretrained(TINY).eval()
    tokenizer = AutoTokenizer.from_pretrained(TINY)
    ensure_pad_token(tokenizer, model)
    config = GenerationConfig(max_new_tokens=10, min_new_tokens=10, do_sample=False,
                              pad_token_id=tokenizer.pad_token_id)
    prompts = [tokenizer(p)["input_ids"] for p in (prompt_a, prompt_b)]
    rows = [prompts[0]] * repeats + [prompts[1]] * repeats
    width = max(map(len, prompts))
    ids = torch.tensor([[tokenizer.pad_token_id] * (width - len(p)) + p for p in rows])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in rows])
    return model, tokenizer.pad_token_id, config, rows, ids, mask, width


@pytest.mark.parametrize("fast_loop", [False, True])
def test_shared_prompt_generation_gives_generates_tokens(tmp_path, fast_loop):
    """Greedy, so any difference in the prefilled cache or positions would change the tokens."""
    model, pad, config, rows, ids, mask, width = greedy_setup(PROMPTS[0], PROMPTS[1], 3)
    with torch.no_grad():
        expected = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)[:, width:]
        got = generate_shared_prompts(model, rows, pad, config, fast_loop=fast_loop)
        assert model.config.num_key_value_heads < model.config.num_attention_heads  # the packed path runs
        with cpu_attention(model):
            packed = generate_shared_prompts(model, rows, pad, config, fast_loop=fast_loop)
            scores = model(input_ids=ids, attention_mask=mask).logits
    assert model.config._attn_implementation == "sdpa"  # restored: checkpoints never name tinyr1's function
    assert torch.equal(got, expected) and torch.equal(packed, expected)
    # Multi-token forwards (the prompts) by cpu_attention's batched products: sdpa's logits wherever a token is.
    # (Left-padding positions attend to nothing; there sdpa gives zeros, cpu_attention an average: nothing reads them.)
    real = mask.bool()
    torch.testing.assert_close(scores[real], model(input_ids=ids, attention_mask=mask).logits[real])


def test_inverse_cdf_sampling_draws_from_generates_distribution():
    """The warped distribution is generate's own (its private processor builder is the reference, so an upgrade that
    changes it fails here), and 40k draws match it to within 0.01 per token."""
    from transformers import GenerationConfig

    model = AutoModelForCausalLM.from_pretrained(TINY)
    config = GenerationConfig(do_sample=True, temperature=0.7, top_k=6, top_p=0.9, min_p=0.01, max_new_tokens=4)
    greedy, processors = inverse_cdf_sampling(config)
    assert not greedy.do_sample and greedy.temperature is None
    scores = torch.randn(1, 50, generator=torch.Generator().manual_seed(0)) * 2
    expected = torch.softmax(model._get_logits_processor(config, device="cpu")(None, scores.clone()), dim=-1)
    torch.manual_seed(0)
    drawn = processors(None, scores.repeat(40000, 1)).argmax(-1)
    frequencies = torch.bincount(drawn, minlength=50).float() / 40000
    assert set(drawn.unique().tolist()) <= set(expected[0].nonzero().flatten().tolist())
    assert (frequencies - expected[0]).abs().max() < 0.01
    assert inverse_cdf_sampling(GenerationConfig(do_sample=True, typical_p=0.5)) is None  # generate samples it
    assert inverse_cdf_sampling(GenerationConfig(do_sample=False)) is None


@pytest.mark.parametrize("fast_loop", [False, True])
def test_fast_sampling_with_top_k_1_gives_greedy_tokens(fast_loop):
    """The plumbing (processor order, min_new_tokens, padding after EOS): top-k 1 leaves one token to draw."""
    model, pad, config, rows, ids, mask, width = greedy_setup(PROMPTS[0], PROMPTS[2], 2)
    sampling = config.__class__(**{**config.to_dict(), "do_sample": True, "top_k": 1, "temperature": 0.5})
    with torch.no_grad():
        expected = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)[:, width:]
        got = generate_shared_prompts(model, rows, pad, sampling, fast_sampling=True, fast_loop=fast_loop)
    assert torch.equal(got, expected)


def test_roomy_cache_holds_what_concatenation_holds():
    """Growth past its room, a batch selection and a crop: the cache shows what ``DynamicLayer`` would."""
    from transformers import DynamicCache

    config = AutoModelForCausalLM.from_pretrained(TINY).config
    roomy, plain = roomy_cache(config, room=2), DynamicCache(config=config)
    generator = torch.Generator().manual_seed(0)
    heads, dim = config.num_key_value_heads, config.hidden_size // config.num_attention_heads

    def step(tokens, batch=3):
        key, value = (torch.randn(batch, heads, tokens, dim, generator=generator) for _ in range(2))
        return [cache.update(key, value, 0) for cache in (roomy, plain)]

    for tokens in (5, 1, 1, 4, 1):  # the 4 outgrows the room of 2
        (k1, v1), (k2, v2) = step(tokens)
        assert torch.equal(k1, k2) and torch.equal(v1, v2)
    for cache in (roomy, plain):
        cache.batch_select_indices(torch.tensor([2, 0]))
        cache.crop(-2)
    (k1, v1), (k2, v2) = step(1, batch=2)
    assert torch.equal(k1, k2) and torch.equal(v1, v2) and roomy.get_seq_length(0) == 11


BF16_NATIVE = packs_weights(torch.bfloat16)


def test_bf16_generation_with_roomy_cache_and_packed_weights_gives_autocasts_tokens():
    """Under bf16 autocast: the bf16 cache and (where the CPU has native bf16) the packed linear layers give the
    tokens of plain ``generate`` with autocast's own casts; greedy, so any difference in a logit's argmax shows."""
    model, pad, config, rows, ids, mask, width = greedy_setup(PROMPTS[0], PROMPTS[3], 2)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        expected = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)[:, width:]
        logits = model(input_ids=ids, attention_mask=mask).logits
        # generate's own loop, which these pieces serve (the decode loop has its own test file)
        roomy = generate_shared_prompts(model, rows, pad, config, fast_loop=False)
        with packed_bf16_linears(model, len(rows)):
            packed = generate_shared_prompts(model, rows, pad, config, fast_loop=False)
            packed_logits = model(input_ids=ids, attention_mask=mask).logits
    assert torch.equal(roomy, expected) and torch.equal(packed, expected)
    assert not any("forward" in vars(m) for m in model.modules())  # nn.Linear.forward is back
    if BF16_NATIVE:
        torch.testing.assert_close(packed_logits, logits, atol=1e-2, rtol=0)


@pytest.mark.skipif(not BF16_NATIVE, reason="this CPU has no native bf16 matmul: packing is off")
def test_packed_linear_multiplies_like_autocasts_bf16_linear():
    layer = torch.nn.Linear(16, 24)
    x = torch.randn(5, 16)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        expected = layer(x)
        with packed_bf16_linears(layer, 5):
            assert "forward" in vars(layer)
            got = layer(x)
    assert got.dtype == expected.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), expected.float(), atol=1e-2, rtol=1e-2)


def test_two_training_steps_equal_trls(tmp_path):
    """Same seed, same data: the fast trainer samples the same completions and ends at the same weights."""
    seen_trl, seen_fast = [], []
    trl_trainer = make_trainer(GRPOTrainer, tmp_path, seen_trl)
    trl_trainer.train()
    fast = make_trainer(CPUFastGRPOTrainer, tmp_path, seen_fast)
    fast.fast_sampling = False  # trl's own draws (multinomial), so the sampled completions can be compared
    fast.train()
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
    trainer = make_trainer(CPUFastGRPOTrainer, tmp_path, activation_checkpointing=True, max_steps=1)
    assert not trainer.uses_fast_path()
    trainer.train()
    assert trainer.state.global_step == 1
