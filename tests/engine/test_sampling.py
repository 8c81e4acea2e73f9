"""Tests for j1core/engine/sampling.py: fast top-k/top-p filter against the plain one, greedy, bans, log-probs."""
import pytest
import torch

from j1core.engine.sampling import choose_tokens, filter_logits, sample_blocked, sample_from
from tests.engine.reference import filter_logits_reference


@pytest.mark.parametrize("top_k,top_p", [(0, 1.0), (1, 1.0), (5, 1.0), (0, 0.5), (0, 0.9), (7, 0.8), (3, 0.01)])
def test_filter_matches_reference(top_k, top_p):
    logits = torch.randn(6, 40, generator=torch.Generator().manual_seed(top_k * 100 + int(top_p * 10))) * 3
    fast = filter_logits(logits, top_k, top_p)
    plain = filter_logits_reference(logits, top_k, top_p)
    assert torch.equal(torch.isinf(fast), torch.isinf(plain))
    assert torch.equal(fast[~torch.isinf(fast)], plain[~torch.isinf(plain)])
    assert (~torch.isinf(fast)).sum(-1).min() >= 1  # the best token always survives


def test_greedy_picks_argmax_and_reports_t1_logprob():
    logits = torch.randn(4, 30)
    tokens, logp = choose_tokens(logits, 0.0, 0, 1.0, None)
    assert torch.equal(tokens, logits.argmax(-1))
    expected = torch.log_softmax(logits, -1).gather(-1, tokens[:, None]).squeeze(-1)
    torch.testing.assert_close(logp, expected)


def test_sampled_logprob_is_of_full_tempered_distribution_and_respects_top_k():
    logits = torch.randn(64, 30)
    gen = torch.Generator().manual_seed(0)
    tokens, logp = choose_tokens(logits, 0.7, 3, 1.0, gen)
    top3 = logits.topk(3, dim=-1).indices
    assert (top3 == tokens[:, None]).any(-1).all()
    expected = torch.log_softmax(logits / 0.7, -1).gather(-1, tokens[:, None]).squeeze(-1)
    torch.testing.assert_close(logp, expected)


def test_banned_tokens_are_never_chosen_but_stay_in_the_normaliser():
    logits = torch.zeros(32, 10)
    logits[:, 4] = 20.0  # token 4 would win almost surely
    banned = torch.tensor([4])
    tokens, logp = choose_tokens(logits, 1.0, 0, 1.0, torch.Generator().manual_seed(1), banned=banned)
    assert (tokens != 4).all()
    expected = torch.log_softmax(logits, -1).gather(-1, tokens[:, None]).squeeze(-1)
    torch.testing.assert_close(logp, expected)
    greedy, _ = choose_tokens(logits, 0.0, 0, 1.0, None, banned=banned)
    assert (greedy != 4).all()


