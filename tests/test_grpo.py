"""Tests of j1core/grpo.py against plain per-element loops.

    python -m pytest tests/test_grpo.py -q
"""
import math
import statistics

import pytest
import torch

from j1core.grpo import (
    LOSS_TYPES,
    drop_equal_groups,
    group_advantages,
    informative_groups,
    logp_gap_stats,
    policy_loss,
    truncated_is_weights,
)


def reference_advantages(rewards, group_size, scale, eps):
    groups = [rewards[i:i + group_size] for i in range(0, len(rewards), group_size)]
    batch_std = statistics.stdev(rewards)
    out = []
    for g in groups:
        mean = sum(g) / len(g)
        std = {"group": statistics.stdev(g), "batch": batch_std, "none": None}[scale]
        out += [(r - mean) if std is None else (r - mean) / (std + eps) for r in g]
    return out


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_group_advantages_match_loop(scale):
    gen = torch.Generator().manual_seed(1)
    rewards = torch.randint(0, 2, (24,), generator=gen).float() + torch.rand(24, generator=gen)
    got = group_advantages(rewards, group_size=4, scale=scale)
    want = reference_advantages(rewards.tolist(), 4, scale, 1e-4)
    assert torch.allclose(got, torch.tensor(want), atol=1e-5)


def test_group_advantages_zero_when_group_agrees():
    adv = group_advantages([1.0, 1.0, 1.0, 0.0, 1.0, 0.0], group_size=3)
    assert adv[:3].abs().max().item() == 0.0
    assert adv[3:].sum().abs().item() < 1e-6


def test_group_advantages_single_sample_groups_are_zero():
    assert group_advantages([0.3, 0.9], group_size=1).abs().max().item() == 0.0


def test_group_advantages_reject_ragged_groups():
    with pytest.raises(ValueError, match="group_size=4"):
        group_advantages([1.0] * 6, group_size=4)


def reference_loss(logp, old, ref, adv, mask, loss_type, eps_low, eps_high, beta, max_len, kl_times_ratio,
                   weights=None):
    """Per-token loop of the clipped surrogate (times an importance weight) + beta * k3 KL, then the named
    aggregation."""
    B, T = len(logp), len(logp[0])
    rows = []
    for b in range(B):
        row = []
        for t in range(T):
            w = math.exp(logp[b][t] - old[b][t])
            a = adv[b]
            clipped = min(max(w, 1 - eps_low), 1 + eps_high)
            loss = -min(w * a, clipped * a) * (weights[b][t] if weights else 1.0)
            if beta:
                d = ref[b][t] - logp[b][t]
                kl = math.exp(d) - d - 1
                loss += beta * kl * (w if kl_times_ratio else 1.0)
            row.append(loss * mask[b][t])
        rows.append(row)
    if loss_type == "grpo":
        return sum(sum(r) / max(sum(m), 1) for r, m in zip(rows, mask)) / B
    if loss_type in ("bnpo", "dapo"):
        return sum(map(sum, rows)) / max(sum(map(sum, mask)), 1)
    return sum(map(sum, rows)) / (B * (max_len or T))


def random_inputs(B=4, T=7, seed=0, spread=0.4):
    gen = torch.Generator().manual_seed(seed)
    old = -torch.rand(B, T, generator=gen) * 3
    logp = old + torch.randn(B, T, generator=gen) * spread
    ref = old + torch.randn(B, T, generator=gen) * spread
    adv = torch.randn(B, generator=gen)
    lengths = torch.randint(1, T + 1, (B,), generator=gen)
    mask = (torch.arange(T)[None, :] < lengths[:, None]).float()
    return logp, old, ref, adv, mask


@pytest.mark.parametrize("loss_type", LOSS_TYPES)
@pytest.mark.parametrize("beta,kl_times_ratio", [(0.0, False), (0.05, False), (0.05, True)])
def test_policy_loss_matches_loop(loss_type, beta, kl_times_ratio):
    logp, old, ref, adv, mask = random_inputs(seed=3)
    kw = {"loss_type": loss_type, "eps_low": 0.2, "eps_high": 0.28, "beta": beta, "max_completion_length": None}
    loss, _ = policy_loss(logp, old, ref, adv, mask, kl_times_ratio=kl_times_ratio, **kw)
    want = reference_loss(logp.tolist(), old.tolist(), ref.tolist(), adv.tolist(), mask.tolist(),
                          loss_type, 0.2, 0.28, beta, None, kl_times_ratio)
    assert loss.item() == pytest.approx(want, rel=1e-5, abs=1e-6)


