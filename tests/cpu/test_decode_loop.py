"""``tinyr1.cpu.decode_loop`` decodes what ``generate`` decodes: the same tokens (greedy, and sampled with the same
seed), stops and padding, with every logits processor ``generate`` builds, for Llama and Qwen2 layers (q/k/v biases),
left-padded prompts of different lengths, fp32 and bf16 autocast; models it does not know keep ``generate``'s loop.
"""

import pytest
import torch
from transformers import AutoModelForCausalLM, GenerationConfig, LlamaConfig, LlamaForCausalLM
from transformers.generation import LogitsProcessor, LogitsProcessorList

from tinyr1.cpu.decode_loop import decode_loop, group_size, on_cpu, supports
from tinyr1.cpu.packing import fp16_weights_reason
from tinyr1.cpu.shared_prompts import generate_shared_prompts

from ..conftest import ASSETS

PROMPTS = [[5, 6, 7, 8, 9, 10, 11], [5, 6, 7, 8, 9, 10, 11], [300, 301], [300, 301], [42], [42]]


def tiny_llama():
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=1024, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         initializer_range=0.3, pad_token_id=0, eos_token_id=2)
    return LlamaForCausalLM(config).eval()


def tiny_qwen2():
    model = AutoModelForCausalLM.from_pretrained(ASSETS / "tiny-qwen2").eval()
    torch.manual_seed(0)
    for layer in model.model.layers:  # biases of its checkpoint are zero: make them count
        for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
            torch.nn.init.normal_(proj.bias, std=0.5)
    return model


