"""Trainer log-probs: per-token log p(token | prefix) of completion tokens, via the backbone and kernels/.

    python -m pytest tests/test_logprobs.py -q

Rows are right-padded (prompt, completion, pad). The backbone runs once to hidden states; only positions whose
NEXT token is a completion token (loss_mask == 1) go through fused_linear_logprob with the LM head, so the
N x V logits of the full forward never exist. Supports llama / qwen2 heads: a plain linear layer (tied to the
embeddings or not, with or without bias), no logit soft-capping or scaling.
"""
from __future__ import annotations

import torch

from kernels import fused_linear_logprob


def token_logprobs(model, input_ids, attention_mask, loss_mask, temperature=1.0, return_entropy=False,
                   impl="auto"):
    """logp[B, L] float32 with logp[b, t] = log softmax(logits[b, t-1] / T)[input_ids[b, t]] where
    loss_mask[b, t] == 1 and 0 elsewhere; with return_entropy also entropy[B, L] of that distribution."""
    if input_ids.shape != attention_mask.shape or input_ids.shape != loss_mask.shape:
        raise ValueError(f"token_logprobs: input_ids {tuple(input_ids.shape)}, attention_mask "
                         f"{tuple(attention_mask.shape)} and loss_mask {tuple(loss_mask.shape)} must match")
    if loss_mask[:, 0].any():
        raise ValueError("token_logprobs: loss_mask[:, 0] must be 0 (the first token has no prefix to score)")
    position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    hidden = model.base_model(input_ids=input_ids, attention_mask=attention_mask,
                              position_ids=position_ids).last_hidden_state
    scored = loss_mask[:, 1:].bool()  # position t-1 predicts token t
    head = model.get_output_embeddings()
    out = fused_linear_logprob(hidden[:, :-1][scored], head.weight, input_ids[:, 1:][scored], temperature,
                               bias=head.bias, return_entropy=return_entropy, impl=impl)
    outs = out if return_entropy else (out,)
    placed = tuple(scatter_scored(values, scored) for values in outs)
    return placed if return_entropy else placed[0]


def scatter_scored(values, scored):
    """Put the per-token values back at [B, L] (column 0 and unscored positions are zero), keeping autograd."""
    grid = values.new_zeros(scored.shape).masked_scatter(scored, values)
    return torch.cat([values.new_zeros(scored.shape[0], 1), grid], dim=1)
