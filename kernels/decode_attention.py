"""The rollout engine's CPU decode attention as one C++ call per layer (kernels/decode_attention.cpp), built
with its RMSNorm (kernels/rms_norm.cpp) into one extension.

    python -m pytest tests/test_decode_attention.py -q     (speed: python bench/rollout.py)

Why: j1core/engine/attention.SharedPromptAttention, the plain PyTorch version it is tested against, spends
about twenty small ops per layer and step, and reads the generated keys and values through batched matmuls
of g = heads / kv_heads rows, which on CPU reach about half the memory bandwidth. At 64 samples and a few
hundred generated tokens those reads and ops are a third of a decode step. The kernel reads each key and
value row once, in float32 arithmetic, for all g queries of its head; in bfloat16, where the build has AVX-512
BF16, by bfloat16 dot products that add in float32 (`bf16_dot()` says which).

`load()` builds the extension on first use (torch.utils.cpp_extension, -O3 -march=native -fopenmp, 18 s on
a 2-core machine) into torch's extension cache, under a name holding a hash of this CPU's flags and torch's
version, so a build for another CPU is never loaded. Without a C++ compiler or ninja, or on a failed build, it
returns None after one warning; with J1_CPU_KERNELS=0 it returns None at once. The engine then keeps the
PyTorch path for both (`rms_norm` serves j1core/engine/decoder.CompactDecoder.rms_norm where the engine
loaded it).
"""
from __future__ import annotations

import functools
import hashlib
import os
import platform
import sys
import warnings
from pathlib import Path

SOURCE = Path(__file__).with_name("decode_attention.cpp")
SOURCES = (SOURCE, Path(__file__).with_name("rms_norm.cpp"))  # one extension: decode_attention, rms_norm
HEAD_DIMS = (16, 32, 64, 128, 256)  # the head sizes it is compiled for (others: the PyTorch path)


def cpu_flags() -> str:
    """This CPU's feature flags (/proc/cpuinfo), or the platform's processor string where there is none."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine() + platform.processor()


def extension_name() -> str:
    import torch

    tag = hashlib.sha1(f"{cpu_flags()} {torch.__version__}".encode()).hexdigest()[:12]
    return f"j1_decode_attention_{tag}"


def built(name: str) -> bool:
    """Whether torch's extension cache holds a build of `name` (unknown: True, so nothing is announced)."""
    try:
        from torch.utils.cpp_extension import _get_build_directory

        return (Path(_get_build_directory(name, verbose=False)) / f"{name}.so").exists()
    except Exception:
        return True


@functools.cache
def load():
    """The built extension (its `decode_attention` function), or None where it cannot be had."""
    if os.environ.get("J1_CPU_KERNELS", "1") == "0":
        return None
    try:
        from torch.utils.cpp_extension import load as build

        name = extension_name()
        if not built(name):
            print("j1: building the CPU decode-attention kernel (kernels/decode_attention.cpp, once per machine)",
                  file=sys.stderr, flush=True)
        return build(name=name, sources=[str(p) for p in SOURCES], extra_cflags=["-O3", "-march=native", "-fopenmp"],
                     extra_ldflags=["-fopenmp"], verbose=False)
    except Exception as exc:  # no compiler, no ninja, a failed build: the PyTorch path serves
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        warnings.warn(f"kernels/decode_attention.cpp not built ({reason}); the rollout engine decodes with "
                      "its PyTorch attention", stacklevel=2)
        return None
