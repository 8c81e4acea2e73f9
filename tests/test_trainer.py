"""The GRPO trainer end to end on a tiny random model: every judge format, exact resume, stops, bad steps."""
import json
import math

import pytest
import torch
from transformers import AutoModelForCausalLM

from j1core.config import TrainConfig
from j1core.data.builtin import builtin_pairs
from j1core.model import tiny_model
from j1core.trainer import BadStepsError, Trainer, lr_at

TIMING = ("_seconds", "tokens_per_second")


def make_trainer(tmp_path, pairs=None, layers=1, **overrides):
    settings = dict(max_steps=3, pairs_per_step=2, group_size=2, max_new_tokens=6, max_think_tokens=4,
                    output=str(tmp_path / "run"), progress=False, beta=0.01, lr=1e-3, micro_batch_size=3)
    settings.update(overrides)
    cfg = TrainConfig(**settings)
    policy, tokenizer = tiny_model("llama", seed=0, layers=layers)
    reference = tiny_model("llama", seed=0, layers=layers)[0] if cfg.beta > 0 else None
    pairs = pairs if pairs is not None else builtin_pairs("train")[:40]
    return Trainer(cfg, policy=policy, tokenizer=tokenizer, reference=reference, pairs=pairs)


def read_metrics(run_dir):
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in m.items() if not k.endswith(TIMING)} for m in lines]


@pytest.mark.parametrize("fmt, forced", [("pairwise", True), ("pairwise", False), ("pairwise_scores", False),
                                         ("scores_verdict", False), ("pointwise", False), ("mixed", True)])
def test_three_steps_in_each_format(tmp_path, fmt, forced):
    trainer = make_trainer(tmp_path, format=fmt, forced_verdict=forced)
    before = [p.detach().clone() for p in trainer.policy.parameters()]
    checkpoint = trainer.train()
    metrics = read_metrics(tmp_path / "run")
    assert [m["step"] for m in metrics] == [1, 2, 3]
    assert all(math.isfinite(m["loss"]) and m["skipped"] == 0 for m in metrics)
    assert (tmp_path / "run" / "curves.png").stat().st_size > 0
    reloaded = AutoModelForCausalLM.from_pretrained(checkpoint)
    assert reloaded.config.model_type == "llama"
    if forced:  # forced verdicts always parse, so rewards vary and the policy moves
        if fmt == "pairwise":
            assert all(m["unparseable_rate"] == 0.0 for m in metrics)
        moved = any(not torch.equal(a, b) for a, b in zip(before, trainer.policy.parameters()))
        assert moved


@pytest.mark.parametrize("mode", [{}, {"beta": 0.0, "max_think_tokens": 0, "forced_verdict": True}],
                         ids=["reasoning-kl", "verdict-only"])
def test_resume_continues_exactly(tmp_path, mode):
    full = make_trainer(tmp_path / "a", max_steps=4, **mode)
    full.train()
    stopped = make_trainer(tmp_path / "b", max_steps=4, **mode)
    original_step = stopped.train_step

    def step_then_stop_at_two():
        out = original_step()
        stopped.stop_requested = stopped.step + 1 >= 2
        return out

    stopped.train_step = step_then_stop_at_two
    stopped.train()
    assert [m["step"] for m in read_metrics(tmp_path / "b" / "run")] == [1, 2]
    resumed = make_trainer(tmp_path / "b", max_steps=4, resume=str(tmp_path / "b" / "run"), **mode)
    assert resumed.step == 2
    resumed.train()
    assert read_metrics(tmp_path / "b" / "run") == read_metrics(tmp_path / "a" / "run")
    for p, q in zip(full.policy.parameters(), resumed.policy.parameters()):
        assert torch.equal(p, q)


def test_non_finite_steps_are_skipped_then_stop(tmp_path):
    trainer = make_trainer(tmp_path, max_steps=5, max_bad_steps=2)
    with torch.no_grad():
        trainer.policy.model.norm.weight.fill_(float("nan"))
    with pytest.raises(BadStepsError, match="2 steps in a row"):
        trainer.train()
    metrics = read_metrics(tmp_path / "run")
    assert [m["skipped"] for m in metrics] == [1, 1]
    assert (tmp_path / "run" / "checkpoint" / "trainer_state.json").is_file()


def test_lr_schedule_warmup_then_cosine():
    cfg = TrainConfig(lr=1.0, warmup_steps=2, max_steps=6, lr_schedule="cosine")
    lrs = [lr_at(cfg, s) for s in range(6)]
    assert lrs[:2] == [0.5, 1.0] and lrs[2] == 1.0 and lrs[-1] < lrs[3] < lrs[2]
    assert lr_at(TrainConfig(lr=2.0, warmup_steps=0, lr_schedule="constant"), 5) == 2.0


