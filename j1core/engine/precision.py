"""Which dtype the rollout engine computes in (the weights' own, float32, bfloat16, or measured: auto), and
which one training's autocast uses (train_dtype: --dtype auto).

    python -m pytest tests/engine/test_precision.py -q     (speed: python bench/rollout.py)

A CPU with bfloat16 matrix instructions (AVX-512 BF16, AMX) multiplies bfloat16 matrices several times faster
than float32 ones, and bfloat16 weights and KV halve the bytes a decode step streams. For training it is not
free: the trainer recomputes the old log-probs with the policy itself (j1core/trainer.py) and logs the gap to
the sampler's, and for a float32 policy that gap grows as training moves the weights by steps finer than
bfloat16 resolves (SmolLM2 verdicts: 0.03 nats at the base weights, 0.34 after the default run), so the samples
come from a policy that lags the trained one; train.py samples in the weights' dtype unless told otherwise
(docs/experiments.md). Whether bfloat16 is faster on a given CPU is not a flag's guess: "auto"
times the model's own MLP product at decode size in both dtypes (oneDNN's packed layout, as the decoder
runs it), about a tenth of a second once per process and shape, and picks bfloat16 only where it wins by
AUTO_MARGIN. Elsewhere (no bfloat16 instructions, or not a CPU) auto keeps the weights' dtype.

Training is another matter: the float32 master weights take every update, and only the forward and backward
products run in bfloat16 (autocast). Where the device multiplies bfloat16 matrices natively that halves the
default run's step on a 2-core AVX-512 BF16 CPU (docs/experiments.md), so --dtype auto trains in bf16 there;
without those instructions bfloat16 products are emulated and slower, so auto trains in fp32.
"""
from __future__ import annotations

import time

import torch

from j1core.config import ROLLOUT_DTYPES
from j1core.engine.packed_linear import bf16_matmul_native, linear, pack, packing_available

NAMED = {"fp32": torch.float32, "bf16": torch.bfloat16}
AUTO_MARGIN = 1.2  # bfloat16 must be this much faster to be chosen
DECODE_ROWS = 64  # a decode step's batch: a few prompts x n samples
MAX_DIM = 2048  # the timed product's sides are capped so that a large model's check stays cheap
_measured: dict[tuple, float] = {}


def bf16_speedup(hidden: int, intermediate: int, repeats: int = 5) -> float:
    """float32 time / bfloat16 time of [DECODE_ROWS, hidden] x [hidden, 2 * intermediate] (the fused gate/up
    product) on this CPU, each in the layout the decoder would use; best of `repeats` after a warm-up."""
    hidden, intermediate = min(hidden, MAX_DIM), min(intermediate, MAX_DIM)
    key = (hidden, intermediate, torch.get_num_threads())
    if key not in _measured:
        generator = torch.Generator().manual_seed(0)
        weight = torch.randn(2 * intermediate, hidden, generator=generator) * hidden ** -0.5
        x = torch.randn(DECODE_ROWS, hidden, generator=generator)
        best = {}
        for dtype in (torch.float32, torch.bfloat16):
            w = weight.to(dtype)
            w = pack(w) if packing_available(torch.device("cpu"), dtype) else w
            xs = x.to(dtype)
            linear(xs, w)
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                for _ in range(4):
                    linear(xs, w)
                times.append(time.perf_counter() - start)
            best[dtype] = min(times)
        _measured[key] = best[torch.float32] / best[torch.bfloat16]
    return _measured[key]


def rollout_dtype(choice: str, model, device) -> tuple[torch.dtype, str]:
    """(dtype, why) for --rollout-dtype `choice` (j1core.config.ROLLOUT_DTYPES) of `model` (its config and
    its weights' dtype; under ZeRO-3 partitioned parameters keep theirs) on the device the engine runs on."""
    config, weights_dtype = model.config, next(model.parameters()).dtype
    if choice not in ROLLOUT_DTYPES:
        raise ValueError(f"--rollout-dtype: {choice!r} is not one of {ROLLOUT_DTYPES}")
    if choice in NAMED:
        return NAMED[choice], "asked for"
    if choice == "model" or weights_dtype != torch.float32:
        return weights_dtype, "the weights' dtype"
    if not bf16_matmul_native(device):
        return weights_dtype, "the weights' dtype (no bfloat16 matrix instructions on this device)"
    speedup = bf16_speedup(config.hidden_size, config.intermediate_size)
    if speedup >= AUTO_MARGIN:
        return torch.bfloat16, f"measured {speedup:.1f}x faster than float32 on this CPU"
    return weights_dtype, f"bfloat16 measured only {speedup:.2f}x float32's speed on this CPU"


def train_dtype(choice: str, device) -> tuple[str, str]:
    """("fp32" | "bf16", why) for --dtype `choice` on `device`: auto is bf16 (autocast) where the device has
    bfloat16 matrix instructions (CPU: AVX-512 BF16 or AMX; CUDA: bfloat16 support), else fp32."""
    if choice != "auto":
        return choice, "asked for"
    device = torch.device(device)
    if device.type == "cuda":
        native = torch.cuda.is_bf16_supported()
    else:
        native = bf16_matmul_native(device)
    if native:
        return "bf16", f"autocast: this {device.type.upper()} has bfloat16 matrix instructions"
    return "fp32", f"no bfloat16 matrix instructions on this {device.type.upper()}"
