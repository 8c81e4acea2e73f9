"""One rank of the 2-rank ZeRO-3 scenario that tests/test_zero.py checks (run by that test, or by hand).

    python tests/ds_run.py OUT MODEL      (with RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT set)

In one process group, through train.py's flag parsing and j1core.zero:
Rollouts are scripted (the same judgments whatever the batch split, see scripted_judgments), so:
1. parity: one step, to compare with the single-process trainer -> OUT/parity
2. a 3-step run that saves -> OUT/resumed, then a resume of it to step 4 that saves again
3. a straight 4-step run -> OUT/straight, for comparing with the resumed one
Runs 2 and 3 also judge 4 held-out pairs after every step (rank 0 judges, every rank gets the metrics) and keep
the last 2 saves and best/ (EVAL).
Each rank writes OUT/partition_rank<k>.json: the policy elements it holds between steps.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import j1core.trainer
from j1core.config import parse_config
from j1core.judge.prompts import forced_suffix, render_answer
from j1core.judge.rollout import JudgeSample
from j1core.judge.tokens import letter_ids

TINY = ["--pairs-per-step", "2", "--group-size", "2", "--max-new-tokens", "4", "--max-think-tokens", "4",
        "--micro-batch-size", "3", "--beta", "0.01", "--lr", "1e-3", "--warmup-steps", "2", "--no-progress",
        "--rollout-dtype", "fp32",  # the engine's copy compared with the policy exactly; ranks sample alike
        "--dtype", "fp32"]  # not auto: the same arithmetic on every CPU
# Adam's first update is about lr * sign(gradient): elements whose gradient is near Adam's eps (1e-8) turn
# float noise into differences of order lr. So the parity step splits the batch the same way on both sides:
# one process with micro-batches of 4 rows computes exactly what each of the 2 ranks computes on its 4 rows,
# and weighting by 1/2 (one process) or averaging over 2 ranks (DeepSpeed) is exact in binary floating point.
PARITY = ["--micro-batch-size", "4", "--max-steps", "1", "--adv-scale", "group"]
EVAL = ["--eval-every", "1", "--eval-limit", "4", "--keep-checkpoints", "2"]


def scripted_judgments(engine, tokenizer, prompts, cfg, step):
    """Forced-verdict judgments that depend only on each prompt: sample 0 says A, sample 1 says B, after two
    reasoning tokens taken from the prompt. Rewards then differ within every group."""
    suffix = tokenizer(forced_suffix("pairwise"), add_special_tokens=False)["input_ids"]
    letters = letter_ids(tokenizer)
    groups = []
    for prompt in prompts:
        group = []
        for k in range(cfg.group_size):
            think = [prompt.ids[3 + k], prompt.ids[-7]]
            letter = letters[k % 2]
            ids = think + suffix + [letter]
            group.append(JudgeSample(ids, [0.0] * len(ids), [1] * len(think) + [0] * len(suffix) + [1],
                                     "reasoning" + render_answer("pairwise", "AB"[k % 2])))
        groups.append(group)
    return groups


def run(argv):
    from j1core.trainer import Trainer

    trainer = Trainer(parse_config(argv))  # launched with RANK/WORLD_SIZE and --zero-stage: a ZeroBackend
    trainer.train()
    return trainer


def partition_sizes(trainer) -> dict:
    params = list(trainer.policy.parameters())
    return {"local": sum(p.ds_tensor.numel() for p in params), "total": sum(p.ds_numel for p in params),
            "materialised": sum(p.numel() for p in params), "params": len(params)}


def engine_weight_gap(trainer) -> float:
    """Largest difference between the rollout engine's embedding copy and the gathered policy's."""
    with trainer.backend.gathered():
        policy_embed = trainer.policy.get_input_embeddings().weight.detach().clone()
    return (trainer.engine.decoder.weights["embed"].cpu() - policy_embed.cpu()).abs().max().item()


def main(out: str, model: str) -> None:
    out = Path(out)
    base = TINY + ["--zero-stage", "3", "--model", model]
    j1core.trainer.generate_judgments = scripted_judgments
    run(base + PARITY + ["--output", str(out / "parity")])
    run(base + EVAL + ["--max-steps", "3", "--output", str(out / "resumed")])
    trainer = run(base + EVAL + ["--max-steps", "4", "--output", str(out / "resumed"), "--resume",
                                 str(out / "resumed"), "--resume-override", "max_steps"])
    report = {**partition_sizes(trainer), "engine_vs_policy": engine_weight_gap(trainer)}
    (out / f"partition_rank{trainer.backend.rank}.json").write_text(json.dumps(report))
    run(base + EVAL + ["--max-steps", "4", "--output", str(out / "straight")])


if __name__ == "__main__":
    main(*sys.argv[1:])
