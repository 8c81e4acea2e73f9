"""policy_loss against TRL's GRPOTrainer._compute_loss, number for number, loss and gradient.

    python -m pytest tests/test_grpo_trl_parity.py -q

TRL's method is called unbound on a stand-in trainer whose per-token log-prob function returns our tensor,
so only the loss math is compared (one process, no gradient accumulation, no vLLM, no entropy bonus).
"""
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch

from j1core.grpo import LOSS_TYPES, policy_loss

trl = pytest.importorskip("trl", reason="trl is not installed")
from trl import GRPOTrainer  # noqa: E402  (after the skip)


class OneProcess:
    """The accelerator calls _compute_loss makes, for a single process."""
    num_processes = 1
    sync_gradients = True

    def gather(self, x):
        return x

    gather_for_metrics = gather

    def reduce(self, x, reduction="sum"):
        return x


def trl_stand_in(logp, loss_type, eps_low, eps_high, beta, max_completion_length, bias_correction_kl):
    return SimpleNamespace(
        _get_per_token_logps_and_entropies=lambda *a, **k: (logp, torch.zeros_like(logp), None),
        loss_type=loss_type, beta=beta, epsilon_low=eps_low, epsilon_high=eps_high,
        importance_sampling_level="token", top_entropy_quantile=1.0, off_policy_mask_threshold=None,
        use_vllm=False, vllm_importance_sampling_correction=False, aux_loss_enabled=False,
        _entropy_bonus_enabled=False, max_completion_length=max_completion_length,
        current_gradient_accumulation_steps=1, model=SimpleNamespace(training=True),
        accelerator=OneProcess(), _metrics={"train": defaultdict(list), "eval": defaultdict(list)},
        args=SimpleNamespace(use_bias_correction_kl=bias_correction_kl, delta=None, steps_per_generation=1),
    )


def trl_loss(logp, old, ref, adv, mask, loss_type, eps_low, eps_high, beta, max_len, bias_correction_kl):
    stand_in = trl_stand_in(logp, loss_type, eps_low, eps_high, beta, max_len, bias_correction_kl)
    B, T = logp.shape
    inputs = {
        "prompt_ids": torch.zeros(B, 1, dtype=torch.long), "prompt_mask": torch.ones(B, 1, dtype=torch.long),
        "completion_ids": torch.zeros(B, T, dtype=torch.long), "completion_mask": mask.long(),
        "advantages": adv, "old_per_token_logps": old, "ref_per_token_logps": ref,
        "num_items_in_batch": mask.sum(),  # the generation batch's token count: this one batch here
    }
    loss = GRPOTrainer._compute_loss(stand_in, None, inputs)
    return loss, {k: v[-1] for k, v in stand_in._metrics["train"].items()}


def random_inputs(B=6, T=9, seed=0):
    gen = torch.Generator().manual_seed(seed)
    old = -torch.rand(B, T, generator=gen) * 3
    logp = old + torch.randn(B, T, generator=gen) * 0.4  # off-policy enough that both clips fire
    ref = old + torch.randn(B, T, generator=gen) * 0.4
    adv = torch.randn(B, generator=gen)
    lengths = torch.randint(1, T + 1, (B,), generator=gen)
    mask = (torch.arange(T)[None, :] < lengths[:, None]).float()
    return logp, old, ref, adv, mask


@pytest.mark.parametrize("loss_type", LOSS_TYPES)
@pytest.mark.parametrize("beta,kl_times_ratio", [(0.0, True), (0.04, True), (0.04, False)])
def test_loss_and_gradient_match_trl(loss_type, beta, kl_times_ratio):
    logp, old, ref, adv, mask = random_inputs(seed=11)
    ours_in = logp.clone().requires_grad_(True)
    theirs_in = logp.clone().requires_grad_(True)
    max_len = 16  # TRL's dr_grpo always divides by its max_completion_length; ours must be told the same
    kw = {"eps_low": 0.2, "eps_high": 0.28, "beta": beta}
    ours, stats = policy_loss(ours_in, old, ref if beta else None, adv, mask, loss_type=loss_type,
                              max_completion_length=max_len, kl_times_ratio=kl_times_ratio, **kw)
    theirs, metrics = trl_loss(theirs_in, old, ref, adv, mask, loss_type, 0.2, 0.28, beta, max_len,
                               bias_correction_kl=kl_times_ratio)
    ours.backward()
    theirs.backward()
    assert torch.allclose(ours, theirs, rtol=1e-6, atol=1e-7)
    assert torch.allclose(ours_in.grad, theirs_in.grad, rtol=1e-6, atol=1e-8)
    assert stats["clip_low"] == pytest.approx(metrics["clip_ratio/low_mean"], abs=1e-7)
    assert stats["clip_high"] == pytest.approx(metrics["clip_ratio/high_mean"], abs=1e-7)
    assert stats["clip_region"] == pytest.approx(metrics["clip_ratio/region_mean"], abs=1e-7)
    if beta:
        assert stats["kl"] == pytest.approx(metrics["kl"], rel=1e-6)


def test_trl_dapo_equals_bnpo_on_one_process():
    logp, old, ref, adv, mask = random_inputs(seed=12)
    dapo, _ = trl_loss(logp, old, ref, adv, mask, "dapo", 0.2, 0.2, 0.0, 16, True)
    bnpo, _ = trl_loss(logp, old, ref, adv, mask, "bnpo", 0.2, 0.2, 0.0, 16, True)
    assert torch.allclose(dapo, bnpo, rtol=1e-6)


def test_inputs_exercise_both_clips():
    logp, old, _ref, adv, mask = random_inputs(seed=11)
    _, stats = policy_loss(logp, old, None, adv, mask, eps_low=0.2, eps_high=0.28)
    assert stats["clip_low"] > 0 and stats["clip_high"] > 0
