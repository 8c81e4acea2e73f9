"""Gradient checkpointing in the policy's log-prob pass: the activation memory it saves, and what it costs in time.

    python bench/checkpointing.py --quick    # 4 small layers, 512 tokens: a smoke run (seconds)
    python bench/checkpointing.py            # SmolLM2-135M shape (random weights), 2,048 tokens (minutes on CPU);
                                             # writes bench/results/checkpointing.md

One token_logprobs forward + backward of sum(g * logp) over every completion token, float32, without and with
--gradient-checkpointing (j1core.logprobs.enable_gradient_checkpointing), in two layouts of --tokens tokens:
"plain", one row (the plain path); "grouped", one prompt of --tokens / 2 tokens with G = 4 completions of
--tokens / 8 (the grouped path: the prompt runs once, its completions attend to its KV).

Memory is what torch's allocator reports, not RSS: on CPU from torch.profiler's memory events
(profile_memory=True: every allocation and free, in order), on CUDA from torch.cuda.memory_allocated and
max_memory_allocated. Columns:
- kept for backward: bytes still allocated when the forward returns, beyond those before it: what autograd
  holds for the backward (every layer's activations; with checkpointing, each layer's input and the KV that
  later passes attend to) plus the log-probs;
- fwd+bwd peak: the highest allocated bytes during forward + backward, above those before it: the kept bytes
  and the backward's temporaries (with checkpointing, one layer's recomputed activations at a time); the
  parameter gradients are allocated before (by a warm-up pass), so they are not in it;
- fwd+bwd ms: median wall time of --repeats forward + backward without the profiler.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from j1core.logprobs import enable_gradient_checkpointing, token_logprobs  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import header, write_result  # noqa: E402

SMOLLM2_135M = dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                    num_key_value_heads=3, vocab_size=49152, rope_theta=100000.0, tie_word_embeddings=True)
QUICK = dict(SMOLLM2_135M, hidden_size=192, intermediate_size=512, num_hidden_layers=4, num_attention_heads=3,
             num_key_value_heads=1)
GROUP = 4


def build_model(shape, tokens, device, checkpointing, seed=0):
    from transformers import AutoModelForCausalLM, LlamaConfig

    from j1core.model import attn_implementation

    config = LlamaConfig(**shape, max_position_embeddings=max(2048, tokens))
    config._attn_implementation = attn_implementation(device)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).to(device).train()
    if checkpointing:
        enable_gradient_checkpointing(model)
    return model


def make_batch(layout, tokens, vocab, device, seed=0):
    """(input_ids, attention_mask, loss_mask, prompt_lengths, group_size) of one layout."""
    gen = torch.Generator().manual_seed(seed)
    if layout == "plain":
        ids = torch.randint(0, vocab, (1, tokens), generator=gen)
        loss_mask = torch.ones_like(ids)
        loss_mask[:, 0] = 0
        return ids.to(device), torch.ones_like(ids).to(device), loss_mask.to(device), None, 1
    prompt, completion = tokens // 2, tokens // 8
    ids = torch.randint(0, vocab, (1, prompt), generator=gen).repeat(GROUP, 1)
    ids = torch.cat([ids, torch.randint(0, vocab, (GROUP, completion), generator=gen)], dim=1)
    loss_mask = torch.zeros_like(ids)
    loss_mask[:, prompt:] = 1
    lengths = torch.full((GROUP,), prompt)
    return ids.to(device), torch.ones_like(ids).to(device), loss_mask.to(device), lengths.to(device), GROUP


def forward(model, batch):
    ids, attention_mask, loss_mask, lengths, group = batch
    return token_logprobs(model, ids, attention_mask, loss_mask, prompt_lengths=lengths, group_size=group)


def backward(logp):
    grad_out = torch.randn(logp.shape, generator=torch.Generator().manual_seed(1)).to(logp.device)
    with torch.profiler.record_function("bench.backward"):
        logp.backward(grad_out)


def forward_backward(model, batch):
    backward(forward(model, batch))


def cpu_memory(model, batch) -> tuple[int, int]:
    """(kept for backward, fwd+bwd peak) in bytes, from the allocation and free events of torch.profiler."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        forward_backward(model, batch)
    events = prof.profiler.kineto_results.events()
    backward_start = min(e.start_ns() for e in events if e.name() == "bench.backward")
    memory = sorted(((e.start_ns(), e.nbytes()) for e in events if e.name() == "[memory]"))
    live = peak = kept = 0
    for start, nbytes in memory:
        if start < backward_start:
            kept += nbytes
        live += nbytes
        peak = max(peak, live)
    return kept, peak


