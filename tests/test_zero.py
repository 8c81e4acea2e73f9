"""ZeRO-3 training on 2 CPU ranks (gloo): resume is exact, one step matches the single-process trainer, each
rank holds half the policy; and the cross-rank metric reduction against metrics of the pooled batch.

    python -m pytest tests/test_zero.py -q      (the 2-rank scenario itself: tests/ds_run.py)
"""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

import j1core.trainer
from j1core.config import TrainConfig, parse_config
from j1core.model import tiny_model
from j1core.trainer import Trainer
from j1core.zero import deepspeed_config, pack_metrics, unpack_metrics
from tests import ds_run

ROOT = Path(__file__).resolve().parents[1]
TIMING = ("_seconds", "tokens_per_second")
WORLD = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    """Run tests/ds_run.py on 2 ranks once; return its output directory and the model directory."""
    root = tmp_path_factory.mktemp("zero3")
    model, tokenizer = tiny_model("llama", seed=0, layers=1)
    model.save_pretrained(root / "model")
    tokenizer.save_pretrained(root / "model")
    # One thread per rank: two ranks share the two cores (more threads spin against each other).
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "WORLD_SIZE": str(WORLD),
           "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    logs = [open(root / f"rank{r}.log", "w") for r in range(WORLD)]  # noqa: SIM115  (closed below)
    procs = [subprocess.Popen([sys.executable, str(ROOT / "tests" / "ds_run.py"), str(root / "out"),
                               str(root / "model")], env={**env, "RANK": str(r), "LOCAL_RANK": str(r)},
                              cwd=ROOT, stdout=logs[r], stderr=subprocess.STDOUT) for r in range(WORLD)]
    try:
        codes = [p.wait(timeout=900) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        for f in logs:
            f.close()
    if any(codes):
        tail = (root / f"rank{codes.index(next(c for c in codes if c))}.log").read_text()[-4000:]
        pytest.fail(f"2-rank run failed with exit codes {codes}:\n{tail}")
    return root / "out", root / "model"


def read_metrics(run_dir):
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in m.items() if not k.endswith(TIMING)} for m in lines]


