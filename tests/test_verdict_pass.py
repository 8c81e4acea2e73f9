"""One-pass verdict steps against the engine path: same samples, same loss, same gradients, same trainer step."""
import pytest
import torch

from j1core.config import TrainConfig
from j1core.data.builtin import builtin_pairs
from j1core.judge.rollout import generate_judgments, pack_batch
from j1core.judge.step import build_prompts, score_step
from j1core.model import tiny_model
from j1core.trainer import Trainer
from j1core.verdict_pass import one_pass_applies, verdict_loss, verdict_rollout

PAIRS = builtin_pairs("train")[:40]


def make_trainer(tmp_path, one_pass, **overrides):
    settings = dict(pairs_per_step=3, group_size=4, micro_batch_size=8, max_steps=2, forced_verdict=True,
                    max_think_tokens=0, beta=0.0, lr=1e-3, output=str(tmp_path / f"run{int(one_pass)}"),
                    progress=False, one_pass=one_pass)
    settings.update(overrides)
    policy, tokenizer = tiny_model("llama", seed=5, layers=2)
    return Trainer(TrainConfig(**settings), policy=policy, tokenizer=tokenizer, pairs=PAIRS)


def grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("overrides", [{}, {"temperature": 0.7, "loss_type": "dr_grpo"},
                                       {"reward": "correct", "adv_scale": "group", "micro_batch_size": 4}])
def test_one_pass_samples_loss_and_gradients_equal_the_engine_path(tmp_path, overrides):
    engine_trainer = make_trainer(tmp_path, one_pass=False, **overrides)
    cfg, tokenizer = engine_trainer.cfg, engine_trainer.tokenizer
    prompts = build_prompts(PAIRS[:cfg.pairs_per_step], cfg.format, tokenizer)
    policy = engine_trainer.policy

    samples = generate_judgments(engine_trainer.engine, tokenizer, prompts, cfg, step=7)
    hidden, one_pass_samples = verdict_rollout(policy, tokenizer, prompts, cfg, step=7, device=torch.device("cpu"))
    letters = [[s.token_ids[-1] for s in g] for g in samples]
    assert letters == [[s.token_ids[-1] for s in g] for g in one_pass_samples]
    assert len({t for g in letters for t in g}) == 2  # both letters drawn: the check covers both branches
    for g, h in zip(samples, one_pass_samples):
        for a, b in zip(g, h):
            assert (a.token_ids, a.loss_mask, a.text) == (b.token_ids, b.loss_mask, b.text)
            assert a.logprobs == pytest.approx(b.logprobs, abs=1e-5)

    rewards = score_step(prompts, [[s.text for s in g] for g in samples], cfg.reward, cfg.pairing, 0.0)
    advantages = engine_trainer.advantages(torch.tensor([r for g in rewards for r in g]))
    assert advantages.abs().sum() > 0
    batch = pack_batch(prompts, samples, tokenizer.pad_token_id)
    loss, stats = engine_trainer.accumulate_gradients(batch, advantages, None)
    expected = grads(policy)

    policy.zero_grad(set_to_none=True)
    one_pass_loss, one_pass_stats = verdict_loss(policy, hidden, one_pass_samples, advantages, cfg,
                                                 engine_trainer.max_completion_length)
    one_pass_loss.backward()
    got = grads(policy)
    assert one_pass_loss.item() == pytest.approx(loss, abs=1e-6)
    assert one_pass_stats["entropy"] == pytest.approx(stats["entropy"], rel=1e-5)
    assert expected.keys() == got.keys()
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], atol=1e-6, rtol=1e-4, msg=name)


def test_trainer_steps_match_with_and_without_one_pass(tmp_path):
    engine_trainer, one_pass_trainer = make_trainer(tmp_path, False), make_trainer(tmp_path, True)
    assert engine_trainer.engine is not None and one_pass_trainer.engine is None
    for _ in range(2):
        a, b = engine_trainer.train_step(), one_pass_trainer.train_step()
        engine_trainer.step += 1
        one_pass_trainer.step += 1
        for key in ("reward_mean", "accuracy", "consistent_accuracy", "flip_rate", "completion_length"):
            assert a[key] == b[key], key
        assert b["loss"] == pytest.approx(a["loss"], abs=1e-6)
    # Adam divides by sqrt(v): where a gradient is ~0, float noise of 1e-7 moves a weight by a part of lr (1e-3).
    for p, q in zip(engine_trainer.policy.parameters(), one_pass_trainer.policy.parameters()):
        torch.testing.assert_close(q, p, atol=1e-4, rtol=0)


@pytest.mark.parametrize("overrides, applies", [
    ({}, True), ({"beta": 0.01}, False), ({"max_think_tokens": 4}, False), ({"updates_per_batch": 2}, False),
    ({"forced_verdict": False}, False), ({"format": "pointwise"}, False), ({"format": "mixed"}, False)])
def test_one_pass_only_where_the_rollout_is_the_policy_pass(overrides, applies):
    settings = dict(forced_verdict=True, max_think_tokens=0, beta=0.0)
    settings.update(overrides)
    assert one_pass_applies(TrainConfig(**settings)) is applies


def test_one_pass_step_under_bf16_autocast(tmp_path):
    trainer = make_trainer(tmp_path, True, dtype="bf16")
    before = [p.detach().clone() for p in trainer.policy.parameters()]
    seen = []
    trainer.policy.model.layers[0].mlp.down_proj.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    metrics = trainer.train_step()
    assert torch.bfloat16 in seen  # the policy forward ran under autocast, as the engine path's policy pass does
    assert metrics["skipped"] == 0 and torch.isfinite(torch.tensor(metrics["loss"]))
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.policy.parameters()))