def test_dr_grpo_uses_max_completion_length():
    logp, old, _ref, adv, mask = random_inputs(seed=4)
    short, _ = policy_loss(logp, old, None, adv, mask, loss_type="dr_grpo")
    long, _ = policy_loss(logp, old, None, adv, mask, loss_type="dr_grpo", max_completion_length=70)
    assert long.item() == pytest.approx(short.item() * mask.shape[1] / 70, rel=1e-6)


def test_stats_count_clipped_tokens_like_a_loop():
    logp, old, ref, adv, mask = random_inputs(B=16, T=12, seed=5, spread=0.6)
    _, stats = policy_loss(logp, old, ref, adv, mask, eps_low=0.2, eps_high=0.28, beta=0.1)
    w = torch.exp(logp - old)
    low = high = n = 0
    for b in range(w.shape[0]):
        for t in range(w.shape[1]):
            if mask[b, t]:
                n += 1
                low += bool(w[b, t] < 0.8 and adv[b] < 0)
                high += bool(w[b, t] > 1.28 and adv[b] > 0)
    assert low > 0 and high > 0  # the inputs exercise both sides
    assert stats["clip_low"] == pytest.approx(low / n)
    assert stats["clip_high"] == pytest.approx(high / n)
    assert stats["clip_region"] == pytest.approx((low + high) / n)
    assert all(isinstance(v, float) for v in stats.values())


def test_on_policy_ratio_is_one_and_gradient_is_advantage_weighted():
    """old_logp = logp.detach(): ratio 1, d loss / d logp_t = -A / len (grpo), no clipping."""
    logp, _, _, adv, mask = random_inputs(seed=6)
    logp.requires_grad_(True)
    loss, stats = policy_loss(logp, logp.detach(), None, adv, mask)
    loss.backward()
    want = -adv[:, None] * mask / mask.sum(-1, keepdim=True) / logp.shape[0]
    assert torch.allclose(logp.grad, want, atol=1e-7)
    assert stats["ratio"] == 1.0 and stats["clip_low"] == 0.0 and stats["clip_high"] == 0.0
    assert loss.item() == pytest.approx(-(adv.mean()).item(), abs=1e-6)


def test_kl_is_zero_at_reference_and_positive_elsewhere():
    logp, old, ref, adv, mask = random_inputs(seed=7)
    _, at_ref = policy_loss(logp, old, logp.clone(), adv, mask, beta=0.1)
    _, away = policy_loss(logp, old, ref, adv, mask, beta=0.1)
    assert at_ref["kl"] == 0.0 and away["kl"] > 0.0


def test_policy_loss_rejects_bad_input():
    logp, old, ref, adv, mask = random_inputs()
    with pytest.raises(ValueError, match="needs ref_logp"):
        policy_loss(logp, old, None, adv, mask, beta=0.1)
    with pytest.raises(ValueError, match="loss_type"):
        policy_loss(logp, old, ref, adv, mask, loss_type="ppo")
    with pytest.raises(ValueError, match="old_logp"):
        policy_loss(logp, old[:, :3], ref, adv, mask)


def test_informative_groups_are_those_with_unequal_rewards():
    rewards = [1.0, 1.0, 1.0, 0.0, 0.5, 0.5, 0.0, 0.0, 0.0, 0.25, 0.0, 1.0]
    assert informative_groups(rewards, 3).tolist() == [False, True, False, True]


