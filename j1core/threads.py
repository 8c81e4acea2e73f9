"""How j1's entry points ask OpenMP threads to wait, set before torch loads its OpenMP runtime.

    python bench/threads.py      (the measurement behind WAIT_POLICY: docs/benchmarks.md)

A worker thread that reaches a barrier spins for a while before it sleeps (libgomp: 300,000 spins). On a
quiet machine a spin catches the next parallel region sooner than a wake-up would; on a machine where another
process is busy on one of the cores, the spinning thread burns the time slices that the thread holding the
work needs, and `python train.py` slows many times over. Sleeping at once (OMP_WAIT_POLICY=PASSIVE) degrades
best but costs the quiet machine a wake-up per region: the rollout engine's decode, hundreds of small
regions a step, ran 1.5x slower. WAIT_POLICY is a short spin, long enough to catch the next region on a quiet
machine, short enough to yield a busy core soon (docs/benchmarks.md, bench/threads.py). libgomp reads
GOMP_SPINCOUNT; other OpenMP runtimes ignore it. A user's own OMP_WAIT_POLICY or GOMP_SPINCOUNT wins, and the
policy is only set where torch has not been imported yet (the runtime reads it once, at load).
"""
from __future__ import annotations

import os
import sys

WAIT_POLICY = {"GOMP_SPINCOUNT": "1000"}


def set_wait_policy() -> bool:
    """Apply WAIT_POLICY unless the user set a policy or torch is loaded already; True when applied."""
    if "torch" in sys.modules or any(k in os.environ for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")):
        return False
    os.environ.update(WAIT_POLICY)
    return True
