"""The GRPO trainer end to end on a tiny random model: every judge format, exact resume, stops, bad steps."""
import json
import math
import shutil

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from j1core.config import TrainConfig
from j1core.data.builtin import builtin_pairs
from j1core.errors import UserError
from j1core.grpo import policy_loss
from j1core.model import tiny_model
from j1core.trainer import BadStepsError, Trainer, lr_at

TIMING = ("_seconds", "tokens_per_second")


def make_trainer(tmp_path, pairs=None, layers=1, **overrides):
    settings = dict(max_steps=3, pairs_per_step=2, group_size=2, max_new_tokens=6, max_think_tokens=4,
                    output=str(tmp_path / "run"), progress=False, beta=0.01, lr=1e-3, micro_batch_size=3,
                    dtype="fp32")  # not auto: the same arithmetic on every CPU
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
    with pytest.raises(ValueError, match="optimizer.json: field 'param_groups' holds .* --freeze-embeddings"):
        make_trainer(tmp_path, max_steps=2, freeze_embeddings=True, resume=str(tmp_path / "run"),
                     resume_override=("freeze_embeddings", "max_steps"))


def test_eval_every_logs_heldout_metrics_and_keeps_k_and_best(tmp_path):
    """--eval-every 2 on a real tiny run: eval/* in the lines of steps 2 and 4, the judgments of each
    evaluation kept, the last 2 saves and best/ (the step whose logged metric is the best), curves drawn, and
    training itself unchanged by the evaluations."""
    from j1core.runlog import plot_curves

    run = tmp_path / "a" / "run"
    trainer = make_trainer(tmp_path / "a", max_steps=4, eval_every=2, eval_limit=6, keep_checkpoints=2, save_every=1,
                           beta=0.0, lr=2e-2)
    trainer.train()
    metrics = read_metrics(run)
    evaluated = {m["step"]: m for m in metrics if "eval/consistent_accuracy" in m}
    assert sorted(evaluated) == [2, 4]
    assert all(0.0 <= m[f"eval/{k}"] <= 1.0 for m in evaluated.values()
               for k in ("accuracy", "consistent_accuracy", "accuracy_order0", "accuracy_order1"))
    assert sorted(p.name for p in run.iterdir()) == ["best", "checkpoint", "checkpoint-step-3", "checkpoint-step-4",
                                                     "curves.png", "eval", "metrics.jsonl"]
    assert sorted(p.name for p in (run / "eval").iterdir()) == ["judgments-step-2.jsonl", "judgments-step-4.jsonl"]
    assert len((run / "eval" / "judgments-step-4.jsonl").read_text().splitlines()) == 12  # 6 pairs, both orders
    values = [(evaluated[s]["eval/consistent_accuracy"], -s) for s in (2, 4)]
    best_value, best_step = max(values)[0], -max(values)[1]  # a tie keeps the earlier step
    state = json.loads((run / "best" / "trainer_state.json").read_text())["state"]
    assert state["step"] == best_step
    assert state["best"] == {"metric": "consistent_accuracy", "value": best_value, "step": best_step}
    assert "eval/consistent_accuracy" in plot_curves(run / "metrics.jsonl", tmp_path / "curves.png")

    plain = make_trainer(tmp_path / "b", max_steps=4, beta=0.0, lr=2e-2)
    plain.train()
    assert [{k: v for k, v in m.items() if not k.startswith("eval/")} for m in metrics] == read_metrics(tmp_path / "b"
                                                                                                         / "run")


SCRIPTED = {1: 0.2, 2: 0.6, 3: 0.4, 4: 0.5, 5: 0.7, 6: 0.1}


