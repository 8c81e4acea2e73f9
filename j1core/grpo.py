"""GRPO estimator: group-relative advantages and the clipped policy loss with a k3 KL to the reference.

    python -m pytest tests/test_grpo.py tests/test_grpo_trl_parity.py -q

Pure functions on tensors, nothing stateful (the loss lives alone, as in tiny-grpo).

Advantage (GRPO, Shao et al. 2024, "DeepSeekMath"):  A_i = (r_i - mean_group(r)) / (std_group(r) + eps),
unbiased std. "batch" divides by the std of the whole batch instead (still subtracting the group mean);
"none" drops the division (Dr. GRPO, Liu et al. 2025, "Understanding R1-Zero-Like Training").

Policy loss per completion token t (PPO clipped surrogate, with DAPO's clip-higher: eps_low != eps_high):
    w_t = exp(logp_t - old_logp_t)
    L_t = -min(w_t * A, clip(w_t, 1 - eps_low, 1 + eps_high) * A) + beta * KL_t
    KL_t = exp(ref_t - logp_t) - (ref_t - logp_t) - 1        (Schulman's k3 estimator; >= 0, unbiased)
With kl_times_ratio the KL term is multiplied by w_t (TRL's `use_bias_correction_kl`, its default), which
makes it an importance-sampled estimate under the sampling policy; on-policy w_t == 1 in value.

Dynamic sampling (DAPO, Yu et al. 2025; J1 filters the same way): a group whose G rewards are all equal has
zero advantage everywhere, so it adds nothing to the policy gradient but still counts in the loss's
normaliser. `drop_equal_groups` removes its rows before the loss, so the loss is the mean over the groups
that carry signal. Advantages are computed before the drop, over the whole batch (with --adv-scale batch
the std is the whole batch's), so a kept row's advantage is the same with or without dropping. Groups are
dropped one by one, not a pair's two orders together: with the consistency reward the coupling of the two
orders is already in each reward (a sample's outcome times the other order's), and a group's advantages
depend only on its own rewards, so keeping an all-equal partner group would only add rows of zero advantage.
Unlike DAPO the step does not sample more groups to refill the batch; it trains on fewer.

Off-policy correction (--tis-cap C): when the sampler's log-probs (vLLM's kernels, dtype) differ from the
trainer's, the ratio still uses the trainer's own old log-probs, and each token's policy term is multiplied by the
truncated importance weight min(exp(old_logp_t - sampler_logp_t), C) (truncated importance sampling, Yao et al.
2025, "Your efficient RL framework secretly brings you off-policy RL training"); the KL term is not weighted.

Aggregation over the masked tokens (loss_type):
    grpo      mean over sequences of each sequence's token mean (the original GRPO paper)
    bnpo/dapo token mean over the whole batch (DAPO's token-level loss); on one process TRL's dapo equals bnpo
    dr_grpo   token sum / (sequences * max_completion_length) (Dr. GRPO: no length normalisation bias)
"""
from __future__ import annotations

import torch

LOSS_TYPES = ("grpo", "bnpo", "dapo", "dr_grpo")
ADVANTAGE_SCALES = ("group", "batch", "none")


def group_advantages(rewards, group_size: int, scale: str = "group", eps: float = 1e-4) -> torch.Tensor:
    """Group-relative advantages of rewards laid out as contiguous groups of `group_size` samples."""
    if scale not in ADVANTAGE_SCALES:
        raise ValueError(f"advantage scale must be one of {ADVANTAGE_SCALES}, got {scale!r}")
    r = torch.as_tensor(rewards, dtype=torch.float32).reshape(-1)
    if group_size < 1 or r.numel() % group_size:
        raise ValueError(f"{r.numel()} rewards do not split into groups of group_size={group_size}")
    groups = r.view(-1, group_size)
    centred = (groups - groups.mean(dim=1, keepdim=True)).reshape(-1)
    if scale == "none":
        return centred
    std = unbiased_std(groups, dim=1).repeat_interleave(group_size) if scale == "group" else unbiased_std(r)
    return centred / (std + eps)


def informative_groups(rewards, group_size: int) -> torch.Tensor:
    """Bool [num_groups]: True for groups whose rewards are not all equal."""
    groups = torch.as_tensor(rewards, dtype=torch.float32).reshape(-1, group_size)
    return (groups != groups[:, :1]).any(dim=1)


def drop_equal_groups(batch: dict, advantages: torch.Tensor, rewards, group_size: int):
    """(batch, advantages) restricted to the rows of informative groups (tensors of [rows, ...]), and the
    fraction of groups that are informative. When none is, the batch stays whole: every advantage is then zero
    and so is the loss."""
    keep = informative_groups(rewards, group_size)
    fraction = keep.float().mean().item()
    if not keep.any() or keep.all():
        return batch, advantages, fraction
    rows = keep.repeat_interleave(group_size).nonzero().squeeze(1)
    return {k: v[rows] for k, v in batch.items()}, advantages[rows], fraction


