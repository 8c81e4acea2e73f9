"""Rollout speed against the strongest peers, one invocation: HF generate, HF with one prefill per prompt,
vLLM's CPU build at its best dtype for this CPU (bench/vllm_env.best_dtype; --vllm-dtypes float32,bfloat16 for
both), the j1 engine on plain and on packed float32 weights and, where the CPU has bfloat16 matrix
instructions, in bfloat16 (weights and KV); and the engine at `--rollout-dtype auto`'s choice with PyTorch ops
instead of its C++ decode attention and RMSNorm (kernels/decode_attention.py), where those built.

    python bench/rollout.py --quick          # smoke run: 2 prompts x n = 4, short completions (minutes)
    python bench/rollout.py                  # both shapes below, one round (make bench), bench/results/rollout.md
    python bench/rollout.py --repeats 3      # three alternating rounds, medians (for numbers worth quoting)
    python bench/rollout.py --vllm-dtypes float32,bfloat16   # vLLM in both dtypes
    J1_VLLM_PYTHON=/path/to/venv/bin/python python bench/rollout.py   # an existing vLLM interpreter
    python bench/rollout.py --prompts my.jsonl --n 4 --new-tokens 128   # your own prompts (shape "prompts")
    python bench/rollout.py --prompts my.jsonl --n 8 --new-tokens 512 --median-new-tokens 160

Shapes (SmolLM2-135M-Instruct, bundled weights, pairwise judge prompts of ~200 tokens, both orders of each
pair adjacent as the trainer passes them, temperature 1.0, top-k / top-p off):
- judge: 8 prompts x n = 8 x exactly 64 new tokens (eos banned before);
- reasoning: 8 prompts x n = 8, up to 512 new tokens, each sample ending at its own length drawn from a seeded
  log-normal (median 160, sigma 0.7, clipped to [16, 512]: about 5% of the samples run to the cap;
  bench/forced_lengths.py), imposed identically on every generator; the HF rows are left out by
  default here (they carry all 64 rows for 512 steps: many minutes; --hf-reasoning adds them), and so are the
  engine's plain-weights and PyTorch-ops rows, which show on the judge shape what packing and the C++ kernels
  each give, and its float32 row where auto picks bfloat16 (--all-rows adds them: about three minutes of make
  bench on a slow machine).
- prompts (`--prompts FILE`, instead of the two above unless --shapes names them): each record's "prompt" (a
  string, or a list of chat messages) as a user turn of the model's chat template, x n = --n, exactly
  --new-tokens new tokens per sample, or with --median-new-tokens lengths drawn as for the reasoning shape
  (that median, capped at --new-tokens).
Every generator's per-sample token counts are checked against the shape's after each call.

Timing: each generator gets a small warm-up call, then --repeats rounds (default 1) in which the generators alternate
(the order rotates every round); the table gives medians. Per round a generator runs twice: a call with one
new token (its prefill: for HF generate that is prompts x n rows, for the others one prefill per prompt) and
the full call; decode = full - prefill. Rates: new tokens / full seconds; decode tok/s = (new tokens - samples)
/ decode seconds; prefill tok/s = unique prompt tokens / prefill seconds. "% peak" is the rate of the weights'
matrix products (2 x linear parameters x tokens; attention FLOPs not counted) as a fraction of this CPU's GEMM
rate measured at the start (bench/machine.py) in the generator's dtype. Prefill tok/s counts every prompt's
tokens, also the prefix a pair's two orders share, which the engine (and vLLM's prefix cache) computes once:
its "% peak" is an effective rate and can pass 100%; a GEMM rate measured on a busy machine is low as well.
vLLM runs in its own environment (bench/vllm_env.py) and process (bench/vllm_runner.py), one process per dtype,
pinned to cores 0..threads-1, prefix caching on (its way of sharing a prompt's KV among samples), emptied
before every call. Threads: --threads (default 2) for every generator. On a machine shared with other busy
processes the times are not meaningful.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from forced_lengths import ForceLengths, draw_lengths, force_engine_lengths  # noqa: E402
from machine import cpu_model_and_flags, header, measure_peaks, write_result  # noqa: E402
from vllm_env import VLLMProcess, best_dtype, kv_space_gb  # noqa: E402

from j1core.data.pairs import DataError, check_text_field  # noqa: E402
from j1core.data.synth_inputs import read_records  # noqa: E402
from j1core.engine.packed_linear import bf16_matmul_native  # noqa: E402
from j1core.engine.precision import rollout_dtype  # noqa: E402
from j1core.engine.rollout import RolloutEngine  # noqa: E402
from j1core.judge.prompts import judge_prompt_ids  # noqa: E402
from j1core.model import SMOLLM2_ALIAS, load_model, resolve_model_path  # noqa: E402

FILLER = ("the quick answer is that water boils at one hundred degrees at sea level but lower on a mountain "
          "because the air pressure drops and so the boiling point falls with height")
WORDS = FILLER.split(" ")
SEED = 0
PACKED_ROW = "j1 engine, float32"
PLAIN_ROW = PACKED_ROW + ", plain weights"
TORCH_OPS = ", PyTorch ops for kernels/ (decode attention, RMSNorm)"


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


def file_prompts(tokenizer, path: Path) -> list[list[int]]:
    """Prompt ids of a JSONL file (or JSON list): each record's "prompt", a string or chat messages, as the
    user turn(s) of the tokenizer's chat template, ready for the assistant's reply. DataError names the line."""
    prompts = []
    for line, record in read_records(path):
        check_text_field(record, "prompt", path, line)  # as a pairs file's prompt: text or chat messages
        prompt = record["prompt"]
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else \
            [{"role": m["role"], "content": m["content"]} for m in prompt]
        prompts.append(tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True,
                                                     return_dict=False))
    if not prompts:
        raise DataError(path, 1, "(file)", "empty_file", "no prompts")
    return prompts


def linear_params(model) -> int:
    """Parameters that a token's forward multiplies by: every 2-D weight but the input embedding, plus the LM
    head (counted once even when tied to the embedding)."""
    total = sum(p.numel() for name, p in model.named_parameters() if p.dim() == 2 and "embed_tokens" not in name)
    if getattr(model.config, "tie_word_embeddings", False):
        total += model.get_output_embeddings().weight.numel()
    return total


# ---- generators: run(prompts, lengths, full) -> token counts [prompts][n] ---------------------------------
# lengths: [prompts][n] exact new-token counts; full=False: one new token per sample (the prefill call).

class HFGenerate:
    dtype = "float32"

    def __init__(self, model, tokenizer, shared_prefill: bool):
        self.model, self.tokenizer, self.shared = model, tokenizer, shared_prefill
        ids = model.generation_config.eos_token_id
        self.eos_ids = sorted({tokenizer.eos_token_id, *(ids if isinstance(ids, list) else [ids])} - {None})

    def __call__(self, prompts, lengths, full):
        n = len(lengths[0])
        tok = self.tokenizer
        tok.padding_side = "left"
        batch = tok.pad({"input_ids": prompts}, return_tensors="pt")
        width = batch["input_ids"].shape[1]
        new = max(max(row) for row in lengths) if full else 1
        # One length for all: HF's own min_new_tokens; else the per-row ban / force of the eos token.
        processors = [ForceLengths(lengths, width, self.eos_ids, tok.eos_token_id)] if full and not same(lengths) \
            else []
        kwargs = dict(do_sample=True, temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=new,
                      min_new_tokens=new if full and same(lengths) else 0, pad_token_id=tok.pad_token_id,
                      eos_token_id=self.eos_ids, logits_processor=processors)
        torch.manual_seed(SEED)
        with torch.inference_mode():
            if not self.shared:
                out = self.model.generate(**batch, num_return_sequences=n, **kwargs)
            else:  # prefill prompt[:-1] once per prompt, repeat its KV n times, generate from the last token
                mask = batch["attention_mask"]
                positions = (mask.cumsum(-1) - 1).clamp(min=0)
                cache = self.model(input_ids=batch["input_ids"][:, :-1], attention_mask=mask[:, :-1],
                                   position_ids=positions[:, :-1], use_cache=True).past_key_values
                cache.batch_repeat_interleave(n)
                out = self.model.generate(input_ids=batch["input_ids"].repeat_interleave(n, 0),
                                          attention_mask=mask.repeat_interleave(n, 0), past_key_values=cache,
                                          **kwargs)
        new_ids = out[:, width:].tolist()
        counts = [hf_length(row, self.eos_ids, tok.pad_token_id) for row in new_ids]
        return [counts[i * n:(i + 1) * n] for i in range(len(prompts))]


def same(lengths) -> bool:
    return len({x for row in lengths for x in row}) == 1


def hf_length(row, eos_ids, pad_id) -> int:
    """New tokens of one HF output row: up to and including its first eos (then HF pads)."""
    for k, t in enumerate(row):
        if t in eos_ids:
            return k + 1
    return len(row)


class Engine:
    def __init__(self, model, tokenizer, packed: bool | None, dtype: torch.dtype = torch.float32,
                 decode_kernel: bool | None = None):
        self.engine = RolloutEngine(model, tokenizer, max_batch_tokens=1 << 22, packed=packed, dtype=dtype,
                                    decode_kernel=decode_kernel)
        self.dtype = str(self.engine.decoder.dtype).removeprefix("torch.")  # the dtype the engine computes in
        self.eos_ids, self.force_id = self.engine.eos_ids, tokenizer.eos_token_id
        self.packed = self.engine.decoder.packed

    def __call__(self, prompts, lengths, full):
        n = len(lengths[0])
        if not full or same(lengths):  # one length for all: the engine's own min_new_tokens
            new = lengths[0][0] if full else 1
            out = self.engine.generate(prompts, n=n, max_new_tokens=new, min_new_tokens=new, temperature=1.0,
                                       seed=SEED)
        else:
            with force_engine_lengths(lengths, SEED, self.eos_ids, self.force_id):
                out = self.engine.generate(prompts, n=n, max_new_tokens=max(max(row) for row in lengths),
                                           temperature=1.0, seed=SEED)
        return [[len(c.token_ids) for c in group] for group in out]


class VLLM:
    """vLLM's CPU build at one dtype, in its own process for the whole bench (bench/vllm_env.VLLMProcess)."""

    def __init__(self, python, model_dir, dtype, threads, log_dir, kv_gb, max_model_len=2048):
        self.dtype = dtype
        self.proc = VLLMProcess(python, model_dir, dtype, threads, log_dir, seed=SEED, kv_space_gb=kv_gb,
                                max_model_len=max_model_len)
        self.info = self.proc.info

    def __call__(self, prompts, lengths, full):
        per_sample = full and not same(lengths)
        max_tokens = lengths if per_sample else (lengths[0][0] if full else 1)
        out = self.proc.request(prompts=prompts, n=len(lengths[0]), max_tokens=max_tokens, temperature=1.0)
        return [[len(t) for t in group] for group in out["token_ids"]]

    def close(self):
        self.proc.close()


