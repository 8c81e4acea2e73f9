"""Benchmark of the log-prob kernels: time and peak extra memory of j1's paths against the peers' chunked ones.

    python bench/logprob.py --quick        # SmolLM2 sizes, N = 1,024 only (about a minute on 2 CPU cores)
    python bench/logprob.py                # make bench: SmolLM2 N = 1,024, Llama-3-8B (H=4,096, V=128,256) N = 128
    python bench/logprob.py --full         # SmolLM2 at N = 1,024 / 4,096 / 16,384, Llama-3-8B at N = 128 / 1,024

Paths: "naive" (full logits, log_softmax, gather: j1's reference), "chunked" (j1's fused_linear_logprob, impl
chunked), "trl" (TRL 1.16's ChunkedLogProbFunction from trl.kernels.chunked_logprob, the function its
GRPOTrainer's fused LM head calls; torch ops off Triton devices), "liger-chunked" (Liger-Kernel's
_ChunkedSelectiveLogProbFunction from liger_kernel.chunked_loss.fused_linear_ppo, the pure-PyTorch sequence x
vocab chunked selective log-softmax its fused GRPO loss uses; both peers at their default chunk sizes),
"grad-in-fwd" (below; opt-in with --paths), and on GPU "triton" and "liger" (Liger's fused linear cross-entropy).
Results go to bench/results/logprob.md (logprob-quick.md with --quick).

Prints one markdown table. "fwd" is a no-grad forward (old / reference log-probs); "fwd+bwd" is a forward with
gradients plus backward of sum(g * logp) w.r.t. hidden and weight (policy log-probs). Peak extra memory is what
the operation adds on top of its inputs, gradients included: on CUDA torch.cuda.max_memory_allocated; on CPU,
where no tracking allocator exists, the resident-set high-water mark (getrusage ru_maxrss) of a fresh
subprocess per (case, path) minus its RSS just before the operation. Ratios are to the naive path of the
same run. "grad-in-fwd" is Liger's scheme (gradients computed during the forward) for a scalar sum loss only:
it cannot serve per-token GRPO weights, and is here to measure what recompute-in-backward costs.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from kernels import fused_linear_logprob
from kernels.chunked import TARGET_CHUNK_ELEMENTS
from kernels.reference import logits_fp32

SMOLLM2, LLAMA3_8B = (576, 49_152), (4_096, 128_256)


def cases(quick: bool, full: bool = False):
    if quick:
        return [("SmolLM2", *SMOLLM2, 1_024)]
    if full:
        return [("SmolLM2", *SMOLLM2, n) for n in (1_024, 4_096, 16_384)] + \
            [("Llama-3-8B", *LLAMA3_8B, n) for n in (128, 1_024)]
    return [("SmolLM2", *SMOLLM2, 1_024), ("Llama-3-8B", *LLAMA3_8B, 128)]


def make_inputs(n, h, v, dtype, device, seed=0):
    gen = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n, h, generator=gen).to(device, dtype).requires_grad_()
    # In place: a temporary copy of a Llama-sized weight (2 GB) would raise the RSS high-water mark before the
    # measured call starts, and the CPU peak is read from that mark.
    weight = torch.empty(v, h).normal_(generator=gen).div_(h ** 0.5).to(device, dtype).requires_grad_()
    targets = torch.randint(0, v, (n,), generator=gen).to(device)
    grad_out = torch.randn(n, generator=gen).to(device)
    return hidden, weight, targets, grad_out


def grad_in_forward_sum(hidden, weight, targets, grad_out, chunk_size=None):
    """Liger-style: d(sum g * logp)/d(hidden, weight) computed chunk by chunk in the forward (g known up front),
    chunks of whole-vocabulary rows of j1's chunk budget."""
    chunk = chunk_size or max(1, min(hidden.shape[0], TARGET_CHUNK_ELEMENTS // weight.shape[0]))
    h, w = hidden.detach(), weight.detach()
    grad_h, grad_w = torch.empty_like(h), torch.zeros_like(w, dtype=torch.float32)
    for start in range(0, h.shape[0], chunk):
        rows = slice(start, start + chunk)
        z = logits_fp32(h[rows], w)
        dz = torch.softmax(z, dim=-1).mul_(-grad_out[rows, None])
        dz[torch.arange(dz.shape[0], device=dz.device), targets[rows]] += grad_out[rows]
        dz = dz.to(h.dtype)
        grad_h[rows] = dz @ w
        grad_w += (dz.T @ h[rows]).float()
    return grad_h, grad_w


def run_path(path, hidden, weight, targets, grad_out, backward):
    if path == "grad-in-fwd":
        return grad_in_forward_sum(hidden, weight, targets, grad_out)
    impl = {"naive": "reference"}.get(path, path)
    if path == "liger":
        return run_liger(hidden, weight, targets, backward)
    if path in PEERS:
        if not backward:
            with torch.no_grad():
                return PEERS[path](hidden, weight, targets)
        logp = PEERS[path](hidden, weight, targets)
        return torch.autograd.grad((logp * grad_out).sum(), (hidden, weight))
    if not backward:
        with torch.no_grad():
            return fused_linear_logprob(hidden, weight, targets, impl=impl)
    logp = fused_linear_logprob(hidden, weight, targets, impl=impl)
    return torch.autograd.grad((logp * grad_out).sum(), (hidden, weight))


def trl_chunked(hidden, weight, targets):
    """TRL 1.16's chunked log-prob autograd function, as its fused LM head calls it (no bias, T = 1, its
    default vocabulary chunk, log-probs only)."""
    from trl.kernels.chunked_logprob import ChunkedLogProbFunction
    from trl.trainer.utils import _CHUNKED_LOGPROB_CHUNK_SIZE

    return ChunkedLogProbFunction.apply(hidden, weight, None, targets, 1.0, _CHUNKED_LOGPROB_CHUNK_SIZE, None, 1.0,
                                        ())[0]


def liger_chunked(hidden, weight, targets):
    """Liger-Kernel's chunked selective log-softmax (pure PyTorch; sequence x vocabulary chunks, logits
    recomputed in backward), as its fused PPO / GRPO losses call it."""
    from liger_kernel.chunked_loss.fused_linear_ppo import (
        _SELECTIVE_LOGPROB_VOCAB_CHUNK_SIZE,
        _ChunkedSelectiveLogProbFunction,
    )

    return _ChunkedSelectiveLogProbFunction.apply(hidden, weight, targets, None, 1.0,
                                                  _SELECTIVE_LOGPROB_VOCAB_CHUNK_SIZE)


PEERS = {"trl": trl_chunked, "liger-chunked": liger_chunked}


def run_liger(hidden, weight, targets, backward):
    """Liger's fused linear cross-entropy with reduction='sum' (= -sum logp); it has no per-token weights."""
    from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss

    loss_fn = LigerFusedLinearCrossEntropyLoss(reduction="sum")
    if not backward:
        with torch.no_grad():
            return loss_fn(weight, hidden, targets)
    return torch.autograd.grad(loss_fn(weight, hidden, targets), (hidden, weight))


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_it(fn, device, repeats):
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def peak_extra_bytes(fn, device) -> int:
    if device.type == "cuda":
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        result = fn()
        torch.cuda.synchronize()
        del result
        return torch.cuda.max_memory_allocated() - before
    from machine import peak_rss_bytes

    before = rss_bytes()
    peak_rss_bytes(reset=True)
    result = fn()
    del result
    return peak_rss_bytes() - before


def measure(path, n, h, v, dtype, device, repeats, parts=("memory", "time")):
    """{fwd_mem, fwdbwd_mem} and / or {fwd_s, fwdbwd_s} of one path; memory first (RSS high-water only grows)."""
    warm = make_inputs(8, h, 64, dtype, device)  # one-time allocator / thread-pool costs stay out of the peaks
    run_path(path, *warm, backward=True)
    hidden, weight, targets, grad_out = make_inputs(n, h, v, dtype, device)
    def forward():
        return run_path(path, hidden, weight, targets, grad_out, backward=False)

    def training():
        return run_path(path, hidden, weight, targets, grad_out, backward=True)

    out = {}
    if "memory" in parts:
        out.update(fwd_mem=peak_extra_bytes(forward, device), fwdbwd_mem=peak_extra_bytes(training, device))
    if "time" in parts:
        if device.type == "cuda":
            forward(), training()  # compile / warm up
        out["fwd_s"] = time_it(forward, device, repeats)
        out["fwdbwd_s"] = time_it(training, device, repeats)
    return out


def measure_in_subprocess(path, n, h, v, dtype, repeats):
    """A fresh interpreter per (case, path, part), so each CPU high-water mark belongs to that path alone.
    Memory is read with glibc's mmap threshold fixed at 64 KB: every large buffer is then mapped on allocation
    and unmapped when freed, so the RSS high-water mark is the peak of live memory (with the default, adaptive
    threshold, freed buffers may stay in the heap and the same path read 155 or 260 MB in two runs). Time is
    measured in a second interpreter with the default allocator, which reuses freed memory without page faults."""
    out = {}
    for part, env in (("memory", {"MALLOC_MMAP_THRESHOLD_": "65536"}), ("time", {})):
        code = (f"import json, sys, torch; sys.path.insert(0, {str(Path(__file__).parent)!r}); import logprob; "
                f"print(json.dumps(logprob.measure({path!r}, {n}, {h}, {v}, torch.{dtype}, torch.device('cpu'), "
                f"{repeats}, ({part!r},))))")
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                                env={**os.environ, **env})
        if result.returncode != 0:
            raise RuntimeError(f"bench case {path} N={n} failed:\n{result.stderr[-2000:]}")
        out.update(json.loads(result.stdout.strip().splitlines()[-1]))
    return out


def available_paths(device, wanted):
    import importlib.util

    paths = ["naive", "chunked"] + (["grad-in-fwd"] if wanted and "grad-in-fwd" in wanted else [])
    for path, module in (("trl", "trl"), ("liger-chunked", "liger_kernel")):
        if importlib.util.find_spec(module) is not None:
            paths.append(path)
        else:
            print(f"{module} not installed: no {path} row", file=sys.stderr)
    if device.type == "cuda":
        paths.append("triton")
        try:
            import liger_kernel  # noqa: F401
            paths.append("liger")
        except ImportError:
            print("liger-kernel not installed: no Liger column", file=sys.stderr)
    return [p for p in paths if not wanted or p in wanted]


def check_paths(paths, dtype, device):
    """Every path's log-probs and gradients agree with naive on a small case before anything is timed."""
    inputs = make_inputs(64, 32, 5_000, dtype, device, seed=1)
    want_fwd = run_path("naive", *inputs, backward=False)
    want_grad = run_path("naive", *inputs, backward=True)
    tol = 1e-4 if dtype == torch.float32 else 3e-2
    for path in paths:
        if path in ("naive", "grad-in-fwd", "liger"):
            continue
        got_fwd = run_path(path, *inputs, backward=False)
        got_grad = run_path(path, *inputs, backward=True)
        ok = torch.allclose(got_fwd.float(), want_fwd.float(), atol=tol, rtol=tol) and all(
            torch.allclose(g.float(), w.float(), atol=tol, rtol=tol) for g, w in zip(got_grad, want_grad))
        if not ok:
            raise RuntimeError(f"path {path}: log-probs or gradients differ from naive; its timings would mislead")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="SmolLM2 sizes at N = 1,024 only")
    parser.add_argument("--full", action="store_true", help="SmolLM2 N = 1,024-16,384, Llama-3-8B N = 128 and 1,024")
    parser.add_argument("--no-write", action="store_true", help="print only, no bench/results/logprob.md")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default=None, help="float32 | bfloat16 (default: float32 on CPU, bf16 on GPU)")
    parser.add_argument("--paths", nargs="*", default=None,
                        help="subset of naive chunked trl liger-chunked grad-in-fwd triton liger")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per measurement (median)")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = parser.parse_args()
    device = torch.device(args.device)
    dtype = args.dtype or ("float32" if device.type == "cpu" else "bfloat16")
    repeats = args.repeats or (1 if device.type == "cpu" else 10)
    rows = []
    check_paths(available_paths(device, args.paths), getattr(torch, dtype), device)
    for model, h, v, n in cases(args.quick, args.full):
        results = {}
        for path in available_paths(device, args.paths):
            if device.type == "cpu":
                results[path] = measure_in_subprocess(path, n, h, v, dtype, repeats)
            else:
                results[path] = measure(path, n, h, v, getattr(torch, dtype), device, repeats)
                torch.cuda.empty_cache()
            row = {"model": model, "H": h, "V": v, "N": n, "path": path, **results[path]}
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    text = print_table(rows, device, dtype)
    if not args.no_write:
        from machine import header, write_result

        sizes = "--quick" if args.quick else ("--full" if args.full else "default sizes")
        write_result("logprob-quick" if args.quick else "logprob",
                     header("Log-prob kernels: j1 against naive, TRL and Liger", ("trl", "liger-kernel"),
                            notes=f"{device.type}, {dtype}, {sizes}, median of {repeats} timed run(s)") +
                     f"\nCommand: `python bench/logprob.py {' '.join(sys.argv[1:])}`\n" + text)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


