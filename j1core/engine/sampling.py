"""Next-token choice for the rollout engine: temperature, top-k, top-p, greedy, and the sampling log-prob.

    python -m pytest tests/engine/test_sampling.py -q

Log-probs are always of the temperature-scaled *full* distribution, `log_softmax(logits / T)`, before any
top-k / top-p truncation or min-new-tokens masking: that is the distribution the trainer recomputes in its
teacher-forced pass, so the two agree. Greedy decoding (T == 0) reports log-probs of the T = 1 distribution.
`filter_logits` is the batched top-k / top-p filter; tests/engine/reference.py holds the plain per-row
version it is tested against.
"""
from __future__ import annotations

import torch

NEG_INF = float("-inf")
SAMPLE_BLOCK = 1024  # vocabulary entries per block of the two-level sampler


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Return logits [B, V] with every token outside the top-k and the top-p nucleus set to -inf."""
    if top_k and 0 < top_k < logits.shape[-1]:
        kth_best = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth_best, NEG_INF)
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        # Drop a token when the tokens strictly more likely than it already cover top_p.
        drop_sorted = (cumulative - sorted_logits.softmax(dim=-1)) >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, NEG_INF)
    return logits


def sample_from(probs: torch.Tensor, generator: torch.Generator | None,
                uniforms: torch.Tensor | None = None) -> torch.Tensor:
    """One token per row of probs [B, V] by inverse CDF: one uniform number per row (drawn from `generator`,
    or given as `uniforms` [B] so that each row can follow its own random stream). The plain version of
    `sample_blocked`, which the engine uses.

    torch.multinomial draws one exponential number per vocabulary entry; a float64 cumulative sum and a
    binary search cost a fraction of that.
    Zero-probability tokens are never picked: the first cdf entry strictly above u has positive mass.
    """
    cdf = probs.double().cumsum(dim=-1)
    return torch.searchsorted(cdf, row_uniforms(probs, generator, uniforms) * cdf[:, -1:],
                              right=True).squeeze(-1).clamp_(max=probs.shape[-1] - 1)


def row_uniforms(probs, generator, uniforms) -> torch.Tensor:
    if uniforms is None:
        return torch.rand(probs.shape[0], 1, generator=generator, dtype=torch.float64, device=probs.device)
    return uniforms.to(torch.float64)[:, None]


def sample_blocked(probs: torch.Tensor, generator: torch.Generator | None,
                   uniforms: torch.Tensor | None = None, block: int = SAMPLE_BLOCK) -> torch.Tensor:
    """`sample_from` in two levels: find the vocabulary block holding u's share of the mass from per-block
    sums, then the token inside that one block. probs [B, V] may be unnormalised (u scales the total).

    The full-vocabulary float64 cumsum of `sample_from` is a sequential scan; here the block sums are a
    float32 vectorized reduction (summing in float64 would need a float64 copy of all of probs) and the
    float64 scans are over V / block blocks and one block per row. Same uniforms -> same tokens, except
    where u's share of the mass lies within float32 rounding of a block boundary (~1e-7 of the total); then
    the token is a neighbour across that boundary.
    """
    rows, vocab = probs.shape
    if vocab <= 2 * block:
        return sample_from(probs, generator, uniforms)
    pad = (-vocab) % block
    padded = torch.nn.functional.pad(probs, (0, pad)) if pad else probs
    blocks = padded.view(rows, -1, block)
    block_cdf = blocks.sum(-1).double().cumsum(-1)  # [B, V / block]
    target = row_uniforms(probs, generator, uniforms) * block_cdf[:, -1:]
    # A block whose cumulative mass is strictly above the target holds it (as in sample_from's cdf).
    chosen = torch.searchsorted(block_cdf, target, right=True).clamp_(max=blocks.shape[1] - 1)  # [B, 1]
    before = torch.where(chosen > 0, block_cdf.gather(1, (chosen - 1).clamp(min=0)), torch.zeros_like(target))
    inner = blocks.gather(1, chosen[:, :, None].expand(rows, 1, block)).squeeze(1).double().cumsum(-1)
    # The block sums are float32, the in-block cdf float64: an offset below 0 means the block's first token
    # with mass, one at or past the block's own total its last token with mass.
    within = torch.searchsorted(inner, (target - before).clamp_(min=0.0), right=True)
    last_with_mass = torch.searchsorted(inner, inner[:, -1:].contiguous(), right=False)
    within = torch.where(within >= block, last_with_mass, within)
    return (chosen * block + within).squeeze(-1).clamp_(max=vocab - 1)  # NaN probs: the last id, as sample_from


def choose_tokens(logits: torch.Tensor, temperature: float, top_k: int, top_p: float,
                  generator: torch.Generator | None, banned: torch.Tensor | None = None,
                  uniforms: torch.Tensor | None = None, allowed_ids: torch.Tensor | None = None,
                  workspace: torch.Tensor | None = None):
    """Pick one token per row of logits [B, V]; return (tokens [B], their log-probs [B]).

    banned: token ids that may not be chosen this step (stop tokens before min_new_tokens). They still
    count in the log-prob normaliser, as they do in the trainer's recomputation.
    allowed_ids: when given, only these ids may be chosen (a constrained verdict); the log-prob is still of
    the full distribution.
    workspace: float32 [B, V] memory for the sampling weights (reused by the engine across steps), or None.
    """
    logits = logits.float()
    scale = temperature if temperature > 0 else 1.0
    scaled = logits / scale if scale != 1.0 else logits
    # exp(x - max) gives both the normaliser (the sampled token's log-prob is logit - logsumexp, no [B, V]
    # log_softmax is written) and, unnormalised, the sampling weights: one exp pass over the vocabulary.
    row_max = scaled.amax(dim=-1, keepdim=True)
    shifted_exp = torch.sub(scaled, row_max, out=workspace).exp_()
    log_norm = row_max.squeeze(-1) + shifted_exp.sum(dim=-1).log()
    no_ban = banned is None or banned.numel() == 0
    if temperature > 0 and allowed_ids is None and not (0 < top_k < logits.shape[-1]) and top_p >= 1.0:
        # Banned tokens get weight 0, in place: no [B, V] copy (the normaliser above already has them).
        picked = sample_blocked(shifted_exp if no_ban else shifted_exp.index_fill_(-1, banned, 0.0), generator,
                                uniforms)
    else:
        allowed = scaled if no_ban else scaled.index_fill(-1, banned, NEG_INF)
        # With allowed_ids the choice is among those columns only, so it is one of them even for NaN logits.
        candidates = allowed if allowed_ids is None else allowed.index_select(-1, allowed_ids)
        if temperature <= 0:
            picked = candidates.argmax(dim=-1)
        else:
            picked = sample_blocked(torch.softmax(filter_logits(candidates, top_k, top_p), dim=-1), generator,
                                    uniforms)
    tokens = picked if allowed_ids is None else allowed_ids[picked]
    return tokens, scaled.gather(-1, tokens[:, None]).squeeze(-1) - log_norm
