"""Tests of j1core/checkpoint.py: exact round trip, exact resume of AdamW, RNG, and saves killed midway.

    python -m pytest tests/test_checkpoint.py -q
"""
import json
import os
import random
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import j1core.checkpoint as ck
from j1core.checkpoint import (
    capture_rng,
    load_checkpoint,
    partial_dir,
    previous_dir,
    resolve_checkpoint,
    restore_rng,
    save_checkpoint,
)
from j1core.model import tiny_model

REPO = Path(__file__).resolve().parents[1]


def train_steps(model, optimizer, steps, seed):
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        ids = torch.randint(0, 500, (2, 6), generator=gen)
        optimizer.zero_grad()
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()


def make_run(seed=0):
    model, tokenizer = tiny_model(layers=1, seed=seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.9, 0.95), weight_decay=0.1)
    return model, tokenizer, optimizer


def assert_same_params(a, b):
    for (name, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(p, q), name


def test_round_trip_is_exact_and_resume_matches_uninterrupted(tmp_path):
    model, tokenizer, optimizer = make_run(seed=0)
    train_steps(model, optimizer, steps=2, seed=1)
    state = {"step": 2, "data": {"epoch": 0, "cursor": 17}}
    save_checkpoint(tmp_path / "checkpoint", model, tokenizer, optimizer, state)

    restored, _, restored_opt = make_run(seed=5)
    assert load_checkpoint(tmp_path / "checkpoint", restored, restored_opt) == state
    assert_same_params(model, restored)
    saved_sd, loaded_sd = optimizer.state_dict(), restored_opt.state_dict()
    assert saved_sd["param_groups"] == loaded_sd["param_groups"]
    for index, values in saved_sd["state"].items():
        for name, value in values.items():
            assert torch.equal(value, loaded_sd["state"][index][name]), (index, name)

    train_steps(model, optimizer, steps=2, seed=2)
    train_steps(restored, restored_opt, steps=2, seed=2)
    assert_same_params(model, restored)


def test_checkpoint_is_a_loadable_hf_directory(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tokenizer, optimizer = make_run()
    path = save_checkpoint(tmp_path / "checkpoint", model, tokenizer, optimizer, {"step": 0})
    loaded = AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
    assert_same_params(model, loaded)
    assert AutoTokenizer.from_pretrained(path).encode("judge") == tokenizer.encode("judge")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]  # nothing left beside it


def test_second_save_replaces_the_first(tmp_path):
    model, tokenizer, optimizer = make_run()
    for step in (1, 2):
        train_steps(model, optimizer, steps=1, seed=step)
        save_checkpoint(tmp_path / "checkpoint", model, tokenizer, optimizer, {"step": step})
    fresh, _, fresh_opt = make_run(seed=3)
    assert load_checkpoint(tmp_path / "checkpoint", fresh, fresh_opt)["step"] == 2
    assert_same_params(model, fresh)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]


def test_state_that_is_not_json_is_refused_before_writing(tmp_path):
    model, tokenizer, optimizer = make_run()
    with pytest.raises(TypeError, match="trainer state"):
        save_checkpoint(tmp_path / "checkpoint", model, tokenizer, optimizer, {"step": torch.tensor(1)})
    assert resolve_checkpoint(tmp_path / "checkpoint") is None


def draws():
    return [random.random(), float(np.random.rand()), torch.rand(3).tolist(), random.gauss(0, 1)]


def test_rng_round_trip_through_json():
    random.gauss(0, 1)  # leaves a cached gaussian in Python's state
    saved = json.loads(json.dumps(capture_rng()))
    first = draws()
    restore_rng(saved)
    assert draws() == first


class SimulatedCrash(BaseException):
    """Raised from inside a save: like a kill, nothing in save_checkpoint cleans up after it."""


