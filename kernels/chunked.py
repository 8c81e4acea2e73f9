"""Per-token log-probs over token x vocabulary chunks with recompute-in-backward: O(C*Cv + N*H + V*H) memory,
runs anywhere.

    python -m pytest tests/test_kernels.py -q ; python bench/logprob.py --quick

Forward: for each chunk of C tokens, walk the vocabulary in slices of Cv columns: z = (h_c @ W_v.T + b_v) / T
in float32, folded into a running log-sum-exp (the running max, the sum of exp(z - max) rescaled when the max
grows) and, for the entropy, a running sum of exp(z - max) * (z - max); keep only lse[N], logp[N] (and the
entropy). Backward: recompute z per chunk, turn it into dz in place, and accumulate grad_hidden += dz @ W_v and
grad_weight[v] += dz.T @ h_c. Slicing the vocabulary (default_chunks) lets a chunk hold every token of a
sequence, so each slice of the weight is read once per chunk of tokens, not once per few hundred tokens.

Why recompute and not Liger's gradient-in-forward: Liger computes grad_hidden/grad_weight during the forward and
scales them by grad_output later, which is exact only when the output is one scalar loss. Here the output is
logp[N] and the GRPO loss weights every token differently, so grad_weight = sum_i g_i * dz_i (x) h_i cannot be
factored out of the forward without keeping dz (N x V). Recompute costs one extra matmul (4 instead of 3 per
training step) and pays nothing when only values are needed (old / reference log-probs under no_grad).

Derivatives, with p = softmax(z) and z = logits / T:
  d logp_i / d logits_iv = (1[v = t_i] - p_iv) / T
  d H_i / d logits_iv    = -p_iv * (z_iv - E_p[z_i]) / T,  where z - E_p[z] = log p + H
so the entropy keeps its gradient here at the cost of one extra chunk buffer, only when it is used.
"""
from __future__ import annotations

import torch

from kernels.reference import logits_fp32

TARGET_CHUNK_ELEMENTS = 1 << 22  # tokens x columns per chunk buffer: 16 MB of float32
VOCAB_CHUNK = 4096  # vocabulary columns per chunk (docs/benchmarks.md: the fastest slice width measured)