def print_table(rows, device, dtype) -> str:
    """Print the markdown table (and return it)."""
    naive = {(r["model"], r["N"]): r for r in rows if r["path"] == "naive"}
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    lines = [f"\n{name}, {dtype}; ratios are to naive in the same run\n",
             "| model | N | path | fwd ms | fwd+bwd ms | fwd peak MB | fwd+bwd peak MB | fwd+bwd time / naive "
             "| fwd+bwd mem / naive | fwd TFLOP/s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        base = naive.get((r["model"], r["N"]))
        time_ratio = f"{r['fwdbwd_s'] / base['fwdbwd_s']:.2f}" if base else "-"
        mem_ratio = f"{r['fwdbwd_mem'] / base['fwdbwd_mem']:.3f}" if base and base["fwdbwd_mem"] > 0 else "-"
        tflops = 2 * r["N"] * r["H"] * r["V"] / r["fwd_s"] / 1e12
        lines.append(f"| {r['model']} | {r['N']} | {r['path']} | {r['fwd_s'] * 1e3:.1f} | {r['fwdbwd_s'] * 1e3:.1f} "
                     f"| {r['fwd_mem'] / 2**20:.1f} | {r['fwdbwd_mem'] / 2**20:.1f} | {time_ratio} | {mem_ratio} "
                     f"| {tflops:.3f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    return text


if __name__ == "__main__":
    main()