def test_the_loop_learns_a_fixed_task(tmp_path):
    """One fixed pair, both orders, forced verdicts, the consistency reward: the mean reward must rise, not just
    the loop run. A tiny random model has to learn to read which response sits where, and it does so in a
    jump, or not within 60 steps: with these settings the reward went from ~0.2 to ~1.0 between steps 25 and 50
    with seed 1, and stayed near 0.25 with seeds 0, 2 and 3 (lr 5e-3 did not change that for 0 and 2). A broken
    gradient learns with no seed. (The correctness reward instead often locks into always-A at 0.5, J1's
    position-bias failure.)"""
    from j1core.data.pairs import Pair

    pair = Pair(id="fixed", prompt="Is water wet?", chosen="Yes, water is wet.", rejected="Bananas are blue.",
                source="test")
    trainer = make_trainer(tmp_path, pairs=[pair], layers=2, max_steps=60, pairs_per_step=1, group_size=16,
                           max_think_tokens=0, forced_verdict=True, reward="consistent", beta=0.0, lr=3e-3,
                           warmup_steps=0, micro_batch_size=32, adv_scale="batch", seed=1)
    trainer.train()
    rewards = [m["reward_mean"] for m in read_metrics(tmp_path / "run")]
    first, last = sum(rewards[:10]) / 10, sum(rewards[-10:]) / 10
    assert last > first + 0.4, rewards


def test_freeze_embeddings_keeps_the_tied_embeddings(tmp_path):
    trainer = make_trainer(tmp_path, freeze_embeddings=True, max_steps=2)
    embed = trainer.policy.get_input_embeddings().weight
    assert trainer.policy.get_output_embeddings().weight is embed  # tied: the LM head is frozen with them
    before = {name: p.detach().clone() for name, p in trainer.policy.named_parameters()}
    trainer.train()
    after = dict(trainer.policy.named_parameters())
    assert torch.equal(before["model.embed_tokens.weight"], after["model.embed_tokens.weight"])
    assert any(not torch.equal(before[n], p) for n, p in after.items() if n != "model.embed_tokens.weight")
    optimized = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert id(embed) not in optimized


def test_gradient_checkpointing_gives_the_same_steps(tmp_path):
    """--gradient-checkpointing recomputes the policy's layers in backward (the grouped log-prob path, with
    reasoning tokens and the KL to the reference): the same loss, gradient norm and metrics at every step."""
    plain = make_trainer(tmp_path / "a", layers=2, max_steps=2)
    checkpointed = make_trainer(tmp_path / "b", layers=2, max_steps=2, gradient_checkpointing=True)
    assert all(layer.gradient_checkpointing for layer in checkpointed.policy.model.layers)
    assert not any(layer.gradient_checkpointing for layer in checkpointed.reference.model.layers)
    plain.train()
    checkpointed.train()
    expected, got = read_metrics(tmp_path / "a" / "run"), read_metrics(tmp_path / "b" / "run")
    assert [m["step"] for m in got] == [1, 2] and all(m["skipped"] == 0 for m in got)
    for g, e in zip(got, expected, strict=True):
        assert g.keys() == e.keys()
        assert g == {k: pytest.approx(v, rel=1e-6, abs=1e-9) if isinstance(v, float) else v for k, v in e.items()}
    for p, q in zip(plain.policy.parameters(), checkpointed.policy.parameters(), strict=True):
        torch.testing.assert_close(q, p, atol=1e-6, rtol=1e-6)


def test_resume_with_other_trained_parameters_names_the_field(tmp_path):
    make_trainer(tmp_path, max_steps=1).train()
    other = make_trainer(tmp_path, max_steps=2, freeze_embeddings=True)
    with pytest.raises(ValueError, match="optimizer.json: field 'param_groups' holds .* --freeze-embeddings"):
        other.resume(tmp_path / "run")


def test_sampler_trainer_gap_is_logged_and_importance_weights_are_near_one(tmp_path):
    """The engine samples with the trainer's own log-probs: the logged gap is float noise, so the truncated
    importance weights of --tis-cap are ~1 and a second update per batch reuses the first one's old log-probs."""
    trainer = make_trainer(tmp_path, max_steps=2, tis_cap=2.0, updates_per_batch=2)
    trainer.train()
    metrics = read_metrics(tmp_path / "run")
    assert [m["step"] for m in metrics] == [1, 2]
    for m in metrics:
        assert 0.0 <= m["logp_gap_mean"] <= m["logp_gap_max"] < 1e-3
        assert m["tis_weight"] == pytest.approx(1.0, abs=1e-3)
        assert math.isfinite(m["loss"]) and m["skipped"] == 0
        assert m["ratio"] != 1.0  # the second update's ratio is against the first update's log-probs
