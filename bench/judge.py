"""Judgments per second on LLMBar-length pairwise prompts: j1's evaluation path against vLLM's CPU build.

    python bench/judge.py --quick            # 4 pairs (8 judgments), one round (minutes: vLLM's start-up dominates)
    python bench/judge.py                    # 8 pairs, 1 round (make bench's size), writes bench/results/judge.md
    python bench/judge.py --pairs 100 --repeats 3 --vllm-dtypes float32,bfloat16   # all of LLMBar Natural

What one judgment is (forced verdict, no reasoning, greedy): the chat-templated pairwise prompt with the forced
suffix "</think>\\n<answer>[[" appended, one prefill, and the letter chosen between A and B from the last
position's logits.
- j1: exactly `generate.py judge --forced-verdict --max-think-tokens 0` does it: the pairs' prompts from
  j1core.judge.step.build_prompts (both orders of each pair), judged by j1core.eval.evaluate.engine_judge on a
  RolloutEngine, in evaluation's chunks of --chunk-size prompts; in float32 (evaluation's default) and, where
  the CPU has bfloat16 matrix instructions, with `--rollout-dtype bf16` (bfloat16 weights and KV);
- vLLM: the same token ids (prompt + suffix), all in one generate call, max_tokens = 1, temperature 0,
  allowed_token_ids = the ids of A and B (bench/vllm_env.py, bench/vllm_runner.py), prefix cache emptied
  before each call; by default at vLLM's best dtype for this CPU (bfloat16 where the CPU has bf16 matrix
  instructions, avx512_bf16 or amx_bf16, else float32: what bench/rollout.py measures), --vllm-dtypes for both.
Prompts: LLMBar Natural pairs from ../shared/data/LLMBar when present (the first --pairs in file order), else
synthetic pairs whose prompt lengths follow a log-normal fitted to LLMBar Natural's (median 246 tokens, range
162-1,046 with SmolLM2's tokenizer). The table gives judgments/s (median over --repeats alternating rounds, after
a warm-up), prompt tokens/s, and how often each side's verdict equals j1's float32 verdict.
"""
from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import cpu_model_and_flags, header, measure_peaks, write_result  # noqa: E402
from vllm_env import VLLMProcess, best_dtype, kv_space_gb  # noqa: E402

from j1core.data.pairs import Pair  # noqa: E402
from j1core.engine.packed_linear import bf16_matmul_native  # noqa: E402
from j1core.engine.rollout import RolloutEngine  # noqa: E402
from j1core.eval.evaluate import engine_judge  # noqa: E402
from j1core.judge.step import build_prompts  # noqa: E402
from j1core.judge.tokens import forced_suffix_ids, letter_ids  # noqa: E402
from j1core.model import SMOLLM2_ALIAS, load_model, resolve_model_path  # noqa: E402

LLMBAR_LOG_MEAN, LLMBAR_LOG_SD, LLMBAR_MIN, LLMBAR_MAX = 5.66, 0.48, 162, 1046  # prompt tokens, Natural subset
WORDS = ("the answer explains how water boils at a lower temperature on a mountain because air pressure falls "
         "and the boiling point follows it so cooking takes longer up there than at sea level").split()


def llmbar_pairs(limit: int):
    """The first `limit` LLMBar Natural pairs, or None when the shared data is absent."""
    from j1core.data.benchmarks import load_benchmark

    try:
        return load_benchmark("llmbar", None, "Natural")[:limit]
    except (FileNotFoundError, ValueError):
        return None