def test_resume_keeps_choosing_the_best(tmp_path, monkeypatch):
    """Scripted held-out values: a run stopped after step 3 (its checkpoint/ then deleted) and resumed from its
    newest step checkpoint chooses the same best/ (step 5, not the last) and keeps the same step checkpoints as
    a run that never stopped."""
    from j1core.eval.during_training import HeldoutEval

    monkeypatch.setattr(HeldoutEval, "judge", lambda self, engine, step: {"consistent_accuracy": SCRIPTED[step]})
    settings = dict(max_steps=6, eval_every=1, eval_limit=2, keep_checkpoints=2, beta=0.0)
    straight = make_trainer(tmp_path / "a", **settings)
    straight.train()

    stopped = make_trainer(tmp_path / "b", **settings)
    original_step = stopped.train_step

    def step_then_stop_at_three():
        out = original_step()
        stopped.stop_requested = stopped.step + 1 >= 3
        return out

    stopped.train_step = step_then_stop_at_three
    stopped.train()
    run = tmp_path / "b" / "run"
    # saves at the new bests (steps 1 and 2) and at the stop (3); the last two kept
    assert sorted(p.name for p in run.iterdir() if p.is_dir()) == ["best", "checkpoint", "checkpoint-step-2",
                                                                   "checkpoint-step-3"]
    shutil.rmtree(run / "checkpoint")  # resume then takes the newest complete step checkpoint
    resumed = make_trainer(tmp_path / "b", resume=str(run), **settings)
    assert resumed.step == 3 and resumed.best == {"metric": "consistent_accuracy", "value": 0.6, "step": 2}
    resumed.train()

    for name in ("a", "b"):
        out = tmp_path / name / "run"
        assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["best", "checkpoint", "checkpoint-step-5",
                                                                       "checkpoint-step-6"]
        assert json.loads((out / "best" / "trainer_state.json").read_text())["state"]["step"] == 5
        final = json.loads((out / "checkpoint" / "trainer_state.json").read_text())["state"]
        assert final["step"] == 6 and final["best"] == {"metric": "consistent_accuracy", "value": 0.7, "step": 5}
    assert read_metrics(tmp_path / "b" / "run") == read_metrics(tmp_path / "a" / "run")
    a = load_file(tmp_path / "a" / "run" / "best" / "model.safetensors")
    b = load_file(tmp_path / "b" / "run" / "best" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    step5 = load_file(tmp_path / "a" / "run" / "checkpoint-step-5" / "model.safetensors")
    assert all(torch.equal(a[k], step5[k]) for k in a)


def test_drop_equal_groups_trains_on_the_informative_groups_only(tmp_path, monkeypatch):
    import j1core.trainer

    # pair 0: order 0 all right, order 1 mixed; pair 1: both orders mixed -> groups 1, 2, 3 of 4 are kept
    crafted = [[1.0, 1.0, 1.0, 1.0], [0.0, 1.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.0, 1.0]]
    monkeypatch.setattr(j1core.trainer, "score_step", lambda *args: [list(g) for g in crafted])
    seen = {}
    packed = j1core.trainer.pack_batch

    def spy_pack(*args):
        seen["full"] = packed(*args)
        return seen["full"]

    monkeypatch.setattr(j1core.trainer, "pack_batch", spy_pack)
    trainer = make_trainer(tmp_path, pairs_per_step=2, group_size=4, drop_equal_groups=True, beta=0.0,
                           forced_verdict=True, max_think_tokens=0)
    accumulate = trainer.accumulate_gradients

    def spy_accumulate(batch, advantages, ref_logp, **kwargs):
        seen["batch"], seen["advantages"] = batch, advantages
        return accumulate(batch, advantages, ref_logp, **kwargs)

    trainer.accumulate_gradients = spy_accumulate
    metrics = trainer.train_step()
    assert metrics["informative_groups"] == 0.75
    assert torch.equal(seen["batch"]["input_ids"], seen["full"]["input_ids"][4:])
    full_adv = trainer.advantages(torch.tensor([r for g in crafted for r in g]))
    assert torch.equal(seen["advantages"], full_adv[4:])

    # the step's loss is the loss of just the kept rows, computed directly (on-policy the ratio is 1, so the
    # value does not depend on the weights the step has since updated; the normaliser counts the kept rows)
    with torch.no_grad():
        logp = trainer.logprobs(trainer.policy, seen["batch"])
    direct, _ = policy_loss(logp.float(), logp.float(), None, seen["advantages"],
                            seen["batch"]["loss_mask"].float(), loss_type="grpo", eps_low=0.2, eps_high=0.28)
    assert math.isclose(metrics["loss"], direct.item(), rel_tol=1e-4, abs_tol=1e-7)


def test_flip_length_steps_judge_the_length_flipped_second_order(tmp_path, monkeypatch):
    import j1core.trainer
    from j1core.data.builtin import length_flipped

    seen = []
    build = j1core.trainer.build_prompts
    monkeypatch.setattr(j1core.trainer, "build_prompts", lambda *args: seen.append(build(*args)) or seen[-1])
    pairs = [p for p in builtin_pairs("train") if length_flipped(p) is not None][:4]
    trainer = make_trainer(tmp_path, pairs=pairs, pairs_per_step=2, flip_length=True, forced_verdict=True,
                           max_think_tokens=0, max_steps=1)
    trainer.train()
    prompts = seen[0]
    shown = {p.id: p for p in pairs}
    for second in prompts[1::2]:
        flipped = length_flipped(shown[second.pair_id])
        assert second.ids == build([flipped], "pairwise", trainer.tokenizer, "compact")[1].ids


def test_flip_length_trains_only_on_pairs_it_can_flip():
    from j1core.data.builtin import length_flipped
    from j1core.trainer import load_training_pairs

    plain, flipped = load_training_pairs(TrainConfig()), load_training_pairs(TrainConfig(flip_length=True))
    assert [p.id for p in flipped] == [p.id for p in plain if length_flipped(p) is not None]
    assert 0 < len(flipped) < len(plain)


def test_drop_equal_groups_is_refused_with_deepspeed():
    with pytest.raises(ValueError, match="--drop-equal-groups"):
        TrainConfig(drop_equal_groups=True, zero_stage=3)


def test_sampler_trainer_gap_is_logged_and_importance_weights_are_near_one(tmp_path):
    """The engine samples with the trainer's own log-probs: the logged gap is float noise, so the truncated
    importance weights of --tis-cap are ~1 and a second update per batch reuses the first one's old log-probs."""
    trainer = make_trainer(tmp_path, max_steps=2, tis_cap=2.0, updates_per_batch=2, rollout_dtype="fp32")
    trainer.train()
    metrics = read_metrics(tmp_path / "run")
    assert [m["step"] for m in metrics] == [1, 2]
    for m in metrics:
        assert 0.0 <= m["logp_gap_mean"] <= m["logp_gap_max"] < 1e-3
        assert m["tis_weight"] == pytest.approx(1.0, abs=1e-3)
        assert math.isfinite(m["loss"]) and m["skipped"] == 0
        assert m["ratio"] != 1.0  # the second update's ratio is against the first update's log-probs


def test_bf16_rollouts_train_on_the_trainers_own_log_probs(tmp_path, capsys):
    """Sampling in bfloat16: the ratio's old log-probs are the trainer's float32 ones, so the sampler's gap is
    logged (bfloat16 rounding, small but not float noise) and the first update's ratio is exactly 1."""
    trainer = make_trainer(tmp_path, max_steps=2, tis_cap=2.0, rollout_dtype="bf16", beta=0.0)
    assert trainer.engine.decoder.dtype == torch.bfloat16
    assert "rollout engine in bfloat16 (asked for)" in capsys.readouterr().out
    trainer.train()
    for m in read_metrics(tmp_path / "run"):
        assert 1e-4 < m["logp_gap_max"] < 0.5 and m["logp_gap_mean"] < 0.05
        assert m["ratio"] == pytest.approx(1.0, abs=1e-6) and math.isfinite(m["loss"])
        assert m["tis_weight"] == pytest.approx(1.0, abs=0.05)
    saved = json.loads((tmp_path / "run" / "checkpoint" / "trainer_state.json").read_text())["state"]
    assert saved["rollout_dtype_used"] == "torch.bfloat16"


def test_dtype_auto_is_resolved_once_and_saved(tmp_path, monkeypatch, capsys):
    """--dtype auto becomes bf16 or fp32 before anything runs: the saved config holds the choice, so a resume
    on a CPU that would choose otherwise is refused by name instead of silently changing the arithmetic."""
    from j1core.engine import precision

    monkeypatch.setattr(precision, "bf16_matmul_native", lambda device: True)
    trainer = make_trainer(tmp_path, max_steps=1, dtype="auto")
    assert trainer.cfg.dtype == "bf16" and trainer.autocast_dtype == torch.bfloat16
    assert "training in bf16 (autocast" in capsys.readouterr().out
    trainer.train()
    saved = json.loads((tmp_path / "run" / "checkpoint" / "trainer_state.json").read_text())["state"]
    assert saved["config"]["dtype"] == "bf16"
    monkeypatch.setattr(precision, "bf16_matmul_native", lambda device: False)
    assert make_trainer(tmp_path / "other", max_steps=1, dtype="auto").cfg.dtype == "fp32"
    with pytest.raises(UserError, match="dtype"):
        make_trainer(tmp_path, max_steps=2, dtype="auto", resume=str(tmp_path / "run"),
                     resume_override=("max_steps",))


def test_resume_samples_in_the_dtype_auto_chose_first(tmp_path, monkeypatch):
    from j1core.engine import precision

    monkeypatch.setattr(precision, "bf16_matmul_native", lambda device: True)
    monkeypatch.setattr(precision, "bf16_speedup", lambda hidden, intermediate: 3.0)
    first = make_trainer(tmp_path, max_steps=1, rollout_dtype="auto")
    assert first.engine.decoder.dtype == torch.bfloat16
    first.train()
    monkeypatch.setattr(precision, "bf16_speedup", lambda hidden, intermediate: 1.0)  # a later, slower measure
    assert make_trainer(tmp_path / "other", max_steps=1, rollout_dtype="auto").engine.decoder.dtype == torch.float32
    resumed = make_trainer(tmp_path, max_steps=2, resume=str(tmp_path / "run"), resume_override=("max_steps",),
                           rollout_dtype="auto")
    assert resumed.step == 1 and resumed.engine.decoder.dtype == torch.bfloat16
    resumed.train()


def test_ranks_that_measure_differently_all_keep_the_weights_dtype(tmp_path, monkeypatch):
    from j1core.engine import precision

    trainer = make_trainer(tmp_path, max_steps=1, rollout_dtype="fp32")
    monkeypatch.setattr(precision, "bf16_matmul_native", lambda device: True)
    monkeypatch.setattr(precision, "bf16_speedup", lambda hidden, intermediate: 3.0)
    trainer.cfg.rollout_dtype = "auto"
    # two ranks: the first all_sum counts them, the second counts the ranks that chose bfloat16
    answers = iter([2.0, 1.0, 2.0, 2.0])  # this rank chose bfloat16, the other float32; then both bfloat16
    monkeypatch.setattr(trainer.backend, "all_sum", lambda value: next(answers))
    assert trainer.engine_dtype() == torch.float32
    assert trainer.engine_dtype() == torch.bfloat16