def padded(rows):
    width = max(map(len, rows))
    ids = torch.tensor([[0] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    return ids, mask, width


def eos_after(model, steps: int) -> int:
    """A token greedy decoding of the first prompt emits at ``steps``: used as EOS so that rows stop early."""
    ids, mask, width = padded(PROMPTS)
    config = GenerationConfig(max_new_tokens=steps + 1, do_sample=False, pad_token_id=0, eos_token_id=[])
    with torch.no_grad():
        return int(model.generate(input_ids=ids, attention_mask=mask, generation_config=config)[0, width + steps])


CONFIGS = {
    "greedy": dict(do_sample=False),
    "sampled": dict(do_sample=True, top_k=0),
    "processors": dict(do_sample=True, temperature=0.7, top_k=20, top_p=0.9, repetition_penalty=1.3,
                       min_new_tokens=3),
}


@pytest.mark.parametrize("make", [tiny_llama, tiny_qwen2], ids=["llama", "qwen2"])
@pytest.mark.parametrize("kind", CONFIGS)
def test_decode_loop_gives_generates_tokens(make, kind):
    """Same seed, same tokens, including early stops at EOS, padding after it, and the first token of a group."""
    model = make()
    assert supports(model)
    config = GenerationConfig(max_new_tokens=12, pad_token_id=0, eos_token_id=[eos_after(model, 3)],
                              **CONFIGS[kind])
    ids, mask, width = padded(PROMPTS)
    with torch.no_grad():
        torch.manual_seed(1)
        expected = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
        torch.manual_seed(1)
        got = model.generate(input_ids=ids, attention_mask=mask, generation_config=config,
                             custom_generate=decode_loop)  # prefills itself
        torch.manual_seed(1)
        shared = generate_shared_prompts(model, PROMPTS, 0, config, fast_loop=True)  # prefilled once per group
    assert torch.equal(got, expected)
    assert torch.equal(shared, expected[:, width:])
    if kind == "greedy":
        assert (expected[0, width + 4:] == 0).all()  # row 0 stopped at EOS and was padded: the stop was tested


@pytest.mark.parametrize("prompts", [[[5, 6, 7]] * 4 + [[300, 301]] * 4, [[5, 6, 7], [300, 301]] * 2,
                                     [[5, 6, 7, 8]] * 3], ids=["groups-of-4", "interleaved", "one-group-of-3"])
def test_decode_loop_shares_a_groups_prompt_and_gives_generates_tokens(prompts):
    """Consecutive rows with one prompt attend to one cached copy of it (``group_size``); rows that only repeat
    a prompt elsewhere keep their own copy. Either way: generate's tokens."""
    model = tiny_llama()
    config = GenerationConfig(max_new_tokens=8, min_new_tokens=8, do_sample=False, pad_token_id=0)
    ids, mask, width = padded(prompts)
    assert group_size(ids, mask) == {8: 4, 4: 1, 3: 3}[len(prompts)]
    with torch.no_grad():
        expected = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
        got = model.generate(input_ids=ids, attention_mask=mask, generation_config=config,
                             custom_generate=decode_loop)
        shared = generate_shared_prompts(model, prompts, 0, config, fast_loop=True)
    assert torch.equal(got, expected)
    assert torch.equal(shared, expected[:, width:])


@pytest.mark.parametrize("make", [tiny_llama, tiny_qwen2], ids=["llama", "qwen2"])
def test_decode_loop_under_bf16_autocast_gives_autocasts_tokens(make):
    """The loop rounds where the model does under bf16 autocast (training); greedy, so an argmax flip would show."""
    model = make()
    config = GenerationConfig(max_new_tokens=10, min_new_tokens=10, do_sample=False, pad_token_id=0)
    ids, mask, width = padded(PROMPTS)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        expected = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
        got = model.generate(input_ids=ids, attention_mask=mask, generation_config=config,
                             custom_generate=decode_loop)
    assert torch.equal(got, expected)


def greedy_regret(model, sequences, mask, width) -> float:
    """How far below the best logit of the model's own forward pass the worst greedy choice in ``sequences`` is."""
    full = torch.cat([mask, torch.ones(mask.size(0), sequences.size(1) - width, dtype=mask.dtype)], dim=1)
    logits = model(input_ids=sequences, attention_mask=full).logits[:, width - 1:-1].float()
    chosen = logits.gather(-1, sequences[:, width:, None]).squeeze(-1)
    return (logits.max(-1).values - chosen).max().item()


@pytest.mark.parametrize("make", [tiny_llama, tiny_qwen2], ids=["llama", "qwen2"])
def test_decode_loop_with_bf16_weights_is_as_greedy_as_generate(make):
    """With bf16 weights (evaluation on a native-bf16 CPU) the residual stream itself is bf16, and generate does not
    reproduce its own forward pass either (logits 0.27 apart on the tiny Llama): tokens can part at near-ties. What
    must hold is that the loop's choices are the argmax of the model's forward as closely as generate's are."""
    model = make().to(torch.bfloat16)
    config = GenerationConfig(max_new_tokens=10, min_new_tokens=10, do_sample=False, pad_token_id=0)
    ids, mask, width = padded(PROMPTS)
    with torch.no_grad():
        expected = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
        got = model.generate(input_ids=ids, attention_mask=mask, generation_config=config,
                             custom_generate=decode_loop)
        assert torch.equal(got[:, : width + 3], expected[:, : width + 3])
        assert greedy_regret(model, got, mask, width) <= 2 * greedy_regret(model, expected, mask, width) + 0.05


def fp16_rounded(model):
    """A copy of ``model`` whose linear weights are rounded to fp16 (embeddings untouched): what the decode loop
    multiplies by with ``generation_weights="fp16"``."""
    import copy

    rounded = copy.deepcopy(model)
    for module in rounded.modules():
        if isinstance(module, torch.nn.Linear):
            module.weight.data = module.weight.data.half().float()
    return rounded


class Scores(LogitsProcessor):
    """Keeps the scores of every decode step."""

    def __init__(self):
        self.seen = []

    def __call__(self, input_ids, scores):
        self.seen.append(scores.clone())
        return scores


@pytest.mark.skipif(fp16_weights_reason(torch.float32) is not None, reason="this torch build has no fbgemm")
def test_decode_loop_with_fp16_weights_scores_as_fp16_rounded_weights_do():
    """The opt-in fp16 weights change the weights and nothing else: generate over a copy whose linear weights are
    rounded to fp16 gives the same tokens and scores, which differ from the exact weights'. One-token prompts, so
    every token runs through the loop (a longer prompt's prefill keeps the model's own weights)."""
    model = tiny_llama()  # untied embeddings: the copy rounds the LM head alone, as the loop does
    ids, mask, _ = padded([[42]] * 3 + [[300]] * 3)
    config = GenerationConfig(max_new_tokens=12, do_sample=False, pad_token_id=0)

    def run(m, **loop):
        scores = Scores()
        with torch.no_grad():
            out = m.generate(input_ids=ids, attention_mask=mask, generation_config=config,
                             logits_processor=LogitsProcessorList([scores]), **loop)
        return out, torch.stack(scores.seen)

    got, got_scores = run(model, custom_generate=decode_loop, generation_weights="fp16")
    expected, expected_scores = run(fp16_rounded(model))
    _, exact_scores = run(model, custom_generate=decode_loop)
    assert torch.equal(got, expected)
    torch.testing.assert_close(got_scores, expected_scores, atol=1e-4, rtol=1e-5)
    assert (got_scores - exact_scores).abs().max() > 1e-3  # the rounding is there to see


def test_decode_loop_refuses_fp16_weights_it_cannot_use():
    model = tiny_llama()
    config = GenerationConfig(max_new_tokens=2, do_sample=False, pad_token_id=0)
    ids, mask, _ = padded(PROMPTS)
    with torch.no_grad(), pytest.raises(ValueError, match="not one of"):
        model.generate(input_ids=ids, attention_mask=mask, generation_config=config, custom_generate=decode_loop,
                       generation_weights="int4")
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16), pytest.raises(ValueError, match="16 bits"):
        model.generate(input_ids=ids, attention_mask=mask, generation_config=config, custom_generate=decode_loop,
                       generation_weights="fp16")


def test_models_the_loop_does_not_know_keep_generates_loop():
    from peft import LoraConfig, get_peft_model

    model = tiny_qwen2()
    assert on_cpu(model) == {"custom_generate": decode_loop}
    settings = {**model.config.to_dict(), "use_sliding_window": True, "sliding_window": 4, "max_window_layers": 0}
    del settings["layer_types"]  # derived again from the sliding-window settings
    sliding = AutoModelForCausalLM.from_config(model.config.__class__(**settings))
    assert "sliding_attention" in sliding.config.layer_types and not supports(sliding)
    lora = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"]))
    assert not supports(lora) and not supports(lora.base_model.model)  # LoRA layers are not plain nn.Linear
    assert on_cpu(lora) == {}
    dropout = tiny_qwen2()
    dropout.config.attention_dropout = 0.1
    assert supports(dropout.eval()) and not supports(dropout.train())  # dropout only acts in training mode