def crash_at(stage, monkeypatch):
    """Make the next save stop dead at `stage`, leaving the files as a kill there would."""
    real_write, real_replace, real_rmtree = ck.write_optimizer, os.replace, shutil.rmtree

    def crash(*_):
        raise SimulatedCrash(stage)

    if stage == "writing":      # files half written, no COMPLETE marker yet
        monkeypatch.setattr(ck, "write_optimizer", lambda *a: (real_write(*a), crash()))
    elif stage == "aside":      # the old checkpoint moved aside, the new one not yet in place
        monkeypatch.setattr(os, "replace", lambda s, d: (real_replace(s, d),
                                                          crash() if str(d).endswith(".previous") else None))
    elif stage == "cleanup":    # the new one in place, the old one not yet deleted
        monkeypatch.setattr(shutil, "rmtree", lambda p, **k: crash() if Path(p).exists()
                            and str(p).endswith(".previous") else real_rmtree(p, **k))


def fingerprint(model):
    return [p.double().sum().item() for p in model.parameters()]


def check_recovers(target, step, prints):
    """The newest complete checkpoint loads, and the next save leaves one clean checkpoint."""
    model, tokenizer, optimizer = make_run(seed=9)
    assert load_checkpoint(target, model, optimizer) == {"step": step}
    assert fingerprint(model) == prints[step]
    save_checkpoint(target, model, tokenizer, optimizer, {"step": 3})
    assert not partial_dir(target).exists() and not previous_dir(target).exists()
    assert load_checkpoint(target, model, optimizer) == {"step": 3}


@pytest.mark.parametrize("stage,step", [("writing", 1), ("aside", 2), ("cleanup", 2)])
def test_save_stopped_midway_leaves_a_complete_checkpoint(tmp_path, monkeypatch, stage, step):
    model, tokenizer, optimizer = make_run()
    prints = {}
    target = tmp_path / "checkpoint"
    for s in (1, 2):
        train_steps(model, optimizer, steps=1, seed=s)
        prints[s] = fingerprint(model)
        if s == 1:
            save_checkpoint(target, model, tokenizer, optimizer, {"step": 1})
    with monkeypatch.context() as patch:
        crash_at(stage, patch)
        with pytest.raises(SimulatedCrash):
            save_checkpoint(target, model, tokenizer, optimizer, {"step": 2})
    check_recovers(target, step, prints)


# A real process killed by SIGKILL while the old checkpoint is aside and the new one not yet in place.
CHILD = textwrap.dedent("""
    import json, sys, time
    sys.path.insert(0, {tests!r})
    import test_checkpoint as t
    from j1core.checkpoint import save_checkpoint
    target, stage = sys.argv[1], sys.argv[2]
    model, tokenizer, optimizer = t.make_run()
    for step in (1, 2):
        t.train_steps(model, optimizer, steps=1, seed=step)
    with open(target + ".fingerprint.json", "w") as f:
        json.dump(t.fingerprint(model), f)
    t.crash_at(stage, t.pytest.MonkeyPatch())
    t.SimulatedCrash.__init__ = lambda self, *a: (print("READY", flush=True), time.sleep(300))
    save_checkpoint(target, model, tokenizer, optimizer, {{"step": 2}})
    print("FINISHED", flush=True)
""")


def wait_for_ready(child) -> str:
    """Read the child's stdout until it says READY (now hanging mid-save) or exits."""
    for line in iter(child.stdout.readline, ""):
        if line.strip() in ("READY", "FINISHED"):
            return line.strip()
    return "exited"