def unbiased_std(x: torch.Tensor, dim=None) -> torch.Tensor:
    """Bessel-corrected std; a single sample has std 0 (not NaN), so its advantage is 0."""
    n = x.numel() if dim is None else x.shape[dim]
    if n < 2:
        return torch.zeros_like(x.sum(dim=dim) if dim is not None else x.sum())
    return x.std(dim=dim, correction=1) if dim is not None else x.std(correction=1)


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimate of KL(policy || reference): exp(ref - logp) - (ref - logp) - 1."""
    delta = ref_logp - logp
    return torch.exp(delta) - delta - 1


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1.0)


def aggregate(per_token: torch.Tensor, mask: torch.Tensor, loss_type: str,
              max_completion_length: int | None = None) -> torch.Tensor:
    """Reduce per-token losses [B, T] to a scalar the way `loss_type` prescribes (module docstring)."""
    if loss_type == "grpo":
        return ((per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    if loss_type in ("bnpo", "dapo"):
        return masked_mean(per_token, mask)
    if loss_type == "dr_grpo":
        length = mask.shape[1] if max_completion_length is None else max_completion_length
        return (per_token * mask).sum() / (per_token.shape[0] * length)
    raise ValueError(f"loss_type must be one of {LOSS_TYPES}, got {loss_type!r}")


def check_shapes(logp, old_logp, ref_logp, advantages, mask) -> None:
    named = {"old_logp": old_logp, "mask": mask} | ({} if ref_logp is None else {"ref_logp": ref_logp})
    for name, t in named.items():
        if t.shape != logp.shape:
            raise ValueError(f"{name} has shape {tuple(t.shape)}, logp has {tuple(logp.shape)}")
    if advantages.shape not in ((logp.shape[0],), tuple(logp.shape)):
        raise ValueError(f"advantages has shape {tuple(advantages.shape)}; expected ({logp.shape[0]},) "
                         f"or {tuple(logp.shape)}")


def truncated_is_weights(trainer_logp: torch.Tensor, sampler_logp: torch.Tensor, cap: float) -> torch.Tensor:
    """Per-token min(exp(trainer_logp - sampler_logp), cap): how much more likely the trainer finds a sampled
    token than the sampler did, capped (no gradient flows through it)."""
    return torch.exp((trainer_logp - sampler_logp).detach()).clamp(max=cap)


def logp_gap_stats(trainer_logp: torch.Tensor, sampler_logp: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """Mean and max |trainer - sampler| log-prob over the masked tokens."""
    gap = (trainer_logp.float() - sampler_logp.float()).abs() * mask
    return {"logp_gap_mean": masked_mean(gap, mask.float()).item(),
            "logp_gap_max": gap.max().item() if gap.numel() else 0.0}


def policy_loss(logp, old_logp, ref_logp, advantages, mask, loss_type: str = "grpo", eps_low: float = 0.2,
                eps_high: float = 0.2, beta: float = 0.0, max_completion_length: int | None = None,
                kl_times_ratio: bool = False, is_weights=None):
    """Clipped GRPO loss over completion tokens -> (scalar loss, stats of python floats).

    logp/old_logp/ref_logp/mask: [B, T]; advantages: [B] (or [B, T]). ref_logp may be None when beta == 0.
    is_weights: [B, T] truncated importance weights multiplying the policy term (truncated_is_weights), or None.
    stats (masked token means): clip_low (w < 1-eps_low and A < 0), clip_high (w > 1+eps_high and A > 0),
    clip_region (either), kl (the KL term as added to the loss; 0 without ref_logp), ratio.
    """
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"loss_type must be one of {LOSS_TYPES}, got {loss_type!r}")
    if beta != 0.0 and ref_logp is None:
        raise ValueError(f"beta={beta} needs ref_logp (the reference model's per-token log-probs)")
    check_shapes(logp, old_logp, ref_logp, advantages, mask)
    mask = mask.to(logp.dtype)
    adv = advantages.unsqueeze(1) if advantages.dim() == 1 else advantages
    adv = adv.to(logp.dtype)

    ratio = torch.exp(logp - old_logp)
    clipped_ratio = ratio.clamp(1 - eps_low, 1 + eps_high)
    per_token = -torch.min(ratio * adv, clipped_ratio * adv)
    if is_weights is not None:
        per_token = per_token * is_weights.to(per_token.dtype)
    kl = None
    if ref_logp is not None:
        kl = k3_kl(logp, ref_logp)
        if kl_times_ratio:
            kl = kl * ratio
        if beta != 0.0:
            per_token = per_token + beta * kl
    loss = aggregate(per_token, mask, loss_type, max_completion_length)
    return loss, loss_stats(ratio.detach(), adv, mask, eps_low, eps_high, None if kl is None else kl.detach())


def loss_stats(ratio, adv, mask, eps_low, eps_high, kl) -> dict[str, float]:
    low = ((ratio < 1 - eps_low) & (adv < 0)).to(mask.dtype)
    high = ((ratio > 1 + eps_high) & (adv > 0)).to(mask.dtype)
    return {
        "clip_low": masked_mean(low, mask).item(),
        "clip_high": masked_mean(high, mask).item(),
        "clip_region": masked_mean(torch.maximum(low, high), mask).item(),
        "kl": 0.0 if kl is None else masked_mean(kl, mask).item(),
        "ratio": masked_mean(ratio, mask).item(),
    }
