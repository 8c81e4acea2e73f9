"""Tests for j1core/engine/packed_linear.py: matmuls on oneDNN-packed weights against F.linear on random inputs."""
import pytest
import torch
import torch.nn.functional as F

from j1core.engine.packed_linear import add_linear, linear, pack, packing_available

pytestmark = pytest.mark.skipif(not packing_available(torch.device("cpu"), torch.float32),
                                reason="this torch build has no oneDNN weight packing")


@pytest.mark.parametrize("rows", [1, 7, 64, 300])
@pytest.mark.parametrize("with_bias", [False, True])
def test_packed_linear_matches_f_linear(rows, with_bias):
    gen = torch.Generator().manual_seed(rows)
    weight = torch.randn(96, 40, generator=gen)
    bias = torch.randn(96, generator=gen) if with_bias else None
    x = torch.randn(2, rows, 40, generator=gen)
    packed = pack(weight)
    assert packed.is_mkldnn and packed.shape == weight.shape
    torch.testing.assert_close(linear(x, packed, bias), F.linear(x, weight, bias), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(linear(x, weight, bias), F.linear(x, weight, bias), atol=0, rtol=0)


@pytest.mark.parametrize("with_bias", [False, True])
def test_add_linear_adds_the_residual_for_both_layouts(with_bias):
    gen = torch.Generator().manual_seed(3)
    weight, residual = torch.randn(48, 32, generator=gen), torch.randn(3, 5, 48, generator=gen)
    bias = torch.randn(48, generator=gen) if with_bias else None
    inp = torch.randn(3, 5, 32, generator=gen)
    expected = residual + F.linear(inp, weight, bias)
    torch.testing.assert_close(add_linear(residual, inp, pack(weight), bias), expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(add_linear(residual, inp, weight, bias), expected, atol=1e-5, rtol=1e-5)


def test_packing_is_offered_for_float32_and_native_bfloat16_on_cpu_only():
    native_bf16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    assert packing_available(torch.device("cpu"), torch.bfloat16) == native_bf16
    assert not packing_available(torch.device("cpu"), torch.float16)
    assert not packing_available(torch.device("meta"), torch.float32)


@pytest.mark.skipif(not packing_available(torch.device("cpu"), torch.bfloat16),
                    reason="no bfloat16 matrix instructions on this CPU: bfloat16 weights are not packed")
def test_packed_bfloat16_matches_plain_bfloat16():
    gen = torch.Generator().manual_seed(4)
    weight, residual = torch.randn(96, 64, generator=gen).bfloat16(), torch.randn(2, 7, 96, generator=gen).bfloat16()
    inp = torch.randn(2, 7, 64, generator=gen).bfloat16()
    torch.testing.assert_close(linear(inp, pack(weight)), F.linear(inp, weight), atol=3e-2, rtol=2e-2)
    torch.testing.assert_close(add_linear(residual, inp, pack(weight)), add_linear(residual, inp, weight),
                               atol=6e-2, rtol=2e-2)
