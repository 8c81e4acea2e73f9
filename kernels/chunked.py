"""Per-token log-probs over token chunks with recompute-in-backward: O(C*V + N*H + V*H) memory, runs anywhere.

    python -m pytest tests/test_kernels.py -q ; python bench/logprob.py --quick

Forward: for each chunk of C tokens, z = (h_c @ W.T + b) / T in float32, keep only lse[N], logp[N] (and the
entropy). Backward: recompute z per chunk, turn it into dz in place, and accumulate
grad_hidden = dz @ W and grad_weight += dz.T @ h_c.

Why recompute and not Liger's gradient-in-forward: Liger computes grad_hidden/grad_weight during the forward and
scales them by grad_output later, which is exact only when the output is one scalar loss. Here the output is
logp[N] and the GRPO loss weights every token differently, so grad_weight = sum_i g_i * dz_i (x) h_i cannot be
factored out of the forward without keeping dz (N x V). Recompute costs one extra matmul (4 instead of 3 per
training step) and pays nothing when only values are needed (old / reference log-probs under no_grad).

Derivatives, with p = softmax(z) and z = logits / T:
  d logp_i / d logits_iv = (1[v = t_i] - p_iv) / T
  d H_i / d logits_iv    = -p_iv * (z_iv - E_p[z_i]) / T,  where z - E_p[z] = log p + H
so the entropy keeps its gradient here at the cost of one extra C x V buffer, only when it is used.
"""
from __future__ import annotations

import torch

from kernels.reference import logits_fp32

TARGET_CHUNK_ELEMENTS = 1 << 23  # C * V floats per chunk buffer: 32 MB


def default_chunk_size(num_tokens: int, vocab: int) -> int:
    return max(1, min(num_tokens, TARGET_CHUNK_ELEMENTS // vocab))


class ChunkedLinearLogprob(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, targets, bias, temperature, chunk_size, want_entropy):
        num_tokens = hidden.shape[0]
        logp = hidden.new_empty(num_tokens, dtype=torch.float32)
        lse = torch.empty_like(logp)
        entropy = torch.empty_like(logp) if want_entropy else None
        for start in range(0, num_tokens, chunk_size):
            rows = slice(start, start + chunk_size)
            z = logits_fp32(hidden[rows], weight, bias, temperature)
            lse[rows] = torch.logsumexp(z, dim=-1)
            logp[rows] = z.gather(1, targets[rows, None]).squeeze(1) - lse[rows]
            if want_entropy:
                z.sub_(lse[rows, None])  # log p
                entropy[rows] = -(z.exp() * z).sum(-1)
        ctx.save_for_backward(hidden, weight, targets, bias, lse, entropy)
        ctx.temperature, ctx.chunk_size = temperature, chunk_size
        return (logp, entropy) if want_entropy else logp

    @staticmethod
    def backward(ctx, grad_logp, grad_entropy=None):
        hidden, weight, targets, bias, lse, entropy = ctx.saved_tensors
        need_hidden, need_weight, _, need_bias = ctx.needs_input_grad[:4]
        grad_hidden = torch.empty_like(hidden) if need_hidden else None
        grad_weight = torch.zeros_like(weight, dtype=torch.float32) if need_weight else None
        grad_bias = torch.zeros_like(bias, dtype=torch.float32) if need_bias else None
        grad_logp = torch.zeros_like(lse) if grad_logp is None else grad_logp.float()
        for start in range(0, hidden.shape[0], ctx.chunk_size):
            rows = slice(start, start + ctx.chunk_size)
            dz = logits_grad_chunk(hidden[rows], weight, targets[rows], bias, ctx.temperature, lse[rows],
                                   grad_logp[rows], None if grad_entropy is None else grad_entropy[rows].float(),
                                   None if entropy is None else entropy[rows])
            if need_bias:
                grad_bias += dz.sum(0)
            dz = dz.to(hidden.dtype)
            if need_hidden:
                grad_hidden[rows] = dz @ weight
            if need_weight:
                accumulate_weight_grad(grad_weight, dz, hidden[rows])
        grad_weight = None if grad_weight is None else grad_weight.to(weight.dtype)
        grad_bias = None if grad_bias is None else grad_bias.to(bias.dtype)
        return grad_hidden, grad_weight, None, grad_bias, None, None, None


def accumulate_weight_grad(grad_weight, dz, hidden):
    """grad_weight (float32) += dz.T @ hidden, without a V x H temporary when the inputs are float32."""
    if dz.dtype == torch.float32:
        grad_weight.addmm_(dz.T, hidden)
    else:
        grad_weight += dz.T @ hidden


def logits_grad_chunk(hidden, weight, targets, bias, temperature, lse, grad_logp, grad_entropy, entropy):
    """d(sum g_lp * logp + g_H * H) / d logits for one chunk, float32 [C, V], built in place in one buffer."""
    buf = logits_fp32(hidden, weight, bias, temperature)
    buf.sub_(lse[:, None])  # log p
    entropy_term = None
    if grad_entropy is not None:
        entropy_term = buf + entropy[:, None]  # z - E_p[z]
    buf.exp_()  # p
    if entropy_term is not None:
        entropy_term.mul_(buf).mul_(grad_entropy[:, None])
    buf.mul_(grad_logp[:, None])
    if entropy_term is not None:
        buf.add_(entropy_term)
    buf.neg_()
    buf[torch.arange(len(targets), device=buf.device), targets] += grad_logp
    return buf.div_(temperature)


def chunked_logprob(hidden, weight, targets, temperature=1.0, bias=None, chunk_size=None, return_entropy=False):
    chunk_size = chunk_size or default_chunk_size(hidden.shape[0], weight.shape[0])
    return ChunkedLinearLogprob.apply(hidden, weight, targets.long(), bias, float(temperature), int(chunk_size),
                                      bool(return_entropy))