def default_chunks(num_tokens: int, vocab: int) -> tuple[int, int]:
    """(tokens, vocabulary columns) per chunk: slices of VOCAB_CHUNK columns and as many tokens as the budget
    allows, so that each slice of the weight is read once per token chunk (at N = 1,024 once in all) and its
    products run on a block that stays in cache."""
    columns = min(vocab, VOCAB_CHUNK)
    return max(1, min(num_tokens, TARGET_CHUNK_ELEMENTS // columns)), columns


def rowwise_dot(a, b):
    """sum(a * b, -1) for [C, V] float32 blocks without a C x V temporary."""
    return torch.bmm(a.unsqueeze(1), b.unsqueeze(2)).view(-1)


def in_slice(targets, lo, width):
    """Which targets lie in the vocabulary slice [lo, lo + width)."""
    return (targets >= lo) & (targets < lo + width)


def target_in_slice(z, targets, lo):
    """z[i, targets[i] - lo] where the target lies in this vocabulary slice, 0 elsewhere."""
    local = (targets - lo).clamp(0, z.shape[1] - 1)
    return z[torch.arange(len(targets), device=z.device), local] * in_slice(targets, lo, z.shape[1])


class ChunkedLinearLogprob(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, targets, bias, temperature, chunks, want_entropy):
        ctx.set_materialize_grads(False)  # an unused entropy output brings None, not a zero tensor to multiply
        token_chunk, vocab_chunk = chunks
        num_tokens, vocab = hidden.shape[0], weight.shape[0]
        logp = hidden.new_empty(num_tokens, dtype=torch.float32)
        lse = torch.empty_like(logp)
        entropy = torch.empty_like(logp) if want_entropy else None
        for start in range(0, num_tokens, token_chunk):
            rows = slice(start, start + token_chunk)
            h, t = hidden[rows], targets[rows]
            # Online log-sum-exp over vocabulary slices: top = running max, total = sum exp(z - top), and for
            # the entropy shifted = sum exp(z - top) * (z - top); H = log total - shifted / total.
            top = torch.full((h.shape[0],), float("-inf"), device=h.device)
            total, shifted, target = torch.zeros_like(top), torch.zeros_like(top), torch.zeros_like(top)
            for lo in range(0, vocab, vocab_chunk):
                cols = slice(lo, lo + vocab_chunk)
                z = logits_fp32(h, weight[cols], None if bias is None else bias[cols], temperature)
                target += target_in_slice(z, t, lo)
                new_top = torch.maximum(top, z.amax(-1))
                gap = top - new_top  # -inf on the first slice, where total and shifted are still 0
                rescale = gap.exp()
                z.sub_(new_top[:, None])
                if want_entropy:  # shifted was measured from the old top: move it to the new one
                    p = z.exp()
                    shifted.add_(total * gap.nan_to_num_(neginf=0.0)).mul_(rescale).add_(rowwise_dot(p, z))
                    total.mul_(rescale).add_(p.sum(-1))
                else:
                    total.mul_(rescale).add_(z.exp_().sum(-1))
                top = new_top
            lse[rows] = top + total.log()
            logp[rows] = target - lse[rows]
            if want_entropy:
                entropy[rows] = total.log() - shifted / total
        ctx.save_for_backward(hidden, weight, targets, bias, lse, entropy)
        ctx.temperature, ctx.chunks = temperature, chunks
        return (logp, entropy) if want_entropy else logp

    @staticmethod
    def backward(ctx, grad_logp, grad_entropy=None):
        hidden, weight, targets, bias, lse, entropy = ctx.saved_tensors
        need_hidden, need_weight, _, need_bias = ctx.needs_input_grad[:4]
        token_chunk, vocab_chunk = ctx.chunks
        vocab = weight.shape[0]
        grad_hidden = torch.zeros_like(hidden, dtype=torch.float32) if need_hidden else None
        grad_weight = torch.zeros_like(weight, dtype=torch.float32) if need_weight else None
        grad_bias = torch.zeros_like(bias, dtype=torch.float32) if need_bias else None
        grad_logp = torch.zeros_like(lse) if grad_logp is None else grad_logp.float()
        grad_entropy = None if grad_entropy is None else grad_entropy.float()
        for start in range(0, hidden.shape[0], token_chunk):
            rows = slice(start, start + token_chunk)
            for lo in range(0, vocab, vocab_chunk):
                cols = slice(lo, lo + vocab_chunk)
                dz = logits_grad_chunk(hidden[rows], weight[cols], targets[rows], lo,
                                       None if bias is None else bias[cols], ctx.temperature, lse[rows],
                                       grad_logp[rows], None if grad_entropy is None else grad_entropy[rows],
                                       None if entropy is None else entropy[rows])
                if need_bias:
                    grad_bias[cols] += dz.sum(0)
                dz = dz.to(hidden.dtype)
                if need_hidden:
                    accumulate(grad_hidden[rows], dz, weight[cols])
                if need_weight:
                    accumulate(grad_weight[cols], dz.T, hidden[rows])
        grad_hidden = None if grad_hidden is None else grad_hidden.to(hidden.dtype)
        grad_weight = None if grad_weight is None else grad_weight.to(weight.dtype)
        grad_bias = None if grad_bias is None else grad_bias.to(bias.dtype)
        return grad_hidden, grad_weight, None, grad_bias, None, None, None


def accumulate(out, a, b):
    """out (float32) += a @ b, without a temporary when the inputs are float32."""
    if a.dtype == torch.float32:
        out.addmm_(a, b)
    else:
        out += a @ b


def logits_grad_chunk(hidden, weight, targets, lo, bias, temperature, lse, grad_logp, grad_entropy, entropy):
    """d(sum g_lp * logp + g_H * H) / d logits for one chunk (vocabulary columns from lo), float32 [C, Cv],
    built in place: (g_lp * (1[v = t] - p) - g_H * p * (log p + H)) / T."""
    buf = logits_fp32(hidden, weight, bias, temperature)
    buf.sub_(lse[:, None])  # log p
    entropy_term = None
    if grad_entropy is not None:
        entropy_term = buf + entropy[:, None]  # z - E_p[z]
    buf.exp_()  # p
    if entropy_term is not None:
        entropy_term.mul_(buf).mul_((grad_entropy / -temperature)[:, None])
    buf.mul_((grad_logp / -temperature)[:, None])
    if entropy_term is not None:
        buf.add_(entropy_term)
    inside = in_slice(targets, lo, buf.shape[1])
    if inside.any():
        which = inside.nonzero().squeeze(1)
        buf[which, targets[which] - lo] += grad_logp[which] / temperature
    return buf


def chunked_logprob(hidden, weight, targets, temperature=1.0, bias=None, chunk_size=None, return_entropy=False,
                    vocab_chunk_size=None):
    """chunk_size tokens x vocab_chunk_size columns per chunk; unset, default_chunks picks them (a chunk_size
    alone keeps the whole vocabulary per chunk)."""
    tokens, columns = default_chunks(hidden.shape[0], weight.shape[0])
    if chunk_size is not None:
        tokens, columns = int(chunk_size), weight.shape[0]
    if vocab_chunk_size is not None:
        columns = int(vocab_chunk_size)
    return ChunkedLinearLogprob.apply(hidden, weight, targets.long(), bias, float(temperature),
                                      (max(1, tokens), max(1, columns)), bool(return_entropy))
