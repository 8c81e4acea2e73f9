"""What every bench table states about its run: CPU model and flags, threads, library versions, the CPU's
measured matrix-multiply rate; and writing the table to bench/results/<name>.md.

    python bench/machine.py               # print the header and this CPU's float32 / bf16 GEMM rates

The GEMM rate is the best of a few timed torch.mm calls on square matrices (2,048^3 by default) at the
bench's thread count, float32 and bfloat16: the "peak" that the benches' FLOP rates are fractions of.
"""
from __future__ import annotations

import importlib.metadata
import platform
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"
FLAGS_OF_INTEREST = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile", "amx_int8")


def cpu_model_and_flags() -> tuple[str, list[str]]:
    model, flags = platform.processor() or "unknown CPU", []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model in ("unknown CPU", platform.processor()):
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = value.split()
    except OSError:
        pass
    return model, [f for f in FLAGS_OF_INTEREST if f in flags]


def versions(*packages: str) -> str:
    out = []
    for name in ("torch", "transformers", *packages):
        try:
            out.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            out.append(f"{name} (not installed)")
    return ", ".join(out)


def gemm_rate(dtype: torch.dtype, size: int = 2048, repeats: int = 3) -> float:
    """Best GFLOP/s of torch.mm on [size, size] x [size, size] in `dtype` at the current thread count."""
    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    torch.mm(a, b)  # warm-up: thread pool, kernel selection
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best / 1e9


def measure_peaks(size: int = 2048) -> dict[str, float]:
    """{"float32": GFLOP/s, "bfloat16": GFLOP/s} measured now."""
    return {"float32": gemm_rate(torch.float32, size), "bfloat16": gemm_rate(torch.bfloat16, size)}


def header(title: str, extra_packages=(), peaks: dict | None = None, notes: str = "") -> str:
    """Markdown lines naming the machine and software of a run."""
    model, flags = cpu_model_and_flags()
    lines = [f"# {title}", "",
             f"- CPU: {model}; flags: {', '.join(flags) or 'none of ' + '/'.join(FLAGS_OF_INTEREST)}; "
             f"torch CPU capability: {torch.backends.cpu.get_cpu_capability()}",
             f"- threads: {torch.get_num_threads()} (logical CPUs on the machine: {_cpu_count()})",
             f"- versions: {versions(*extra_packages)}, Python {platform.python_version()}",
             f"- date (UTC): {time.strftime('%Y-%m-%d %H:%M', time.gmtime())}"]
    if peaks:
        lines.append("- measured GEMM rate (2,048^3 torch.mm, best of 3, same threads): " +
                     ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in peaks.items()))
    if notes:
        lines.append(f"- {notes}")
    return "\n".join(lines) + "\n"


def _cpu_count() -> int:
    import os

    return os.cpu_count() or 0


def peak_rss_bytes(reset: bool = False) -> int:
    """This process's own RSS high-water mark (VmHWM; ru_maxrss is not: a child started by vfork + exec
    inherits its parent's, which read 220 MB for a path whose peak is 40). reset: start the mark anew at the
    current RSS first (Linux >= 4.0, /proc/self/clear_refs)."""
    if reset:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass  # the mark then includes earlier peaks of this process: memory is measured first, forward first
    with open("/proc/self/status") as f:
        line = next(x for x in f if x.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def write_result(name: str, text: str) -> Path:
    """Write bench/results/<name>.md and say where."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.md"
    path.write_text(text)
    print(f"\nwrote {path}")
    return path


if __name__ == "__main__":
    print(header("machine", peaks=measure_peaks()))
