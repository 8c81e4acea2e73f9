"""OpenMP wait policies on a quiet and on a busy machine: seconds per training step of `python train.py`.

    python bench/threads.py              # libgomp's default, passive and j1's, bench/results/threads.md
    python bench/threads.py --all        # and a 10k spin
    python bench/threads.py --quick      # 1 pair per step, 16-token reasoning: a smoke run

OpenMP worker threads that wait at a barrier spin by default (libgomp: about 300,000 spins before sleeping).
On a quiet machine that saves the wake-up of many small parallel regions; when another process is busy on
one of the cores, a spinning thread takes that core's time slices from the thread that holds the work, and
every barrier waits for a descheduled thread. Each row runs train.py in a fresh process (the policy is read
when the OpenMP runtime loads) for --steps steps and reports the median seconds of the steps after the first:
quiet, then with a busy process (a pure-Python loop) on one core for the whole run. train.py and generate.py
set the policy this bench picked (j1core/threads.py) unless OMP_WAIT_POLICY / GOMP_SPINCOUNT are set.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import header, write_result  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# (label, environment): libgomp's default spin count is 300,000 when OMP_WAIT_POLICY is unset; nothing set
# at all leaves the choice to j1core/threads.py.
POLICIES = [("spin 300k then sleep (libgomp default)", {"GOMP_SPINCOUNT": "300000"}),
            ("passive (sleep at once)", {"OMP_WAIT_POLICY": "PASSIVE"}),
            ("j1's default (no variable set)", {})]
MORE_POLICIES = [("spin 10k then sleep", {"GOMP_SPINCOUNT": "10000"})]
HOG = "import time\nend = time.time() + 3600\nwhile time.time() < end: pass\n"


def step_seconds(env_changes: dict, train_args: list[str], busy: bool, timeout: int) -> list[float] | None:
    env = dict(os.environ)
    for key in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
        env.pop(key, None)
    env.update(env_changes)
    hog = subprocess.Popen([sys.executable, "-c", HOG]) if busy else None
    try:
        with tempfile.TemporaryDirectory(prefix="j1-threads-") as out:
            cmd = [sys.executable, str(ROOT / "train.py"), "--output", out, "--no-progress", *train_args]
            try:
                subprocess.run(cmd, env=env, cwd=ROOT, check=True, timeout=timeout, stdout=subprocess.DEVNULL)
            except subprocess.TimeoutExpired:
                return None
            lines = (Path(out) / "metrics.jsonl").read_text().splitlines()
            return [sum(v for k, v in json.loads(line).items() if k.endswith("_seconds")) for line in lines]
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--timeout", type=int, default=600, help="seconds per run before it counts as too slow")
    parser.add_argument("--all", action="store_true", help="also GOMP_SPINCOUNT=10000")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    shape = (["--pairs-per-step", "1", "--group-size", "2", "--max-think-tokens", "8"] if args.quick
             else ["--pairs-per-step", "2", "--group-size", "4", "--max-think-tokens", "32"])
    # train.py's own --dtype (auto: bfloat16 autocast where the CPU has its matrix instructions): the run the
    # policy is chosen for
    train_args = [*shape, "--max-steps", str(args.steps)]
    rows = []
    for label, env in POLICIES + (MORE_POLICIES if args.all else []):
        cells = []
        for busy in (False, True):
            start = time.perf_counter()
            steps = step_seconds(env, train_args, busy, args.timeout)
            took = time.perf_counter() - start
            cells.append(statistics.median(steps[1:] or steps) if steps else None)
            print(f"{label} {'busy' if busy else 'quiet'}: step seconds {steps} ({took:.0f} s in all)", flush=True)
        rows.append((label, *cells))
    quiet_ref = rows[0][1]
    lines = [header("OpenMP wait policy: train.py on a quiet and a busy machine"),
             f"Command: `python {' '.join(['bench/threads.py', *sys.argv[1:]])}`; each row: `python train.py "
             f"{' '.join(train_args)}`, median seconds of steps 2..{args.steps} (rollout, reward, reference, loss "
             f"and optimizer times summed); busy = one pure-Python loop process beside it for the whole run; "
             f"timeout {args.timeout} s per run.\n",
             "| policy | quiet s/step | busy s/step | busy / quiet | quiet vs libgomp default |",
             "|---|---|---|---|---|"]
    for label, quiet, busy in rows:
        def cell(x):
            return f"{x:.2f}" if x is not None else f"> {args.timeout} s run"
        ratio = f"{busy / quiet:.2f}x" if quiet and busy else "-"
        vs = f"{quiet / quiet_ref:.2f}x" if quiet and quiet_ref else "-"
        lines.append(f"| {label} | {cell(quiet)} | {cell(busy)} | {ratio} | {vs} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        write_result("threads-quick" if args.quick else "threads", text)


if __name__ == "__main__":
    main()
