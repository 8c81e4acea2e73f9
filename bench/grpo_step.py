"""End-to-end GRPO step speed: j1's Trainer against TRL's GRPOTrainer, same model, prompts and work, one run.

    python bench/grpo_step.py --quick                    # smoke run: 2 prompts x G=2, 8 tokens, 1 step (minutes)
    python bench/grpo_step.py                            # judge shape: exactly 64 new tokens
    python bench/grpo_step.py --shape reasoning          # up to 512 new tokens, eos allowed
    python bench/grpo_step.py --dtype bf16               # both sides in bfloat16 autocast (float32 weights)
    python bench/grpo_step.py [--prompts 8 --G 4 --new-tokens 64 --steps 2 --warmup 1 --device cpu]

Sides (each its own process, one after the other): "j1" (its Trainer); "trl" (TRL's GRPOTrainer as its
documentation recommends for this shape on CPU, see bench/trl_side.py); "trl-skip-prompt" (the same with the
LM head scoring completion positions only, forced on: TRL does it only on Triton devices); opt-in "trl-cb"
(transformers' continuous-batching generation). Shapes: "judge" = exactly --new-tokens tokens (eos banned
until then); "reasoning" = up to 512 new tokens with eos allowed, so samples end at their own lengths (both
sides sample the same model at temperature 1, so the lengths follow the same distribution but are not the
same samples: compare s per 1k new tokens there). Results go to bench/results/grpo_step-<shape>.md
(grpo_step-<shape>-bf16.md with --dtype bf16).

Both sides train the same float32 model (default: the bundled SmolLM2-135M-Instruct, handed to TRL as its
cached HF directory), by default in float32; with --dtype bf16 both run their passes in bfloat16 autocast
over float32 weights (j1's --dtype bf16, which its --dtype auto picks on a CPU with bfloat16 matrix
instructions; TRL's bf16=True, its GRPOConfig default). Both train on the same pairwise judge prompts
(built-in pairs, both orders, chat-templated by j1core.judge.prompts; TRL gets the prompt text and tokenizes it
to the same ids, which is checked). Per step: --prompts prompts x --G samples of exactly --new-tokens tokens
(eos banned until then: min = max new tokens), temperature 1, beta 0.01 (frozen reference model), one update
per batch, no gradient checkpointing, micro-batches of --micro-batch rows for the reference and the policy
passes, AdamW, clip 1.0. The reward is j1's per-order correctness (j1core.judge.rewards.correctness) on both
sides: cheap, so it does not show in the times.

Each side runs in its own subprocess (peak resident memory does not mix); the time per step is the median
over --steps steps after --warmup steps. Columns:
- rollout: sampling the completions (j1: RolloutEngine via generate_judgments; TRL: _generate = tokenize,
  HF generate, decode);
- reference: log-probs of the frozen reference model;
- policy fwd+bwd: policy log-probs, loss and backward over all micro-batches;
- optimizer: gradient clipping + AdamW step;
- other: the rest of the step's wall time (rewards, advantages, batch packing, j1's copy of the new weights
  into the rollout engine, TRL's data loading and bookkeeping).
See bench/trl_side.py for where each TRL column is measured. On CUDA, when vllm imports, TRL also runs with
use_vllm=True (colocate). Peak RSS is the whole process's (model, reference, optimizer state, activations).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

COLUMNS = (("rollout_seconds", "rollout"), ("reference_seconds", "reference"),
           ("policy_seconds", "policy fwd+bwd"), ("optimizer_seconds", "optimizer"), ("other_seconds", "other"))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct", help="local HF directory or the bundled alias")
    parser.add_argument("--prompts", type=int, default=8, help="prompts per step (pairs x 2 orders; even)")
    parser.add_argument("--G", type=int, default=4, help="completions per prompt")
    parser.add_argument("--shape", default="judge", choices=("judge", "reasoning"),
                        help="judge: exactly --new-tokens (default 64); reasoning: up to --new-tokens (default 512)")
    parser.add_argument("--quick", action="store_true", help="2 prompts x G=2, 8 (reasoning: 32) tokens, 1 step")
    parser.add_argument("--new-tokens", type=int, default=None, help="completion length (judge: exact)")
    parser.add_argument("--steps", type=int, default=2, help="timed steps (median reported)")
    parser.add_argument("--no-write", action="store_true", help="print only, no bench/results file")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--micro-batch", type=int, default=8, help="rows per reference / policy forward")
    parser.add_argument("--beta", type=float, default=0.01)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32", choices=("fp32", "bf16"),
                        help="bf16: both sides compute in bfloat16 autocast over float32 weights")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sides", default=None,
                        help="comma list of j1,trl,trl-skip-prompt,trl-cb,trl-vllm (default: j1,trl,trl-skip-prompt)")
    parser.add_argument("--side", help=argparse.SUPPRESS)    # internal: run one side in this process
    parser.add_argument("--result", help=argparse.SUPPRESS)  # internal: where that side writes its JSON
    args = parser.parse_args(argv)
    if args.quick:
        args.prompts, args.G, args.steps, args.warmup = 2, 2, 1, 1
        args.micro_batch = min(args.micro_batch, 4)
        args.new_tokens = args.new_tokens or (8 if args.shape == "judge" else 32)
    args.new_tokens = args.new_tokens or (64 if args.shape == "judge" else 512)
    args.min_new_tokens = args.new_tokens if args.shape == "judge" else 0
    if args.prompts < 2 or args.prompts % 2:
        parser.error("--prompts must be even: each pair gives its two orders")
    return args


# ---- the shared work -----------------------------------------------------------------------------------
def model_dir(name: str) -> Path:
    from j1core.model import SMOLLM2_ALIAS, smollm2_dir

    return smollm2_dir() if name == SMOLLM2_ALIAS else Path(name)


def bench_pairs(args):
    """Exactly enough built-in pairs for warmup + steps steps, so both sides see the same prompt set."""
    from j1core.data.builtin import builtin_pairs

    need = args.prompts // 2 * (args.warmup + args.steps)
    return builtin_pairs(split="train", seed=0)[:need]


def prompt_rows(tokenizer, pairs):
    """Both orders of every pair as (chat-templated text, ids, gold), exactly as j1core.judge.step builds them."""
    from j1core.judge.prompts import judge_prompt_ids, judge_prompt_text

    rows = []
    for p in pairs:
        for a, b, gold in ((p.chosen, p.rejected, "A"), (p.rejected, p.chosen, "B")):
            rows.append((judge_prompt_text(tokenizer, "pairwise", p.prompt, a, b),
                         judge_prompt_ids(tokenizer, "pairwise", p.prompt, a, b), gold))
    return rows


# ---- j1's side -----------------------------------------------------------------------------------------
def run_j1(args, output_dir) -> dict:
    import torch

    from j1core.config import TrainConfig
    from j1core.trainer import Trainer

    cfg = TrainConfig(model=str(model_dir(args.model)), device=args.device, dtype=args.dtype,  # as TRL's side
                      pairs_per_step=args.prompts // 2, group_size=args.G, max_new_tokens=args.new_tokens,
                      min_new_tokens=args.min_new_tokens,
                      forced_verdict=False, reward="correct",
                      beta=args.beta, updates_per_batch=1, micro_batch_size=args.micro_batch, lr=1e-5,
                      warmup_steps=0, max_steps=args.warmup + args.steps, output=str(output_dir), progress=False,
                      seed=args.seed, max_batch_tokens=1 << 22)
    trainer = Trainer(cfg, pairs=bench_pairs(args))
    records = []
    for _ in range(args.warmup + args.steps):
        start = time.perf_counter()
        metrics = trainer.train_step()
        trainer.step += 1
        record = {k: metrics.get(k, 0.0) for k in ("rollout_seconds", "reference_seconds", "optimizer_seconds")}
        record["policy_seconds"] = metrics.get("loss_seconds", 0.0)
        record["step_seconds"] = time.perf_counter() - start
        record["completion_tokens"] = metrics["completion_length"] * args.prompts * args.G
        records.append(record)
        print(f"[j1] step {len(records)}: {record['step_seconds']:.1f} s", flush=True)
    return {"records": records, "threads": torch.get_num_threads()}


# ---- one side in this process --------------------------------------------------------------------------
def run_side(args):
    import torch
    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory(prefix=f"grpo-bench-{args.side}-") as tmp:
        if args.side == "j1":
            out = run_j1(args, tmp)
        else:
            from trl_side import run_trl

            tokenizer = AutoTokenizer.from_pretrained(model_dir(args.model))
            rows = prompt_rows(tokenizer, bench_pairs(args))
            texts, ids, golds = (list(column) for column in zip(*rows))
            out = run_trl(model_dir(args.model), texts, ids, golds, args, tmp, use_vllm=args.side == "trl-vllm",
                          variant=args.side)
    from machine import peak_rss_bytes

    out["peak_rss_mb"] = peak_rss_bytes() / 2**20
    if torch.cuda.is_available() and args.device.startswith("cuda"):
        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    Path(args.result).write_text(json.dumps(out))


# ---- driver --------------------------------------------------------------------------------------------
def default_sides(args) -> list[str]:
    import importlib.util

    sides = ["j1", "trl", "trl-skip-prompt"]
    if args.device.startswith("cuda") and importlib.util.find_spec("vllm") is not None:
        sides.append("trl-vllm")
    return sides


def summarize(out: dict, warmup: int) -> dict:
    timed = out["records"][warmup:] or out["records"]
    summary = {}
    for key in ("step_seconds", "rollout_seconds", "reference_seconds", "policy_seconds", "optimizer_seconds",
                "completion_tokens"):
        summary[key] = statistics.median(r[key] for r in timed)
    summary["other_seconds"] = statistics.median(
        r["step_seconds"] - sum(r[k] for k, _ in COLUMNS[:-1]) for r in timed)
    summary["step_min"] = min(r["step_seconds"] for r in timed)
    summary["step_max"] = max(r["step_seconds"] for r in timed)
    summary["peak_rss_mb"], summary["threads"] = out["peak_rss_mb"], out["threads"]
    summary["peak_gpu_mb"] = out.get("peak_gpu_mb")
    return summary


def print_table(results: dict, args) -> str:
    """Print the markdown table and return it."""
    lines = []
    length = f"exactly {args.new_tokens}" if args.min_new_tokens else f"up to {args.new_tokens} (eos allowed)"
    dtype = "float32" if args.dtype == "fp32" else "bfloat16 autocast over float32 weights"
    lines.append(f"\nGRPO step, {Path(model_dir(args.model)).name}, {dtype}, {args.device}, "
                 f"{results[next(iter(results))]['threads']} threads, shape {args.shape}: {args.prompts} prompts x "
                 f"G={args.G} x {length} new tokens, beta {args.beta}, micro-batch {args.micro_batch}; "
                 f"median of {args.steps} steps after {args.warmup} warm-up\n")
    head = "| side | s/step (min-max) | s/completion | s per 1k new tokens | " + \
        " | ".join(name for _, name in COLUMNS) + \
        " | new tokens | peak RSS (MB) |" + (" peak GPU (MB) |" if args.device.startswith("cuda") else "")
    lines.append(head)
    lines.append("|" + "---|" * (head.count("|") - 1))
    completions = args.prompts * args.G
    for side, s in results.items():
        cells = [f"{s['step_seconds']:.1f} ({s['step_min']:.1f}-{s['step_max']:.1f})",
                 f"{s['step_seconds'] / completions:.2f}",
                 f"{1000 * s['step_seconds'] / max(s['completion_tokens'], 1):.2f}"]
        cells += [f"{s[k]:.2f}" for k, _ in COLUMNS]
        cells += [f"{s['completion_tokens']:.0f}", f"{s['peak_rss_mb']:.0f}"]
        if args.device.startswith("cuda"):
            cells.append(f"{s['peak_gpu_mb'] or 0:.0f}")
        lines.append(f"| {side} | " + " | ".join(cells) + " |")
    if "j1" in results:
        base = results["j1"]
        for side, s in results.items():
            if side == "j1":
                continue
            per_token = (s['step_seconds'] / max(s['completion_tokens'], 1)) / \
                (base['step_seconds'] / max(base['completion_tokens'], 1))
            ratios = [f"{s['step_seconds'] / base['step_seconds']:.2f}x", "", f"{per_token:.2f}x"]
            ratios += [f"{s[k] / base[k]:.2f}x" if base[k] > 0 else "-" for k, _ in COLUMNS]
            ratios += ["", f"{s['peak_rss_mb'] / base['peak_rss_mb']:.2f}x"]
            if args.device.startswith("cuda"):
                ratios.append("")
            lines.append(f"| {side} / j1 | " + " | ".join(ratios) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    return text


def main():
    args = parse_args()
    if args.side:
        run_side(args)
        return
    results = {}
    sides = args.sides.split(",") if args.sides else default_sides(args)
    with tempfile.TemporaryDirectory(prefix="grpo-bench-") as tmp:
        # both sides load the same directory; the last --model wins in the child's argparse
        passthrough = sys.argv[1:] + ["--model", str(model_dir(args.model))]
        for side in sides:
            result = Path(tmp) / f"{side}.json"
            print(f"running {side} ...", flush=True)
            subprocess.run([sys.executable, __file__, *passthrough, "--side", side, "--result", str(result)],
                           check=True)
            results[side] = summarize(json.loads(result.read_text()), args.warmup)
    text = print_table(results, args)
    if not args.no_write:
        from machine import header, write_result

        name = f"grpo_step-{args.shape}" + ("-bf16" if args.dtype == "bf16" else "") + \
            ("-quick" if args.quick else "")
        write_result(name, header(f"One GRPO step: j1 against TRL's GRPOTrainer ({args.shape} shape)", ("trl",)) +
                     f"\nCommand: `python bench/grpo_step.py {' '.join(sys.argv[1:])}`\n" + text)


if __name__ == "__main__":
    main()
