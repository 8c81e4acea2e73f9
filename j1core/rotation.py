"""Checkpoints to choose from: the last K saves as checkpoint-step-N/, and best/ by a held-out metric.

    python train.py --max-steps 6 --save-every 1 --eval-every 2 --keep-checkpoints 2 --output runs/keep
    python -m pytest tests/test_rotation.py -q

`<output>/checkpoint/` stays what it was: the latest save, a real directory written atomically by
j1core/checkpoint.save_checkpoint (by rank 0 under ZeRO-3), the one --resume and `make demo` read. After each
save, sync_checkpoints (rank 0, files only, no collective):
1. best/: when the trainer's best step (j1core/eval/during_training.next_best) is not what best/ holds, best/
   becomes that step's checkpoint without its optimizer files (a model to use, not a resume point);
2. --keep-checkpoints K > 0: checkpoint-step-N/ for this save, then only the K newest complete ones stay;
   step directories newer than this save (left by a run this one resumed before) and incomplete ones go.
Copies are hard links (a checkpoint's files are never written in place: every save writes new files and
swaps directories), so a kept step costs no disk until checkpoint/ moves on; where links are refused the
files are copied. Each copy is atomic like a save: files go to `.<name>.partial/`, COMPLETE is written last,
and renames swap it in; a directory without COMPLETE is never read as a checkpoint (resolve_checkpoint).
restore_latest puts the newest complete step checkpoint back as checkpoint/ when that one is gone, so
--resume takes the latest complete checkpoint there is.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from j1core.checkpoint import (
    COMPLETE,
    OPTIMIZER_JSON,
    OPTIMIZER_TENSORS,
    TRAINER_STATE,
    finish_interrupted_swap,
    fsync_dir,
    fsync_tree,
    install,
    is_complete,
    partial_dir,
    resolve_checkpoint,
    write_synced,
)

LATEST = "checkpoint"
BEST = "best"
STEP_PREFIX = "checkpoint-step-"
STEP_NAME = re.compile(r"^\.?checkpoint-step-(\d+)(\.partial|\.previous)?$")


def step_dir(output, step: int) -> Path:
    return Path(output) / f"{STEP_PREFIX}{step}"


def saved_step(path) -> int | None:
    """The trainer step a complete checkpoint directory holds, or None (missing, incomplete, no step)."""
    path = Path(path)
    if not is_complete(path):
        return None
    try:
        return int(json.loads((path / TRAINER_STATE).read_text())["state"]["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def link_tree(src: Path, dst: Path, skip=()) -> Path:
    """Atomically make `dst` a complete checkpoint holding src's files (hard links, or copies), minus `skip`."""
    finish_interrupted_swap(dst)
    partial = partial_dir(dst)
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for file in sorted(p for p in src.rglob("*") if p.is_file()):
        rel = file.relative_to(src)
        if rel.name in skip or str(rel) == COMPLETE:
            continue
        target = partial / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(file, target)
        except OSError:
            shutil.copy2(file, target)
    fsync_tree(partial)
    write_synced(partial / COMPLETE, (src / COMPLETE).read_text())
    fsync_dir(partial)
    install(partial, dst)
    return dst


def step_dirs(output) -> dict[Path, int]:
    """Every checkpoint-step-N directory and their .partial/.previous halves, with N."""
    output = Path(output)
    found = {}
    for entry in output.iterdir() if output.is_dir() else ():
        match = STEP_NAME.match(entry.name)
        if match and entry.is_dir():
            found[entry] = int(match.group(1))
    return found


def sync_checkpoints(output, step: int, keep: int, best_step: int | None) -> None:
    """After the save of `step` to <output>/checkpoint: best/ and the step checkpoints (module docstring)."""
    output = Path(output)
    latest = resolve_checkpoint(output / LATEST)
    if latest is None or saved_step(latest) != step:
        raise FileNotFoundError(f"{output / LATEST}: no complete checkpoint of step {step} to keep")
    finish_interrupted_swap(output / BEST)  # a copy killed between its renames
    if best_step is not None and saved_step(output / BEST) != best_step:
        source = latest if best_step == step else step_dir(output, best_step)
        if saved_step(source) == best_step:
            link_tree(source, output / BEST, skip=(OPTIMIZER_TENSORS, OPTIMIZER_JSON))
    if keep <= 0:
        return
    link_tree(latest, step_dir(output, step))
    complete = sorted((n for d, n in step_dirs(output).items() if d == step_dir(output, n) and n <= step
                       and saved_step(d) == n), reverse=True)
    kept = {step_dir(output, n) for n in complete[:keep]}
    for directory in step_dirs(output):
        if directory not in kept:
            shutil.rmtree(directory, ignore_errors=True)


def restore_latest(output) -> Path | None:
    """When <output>/checkpoint has no complete checkpoint (nor halves of a swap), the newest complete
    checkpoint-step-N/ is linked back as checkpoint/. Returns the directory resume will read, or None."""
    output = Path(output)
    found = resolve_checkpoint(output / LATEST)
    if found is not None:
        return found
    steps = sorted(((n, d) for d, n in step_dirs(output).items() if d == step_dir(output, n) and saved_step(d) == n),
                   reverse=True)
    if not steps:
        return None
    return link_tree(steps[0][1], output / LATEST)
