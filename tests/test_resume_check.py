"""Tests for j1core/resume_check.py: what a resume compares, the fingerprint, and the --output guard.

    python -m pytest tests/test_resume_check.py -q
"""
import dataclasses

import pytest
import torch

from j1core.config import TrainConfig
from j1core.resume_check import (
    RUN_SETTINGS,
    check_resume,
    config_differences,
    guard_output,
    model_fingerprint,
)


def saved(cfg, fingerprint="f0"):
    return {"config": dict(vars(cfg)), "model_fingerprint": fingerprint}


def test_every_run_setting_is_a_config_field():
    assert set(RUN_SETTINGS) <= {f.name for f in dataclasses.fields(TrainConfig)}


@pytest.mark.parametrize("change", [{"group_size": 4}, {"pairs_per_step": 3}, {"format": "pointwise"}, {"seed": 1},
                                    {"lr": 1e-4}, {"max_think_tokens": 64}, {"warmup_steps": 0}, {"beta": 0.1}])
def test_a_changed_run_setting_is_refused_unless_overridden(change):
    old = TrainConfig()
    new = TrainConfig(**change)
    (key, value), = change.items()
    with pytest.raises(ValueError, match=f"{key}: {getattr(old, key)!r} -> {value!r}.*--resume-override {key}"):
        check_resume(saved(old), new, "f0", "trainer_state.json")
    check_resume(saved(old), dataclasses.replace(new, resume_override=(key,)), "f0", "trainer_state.json")


def test_settings_that_do_not_change_the_run_may_change():
    old = TrainConfig()
    new = TrainConfig(device="cpu", output="elsewhere", save_every=5, micro_batch_size=7, progress=False,
                      gradient_checkpointing=True, max_bad_steps=9, tensorboard=True)
    check_resume(saved(old), new, "f0", "trainer_state.json")


def test_the_model_compares_by_fingerprint_else_by_path(tmp_path):
    (tmp_path / "m").mkdir()
    old = TrainConfig(model=str(tmp_path / "m"))
    assert config_differences(vars(old), vars(TrainConfig(model=f"{tmp_path}/m/")), None, None) == []
    assert config_differences(vars(old), vars(TrainConfig(model="moved")), "f0", "f0") == []
    assert config_differences(vars(old), vars(old), "f0", "f1") == [f"model: weights f0 ({old.model}) -> f1 "
                                                                    f"({old.model})"]


def test_fingerprint_tells_same_shaped_weights_apart():
    torch.manual_seed(0)
    a = {"w": torch.randn(64, 64), "b": torch.randn(64)}
    b = {k: v.clone() for k, v in a.items()}
    assert model_fingerprint(a) == model_fingerprint(b)
    b["w"][0, 0] += 1  # a sampled value (stride starts at 0)
    assert model_fingerprint(a) != model_fingerprint(b)
    assert model_fingerprint(a) != model_fingerprint({"w": torch.randn(64, 64), "b": a["b"]})


def test_override_keys_must_be_compared_settings():
    with pytest.raises(ValueError, match="--resume-override: 'output' is not a setting"):
        TrainConfig(resume_override=("output",))


def test_guard_refuses_then_overwrite_removes_only_run_files(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.jsonl").write_text('{"step": 1}\n')
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="already holds a run \\(metrics.jsonl\\); it has no complete checkpoint"):
        guard_output(TrainConfig(output=str(out)))
    (out / "checkpoint").mkdir()
    (out / "checkpoint" / "COMPLETE").write_text("j1 checkpoint format 1\n")
    with pytest.raises(ValueError, match=f"{out} already holds a run \\(metrics.jsonl, checkpoint\\); continue it"):
        guard_output(TrainConfig(output=str(out)))
    guard_output(TrainConfig(output=str(out), resume=f"{out}/"))  # resuming this very run: fine, nothing removed
    assert (out / "checkpoint").is_dir()
    guard_output(TrainConfig(output=str(out), overwrite=True), remove=False)
    assert (out / "checkpoint").is_dir()
    guard_output(TrainConfig(output=str(out), overwrite=True))
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