# ---- the bench ---------------------------------------------------------------------------------------------
def run_shape(name, generators, prompts, lengths, repeats):
    """{generator: [(prefill_s, full_s)]}, rounds alternating, each call's token counts checked."""
    expect_prefill = [[1] * len(row) for row in lengths]
    times = {g: [] for g in generators}
    for r in range(repeats):
        names = list(generators)
        names = names[r % len(names):] + names[:r % len(names)]  # rotate who goes first
        for g in names:
            run = generators[g]
            start = time.perf_counter()
            got = run(prompts, lengths, full=False)
            prefill = time.perf_counter() - start
            check(g, "prefill call", got, expect_prefill)
            start = time.perf_counter()
            got = run(prompts, lengths, full=True)
            full = time.perf_counter() - start
            check(g, name, got, lengths)
            times[g].append((prefill, full))
            print(f"[{name}] round {r + 1}: {g}: prefill {prefill:.2f} s, full {full:.2f} s", flush=True)
    return times


def check(generator, what, got, expected):
    if got != expected:
        raise RuntimeError(f"{generator} ({what}): token counts {got} differ from the shape's {expected}")


def table(name, times, prompts, lengths, params, peaks, repeats, reference):
    samples = sum(len(row) for row in lengths)
    new_tokens = sum(sum(row) for row in lengths)
    prompt_tokens = sum(len(p) for p in prompts)
    lens = [len(p) for p in prompts]
    flat = sorted(x for row in lengths for x in row)
    lines = [f"\n## {name}: {len(prompts)} prompts ({min(lens)}-{max(lens)} tokens) x n={len(lengths[0])}, "
             f"new tokens per sample {flat[0]}-{flat[-1]} (median {statistics.median(flat):.0f}), "
             f"{new_tokens} in all; median of {repeats} alternating rounds\n",
             "| generator | dtype | prefill s | decode s | total s | new tok/s | decode tok/s | prefill tok/s "
             f"| decode % peak | prefill % peak | speed-up of {reference} (auto's choice) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    best = {}
    for g, runs in times.items():
        dtype = runs["dtype"]
        prefill = statistics.median(p for p, _ in runs["t"])
        total = statistics.median(f for _, f in runs["t"])
        decode = max(total - prefill, 1e-9)
        best[g] = new_tokens / total
        decode_rate = (new_tokens - samples) / decode
        prefill_rate = prompt_tokens / prefill
        peak = peaks[dtype] * 1e9
        lines.append(f"| {g} | {dtype} | {prefill:.2f} | {decode:.2f} | {total:.2f} | {new_tokens / total:.1f} | "
                     f"{decode_rate:.1f} | {prefill_rate:.0f} | {100 * 2 * params * decode_rate / peak:.1f}% | "
                     f"{100 * 2 * params * prefill_rate / peak:.1f}% | {{ratio:{g}}} |")
    ref = best.get(reference)
    text = "\n".join(lines)
    for g, rate in best.items():
        text = text.replace(f"{{ratio:{g}}}", f"{ref / rate:.2f}x" if ref else "-")
    return text + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke sizes: 2 prompts x n=4, 16 / up to 48 tokens")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1, help="alternating rounds (default 1)")
    parser.add_argument("--shapes", default=None,
                        help="comma list of judge, reasoning, prompts (default: judge,reasoning; --prompts: prompts)")
    parser.add_argument("--prompts", type=Path, default=None,
                        help='JSONL (or a JSON list) of {"prompt": text or chat messages}: the "prompts" shape')
    parser.add_argument("--n", type=int, default=4, help="samples per prompt of the prompts shape (default 4)")
    parser.add_argument("--new-tokens", type=int, default=128,
                        help="new tokens per sample of the prompts shape, exactly (default 128), or their cap")
    parser.add_argument("--median-new-tokens", type=int, default=None,
                        help="prompts shape: lengths drawn log-normal around this median, capped at --new-tokens")
    parser.add_argument("--vllm-dtypes", default=None,
                        help="comma list of float32,bfloat16 (default: the CPU's best); empty: no vLLM rows")
    parser.add_argument("--hf-reasoning", action="store_true",
                        help="HF rows on the reasoning shape (and a prompts shape of drawn lengths) too")
    parser.add_argument("--all-rows", action="store_true",
                        help="the engine's plain-weights and PyTorch-ops rows on the reasoning shape too")
    parser.add_argument("--no-write", action="store_true", help="print only, no bench/results/rollout.md")
    args = parser.parse_args()
    if args.shapes is None:
        args.shapes = "prompts" if args.prompts else "judge,reasoning"
    if args.n < 1 or args.new_tokens < 1 or (args.median_new_tokens is not None and args.median_new_tokens < 1):
        parser.error("--n, --new-tokens and --median-new-tokens must be positive")
    if args.prompts is not None and not args.prompts.is_file():
        parser.error(f"--prompts: no file {args.prompts}")
    torch.set_num_threads(args.threads)
    repeats = args.repeats
    if args.vllm_dtypes is None:
        args.vllm_dtypes = best_dtype(cpu_model_and_flags()[1])
    pairs, n = (1, 4) if args.quick else (4, 8)
    judge_len, reason_max, reason_median = (16, 48, 24) if args.quick else (64, 512, 160)

    peaks = measure_peaks()
    model, tokenizer = load_model(SMOLLM2_ALIAS)
    params = linear_params(model)
    prompts = judge_prompts(tokenizer, pairs, 200)
    shapes = {"judge": (prompts, [[judge_len] * n for _ in prompts]),
              "reasoning": (prompts, draw_lengths(len(prompts), n, reason_max, reason_median, seed=SEED))}
    if args.prompts is not None:
        try:
            own = file_prompts(tokenizer, args.prompts)
        except (DataError, OSError, UnicodeDecodeError) as error:
            parser.error(f"--prompts: {error}")
        lengths = [[args.new_tokens] * args.n for _ in own] if args.median_new_tokens is None else \
            draw_lengths(len(own), args.n, args.new_tokens, args.median_new_tokens, min_len=1, seed=SEED)
        shapes["prompts"] = (own, lengths)
    wanted = [s for s in args.shapes.split(",") if s]
    for s in wanted:
        if s not in shapes:
            parser.error(f"--shapes: unknown shape {s!r} (judge, reasoning{', prompts' if args.prompts else ''}; "
                         "prompts needs --prompts)")

    generators = {"HF generate": HFGenerate(model, tokenizer, shared_prefill=False),
                  "HF, one prefill per prompt, KV repeated n times": HFGenerate(model, tokenizer, True)}
    engines = {PLAIN_ROW: Engine(model, tokenizer, packed=False),
               PACKED_ROW: Engine(model, tokenizer, packed=None)}
    if bf16_matmul_native("cpu"):  # without bfloat16 instructions it is emulated: no row
        engines["j1 engine, bfloat16"] = Engine(model, tokenizer, packed=None, dtype=torch.bfloat16)
    auto, why = rollout_dtype("auto", model, "cpu")
    reference = f"j1 engine, {str(auto).removeprefix('torch.')}"  # what --rollout-dtype auto runs here
    # What one part of the engine gives, and the float32 engine beside auto's bfloat16: judge shape only
    # (--all-rows adds them to the reasoning shape).
    diagnostic = {PLAIN_ROW, reference + TORCH_OPS, PACKED_ROW} - {reference}
    if engines[reference].engine.decode_kernel is not None:  # the C++ kernels' share, measured
        engines[f"{reference}{TORCH_OPS}"] = Engine(model, tokenizer, packed=None, dtype=auto, decode_kernel=False)
    vllms, info = {}, {}
    dtypes = [d for d in args.vllm_dtypes.split(",") if d]
    with tempfile.TemporaryDirectory(prefix="j1-bench-vllm-") as logs:
        try:
            if dtypes:
                from vllm_env import ensure_vllm_python

                python = ensure_vllm_python()
                for dtype in dtypes:
                    print(f"starting vLLM ({dtype}) ...", flush=True)
                    longest = max(len(p) + max(row) for s in wanted for p, row in zip(*shapes[s]))
                    rows = max(len(shapes[s][1]) * len(shapes[s][1][0]) for s in wanted)
                    kv_gb = kv_space_gb(model.config, rows, longest, dtype)
                    vllms[f"vLLM {dtype}"] = VLLM(python, resolve_model_path(SMOLLM2_ALIAS), dtype, args.threads,
                                                  logs, kv_gb, max_model_len=max(2048, longest))
                    info = vllms[f"vLLM {dtype}"].info
            everyone = {**generators, **vllms, **engines}
            for run in everyone.values():  # warm-up
                run(prompts[:1], [[4]], full=True)
            out = [header("Rollout: j1 engine against HF and vLLM", peaks=peaks,
                          notes=(f"vLLM {info['vllm']} (torch {info['torch']}, transformers {info['transformers']}), "
                                 "own process and environment" if info else "no vLLM rows")),
                   f"Command: `python {' '.join(['bench/rollout.py', *sys.argv[1:]])}`; "
                   f"weights' FLOPs per token: 2 x {params / 1e6:.1f}M. `--rollout-dtype auto` here: {reference} "
                   f"({why}).\n"]
            for s in wanted:
                runs = dict(everyone)
                varied = s == "reasoning" or (s == "prompts" and args.median_new_tokens is not None)
                if varied and not args.hf_reasoning:
                    runs = {g: r for g, r in runs.items() if not g.startswith("HF")}
                if s == "reasoning" and not args.all_rows:
                    runs = {g: r for g, r in runs.items() if g not in diagnostic}
                shape_prompts, lengths = shapes[s]
                times = run_shape(s, runs, shape_prompts, lengths, repeats)
                table_times = {g: {"dtype": runs[g].dtype, "t": t} for g, t in times.items()}
                text = table(s, table_times, shape_prompts, lengths, params, peaks, repeats, reference)
                print(text, flush=True)
                out.append(text)
                if varied and not args.hf_reasoning:
                    out.append("HF rows left out on this shape (--hf-reasoning adds them).\n")
                if s == "reasoning" and not args.all_rows:
                    out.append("The engine's plain-weights and PyTorch-ops rows" + (
                        ", and its float32 row beside auto's bfloat16," if PACKED_ROW in diagnostic else "")
                        + " are on the judge shape only (--all-rows adds them here).\n")
        finally:
            for v in vllms.values():
                v.close()
    if not args.no_write:
        name = "rollout-quick" if args.quick else "rollout"
        write_result(name + ("-prompts" if args.prompts else ""), "\n".join(out))


if __name__ == "__main__":
    main()
