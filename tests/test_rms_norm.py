"""Tests for kernels/rms_norm.cpp (built with the decode attention by kernels/decode_attention.py): the C++
RMSNorm against the plain formula and torch's fused one, in float32 and bfloat16; the engine's decoder uses it
where the engine loaded the kernels, and its PyTorch path otherwise."""
import pytest
import torch
import torch.nn.functional as F

import kernels.decode_attention as decode_attention
from j1core.engine.rollout import RolloutEngine
from tests.engine.test_rollout import make_model

KERNEL = decode_attention.load()
needs_kernel = pytest.mark.skipif(KERNEL is None, reason="the C++ CPU kernels could not be built here "
                                                         "(no compiler or ninja, or J1_CPU_KERNELS=0)")
EPS = 1e-5


def inputs(shape, dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = (3 * torch.randn(shape, generator=gen)).to(dtype)
    weight = (torch.rand(shape[-1], generator=gen) + 0.5).to(dtype)
    return x, weight


def exact(x, weight):
    """The norm in float64, scaled: what both dtypes approximate."""
    x64 = x.double()
    return x64 * torch.rsqrt(x64.pow(2).mean(-1, keepdim=True) + EPS) * weight.double()


@needs_kernel
@pytest.mark.parametrize("shape", [(1, 576), (64, 576), (5, 3, 64), (130, 960)])
def test_float32_matches_torch_fused_norm_and_the_exact_one(shape):
    x, weight = inputs(shape, torch.float32, seed=len(shape) + shape[-1])
    got = KERNEL.rms_norm(x, weight, EPS)
    assert got.shape == x.shape and got.dtype == torch.float32
    torch.testing.assert_close(got, F.rms_norm(x, (shape[-1],), weight, EPS), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got.double(), exact(x, weight), atol=1e-5, rtol=1e-5)


@needs_kernel
@pytest.mark.parametrize("shape", [(1, 576), (64, 576), (5, 3, 64)])
def test_bfloat16_is_the_float32_norm_rounded_once(shape):
    x, weight = inputs(shape, torch.bfloat16, seed=shape[0])
    got = KERNEL.rms_norm(x, weight, EPS)
    assert got.shape == x.shape and got.dtype == torch.bfloat16
    torch.testing.assert_close(got.double(), exact(x, weight), atol=0, rtol=2 ** -8)  # one bfloat16 rounding
    torch.testing.assert_close(got, F.rms_norm(x, (shape[-1],), weight, EPS), atol=0, rtol=2 ** -7)


@needs_kernel
def test_kernel_refuses_what_it_cannot_read():
    x, weight = inputs((4, 64), torch.float32)
    with pytest.raises(RuntimeError, match="contiguous"):
        KERNEL.rms_norm(x.t(), weight, EPS)
    with pytest.raises(RuntimeError, match="share a dtype"):
        KERNEL.rms_norm(x, weight.bfloat16(), EPS)
    with pytest.raises(RuntimeError, match=r"\[H\]"):
        KERNEL.rms_norm(x, weight[:32], EPS)
    with pytest.raises(RuntimeError, match="float32 or bfloat16"):
        KERNEL.rms_norm(x.double(), weight.double(), EPS)


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_engine_decoder_norms_through_the_kernel_only_where_loaded(dtype, monkeypatch):
    model, tokenizer = make_model("llama")
    fast = RolloutEngine(model, tokenizer, dtype=dtype)
    plain = RolloutEngine(model, tokenizer, dtype=dtype, decode_kernel=False)
    assert fast.decoder.norm_kernel is KERNEL and plain.decoder.norm_kernel is None
    x, weight = inputs((6, model.config.hidden_size), dtype, seed=3)
    tol = dict(atol=1e-5, rtol=1e-5) if dtype == torch.float32 else dict(atol=0, rtol=2 ** -7)
    torch.testing.assert_close(fast.decoder.rms_norm(x, weight), plain.decoder.rms_norm(x, weight), **tol)
    calls = []
    monkeypatch.setattr(fast.decoder, "norm_kernel", type("Spy", (), {
        "rms_norm": staticmethod(lambda *a: calls.append(1) or KERNEL.rms_norm(*a))})())
    fast.generate([[1, 2, 3]], n=1, max_new_tokens=2, temperature=0.0)
    assert calls  # the decoder's norms in generate went through the kernel
