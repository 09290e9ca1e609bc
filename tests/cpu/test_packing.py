"""tinyr1.cpu.packing: a packed bf16 linear layer multiplies as autocast's bf16 linear does."""

import pytest
import torch

from tinyr1.cpu.packing import packed_bf16_linears, packs_weights

BF16_NATIVE = packs_weights(torch.bfloat16)


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
