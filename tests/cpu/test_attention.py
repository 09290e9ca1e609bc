"""tinyr1.cpu.attention computes sdpa's attention, outputs and gradients, in fp32.

The whole-model comparisons with trl are in test_trainer.py, the decode loop's tokens in test_decode_loop.py;
these pin the cases a model run may not reach: no mask (plain causal) with a cache before the queries, the size
cut-over to sdpa, dropout while training, and the decode loop's attention over a shared prompt.
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tinyr1.cpu import attention as cpu_attention


def sdpa(query, key, value, mask):
    """transformers' sdpa call for these shapes: grouped heads repeated, plain causal when there is no mask."""
    groups = query.shape[1] // key.shape[1]
    key, value = key.repeat_interleave(groups, 1), value.repeat_interleave(groups, 1)
    causal = mask is None and query.shape[2] > 1
    length, keys = query.shape[2], key.shape[2]
    if causal and length != keys:  # queries after a cache: is_causal would align them to the first key
        mask, causal = torch.ones(length, keys, dtype=torch.bool).tril(keys - length), False
    return F.scaled_dot_product_attention(query, key, value, attn_mask=mask, is_causal=causal).transpose(1, 2)


def inputs(batch=2, heads=6, kv_heads=2, length=5, keys=9):
    generator = torch.Generator().manual_seed(0)
    make = lambda *shape: torch.randn(*shape, generator=generator, requires_grad=True)  # noqa: E731
    return make(batch, heads, length, 8), make(batch, kv_heads, keys, 8), make(batch, kv_heads, keys, 8)


def attention_module(training=False):
    module = nn.Module()
    module.is_causal = True
    return module.train(training)


@pytest.mark.parametrize("with_mask", [False, True])
def test_batched_products_give_sdpas_outputs_and_gradients(with_mask):
    query, key, value = inputs()
    mask = None
    if with_mask:  # row 1 has two left-padding keys; its queries all come after them
        mask = torch.ones(5, 9, dtype=torch.bool).tril(4).expand(2, 1, 5, 9).clone()
        mask[1, :, :, :2] = False
    got, _ = cpu_attention.cpu_attention_forward(attention_module(), query, key, value, mask)
    expected = sdpa(query, key, value, mask)
    torch.testing.assert_close(got, expected)
    weights = torch.randn_like(expected)
    grads = [torch.autograd.grad((out * weights).sum(), (query, key, value)) for out in (got, expected)]
    for got_grad, expected_grad in zip(*grads, strict=True):
        torch.testing.assert_close(got_grad, expected_grad)


def test_large_calls_and_dropout_go_to_sdpa(monkeypatch):
    query, key, value = inputs(length=9)
    calls = []
    monkeypatch.setattr(cpu_attention, "_sdpa", lambda *args, **kwargs: calls.append(kwargs) or (None, None))
    cpu_attention.cpu_attention_forward(attention_module(), query, key, value, None)
    assert calls == []  # 2 x 6 x 9 x 9 scores: the batched products
    cpu_attention.cpu_attention_forward(attention_module(training=True), query, key, value, None, dropout=0.1)
    monkeypatch.setattr(cpu_attention, "BMM_MAX_SCORES", 2 * 6 * 9 * 9 - 1)
    cpu_attention.cpu_attention_forward(attention_module(), query, key, value, None)
    assert [c.get("dropout") for c in calls] == [0.1, None]


@pytest.mark.parametrize("padded", [False, True])
def test_group_decode_attention_gives_sdpas_output_over_the_shared_prompt_and_own_tokens(padded):
    # 2 groups x 3 members x 2 key/value heads, 3 query heads per key/value head; a 4-token prompt per group
    groups, members, kv, per_kv, dim, prompt, own = 2, 3, 2, 3, 8, 4, 5
    generator = torch.Generator().manual_seed(3)
    rand = lambda *shape: torch.randn(*shape, generator=generator)  # noqa: E731
    query, own_keys, own_values = rand(groups, kv, members, per_kv, dim), rand(groups, kv, members, own, dim), \
        rand(groups, kv, members, own, dim)
    prompt_keys, prompt_values = rand(groups, kv, prompt, dim), rand(groups, kv, prompt, dim)
    visible = torch.ones(groups, prompt, dtype=torch.bool)
    if padded:
        visible[1, :2] = False  # group 1's prompt has two left-padding tokens
    bias = torch.zeros(groups, 1, prompt).masked_fill_(~visible[:, None], float("-inf")) if padded else None
    batch = groups * kv * members
    got = cpu_attention.group_decode_attention(
        query.reshape(batch, per_kv, dim), own_keys.reshape(batch, own, dim).transpose(1, 2),
        own_values.reshape(batch, own, dim), 0.3,
        (prompt_keys.reshape(groups * kv, prompt, dim).transpose(1, 2),
         prompt_values.reshape(groups * kv, prompt, dim), bias))
    # the same attention with the prompt copied to every member, by sdpa
    keys = torch.cat([prompt_keys[:, :, None].expand(-1, -1, members, -1, -1), own_keys], dim=3)
    values = torch.cat([prompt_values[:, :, None].expand(-1, -1, members, -1, -1), own_values], dim=3)
    mask = torch.cat([visible[:, None, None, None].expand(-1, kv, members, 1, -1),
                      torch.ones(groups, kv, members, 1, own, dtype=torch.bool)], dim=-1)
    expected = F.scaled_dot_product_attention(query, keys, values, attn_mask=mask, scale=0.3)
    torch.testing.assert_close(got, expected.reshape(batch, per_kv, dim), rtol=0, atol=1e-6)
    no_prompt = cpu_attention.group_decode_attention(
        query.reshape(batch, per_kv, dim), own_keys.reshape(batch, own, dim).transpose(1, 2),
        own_values.reshape(batch, own, dim), 0.3)
    expected = F.scaled_dot_product_attention(query, own_keys, own_values, scale=0.3)
    torch.testing.assert_close(no_prompt, expected.reshape(batch, per_kv, dim), rtol=0, atol=1e-6)