def test_zero3_run_saves_resumes_and_saves_again(scenario):
    out, _ = scenario
    resumed, straight = out / "resumed", out / "straight"
    assert [m["step"] for m in read_metrics(resumed)] == [1, 2, 3, 4]
    state = json.loads((resumed / "checkpoint" / "trainer_state.json").read_text())["state"]
    assert state["step"] == 4 and state["world_size"] == WORLD
    assert sorted(p.name for p in (resumed / "zero").iterdir()) == ["step_00000004"]
    # resuming after step 3 continues exactly as a run that never stopped
    assert read_metrics(resumed) == read_metrics(straight)
    a = load_file(resumed / "checkpoint" / "model.safetensors")
    b = load_file(straight / "checkpoint" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # the consolidated checkpoint is a plain HF model
    reloaded = AutoModelForCausalLM.from_pretrained(resumed / "checkpoint")
    assert torch.equal(reloaded.get_input_embeddings().weight, a["model.embed_tokens.weight"])


def test_zero3_evaluates_held_out_pairs_and_keeps_best(scenario):
    """Rank 0 judges the held-out pairs after every step while the other rank waits for the metrics (no
    deadlock), the values reach the log, and best/ and the last 2 saves are kept as in one process."""
    out, _ = scenario
    metrics = read_metrics(out / "resumed")
    assert all(0.0 <= m["eval/accuracy_both_orders"] <= 1.0 for m in metrics)
    values = [(m["eval/consistent_accuracy"], -m["step"]) for m in metrics]
    best_step = -max(values)[1]  # the earliest step with the best value
    assert json.loads((out / "resumed" / "best" / "trainer_state.json").read_text())["state"]["step"] == best_step
    kept = sorted(p.name for p in (out / "resumed").iterdir() if p.name.startswith("checkpoint-step-"))
    assert len(kept) == 2 and kept[-1] == "checkpoint-step-4"


def test_first_step_matches_single_process(scenario, tmp_path, monkeypatch):
    out, model_dir = scenario
    monkeypatch.setattr(j1core.trainer, "generate_judgments", ds_run.scripted_judgments)
    cfg = parse_config(ds_run.TINY + ds_run.PARITY + ["--model", str(model_dir), "--output", str(tmp_path / "one")])
    Trainer(cfg).train()
    single, sharded = read_metrics(tmp_path / "one")[0], read_metrics(out / "parity")[0]
    assert single.keys() == sharded.keys()
    for key, value in single.items():
        assert value == pytest.approx(sharded[key], abs=1e-5), key
    assert single["grad_norm"] > 0 and single["reward_std"] > 0  # the step had a signal to match
    assert single["grad_norm"] == pytest.approx(sharded["grad_norm"], rel=1e-5)
    a = load_file(tmp_path / "one" / "checkpoint" / "model.safetensors")
    b = load_file(out / "parity" / "checkpoint" / "model.safetensors")
    initial = load_file(model_dir / "model.safetensors")
    assert a.keys() == b.keys()
    # Adam's first update is lr * g / (|g| + 1e-8): where |g| sits near 1e-8 (the update is well under lr)
    # float noise in g decides it, so weights are compared where the gradient stands clear of that noise.
    lr, compared = single["lr"], 0
    for k in a:
        clear = (a[k] - initial[k]).abs() >= 0.9 * lr
        compared += int(clear.sum())
        assert torch.allclose(a[k][clear], b[k][clear], rtol=0, atol=1e-5), k
    assert compared > 10_000


def test_each_rank_holds_half_the_policy(scenario):
    out, _ = scenario
    for rank in range(WORLD):
        sizes = json.loads((out / f"partition_rank{rank}.json").read_text())
        # each parameter's partition is padded to a multiple of the world size: at most one element each
        assert abs(sizes["local"] - sizes["total"] / WORLD) <= sizes["params"]
        assert sizes["materialised"] < 0.05 * sizes["total"]  # only the small persistent norms stay whole
        assert sizes["engine_vs_policy"] == 0.0  # the rollout engine got the updated weights


def test_deepspeed_config_keeps_user_settings_and_owns_accumulation(tmp_path):
    user = tmp_path / "ds.json"
    user.write_text(json.dumps({"zero_optimization": {"stage": 3, "stage3_max_live_parameters": 1000},
                                "gradient_accumulation_steps": 8, "train_batch_size": 64}))
    config = deepspeed_config(TrainConfig(deepspeed_config=str(user), lr=3e-4, max_grad_norm=0.5))
    assert config["zero_optimization"]["stage3_max_live_parameters"] == 1000
    assert config["gradient_accumulation_steps"] == 1 and "train_batch_size" not in config
    assert config["managed_gradient_accumulation"] is False
    assert config["gradient_clipping"] == 0.5 and config["optimizer"]["params"]["lr"] == 3e-4
    user.write_text("{\n  \"zero_optimization\": ,\n}")
    with pytest.raises(ValueError, match="ds.json: line 2"):
        deepspeed_config(TrainConfig(deepspeed_config=str(user)))


def pooled_metrics(rewards, stats_per_token, seconds):
    """Plain reference: the metrics of the whole batch at once."""
    r = torch.tensor(rewards, dtype=torch.float64)
    values = torch.tensor(stats_per_token, dtype=torch.float64)
    return {"reward_mean": r.mean().item(), "reward_std": r.std().item(), "kl": values.mean().item(),
            "rollout_seconds": max(seconds), "lr": 0.1}


def test_metric_reduction_matches_pooled_batch():
    gen = torch.Generator().manual_seed(0)
    ranks = []
    for _ in range(WORLD):
        rows, tokens = 4, int(torch.randint(3, 30, (1,), generator=gen))
        ranks.append((torch.rand(rows, generator=gen).tolist(), torch.rand(tokens, generator=gen).tolist(),
                      torch.rand(1, generator=gen).item()))
    keys = ["kl", "lr", "reward_mean", "reward_std", "rollout_seconds"]
    packs = []
    for rewards, per_token, seconds in ranks:
        r = torch.tensor(rewards, dtype=torch.float64)
        local = {"reward_mean": r.mean().item(), "reward_std": r.std().item(),
                 "kl": sum(per_token) / len(per_token), "rollout_seconds": seconds, "lr": 0.1}
        packs.append(pack_metrics(local, keys, ("kl",), len(rewards), len(per_token)))
    sums = [sum(p["sum"][i] for p in packs) for i in range(len(packs[0]["sum"]))]
    maxes = [max(p["max"][i] for p in packs) for i in range(len(packs[0]["max"]))]
    reduced = unpack_metrics(local, keys, sums, maxes)
    expected = pooled_metrics([x for r in ranks for x in r[0]], [x for r in ranks for x in r[1]],
                              [r[2] for r in ranks])
    assert reduced.keys() == expected.keys()
    for key in expected:
        assert reduced[key] == pytest.approx(expected[key], rel=1e-12), key


def test_max_metrics_are_the_largest_ranks_and_gap_means_are_token_weighted():
    ranks = [({"logp_gap_max": 0.3, "logp_gap_mean": 0.1}, 10), ({"logp_gap_max": 0.7, "logp_gap_mean": 0.4}, 30)]
    keys = ["logp_gap_max", "logp_gap_mean"]
    packs = [pack_metrics(local, keys, tuple(keys), 2, tokens) for local, tokens in ranks]
    sums = [sum(p["sum"][i] for p in packs) for i in range(len(packs[0]["sum"]))]
    maxes = [max(p["max"][i] for p in packs) for i in range(len(packs[0]["max"]))]
    reduced = unpack_metrics(ranks[0][0], keys, sums, maxes)
    assert reduced["logp_gap_max"] == 0.7
    assert reduced["logp_gap_mean"] == pytest.approx((0.1 * 10 + 0.4 * 30) / 40)