def synthetic_pairs(tokenizer, count: int, seed: int = 0):
    """Pairs whose judge prompts have LLMBar-Natural-like token lengths (a seeded log-normal, clipped)."""
    rng = random.Random(f"j1-bench-judge:{seed}")
    base = len(build_prompts([Pair("x", "Q", "a", "b", "synthetic")], "pairwise", tokenizer)[0].ids)
    pairs = []
    for i in range(count):
        target = min(LLMBAR_MAX, max(LLMBAR_MIN, round(math.exp(rng.gauss(LLMBAR_LOG_MEAN, LLMBAR_LOG_SD)))))
        words = max(2, target - base)  # about one token per word
        text = [WORDS[(i + k) % len(WORDS)] for k in range(words)]
        q, a, b = words // 2, words // 4, words - words // 2 - words // 4
        pairs.append(Pair(f"synthetic-{i}", " ".join(text[:q]), " ".join(text[q:q + a]),
                          " ".join(text[q + a:q + a + b]), "synthetic"))
    return pairs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 pairs, one round")
    parser.add_argument("--pairs", type=int, default=None, help="pairs judged (2 judgments each; default 8)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1, help="alternating rounds after the warm-up (default 1)")
    parser.add_argument("--chunk-size", type=int, default=32, help="evaluation's prompts per engine call")
    parser.add_argument("--vllm-dtypes", default=None,
                        help="comma list of float32,bfloat16 (default: the CPU's best); empty: no vLLM rows")
    parser.add_argument("--synthetic", action="store_true", help="synthetic prompts even when LLMBar is present")
    parser.add_argument("--no-write", action="store_true", help="print only, no bench/results/judge.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    count = args.pairs or (4 if args.quick else 8)
    repeats = args.repeats
    if args.vllm_dtypes is None:
        args.vllm_dtypes = best_dtype(cpu_model_and_flags()[1])

    peaks = measure_peaks()
    model, tokenizer = load_model(SMOLLM2_ALIAS)
    pairs = None if args.synthetic else llmbar_pairs(count)
    source = "LLMBar Natural (../shared/data)" if pairs else "synthetic, LLMBar-Natural-like lengths"
    pairs = pairs or synthetic_pairs(tokenizer, count)
    items = build_prompts(pairs, "pairwise", tokenizer)
    suffix, letters = forced_suffix_ids(tokenizer), letter_ids(tokenizer)
    prompt_tokens = sum(len(it.ids) + len(suffix) for it in items)

    def j1_side(dtype: torch.dtype):
        """generate.py judge's path (its defaults, evaluation's batch budget) on an engine in `dtype`, warmed up."""
        engine = RolloutEngine(model, tokenizer, max_batch_tokens=65536, dtype=dtype)
        judge = engine_judge(engine, tokenizer, "pairwise", True, 512, 0, 0.0, 1.0)
        judge(items[:2], 1, 0)  # warm-up

        def run():
            return ["A" if group[0]["p_a"] >= 0.5 else "B" for start in range(0, len(items), args.chunk_size)
                    for group in judge(items[start:start + args.chunk_size], 1, 0)]
        return run

    sides = {"j1 (evaluation path, float32)": ("float32", j1_side(torch.float32))}
    if bf16_matmul_native("cpu"):  # generate.py judge --rollout-dtype bf16 (or auto where it measures faster)
        sides["j1 (evaluation path, --rollout-dtype bf16)"] = ("bfloat16", j1_side(torch.bfloat16))
    procs = []
    info = {}
    with tempfile.TemporaryDirectory(prefix="j1-bench-judge-") as logs:
        try:
            dtypes = [d for d in args.vllm_dtypes.split(",") if d]
            if dtypes:
                from vllm_env import ensure_vllm_python

                python = ensure_vllm_python()
            for dtype in dtypes:
                print(f"starting vLLM ({dtype}) ...", flush=True)
                kv_gb = kv_space_gb(model.config, len(items), max(len(it.ids) for it in items) + len(suffix) + 1, dtype)
                proc = VLLMProcess(python, resolve_model_path(SMOLLM2_ALIAS), dtype, args.threads, logs,
                                   kv_space_gb=kv_gb)
                procs.append(proc)
                info = proc.info

                def run_vllm(proc=proc):
                    out = proc.request(prompts=[it.ids + suffix for it in items], n=1, max_tokens=1,
                                       temperature=0.0, allowed_token_ids=letters)
                    return ["A" if g[0][0] == letters[0] else "B" for g in out["token_ids"]]
                sides[f"vLLM {dtype} (prefill + 1 token among A/B)"] = (dtype, run_vllm)
            for name, (_, run) in sides.items():
                if name.startswith("vLLM"):
                    run()  # warm-up (vLLM: first batch shapes; the j1 sides warmed up when built)
            times = {name: [] for name in sides}
            verdicts = {}
            for r in range(repeats):
                names = list(sides)
                names = names[r % len(names):] + names[:r % len(names)]
                for name in names:
                    start = time.perf_counter()
                    verdicts[name] = sides[name][1]()
                    times[name].append(time.perf_counter() - start)
                    print(f"round {r + 1}: {name}: {times[name][-1]:.2f} s", flush=True)
        finally:
            for proc in procs:
                proc.close()

    ref = verdicts["j1 (evaluation path, float32)"]
    lens = sorted(len(it.ids) for it in items)
    lines = [f"\n{len(items)} judgments ({len(pairs)} pairs x 2 orders), prompts {lens[0]}-{lens[-1]} tokens "
             f"(median {statistics.median(lens):.0f}; {prompt_tokens} in all with the suffix), source: {source}; "
             f"median of {repeats} alternating round(s)\n",
             "| side | dtype | seconds | judgments/s | prompt tok/s | % of GEMM peak | same verdict as j1 "
             "| j1 speed-up |",
             "|---|---|---|---|---|---|---|---|"]
    params = sum(p.numel() for n, p in model.named_parameters() if p.dim() == 2 and "embed_tokens" not in n)
    params += model.get_output_embeddings().weight.numel() if model.config.tie_word_embeddings else 0
    j1_s = statistics.median(times["j1 (evaluation path, float32)"])
    for name, (dtype, _) in sides.items():
        s = statistics.median(times[name])
        agree = sum(a == b for a, b in zip(verdicts[name], ref)) / len(ref)
        rate = prompt_tokens / s
        lines.append(f"| {name} | {dtype} | {s:.2f} | {len(items) / s:.2f} | {rate:.0f} | "
                     f"{100 * 2 * params * rate / (peaks[dtype] * 1e9):.1f}% | {100 * agree:.0f}% | {s / j1_s:.2f}x |")
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        notes = (f"vLLM {info['vllm']} (torch {info['torch']}, transformers {info['transformers']}), own process "
                 "and environment" if info else "no vLLM rows")
        write_result("judge-quick" if args.quick else "judge",
                     header("Judgments per second: j1's evaluation path against vLLM", peaks=peaks, notes=notes) +
                     f"\nCommand: `python bench/judge.py {' '.join(sys.argv[1:])}`; % of GEMM peak counts the "
                     f"weights' FLOPs (2 x {params / 1e6:.1f}M per prompt token) at the side's dtype.\n" + text)


if __name__ == "__main__":
    main()