def cuda_memory(model, batch) -> tuple[int, int]:
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    logp = forward(model, batch)
    torch.cuda.synchronize()
    kept = torch.cuda.memory_allocated() - before
    backward(logp)
    del logp
    torch.cuda.synchronize()
    return kept, torch.cuda.max_memory_allocated() - before


def measure(shape, layout, tokens, device, checkpointing, repeats) -> dict:
    model = build_model(shape, tokens, device, checkpointing)
    batch = make_batch(layout, tokens, shape["vocab_size"], device)
    forward_backward(model, batch)  # warm-up: one-time allocations stay out of the numbers
    model.zero_grad(set_to_none=False)  # gradients allocated before the measurement: the same in both rows
    kept, peak = (cuda_memory if device.type == "cuda" else cpu_memory)(model, batch)
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        forward_backward(model, batch)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    return {"layout": layout, "tokens": tokens, "checkpointing": checkpointing, "kept": kept, "peak": peak,
            "params": params, "seconds": statistics.median(times)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 small layers and 512 tokens: a smoke run")
    parser.add_argument("--tokens", type=int, default=None, help="tokens per layout (default 2,048; --quick 512)")
    parser.add_argument("--layouts", nargs="*", default=["plain", "grouped"], choices=["plain", "grouped"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per row (median)")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    parser.add_argument("--no-write", action="store_true", help="print only, no bench/results/checkpointing.md")
    args = parser.parse_args()
    device = torch.device(args.device)
    shape = QUICK if args.quick else SMOLLM2_135M
    tokens = args.tokens or (512 if args.quick else 2048)
    rows = []
    for layout in args.layouts:
        for checkpointing in (False, True):
            rows.append(measure(shape, layout, tokens, device, checkpointing, args.repeats))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
            if device.type == "cuda":
                torch.cuda.empty_cache()
    text = table(rows, shape, device)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    if not args.no_write:
        write_result("checkpointing-quick" if args.quick else "checkpointing",
                     header("Gradient checkpointing in the log-prob pass: memory saved, time paid") +
                     f"\nCommand: `python bench/checkpointing.py {' '.join(sys.argv[1:])}`\n" + text)


def table(rows, shape, device) -> str:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    lines = [f"\n{name}, float32; {shape['num_hidden_layers']} layers, hidden {shape['hidden_size']}, "
             f"random weights ({rows[0]['params'] / 2**20:.0f} MB, its gradients as much, not counted); "
             f"ratios are to the same layout without checkpointing\n",
             "| layout | tokens | checkpointing | kept for backward MB | fwd+bwd peak MB | fwd+bwd ms "
             "| kept / without | peak / without | time / without |",
             "|---|---|---|---|---|---|---|---|---|"]
    base = {r["layout"]: r for r in rows if not r["checkpointing"]}
    for r in rows:
        b = base[r["layout"]]
        lines.append(f"| {r['layout']} | {r['tokens']} | {'on' if r['checkpointing'] else 'off'} "
                     f"| {r['kept'] / 2**20:.1f} | {r['peak'] / 2**20:.1f} | {r['seconds'] * 1e3:.0f} "
                     f"| {r['kept'] / b['kept']:.3f} | {r['peak'] / b['peak']:.3f} "
                     f"| {r['seconds'] / b['seconds']:.2f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
