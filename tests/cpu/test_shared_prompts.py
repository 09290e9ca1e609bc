"""tinyr1.cpu.shared_prompts generates generate's tokens: one prefill per group, the roomy cache, inverse-CDF sampling,
with cpu_attention and packed bf16 weights in the loop (the decode loop has its own file)."""

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tinyr1.cpu.attention import cpu_attention
from tinyr1.cpu.packing import packed_bf16_linears, packs_weights
from tinyr1.cpu.shared_prompts import generate_shared_prompts, inverse_cdf_sampling, roomy_cache
from tinyr1.models.loading import ensure_pad_token

from . import PROMPTS, TINY

BF16_NATIVE = packs_weights(torch.bfloat16)


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


def test_the_shared_prefill_reaches_the_decode_loop_without_a_second_prefill(monkeypatch):
    """The group's prompt is prefilled once and generate hands that cache to the decode loop under the keyword
    this transformers keeps (``cache`` from 5.25, ``past_key_values`` before): a cache lost on the way would be
    prefilled again, the same tokens at twice the cost, which token equality alone cannot see."""
    from tinyr1.cpu import decode_loop

    model, pad, config, rows, ids, mask, width = greedy_setup(PROMPTS[0], PROMPTS[1], 3)
    calls = []
    real = decode_loop.prefill

    def counting(*args, **kwargs):
        calls.append(args[1].shape)
        return real(*args, **kwargs)

    monkeypatch.setattr(decode_loop, "prefill", counting)
    with torch.no_grad():
        expected = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)[:, width:]
        got = generate_shared_prompts(model, rows, pad, config, fast_loop=True)
    assert torch.equal(got, expected)
    assert len(calls) == 1 and calls[0][0] == 2  # once, for the two distinct prompts
