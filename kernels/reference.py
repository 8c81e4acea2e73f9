"""Plain per-token log-probs: log_softmax(hidden @ weight.T / T).gather(targets); the yardstick for the fast paths.

    python -m pytest tests/test_kernels.py -q

It materialises float32 logits of N tokens x V vocabulary (and autograd keeps more of that size), which is
exactly what kernels/chunked.py and kernels/triton_logprob.py avoid. Rounding convention shared by all three
paths: the matmul runs in the input dtype, the softmax in float32.
"""
from __future__ import annotations

import torch


def logits_fp32(hidden, weight, bias=None, temperature=1.0):
    """Temperature-scaled float32 logits z = (hidden @ weight.T + bias) / T for a block of tokens. The cast and
    the division reuse the product's fresh buffer (one buffer per call: the chunked path's chunks are sized by
    it); autograd allows it, the product's backward does not read its output."""
    logits = (hidden @ weight.T if bias is None else torch.addmm(bias, hidden, weight.T)).float()
    return logits if temperature == 1.0 else logits.div_(temperature)


def reference_logprob(hidden, weight, targets, temperature=1.0, bias=None, return_entropy=False):
    """logp[N] (and entropy[N] of softmax(z), with gradient) from full logits."""
    z = logits_fp32(hidden, weight, bias, temperature)
    logprobs = torch.log_softmax(z, dim=-1)
    logp = logprobs.gather(1, targets.long()[:, None]).squeeze(1)
    if not return_entropy:
        return logp
    entropy = -(logprobs.exp() * logprobs).sum(-1)
    return logp, entropy
