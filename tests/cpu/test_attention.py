"""tinyr1.cpu.attention computes sdpa's attention, outputs and gradients, in fp32.

The whole-model comparisons with trl are in test_trainer.py; these pin the cases a model run may not reach:
no mask (plain causal) with a cache before the queries, the size cut-over to sdpa, and dropout while training.
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
