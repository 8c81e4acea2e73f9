"""Tests of j1core/rotation.py: the last K saves kept as checkpoint-step-N/, best/, atomic copies, and resume
falling back to the newest complete step checkpoint.

    python -m pytest tests/test_rotation.py -q
"""
import os
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import j1core.rotation as rotation
from j1core.checkpoint import (
    COMPLETE,
    OPTIMIZER_JSON,
    OPTIMIZER_TENSORS,
    load_checkpoint,
    resolve_checkpoint,
    save_checkpoint,
)
from j1core.model import tiny_model
from j1core.rotation import restore_latest, saved_step, step_dir, sync_checkpoints


@pytest.fixture(scope="module")
def run():
    model, tokenizer = tiny_model(layers=1, seed=0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    return model, tokenizer, optimizer


def save_step(out: Path, run, step: int, keep: int, best_step=None):
    """What the trainer does at a save: checkpoint/ with weights that tell the step apart, then the sync."""
    model, tokenizer, optimizer = run
    with torch.no_grad():
        model.model.norm.weight.fill_(float(step))
    save_checkpoint(out / "checkpoint", model, tokenizer, optimizer, {"step": step})
    sync_checkpoints(out, step, keep, best_step)


def norm_of(path: Path) -> float:
    return load_file(path / "model.safetensors")["model.norm.weight"][0].item()


def test_keeps_the_last_k_and_best(tmp_path, run):
    for step in range(1, 6):
        save_step(tmp_path, run, step, keep=2, best_step=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best", "checkpoint", "checkpoint-step-4",
                                                          "checkpoint-step-5"]
    assert [saved_step(tmp_path / n) for n in ("checkpoint", "checkpoint-step-4", "checkpoint-step-5", "best")] == \
        [5, 4, 5, 2]
    assert [norm_of(tmp_path / n) for n in ("checkpoint-step-4", "checkpoint-step-5", "best")] == [4.0, 5.0, 2.0]
    # best/ is a model to use: no optimizer state; the step checkpoints are whole (resumable)
    assert not (tmp_path / "best" / OPTIMIZER_TENSORS).exists() and not (tmp_path / "best" / OPTIMIZER_JSON).exists()
    assert (tmp_path / "checkpoint-step-4" / OPTIMIZER_TENSORS).is_file()
    # the newest step checkpoint shares checkpoint/'s files (hard links): no second copy on disk
    for name in ("model.safetensors", OPTIMIZER_TENSORS):
        assert os.stat(tmp_path / "checkpoint" / name).st_ino == os.stat(tmp_path / "checkpoint-step-5" / name).st_ino


def test_best_moves_only_when_the_best_step_changes(tmp_path, run):
    save_step(tmp_path, run, 1, keep=0, best_step=1)
    inode = os.stat(tmp_path / "best" / "model.safetensors").st_ino
    save_step(tmp_path, run, 2, keep=0, best_step=1)
    assert os.stat(tmp_path / "best" / "model.safetensors").st_ino == inode and norm_of(tmp_path / "best") == 1.0
    save_step(tmp_path, run, 3, keep=0, best_step=3)
    assert norm_of(tmp_path / "best") == 3.0 and saved_step(tmp_path / "best") == 3
    # keep 0: no step checkpoints at all
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best", "checkpoint"]


def test_incomplete_and_stale_step_directories_are_ignored_and_removed(tmp_path, run):
    for step in (1, 2):
        save_step(tmp_path, run, step, keep=3)
    (step_dir(tmp_path, 2) / COMPLETE).unlink()  # a copy that never finished: not a checkpoint
    assert saved_step(step_dir(tmp_path, 2)) is None
    (tmp_path / ".checkpoint-step-7.partial").mkdir()  # leftovers of a killed copy
    shutil.copytree(step_dir(tmp_path, 1), step_dir(tmp_path, 9))  # from a run this one was resumed before
    save_step(tmp_path, run, 3, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint", "checkpoint-step-1", "checkpoint-step-3"]


def test_resume_falls_back_to_the_newest_complete_step_checkpoint(tmp_path, run):
    for step in (1, 2, 3):
        save_step(tmp_path, run, step, keep=3)
    shutil.rmtree(tmp_path / "checkpoint")
    (step_dir(tmp_path, 3) / COMPLETE).unlink()
    assert restore_latest(tmp_path) == tmp_path / "checkpoint"
    model = tiny_model(layers=1, seed=4)[0]
    assert load_checkpoint(tmp_path / "checkpoint", model) == {"step": 2}
    assert model.model.norm.weight[0].item() == 2.0
    assert restore_latest(tmp_path / "empty") is None


def test_copies_where_links_are_refused(tmp_path, run, monkeypatch):
    def refuse(*_):
        raise OSError("links not supported here")

    monkeypatch.setattr(rotation.os, "link", refuse)
    save_step(tmp_path, run, 1, keep=1, best_step=1)
    for name in ("checkpoint-step-1", "best"):
        assert saved_step(tmp_path / name) == 1 and norm_of(tmp_path / name) == 1.0
        assert os.stat(tmp_path / name / "model.safetensors").st_ino != \
            os.stat(tmp_path / "checkpoint" / "model.safetensors").st_ino


class SimulatedCrash(BaseException):
    pass


def test_a_copy_killed_in_its_swap_keeps_a_complete_best(tmp_path, run, monkeypatch):
    save_step(tmp_path, run, 1, keep=0, best_step=1)
    real_replace = os.replace

    def crash_after_moving_aside(src, dst):
        real_replace(src, dst)
        if str(dst).endswith(".best.previous"):
            raise SimulatedCrash

    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", crash_after_moving_aside)
        with pytest.raises(SimulatedCrash):
            save_step(tmp_path, run, 2, keep=0, best_step=2)
    assert not (tmp_path / "best").exists()  # between the renames: both halves complete beside it
    assert saved_step(resolve_checkpoint(tmp_path / "best")) == 2
    save_step(tmp_path, run, 3, keep=0, best_step=2)  # the next sync finishes the swap
    assert saved_step(tmp_path / "best") == 2 and norm_of(tmp_path / "best") == 2.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best", "checkpoint"]


def test_sync_needs_the_save_it_follows(tmp_path, run):
    save_step(tmp_path, run, 1, keep=1)
    with pytest.raises(FileNotFoundError, match="no complete checkpoint of step 2"):
        sync_checkpoints(tmp_path, 2, 1, None)
