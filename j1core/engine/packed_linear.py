"""CPU matmuls on weights reordered once into oneDNN's blocked layout, for the rollout decoder.

    python -m pytest tests/engine/test_packed_linear.py -q     (speed: python bench/rollout.py)

A decode step multiplies a few dozen rows by every weight matrix of the model. Reordered once by
`torch.ops.mkldnn._reorder_linear_weight` (the layout oneDNN's kernels read without repacking), the gate/up
and q/k/v products and the LM head (in 2,048-column slices) of such small-row steps run faster than on the
plain row-major layout (F.linear -> MKL sgemm); prefill-sized inputs do not gain. bench/rollout.py runs the
engine both ways.

`linear` and `add_linear` take a plain weight (F.linear / addmm: the reference) or a packed one (`pack`).
A packed weight is an opaque oneDNN tensor: it keeps its logical shape but no strides, so it serves only as
the weight of these two functions. Results differ from F.linear by summation order (float32: ~1e-6 relative).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

PACK_ROWS = 64  # the row count oneDNN is told to expect: a decode step's batch


def bf16_matmul_native(device) -> bool:
    """bfloat16 matrix instructions on this CPU, as oneDNN reports them (AVX-512 BF16 or AMX)."""
    return (torch.device(device).type == "cpu" and torch.backends.mkldnn.is_available()
            and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()))


def packing_available(device: torch.device, dtype: torch.dtype) -> bool:
    """oneDNN packing serves float32 on CPU in builds that have it (the CPU wheels do), and bfloat16 where the
    CPU has bfloat16 matrix instructions."""
    if device.type != "cpu" or not torch.backends.mkldnn.is_available() or \
            not hasattr(torch.ops.mkldnn, "_reorder_linear_weight"):
        return False
    return dtype == torch.float32 or (dtype == torch.bfloat16 and bf16_matmul_native(device))


def pack(weight: torch.Tensor) -> torch.Tensor:
    """A copy of weight [out, in] in oneDNN's blocked layout."""
    return torch.ops.mkldnn._reorder_linear_weight(weight.detach().contiguous(), PACK_ROWS)


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """F.linear(x, weight, bias) for a plain or a packed weight."""
    if weight.is_mkldnn:
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")
    return F.linear(x, weight, bias)


def add_linear(x: torch.Tensor, inp: torch.Tensor, weight: torch.Tensor, bias=None) -> torch.Tensor:
    """x + F.linear(inp, weight, bias), the residual add done inside the matmul where the layout allows."""
    if bias is not None:
        return x + linear(inp, weight, bias)
    if weight.is_mkldnn:
        return torch.ops.mkldnn._linear_pointwise.binary(inp, x, weight, None, "add")
    return torch.addmm(x.reshape(-1, x.shape[-1]), inp.reshape(-1, inp.shape[-1]), weight.t()).view(x.shape)