def test_save_killed_in_a_subprocess_leaves_a_complete_checkpoint(tmp_path):
    model, tokenizer, optimizer = make_run()
    train_steps(model, optimizer, steps=1, seed=1)
    target = tmp_path / "checkpoint"
    save_checkpoint(target, model, tokenizer, optimizer, {"step": 1})
    prints = {1: fingerprint(model)}
    script = CHILD.format(tests=str(REPO / "tests"))
    with open(tmp_path / "stderr.txt", "w") as err:
        child = subprocess.Popen([sys.executable, "-c", script, str(target), "aside"], cwd=REPO,
                                 stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        said = wait_for_ready(child)
    finally:
        child.kill()
        child.wait()
    assert said == "READY", f"child: {said!r}\n{(tmp_path / 'stderr.txt').read_text()[-3000:]}"
    assert not target.exists() and previous_dir(target).is_dir()  # killed inside the swap window
    prints[2] = json.loads((tmp_path / "checkpoint.fingerprint.json").read_text())
    check_recovers(target, 2, prints)


# ---------------------------------------------------------------- damaged checkpoints (issue 23: cases 16, 17)

@pytest.fixture(scope="module")
def one_saved(tmp_path_factory):
    """A checkpoint after one AdamW step, and a fresh model and optimizer to load it into (shared: every test
    that uses them expects the load to be refused)."""
    model, _, optimizer = make_run()
    train_steps(model, optimizer, 1, seed=1)
    folder = tmp_path_factory.mktemp("saved") / "ck"
    save_checkpoint(folder, model, None, optimizer, {"step": 1, "rng": capture_rng()})
    fresh, _, fresh_optimizer = make_run()
    return folder, (fresh, fresh_optimizer)


@pytest.fixture
def saved_run(one_saved, tmp_path):
    folder, fresh = one_saved
    return Path(shutil.copytree(folder, tmp_path / "ck")), fresh


def truncate_half(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def zero_the_middle(path):
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle: middle + 4096] = bytes(4096)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("file, damage", [("model.safetensors", truncate_half), ("model.safetensors", zero_the_middle),
                                          ("optimizer.safetensors", truncate_half),
                                          ("trainer_state.json", truncate_half),
                                          ("optimizer.json", zero_the_middle)])
def test_a_damaged_file_is_refused_by_name(saved_run, file, damage):
    folder, (model, optimizer) = saved_run
    damage(folder / file)
    with pytest.raises(ValueError, match=f"{folder / file}: does not match its checksum"):
        load_checkpoint(folder, model, optimizer)


def without_checksums(folder):
    (folder / ck.CHECKSUMS).unlink()  # as a checkpoint written before checksums existed
    return folder


@pytest.mark.parametrize("file, content, match", [
    ("model.safetensors", b"\x08\x00\x00\x00\x00\x00\x00\x00{broken}", "not a readable safetensors file"),
    ("optimizer.safetensors", b"", "not a readable safetensors file"),
    ("trainer_state.json", b'{"format": 1, "sta', "not valid JSON"),
    ("trainer_state.json", b'{"format": 1}', "field 'state' missing"),
    ("trainer_state.json", b'{"format": 7, "state": {}}', "field 'format' is 7"),
    ("optimizer.json", b"[]", "fields 'param_groups'")])
def test_unreadable_files_of_an_old_checkpoint_name_the_file(saved_run, file, content, match):
    folder, (model, optimizer) = saved_run
    (without_checksums(folder) / file).write_bytes(content)
    with pytest.raises(ValueError, match=f"{folder / file}: {match}"):
        load_checkpoint(folder, model, optimizer)


def test_non_finite_weights_are_refused(tmp_path):
    model, _, optimizer = make_run()
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] = float("nan")
    save_checkpoint(tmp_path / "ck", model, None, optimizer, {"step": 1})
    with pytest.raises(ValueError, match="holds NaN or infinite values"):
        load_checkpoint(tmp_path / "ck", make_run()[0])


@pytest.mark.parametrize("rng", [None, {"python": [3, [1, 2], None]}, {**capture_rng(), "torch": "AAAA"},
                                 {**capture_rng(), "numpy": "garbage"}])
def test_garbage_rng_state_names_the_field(rng):
    before = capture_rng()
    with pytest.raises(ValueError, match="trainer_state.json: field 'rng' is not a saved random state"):
        restore_rng(rng, "trainer_state.json")
    restore_rng(before)