@pytest.mark.parametrize("loss_type", LOSS_TYPES)
def test_dropped_groups_contribute_nothing_and_the_rest_is_the_loss_of_just_those_rows(loss_type):
    gen = torch.Generator().manual_seed(3)
    G, T = 4, 5
    rewards = torch.tensor([1.0] * G + [0.0, 1.0, 1.0, 0.0] + [0.5] * G + [0.25, 0.0, 1.0, 0.5])
    rows = rewards.numel()
    logp = (-torch.rand(rows, T, generator=gen)).requires_grad_()
    old = logp.detach() + 0.1 * torch.randn(rows, T, generator=gen)
    mask = (torch.rand(rows, T, generator=gen) > 0.3).float()
    mask[:, 0] = 1.0
    adv = group_advantages(rewards, G, scale="none") / rewards.std()  # --adv-scale batch: the whole batch's std
    batch = {"logp": logp, "old": old, "mask": mask}
    kept, kept_adv, fraction = drop_equal_groups(batch, adv, rewards, G)
    assert fraction == 0.5
    keep = [4, 5, 6, 7, 12, 13, 14, 15]  # the rows of groups 1 and 3
    assert torch.equal(kept_adv, adv[keep]) and torch.equal(kept["mask"], mask[keep])

    full, _ = policy_loss(logp, old, None, adv, mask, loss_type=loss_type, max_completion_length=T)
    full.backward()
    dropped = [r for r in range(rows) if r not in keep]
    assert logp.grad[dropped].abs().max().item() == 0.0  # an all-equal group has zero advantage everywhere

    alone, _ = policy_loss(logp[keep], old[keep], None, adv[keep], mask[keep], loss_type=loss_type,
                           max_completion_length=T)
    after, _ = policy_loss(kept["logp"], kept["old"], None, kept_adv, kept["mask"], loss_type=loss_type,
                           max_completion_length=T)
    assert torch.equal(after, alone)
    # the only change is the normaliser: the dropped rows no longer count in it
    scale = {"grpo": rows / len(keep), "dr_grpo": rows / len(keep),
             "bnpo": mask.sum() / mask[keep].sum(), "dapo": mask.sum() / mask[keep].sum()}[loss_type]
    assert torch.allclose(after, full * scale, atol=1e-6)


def test_no_informative_group_keeps_the_batch_whole():
    batch = {"x": torch.arange(6)}
    adv = torch.zeros(6)
    same, same_adv, fraction = drop_equal_groups(batch, adv, [1.0, 1.0, 1.0, 0.0, 0.0, 0.0], 3)
    assert same is batch and same_adv is adv and fraction == 0.0


def test_truncated_is_weights_match_loop_and_cap():
    gen = torch.Generator().manual_seed(5)
    trainer = -torch.rand(3, 6, generator=gen) * 4
    sampler = trainer + torch.randn(3, 6, generator=gen)
    weights = truncated_is_weights(trainer, sampler, cap=2.0)
    want = [[min(math.exp(t - s), 2.0) for t, s in zip(tr, sr)] for tr, sr in zip(trainer.tolist(), sampler.tolist())]
    torch.testing.assert_close(weights, torch.tensor(want), rtol=1e-6, atol=0)
    assert weights.max().item() == 2.0 and weights.min().item() < 1.0


@pytest.mark.parametrize("loss_type", LOSS_TYPES)
def test_importance_weights_multiply_the_policy_term_only(loss_type):
    logp, old, ref, adv, mask = random_inputs(seed=6)
    gen = torch.Generator().manual_seed(7)
    weights = truncated_is_weights(old, old + torch.randn(old.shape, generator=gen) * 0.5, cap=2.0)
    kw = {"loss_type": loss_type, "eps_low": 0.2, "eps_high": 0.28, "beta": 0.05}
    loss, _ = policy_loss(logp, old, ref, adv, mask, is_weights=weights, **kw)
    want = reference_loss(logp.tolist(), old.tolist(), ref.tolist(), adv.tolist(), mask.tolist(), loss_type, 0.2,
                          0.28, 0.05, None, False, weights=weights.tolist())
    assert loss.item() == pytest.approx(want, rel=1e-5, abs=1e-6)
    unweighted, _ = policy_loss(logp, old, ref, adv, mask, **kw)
    assert loss.item() != pytest.approx(unweighted.item(), rel=1e-3)


def test_logp_gap_stats_over_masked_tokens():
    trainer = torch.tensor([[-1.0, -2.0, -3.0], [-0.5, -0.5, -9.0]])
    sampler = torch.tensor([[-1.1, -2.0, -1.0], [-0.2, -0.5, 0.0]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 0]])
    stats = logp_gap_stats(trainer, sampler, mask)
    assert stats["logp_gap_mean"] == pytest.approx((0.1 + 0.0 + 0.3 + 0.0) / 4, rel=1e-5)
    assert stats["logp_gap_max"] == pytest.approx(0.3, rel=1e-5)