def test_same_generator_seed_same_samples():
    logits = torch.randn(16, 50)
    a, _ = choose_tokens(logits, 1.0, 0, 0.9, torch.Generator().manual_seed(5))
    b, _ = choose_tokens(logits, 1.0, 0, 0.9, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_inverse_cdf_sampling_follows_the_distribution():
    probs = torch.tensor([0.5, 0.0, 0.2, 0.25, 0.05])
    draws = 20000
    tokens = sample_from(probs.expand(draws, -1), torch.Generator().manual_seed(0))
    freq = torch.bincount(tokens, minlength=5).float() / draws
    assert freq[1] == 0  # zero-probability token never drawn
    # 6 binomial standard deviations of the largest-variance entry (p = 0.5): 6 * sqrt(0.25 / draws)
    assert (freq - probs).abs().max() < 6 * (0.25 / draws) ** 0.5


def near_a_block_boundary(probs, u, block, tol=1e-5):
    """Rows whose target u * total lies within tol * total of a block boundary of the float64 cdf: there the
    float32 block sums of sample_blocked may put the target on the other side of that boundary."""
    cdf = probs.double().cumsum(-1)
    total = cdf[:, -1:]
    boundaries = cdf[:, block - 1::block]
    return ((boundaries - u[:, None] * total).abs() < tol * total).any(-1)


@pytest.mark.parametrize("vocab,block", [(49152, 1024), (5000, 64), (1000, 7)])
def test_blocked_sampling_matches_the_plain_inverse_cdf(vocab, block):
    """Same probabilities and uniforms -> same tokens, on peaked, flat, sparse and padded vocabularies,
    normalised or not, except next to a block boundary (a small, counted share of rows)."""
    gen = torch.Generator().manual_seed(vocab)
    logits = torch.randn(64, vocab, generator=gen) * torch.tensor([0.1, 1.0, 4.0, 12.0]).repeat(16)[:, None]
    logits[::5, vocab // 3:] = float("-inf")  # rows whose later blocks have no mass at all
    probs = torch.softmax(logits, dim=-1)
    excused = 0
    for trial in range(8):
        weights = probs if trial % 2 else probs * 37.5  # the sampler scales u by the total: unnormalised works
        u = torch.rand(64, generator=gen, dtype=torch.float64)
        u[0] = 0.0
        u[1] = 1.0 - 2.0 ** -53  # the largest uniform below 1
        fast = sample_blocked(weights, None, uniforms=u, block=block)
        plain = sample_from(weights, None, uniforms=u)
        near = near_a_block_boundary(weights, u, block)
        excused += int(near.sum())
        differ = (fast != plain) & ~near
        assert not differ.any(), f"trial {trial}: rows {differ.nonzero().flatten().tolist()}"
        assert (probs.gather(1, fast[:, None]) > 0).all()
    assert excused <= 8 * 64 // 20  # u[1] ends in the last block with mass; few others may be excused


def test_choose_tokens_fast_path_matches_softmax_then_plain_sampling():
    """The unfiltered path samples from exp(x - max) (unnormalised); the plain path from softmax(x / T)."""
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(64, 49152, generator=gen) * 3
    u = torch.rand(64, generator=gen, dtype=torch.float64)
    tokens, logp = choose_tokens(logits, 0.8, 0, 1.0, None, uniforms=u)
    probs = torch.softmax(logits / 0.8, dim=-1)
    plain = sample_from(probs, None, uniforms=u)
    near = near_a_block_boundary(probs, u, 1024)
    assert torch.equal(tokens[~near], plain[~near]) and int(near.sum()) <= 3
    # Against float64: a float32 log_softmax over 49k entries is itself off by ~2e-5 here.
    exact = torch.log_softmax(logits.double() / 0.8, -1).gather(-1, tokens[:, None]).squeeze(-1)
    torch.testing.assert_close(logp.double(), exact, rtol=0, atol=1e-5)


def test_blocked_sampling_never_picks_a_zero_mass_token_at_a_block_edge():
    probs = torch.zeros(3, 40)
    probs[:, 5] = 0.5
    probs[:, 17] = 0.5  # blocks of 8: mass in blocks 0 and 2 only, nothing after token 17
    u = torch.tensor([0.25, 0.75, 1.0 - 2.0 ** -53], dtype=torch.float64)
    assert sample_blocked(probs, None, uniforms=u, block=8).tolist() == [5, 17, 17]


@pytest.mark.parametrize("temperature,top_k,banned", [(1.0, 0, None), (0.8, 0, [3, 7]), (1.3, 5, None), (0.0, 0, [1])])
def test_a_workspace_changes_nothing_but_where_the_weights_live(temperature, top_k, banned):
    logits = torch.randn(8, 3000, generator=torch.Generator().manual_seed(3)) * 4
    uniforms = torch.rand(8, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    banned = torch.tensor(banned) if banned else None
    kept = logits.clone()
    workspace = torch.full((8, 3000), float("nan"))  # stale contents must not matter
    with_ws = choose_tokens(logits, temperature, top_k, 1.0, None, banned=banned, uniforms=uniforms,
                            workspace=workspace)
    without = choose_tokens(logits, temperature, top_k, 1.0, None, banned=banned, uniforms=uniforms)
    assert torch.equal(with_ws[0], without[0])
    torch.testing.assert_close(with_ws[1], without[1], atol=0, rtol=0)
    assert torch.equal(logits, kept)  # the caller's logits are left as they were
