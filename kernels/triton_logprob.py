"""Triton forward/backward of per-token log-probs from hidden states and the LM head, for CUDA.

    python -m pytest tests/test_kernels_triton.py -q   (on CPU through TRITON_INTERPRET=1, small sizes)

Forward: each program takes BLOCK_N tokens and a contiguous split of the vocabulary, computes logit tiles with
tl.dot over H, and keeps an online softmax per token: running max m, s = sum exp(z - m), sz = sum exp(z - m)(z - m)
and the target logit. The splits (enough to fill the GPU when N is small) are merged in PyTorch into
lse, logp = z_t - lse and entropy = log s - sz / s. Memory: O(N * splits) besides the inputs.
Backward: one program per (token block, vocab block) recomputes its logit tile, forms
dz = [g_lp (1[v = t] - p) - g_H p (z - lse + H)] / T (the entropy keeps its gradient), and accumulates
grad_hidden += dz @ W_blk and grad_weight_blk += dz.T @ h with float32 atomics (grad_bias += sum dz).
float32 inputs use IEEE dot products (no TF32) so they match the reference to 1e-5.
The backward is bound by its float32 atomics; its speed against the peers is in docs/benchmarks.md.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

# The CPU interpreter multiplies bf16 tiles wrongly in tl.dot (triton 3.x); it gets float32 copies instead.
INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"


@dataclass(frozen=True)
class Blocks:
    n: int = 64
    v: int = 128
    h: int = 64
    warps: int = 4


def default_blocks(dtype) -> Blocks:
    return Blocks(64, 64, 32, 4) if dtype == torch.float32 else Blocks(128, 128, 64, 8)


@triton.jit
def dot(a, b, acc, IEEE: tl.constexpr, UPCAST: tl.constexpr):
    """acc + a @ b in float32; IEEE: no TF32 for float32 inputs; UPCAST: bf16/fp16 -> fp32 first (interpreter)."""
    if UPCAST:
        a = a.to(tl.float32)
        b = b.to(tl.float32)
    if IEEE:
        acc = tl.dot(a, b, acc, input_precision="ieee")
    else:
        acc = tl.dot(a, b, acc)
    return acc


@triton.jit
def logit_tile(h_ptr, w_ptr, b_ptr, rows, cols, row_ok, col_ok, H, inv_temp,
               HAS_BIAS: tl.constexpr, IEEE: tl.constexpr, UPCAST: tl.constexpr, BLOCK_N: tl.constexpr,
               BLOCK_V: tl.constexpr, BLOCK_H: tl.constexpr):
    """z[BLOCK_N, BLOCK_V] = (h[rows] @ W[cols].T + b[cols]) / T in float32; masked columns are -inf."""
    acc = tl.zeros((BLOCK_N, BLOCK_V), dtype=tl.float32)
    for k in range(0, H, BLOCK_H):
        ks = k + tl.arange(0, BLOCK_H)
        k_ok = ks < H
        h = tl.load(h_ptr + rows[:, None] * H + ks[None, :], mask=row_ok[:, None] & k_ok[None, :], other=0.0)
        w = tl.load(w_ptr + cols[:, None] * H + ks[None, :], mask=col_ok[:, None] & k_ok[None, :], other=0.0)
        acc = dot(h, tl.trans(w), acc, IEEE, UPCAST)
    if HAS_BIAS:
        acc += tl.load(b_ptr + cols, mask=col_ok, other=0.0).to(tl.float32)[None, :]
    return tl.where(col_ok[None, :], acc * inv_temp, float("-inf"))


@triton.jit
def forward_kernel(h_ptr, w_ptr, b_ptr, t_ptr, m_ptr, s_ptr, sz_ptr, zt_ptr, N, V, H, inv_temp, blocks_per_split,
                   HAS_BIAS: tl.constexpr, IEEE: tl.constexpr, UPCAST: tl.constexpr, BLOCK_N: tl.constexpr,
                   BLOCK_V: tl.constexpr, BLOCK_H: tl.constexpr):
    split = tl.program_id(1)
    rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < N
    targets = tl.load(t_ptr + rows, mask=row_ok, other=-1)
    m = tl.full((BLOCK_N,), float("-inf"), dtype=tl.float32)
    s = tl.zeros((BLOCK_N,), dtype=tl.float32)
    sz = tl.zeros((BLOCK_N,), dtype=tl.float32)
    zt = tl.zeros((BLOCK_N,), dtype=tl.float32)
    for block in range(blocks_per_split):
        cols = (split * blocks_per_split + block) * BLOCK_V + tl.arange(0, BLOCK_V)
        col_ok = cols < V
        z = logit_tile(h_ptr, w_ptr, b_ptr, rows, cols, row_ok, col_ok, H, inv_temp,
                       HAS_BIAS, IEEE, UPCAST, BLOCK_N, BLOCK_V, BLOCK_H)
        m_new = tl.maximum(m, tl.max(z, axis=1))  # finite: a split's first block always has a valid column
        alpha = tl.exp(m - m_new)
        shift = tl.where(s > 0, m - m_new, 0.0)
        p = tl.exp(z - m_new[:, None])
        z_finite = tl.where(col_ok[None, :], z, 0.0)
        # sz = sum p (z - m), kept relative to the running max so the entropy needs no cancellation of lse
        sz = alpha * (sz + shift * s) + tl.sum(p * (z_finite - m_new[:, None]), axis=1)
        s = s * alpha + tl.sum(p, axis=1)
        zt += tl.sum(tl.where(cols[None, :] == targets[:, None], z_finite, 0.0), axis=1)
        m = m_new
    out = split * N + rows
    tl.store(m_ptr + out, m, mask=row_ok)
    tl.store(s_ptr + out, s, mask=row_ok)
    tl.store(sz_ptr + out, sz, mask=row_ok)
    tl.store(zt_ptr + out, zt, mask=row_ok)


@triton.jit
def backward_kernel(h_ptr, w_ptr, b_ptr, t_ptr, lse_ptr, ent_ptr, glp_ptr, gent_ptr, gh_ptr, gw_ptr, gb_ptr,
                    N, V, H, inv_temp, HAS_BIAS: tl.constexpr, NEED_H: tl.constexpr, NEED_W: tl.constexpr,
                    NEED_B: tl.constexpr, IEEE: tl.constexpr, UPCAST: tl.constexpr, BLOCK_N: tl.constexpr,
                    BLOCK_V: tl.constexpr, BLOCK_H: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    cols = tl.program_id(1) * BLOCK_V + tl.arange(0, BLOCK_V)
    row_ok = rows < N
    col_ok = cols < V
    z = logit_tile(h_ptr, w_ptr, b_ptr, rows, cols, row_ok, col_ok, H, inv_temp,
                   HAS_BIAS, IEEE, UPCAST, BLOCK_N, BLOCK_V, BLOCK_H)
    targets = tl.load(t_ptr + rows, mask=row_ok, other=-1)
    lse = tl.load(lse_ptr + rows, mask=row_ok, other=0.0)
    entropy = tl.load(ent_ptr + rows, mask=row_ok, other=0.0)
    g_lp = tl.load(glp_ptr + rows, mask=row_ok, other=0.0)
    g_ent = tl.load(gent_ptr + rows, mask=row_ok, other=0.0)
    log_p = tl.where(col_ok[None, :], z - lse[:, None], 0.0)
    p = tl.where(col_ok[None, :], tl.exp(log_p), 0.0)
    onehot = tl.where(cols[None, :] == targets[:, None], 1.0, 0.0)
    dz = g_lp[:, None] * (onehot - p) - g_ent[:, None] * p * (log_p + entropy[:, None])
    dz = tl.where(col_ok[None, :] & row_ok[:, None], dz * inv_temp, 0.0)
    if NEED_B:
        tl.atomic_add(gb_ptr + cols, tl.sum(dz, axis=0), mask=col_ok)
    dz_in = dz.to(h_ptr.dtype.element_ty)
    for k in range(0, H, BLOCK_H):
        ks = k + tl.arange(0, BLOCK_H)
        k_ok = ks < H
        if NEED_H:
            w = tl.load(w_ptr + cols[:, None] * H + ks[None, :], mask=col_ok[:, None] & k_ok[None, :], other=0.0)
            gh = dot(dz_in, w, tl.zeros((BLOCK_N, BLOCK_H), dtype=tl.float32), IEEE, UPCAST)
            tl.atomic_add(gh_ptr + rows[:, None] * H + ks[None, :], gh, mask=row_ok[:, None] & k_ok[None, :])
        if NEED_W:
            h = tl.load(h_ptr + rows[:, None] * H + ks[None, :], mask=row_ok[:, None] & k_ok[None, :], other=0.0)
            gw = dot(tl.trans(dz_in), h, tl.zeros((BLOCK_V, BLOCK_H), dtype=tl.float32), IEEE, UPCAST)
            tl.atomic_add(gw_ptr + cols[:, None] * H + ks[None, :], gw, mask=col_ok[:, None] & k_ok[None, :])


def vocab_splits(num_token_blocks: int, num_vocab_blocks: int, device) -> int:
    """Blocks per split so that token blocks x splits fills the device about four times over."""
    sms = torch.cuda.get_device_properties(device).multi_processor_count if device.type == "cuda" else 4
    splits = max(1, min(num_vocab_blocks, triton.cdiv(4 * sms, max(1, num_token_blocks))))
    return triton.cdiv(num_vocab_blocks, splits)


def merge_splits(m, s, sz):
    """lse and entropy per token from per-split (max m, sum exp(z - m), sum exp(z - m) (z - m))."""
    top = m.max(0).values
    scale = torch.exp(m - top)
    total = (s * scale).sum(0)
    sz_top = (scale * (sz + (m - top) * s)).sum(0)  # sum exp(z - top) (z - top)
    return top + torch.log(total), torch.log(total) - sz_top / total


class TritonLinearLogprob(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, targets, bias, temperature, want_entropy, blocks):
        (n, h), v = hidden.shape, weight.shape[0]
        inv_temp = 1.0 / temperature
        ieee = hidden.dtype == torch.float32
        token_blocks, vocab_blocks = triton.cdiv(n, blocks.n), triton.cdiv(v, blocks.v)
        per_split = vocab_splits(token_blocks, vocab_blocks, hidden.device)
        splits = triton.cdiv(vocab_blocks, per_split)
        m, s, sz, zt = torch.empty(4, splits, n, device=hidden.device, dtype=torch.float32)
        if n:
            forward_kernel[(token_blocks, splits)](
                hidden, weight, bias if bias is not None else hidden, targets, m, s, sz, zt, n, v, h, inv_temp,
                per_split, HAS_BIAS=bias is not None, IEEE=ieee, UPCAST=INTERPRETED, BLOCK_N=blocks.n,
                BLOCK_V=blocks.v, BLOCK_H=blocks.h, num_warps=blocks.warps)
        lse, entropy = merge_splits(m, s, sz)
        logp = zt.sum(0) - lse
        ctx.save_for_backward(hidden, weight, targets, bias, lse, entropy)
        ctx.inv_temp, ctx.blocks = inv_temp, blocks
        return (logp, entropy) if want_entropy else logp

    @staticmethod
    def backward(ctx, grad_logp, grad_entropy=None):
        hidden, weight, targets, bias, lse, entropy = ctx.saved_tensors
        need_h, need_w, _, need_b = ctx.needs_input_grad[:4]
        (n, h), v, blocks = hidden.shape, weight.shape[0], ctx.blocks
        grad_logp = torch.zeros_like(lse) if grad_logp is None else grad_logp.float().contiguous()
        grad_entropy = torch.zeros_like(lse) if grad_entropy is None else grad_entropy.float().contiguous()
        grad_h = torch.zeros(n, h, device=hidden.device, dtype=torch.float32) if need_h else None
        grad_w = torch.zeros(v, h, device=hidden.device, dtype=torch.float32) if need_w else None
        grad_b = torch.zeros(v, device=hidden.device, dtype=torch.float32) if need_b else None
        if n:
            backward_kernel[(triton.cdiv(n, blocks.n), triton.cdiv(v, blocks.v))](
                hidden, weight, bias if bias is not None else hidden, targets, lse, entropy, grad_logp,
                grad_entropy, grad_h if need_h else lse, grad_w if need_w else lse, grad_b if need_b else lse,
                n, v, h, ctx.inv_temp, HAS_BIAS=bias is not None, NEED_H=need_h, NEED_W=need_w, NEED_B=need_b,
                IEEE=hidden.dtype == torch.float32, UPCAST=INTERPRETED,
                BLOCK_N=blocks.n, BLOCK_V=blocks.v, BLOCK_H=blocks.h,
                num_warps=blocks.warps)
        grad_h = None if grad_h is None else grad_h.to(hidden.dtype)
        grad_w = None if grad_w is None else grad_w.to(weight.dtype)
        grad_b = None if grad_b is None else grad_b.to(bias.dtype)
        return grad_h, grad_w, None, grad_b, None, None, None


def triton_logprob(hidden, weight, targets, temperature=1.0, bias=None, return_entropy=False, blocks=None):
    blocks = blocks or default_blocks(hidden.dtype)
    bias = None if bias is None else bias.contiguous()
    return TritonLinearLogprob.apply(hidden.contiguous(), weight.contiguous(), targets.long().contiguous(), bias,
                                     float(temperature), bool(return_entropy), blocks)
