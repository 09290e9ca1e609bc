"""tinyr1.cpu.packing: a packed bf16 linear layer multiplies as autocast's bf16 linear does."""

import pytest
import torch

from tinyr1.cpu.packing import fp16_linear, fp16_weights_reason, packed_bf16_linears, packs_weights

BF16_NATIVE = packs_weights(torch.bfloat16)
FP16_WEIGHTS = fp16_weights_reason(torch.float32) is None


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


@pytest.mark.skipif(not FP16_WEIGHTS, reason="this torch build has no fbgemm")
def test_fp16_linear_multiplies_fp32_inputs_by_fp16_rounded_weights():
    torch.manual_seed(0)
    weight, bias, x = torch.randn(40, 24) * 0.1, torch.randn(40), torch.randn(5, 24)
    got = fp16_linear(weight, bias)(x)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, x @ weight.half().float().T + bias, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(got, x @ weight.T + bias, atol=1e-6, rtol=0)  # the weights were rounded


def test_fp16_weights_apply_to_an_fp32_decode_only():
    assert "already 16 bits" in fp16_weights_reason(torch.bfloat16)


def test_the_recipe_field_offers_exactly_the_generation_weights_the_packer_knows():
    from dataclasses import fields

    from tinyr1.cpu.packing import GENERATION_WEIGHTS
    from tinyr1.training.fields import GRPOFields

    field = next(f for f in fields(GRPOFields) if f.name == "cpu_generation_weights")
    assert tuple(field.metadata["choices"]) == GENERATION_WEIGHTS and field.default == "exact"


@pytest.mark.skipif(not packs_weights(torch.float32), reason="fp32 packing is for x86 builds with oneDNN")
def test_fp32_decodes_of_one_or_two_rows_keep_torchs_own_product(monkeypatch):
    from transformers import AutoModelForCausalLM

    from tinyr1.cpu import decode_loop, packing

    from ..conftest import ASSETS

    assert not packs_weights(torch.float32, 1) and not packs_weights(torch.float32, 2)
    assert packs_weights(torch.float32, 4) and packs_weights(torch.float32, 8)
    packed = []
    real = packing.packed_linear
    monkeypatch.setattr(packing, "packed_linear", lambda *a, **k: packed.append(a) or real(*a, **k))
    model = AutoModelForCausalLM.from_pretrained(ASSETS / "tiny-qwen2").eval()
    decode_loop._Weights(model, torch.float32, rows=1)
    assert packed == []
    decode_loop._Weights(model, torch.float32, rows=8)
    assert len(packed) == 4 * model.config.num_hidden_layers + 1  # qkv, o, gate/up, down a layer; the LM head
