"""The default training step two ways: engine rollout + policy pass (the reference) against one pass.

    python bench/verdict_step.py [--steps 4 --warmup 1 --threads 2]

Both sides run the default `TrainConfig` (the bundled SmolLM2-135M-Instruct, 10 pairs x both orders x G = 32
one-letter verdicts, micro-batch 128) on the same pairs from the same weights: `--no-one-pass` samples with the
rollout engine and then runs the policy pass over the packed batch; one-pass samples the letters from the
policy pass's own forward (j1core/verdict_pass.py). They draw the same letters (tests/test_verdict_pass.py),
so their steps do the same work. Each side runs in its own subprocess (peak resident memory does not mix);
times are the median over --steps steps after --warmup. Columns: rollout (one-pass: the policy forward
with autograd, plus sampling), loss (one-pass: the backward), optimizer (clip + AdamW), and the total.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PARTS = ("rollout_seconds", "reward_seconds", "reference_seconds", "loss_seconds", "optimizer_seconds")


def run_side(one_pass: bool, steps: int, warmup: int, threads: int) -> dict:
    import torch

    from j1core.config import TrainConfig
    from j1core.trainer import Trainer

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(TrainConfig(output=out, progress=False, one_pass=one_pass))
        rows = []
        for i in range(warmup + steps):
            metrics = trainer.train_step()
            trainer.step += 1
            if i >= warmup:
                rows.append(metrics)
    median = {k: statistics.median(r.get(k, 0.0) for r in rows) for k in PARTS}
    totals = [sum(r.get(k, 0.0) for k in PARTS) for r in rows]
    return {**median, "total": statistics.median(totals), "min": min(totals), "max": max(totals),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--side", choices=("engine", "one-pass"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        print(json.dumps(run_side(args.side == "one-pass", args.steps, args.warmup, args.threads)))
        return
    results = {}
    for side in ("engine", "one-pass"):
        cmd = [sys.executable, __file__, "--side", side, "--steps", str(args.steps), "--warmup", str(args.warmup),
               "--threads", str(args.threads)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        results[side] = json.loads(out.strip().splitlines()[-1])
    print(f"default training step, {args.steps} steps after {args.warmup} warm-up, {args.threads} threads "
          f"(median seconds)")
    print("| side | s/step (min-max) | rollout | loss | optimizer | peak RSS (MB) |")
    print("|---|---|---|---|---|---|")
    for side, r in results.items():
        print(f"| {side} | {r['total']:.1f} ({r['min']:.1f}-{r['max']:.1f}) | {r['rollout_seconds']:.2f} | "
              f"{r['loss_seconds']:.2f} | {r['optimizer_seconds']:.2f} | {r['peak_rss_mb']:.0f} |")
    e, o = results["engine"], results["one-pass"]
    print(f"| engine / one-pass | {e['total'] / o['total']:.2f}x | | | | {e['peak_rss_mb'] / o['peak_rss_mb']:.2f}x |")


if __name__ == "__main__":
    main()
