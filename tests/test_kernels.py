"""Tests of kernels/: the chunked path against the full-logits reference (values and gradients).

    python -m pytest tests/test_kernels.py -q
"""
from __future__ import annotations

import pytest
import torch

from kernels import fused_linear_logprob
from kernels.chunked import TARGET_CHUNK_ELEMENTS, VOCAB_CHUNK, chunked_logprob, default_chunks


def make_inputs(n, h, v, dtype=torch.float32, scale=1.0, bias=False, seed=0):
    gen = torch.Generator().manual_seed(seed)
    hidden = (torch.randn(n, h, generator=gen) * scale).to(dtype).requires_grad_()
    weight = (torch.randn(v, h, generator=gen) / h ** 0.5).to(dtype).requires_grad_()
    targets = torch.randint(0, v, (n,), generator=gen)
    b = (torch.randn(v, generator=gen)).to(dtype).requires_grad_() if bias else None
    return hidden, weight, targets, b


def values_and_grads(impl, hidden, weight, targets, bias, temperature=1.0, entropy=False, chunk_size=None, seed=1,
                     vocab_chunk=None):
    """logp (and entropy), then grads of a random weighted sum of them w.r.t. every differentiable input."""
    if vocab_chunk is not None:  # vocabulary slices: the chunked path's own entry point
        out = chunked_logprob(hidden, weight, targets, temperature, bias, chunk_size, entropy, vocab_chunk)
    else:
        out = fused_linear_logprob(hidden, weight, targets, temperature, bias, chunk_size, entropy, impl)
    outs = out if entropy else (out,)
    gen = torch.Generator().manual_seed(seed)
    loss = sum((o * torch.randn(o.shape, generator=gen).to(o.device)).sum() for o in outs)
    inputs = [t for t in (hidden, weight, bias) if t is not None]
    grads = torch.autograd.grad(loss, inputs)
    return [o.detach() for o in outs], list(grads)


def assert_same(a, b, atol, rtol=0.0, relative_to_max=False):
    """Elementwise closeness; with relative_to_max, atol is scaled by the tensor's largest magnitude (float32
    rounds logits of size 100 to ~1e-5, and gradients scale with the hidden states)."""
    for x, y in zip(a, b, strict=True):
        scale = max(1.0, y.abs().max().item()) if relative_to_max and y.numel() else 1.0
        torch.testing.assert_close(x.float(), y.float(), atol=atol * scale, rtol=rtol)


@pytest.mark.parametrize("n,v,chunk", [(7, 50, 3), (33, 129, 8), (16, 64, 16), (5, 31, 100)])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
@pytest.mark.parametrize("bias", [False, True])
def test_chunked_matches_reference_fp32(n, v, chunk, temperature, bias):
    inputs = make_inputs(n, 24, v, bias=bias)
    ref = values_and_grads("reference", *inputs, temperature, entropy=True)
    got = values_and_grads("chunked", *inputs, temperature, entropy=True, chunk_size=chunk)
    assert_same(got[0] + got[1], ref[0] + ref[1], atol=1e-5)


@pytest.mark.parametrize("n,v,chunk,vocab_chunk", [(7, 50, 3, 16), (33, 129, 33, 40), (16, 64, 5, 64),
                                                    (5, 31, 2, 1), (9, 100, None, 7)])
@pytest.mark.parametrize("entropy", [False, True])
@pytest.mark.parametrize("bias", [False, True])
def test_vocabulary_slices_match_reference(n, v, chunk, vocab_chunk, entropy, bias):
    """Token x vocabulary chunks: online log-sum-exp (and entropy) across slices, targets in any slice."""
    inputs = make_inputs(n, 24, v, bias=bias, scale=3.0)
    ref = values_and_grads("reference", *inputs, 0.7, entropy=entropy)
    got = values_and_grads("chunked", *inputs, 0.7, entropy=entropy, chunk_size=chunk, vocab_chunk=vocab_chunk)
    assert_same(got[0] + got[1], ref[0] + ref[1], atol=1e-5, relative_to_max=True)


def test_unused_entropy_output_gets_no_gradient_work(monkeypatch):
    """With the entropy returned but not in the loss, the backward builds no entropy term (autograd passes None,
    not zeros) and the gradients are those of the log-probs alone."""
    import kernels.chunked as chunked

    seen, real = [], chunked.logits_grad_chunk
    monkeypatch.setattr(chunked, "logits_grad_chunk", lambda *a: seen.append(a[8]) or real(*a))
    hidden, weight, targets, _ = make_inputs(11, 16, 70)
    logp, _ = chunked_logprob(hidden, weight, targets, return_entropy=True, vocab_chunk_size=32)
    got = torch.autograd.grad(logp.sum(), (hidden, weight))
    ref = torch.autograd.grad(fused_linear_logprob(hidden, weight, targets, impl="reference").sum(), (hidden, weight))
    assert_same(got, ref, atol=1e-5)
    assert len(seen) == 3 and all(g is None for g in seen)


def test_chunked_without_entropy_matches_reference():
    inputs = make_inputs(19, 16, 77)
    got_values, got_grads = values_and_grads("chunked", *inputs, chunk_size=4)
    ref_values, ref_grads = values_and_grads("reference", *inputs)
    assert_same(got_values + got_grads, ref_values + ref_grads, atol=1e-5)


