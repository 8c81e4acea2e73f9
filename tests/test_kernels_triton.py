"""Tests of kernels/triton_logprob.py against the reference: on CUDA when present, else on CPU via the interpreter.

    python -m pytest tests/test_kernels_triton.py -q

Without CUDA, test_triton_interpreter_on_cpu reruns this file's `case` tests in a child pytest with
TRITON_INTERPRET=1 set before triton is imported, so the interpreter never leaks into other tests.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.test_kernels import assert_same, bf16_reference_error, make_inputs, values_and_grads

triton = pytest.importorskip("triton", reason="triton is not installed")

INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"
ON_CUDA = torch.cuda.is_available() and not INTERPRETED
DEVICE = "cuda" if ON_CUDA else "cpu"
run_cases = pytest.mark.skipif(not (ON_CUDA or INTERPRETED),
                               reason="needs CUDA or TRITON_INTERPRET=1 (run by test_triton_interpreter_on_cpu)")


def test_triton_interpreter_on_cpu():
    if ON_CUDA or INTERPRETED:
        pytest.skip("the cases run directly in this process")
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    command = [sys.executable, "-m", "pytest", __file__, "-x", "-k", "case", "-p", "no:cacheprovider"]
    result = subprocess.run(command, cwd=Path(__file__).resolve().parents[1], env=env, capture_output=True,
                            text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout, result.stdout[-2000:]


def on_device(inputs):
    return [None if t is None else t.detach().to(DEVICE).requires_grad_(t.requires_grad) for t in inputs]


def small_blocks():
    from kernels.triton_logprob import Blocks

    return Blocks(n=16, v=32, h=16, warps=4)


def triton_values_and_grads(inputs, temperature, entropy=True):
    """values_and_grads for impl='triton' with small blocks, so every size here spans several partial blocks."""
    import kernels.triton_logprob as tlp

    original = tlp.default_blocks
    tlp.default_blocks = lambda dtype: small_blocks()
    try:
        return values_and_grads("triton", *inputs, temperature, entropy=entropy)
    finally:
        tlp.default_blocks = original


@run_cases
@pytest.mark.parametrize("n,h,v", [(21, 24, 70), (16, 16, 32), (5, 20, 40)])
@pytest.mark.parametrize("temperature,bias", [(1.0, False), (0.7, True)])
def test_case_fp32_matches_reference(n, h, v, temperature, bias):
    inputs = on_device(make_inputs(n, h, v, bias=bias))
    ref = values_and_grads("reference", *inputs, temperature, entropy=True)
    got = triton_values_and_grads(inputs, temperature)
    assert_same(got[0] + got[1], ref[0] + ref[1], atol=1e-5)


@run_cases
def test_case_logp_only_and_default_blocks():
    inputs = on_device(make_inputs(70, 40, 130))
    ref = values_and_grads("reference", *inputs)
    got = values_and_grads("triton", *inputs)
    assert_same(got[0] + got[1], ref[0] + ref[1], atol=1e-5)


@run_cases
@pytest.mark.parametrize("scale", [30.0, -30.0])
def test_case_extreme_logits(scale):
    inputs = on_device(make_inputs(20, 16, 90, scale=scale))
    ref = values_and_grads("reference", *inputs, 0.5, entropy=True)
    got = triton_values_and_grads(inputs, 0.5)
    assert all(torch.isfinite(t).all() for t in got[0] + got[1])
    assert_same(got[0] + got[1], ref[0] + ref[1], atol=1e-5, relative_to_max=True)


@run_cases
@pytest.mark.parametrize("bias", [False, True])
def test_case_bf16_as_close_as_reference(bias):
    inputs = on_device(make_inputs(20, 24, 70, dtype=torch.bfloat16, bias=bias))
    exact, bf16 = bf16_reference_error(inputs, 0.8)
    got = triton_values_and_grads(inputs, 0.8)
    for g, r, e in zip(got[0] + got[1], bf16[0] + bf16[1], exact[0] + exact[1], strict=True):
        assert g.dtype == r.dtype
        ref_err = (r.float() - e.float()).abs().max().item()
        got_err = (g.float() - e.float()).abs().max().item()
        assert got_err <= 2 * ref_err + 1e-2 * e.abs().max().item() + 1e-3


@run_cases
def test_case_frozen_weight_and_empty_batch():
    from kernels import fused_linear_logprob

    hidden, weight, targets, _ = on_device(make_inputs(9, 16, 40))
    weight = weight.detach()
    grads = [torch.autograd.grad(fused_linear_logprob(hidden, weight, targets, impl=impl).sum(), hidden)[0]
             for impl in ("triton", "reference")]
    torch.testing.assert_close(grads[0], grads[1], atol=1e-5, rtol=0)
    empty = fused_linear_logprob(hidden[:0], weight, targets[:0], impl="triton")
    assert empty.shape == (0,)