@pytest.mark.parametrize("scale", [30.0, -30.0])
def test_chunked_extreme_logits(scale):
    """Logits of magnitude ~100s: log-sum-exp must not overflow; very negative target log-probs stay finite."""
    inputs = make_inputs(12, 16, 90, scale=scale)
    ref = values_and_grads("reference", *inputs, 0.5, entropy=True)
    got = values_and_grads("chunked", *inputs, 0.5, entropy=True, chunk_size=5)
    assert all(torch.isfinite(t).all() for t in got[0] + got[1])
    assert ref[0][0].min() < -100  # the case really has very negative log-probs
    assert_same(got[0] + got[1], ref[0] + ref[1], atol=1e-5, relative_to_max=True)


def bf16_reference_error(inputs, temperature):
    """How far the bf16 reference itself is from float32 math on the same (bf16-rounded) numbers."""
    as_fp32 = [None if t is None else t.detach().float().requires_grad_() if t.is_floating_point() else t
               for t in inputs]
    exact = values_and_grads("reference", *as_fp32, temperature, entropy=True)
    bf16 = values_and_grads("reference", *inputs, temperature, entropy=True)
    return exact, bf16


@pytest.mark.parametrize("bias", [False, True])
def test_chunked_bf16_as_close_as_reference(bias):
    """In bf16 the chunked path must be as close to float32 math as the bf16 reference is (within 2x + eps)."""
    inputs = make_inputs(21, 32, 100, dtype=torch.bfloat16, bias=bias)
    exact, bf16 = bf16_reference_error(inputs, 0.8)
    got = values_and_grads("chunked", *inputs, 0.8, entropy=True, chunk_size=6)
    for g, r, e in zip(got[0] + got[1], bf16[0] + bf16[1], exact[0] + exact[1], strict=True):
        assert g.dtype == r.dtype
        ref_err = (r.float() - e.float()).abs().max().item()
        got_err = (g.float() - e.float()).abs().max().item()
        assert got_err <= 2 * ref_err + 1e-2 * e.abs().max().item() + 1e-3


def test_chunked_random_shapes():
    """Random shapes and chunk sizes via hypothesis (imported here: the helpers above must also load on bare
    GPU machines for tests/test_kernels_triton.py)."""
    hypothesis = pytest.importorskip("hypothesis")
    st = pytest.importorskip("hypothesis.strategies")

    @hypothesis.settings(max_examples=15, deadline=None, derandomize=True)
    @hypothesis.given(n=st.integers(1, 20), v=st.integers(2, 70), h=st.integers(1, 12), chunk=st.integers(1, 25),
                      vocab_chunk=st.integers(1, 80),
                      temperature=st.floats(0.3, 2.0), bias=st.booleans(), seed=st.integers(0, 1000))
    def check(n, v, h, chunk, vocab_chunk, temperature, bias, seed):
        check_random_case(n, v, h, chunk, temperature, bias, seed, vocab_chunk)

    check()


def check_random_case(n, v, h, chunk, temperature, bias, seed, vocab_chunk=None):
    inputs = make_inputs(n, h, v, bias=bias, seed=seed)
    ref = values_and_grads("reference", *inputs, temperature, entropy=True)
    got = values_and_grads("chunked", *inputs, temperature, entropy=True, chunk_size=chunk, vocab_chunk=vocab_chunk)
    # 1e-5 of the largest magnitude: low temperatures scale logits and gradients past 10, where float32
    # sums in another order differ by more than 1e-5 absolute (seen: 1.3e-5 on a gradient of 17).
    assert_same(got[0] + got[1], ref[0] + ref[1], atol=1e-5, relative_to_max=True)


def test_frozen_weight_and_no_grad():
    hidden, weight, targets, _ = make_inputs(9, 8, 40)
    weight = weight.detach()
    logp = fused_linear_logprob(hidden, weight, targets, impl="chunked", chunk_size=4)
    (grad,) = torch.autograd.grad(logp.sum(), hidden)
    (ref,) = torch.autograd.grad(fused_linear_logprob(hidden, weight, targets, impl="reference").sum(), hidden)
    torch.testing.assert_close(grad, ref, atol=1e-5, rtol=0)
    with torch.no_grad():
        assert not fused_linear_logprob(hidden, weight, targets, impl="chunked").requires_grad


@pytest.mark.parametrize("n,v", [(10, 49152), (1024, 49152), (128, 128_256), (100_000, 128_256), (5, 1 << 30),
                                 (3, 7)])
def test_default_chunks_bounds(n, v):
    tokens, columns = default_chunks(n, v)
    assert 1 <= tokens <= n and 1 <= columns <= v and columns <= VOCAB_CHUNK
    assert tokens * columns <= TARGET_CHUNK_ELEMENTS
    assert tokens == min(n, TARGET_CHUNK_ELEMENTS // columns)  # every token of a sequence of 1,024 in one chunk


@pytest.mark.parametrize("field,kwargs", [
    ("impl", {"impl": "fast"}),
    ("targets", {"targets": torch.zeros(3, dtype=torch.long)}),
    ("targets", {"targets": torch.full((4,), 10)}),
    ("bias", {"bias": torch.zeros(3)}),
    ("temperature", {"temperature": 0.0}),
])
def test_bad_input_names_field(field, kwargs):
    args = {"hidden": torch.zeros(4, 2), "weight": torch.zeros(10, 2), "targets": torch.zeros(4, dtype=torch.long)}
    with pytest.raises(ValueError, match=field):
        fused_linear_logprob(**{**args, **kwargs})
