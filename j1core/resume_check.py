"""Resume only what can be continued: the saved run's settings against the new ones, and the --output guard.

    python train.py --resume runs/j1 --output runs/j1            # refused if e.g. --group-size changed
    python train.py --resume runs/j1 --output runs/j1 --lr 1e-5 --resume-override lr
    python -m pytest tests/test_resume_check.py -q

A checkpoint's trainer_state.json keeps the run's whole config and a fingerprint of the model it started from
(model_fingerprint: names, shapes and a strided sample of every tensor's values, so a different model of the
same shape, or the same model under another path, is told apart by content). Resuming compares every setting
in RUN_SETTINGS; any difference is refused with the full list unless each differing key is named with
--resume-override. Settings outside RUN_SETTINGS (device, output, save cadence, micro-batch size, gradient
checkpointing, logging) do not change what the run computes and may change freely.

guard_output refuses to start a new run in an --output that already holds one (a checkpoint or metrics)
unless --overwrite is given, which removes that run's files first, so old checkpoints never sit beside new
metrics.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import torch

from j1core.errors import UserError

RUN_SETTINGS = (
    "model", "data", "benchmark", "fields", "data_split", "skip_invalid", "heldout_fraction", "truncate", "format",
    "prompt_style", "reward",
    "pairing", "format_reward", "forced_verdict", "max_think_tokens", "flip_length", "pairs_per_step", "group_size",
    "max_new_tokens", "min_new_tokens", "temperature", "top_p", "top_k", "max_steps", "lr", "lr_schedule",
    "warmup_steps", "weight_decay", "max_grad_norm", "freeze_embeddings", "loss_type", "beta", "eps_low",
    "eps_high", "adv_scale", "updates_per_batch", "kl_times_ratio", "drop_equal_groups", "seed", "dtype")
# Files of a run in its --output (checkpoint-step-N and best are per-step and best-so-far checkpoints).
RUN_FILES = ("metrics.jsonl", "curves.png", "tensorboard", "checkpoint", ".checkpoint.partial",
             ".checkpoint.previous", "best", ".best.partial", "eval")
# Settings added after checkpoints were first written: a saved config without them had this value.
ADDED_DEFAULTS = {"truncate": False, "fields": None, "data_split": None, "drop_equal_groups": False,
                  "flip_length": False}


def check_override_keys(keys) -> None:
    for key in keys:
        if key.replace("-", "_") not in RUN_SETTINGS:
            raise UserError(f"--resume-override: {key!r} is not a setting that resume compares "
                            f"({', '.join(RUN_SETTINGS)})")


def model_fingerprint(tensors) -> str:
    """A digest of a model's weights: every tensor's name, shape, dtype and up to 4096 of its values taken at an
    even stride. Cheap for any size; two different trainings or initialisations differ in nearly every value.
    tensors: a state dict, or (name, tensor) pairs streamed one at a time (j1core/backend.policy_tensors, so
    that a ZeRO-3 model is never gathered whole for it)."""
    items = tensors.items() if isinstance(tensors, dict) else tensors
    parts = {}
    for name, tensor in items:
        tensor = tensor.detach()
        flat = tensor.reshape(-1)
        sample = flat[:: max(1, flat.numel() // 4096)][:4096].to("cpu", torch.float32)
        parts[name] = f"{name}|{tuple(tensor.shape)}|{tensor.dtype}|".encode() + sample.numpy().tobytes()
    digest = hashlib.sha256()
    for name in sorted(parts):
        digest.update(parts[name])
    return digest.hexdigest()[:16]


def normalised(value, name: str):
    """Paths compared as paths: `runs/x/` and `./runs/x` are the same model or data."""
    if name in ("model", "data", "prompt_style") and isinstance(value, str) and os.path.exists(value):
        return str(Path(value).resolve())
    if name == "resume_override" and isinstance(value, list):
        return tuple(value)
    return value


def config_differences(saved: dict, new: dict, saved_fingerprint=None, new_fingerprint=None) -> list[str]:
    """'key: saved -> new' for every run setting that differs. The model compares by fingerprint when both runs
    have one (so a moved directory is the same model), else by normalised path."""
    out = []
    for name in RUN_SETTINGS:
        old_value = saved.get(name, ADDED_DEFAULTS.get(name))
        if name == "model" and saved_fingerprint and new_fingerprint:
            if saved_fingerprint != new_fingerprint:
                out.append(f"model: weights {saved_fingerprint} ({old_value}) -> {new_fingerprint} "
                           f"({new.get(name)})")
            continue
        if normalised(old_value, name) != normalised(new.get(name), name):
            out.append(f"{name}: {old_value!r} -> {new.get(name)!r}")
    return out


def check_resume(saved_state: dict, cfg, fingerprint: str | None, where) -> None:
    """Refuse a resume whose settings differ from the saved run's, listing every difference not overridden."""
    saved = saved_state.get("config")
    if not isinstance(saved, dict):
        raise UserError(f"{where}: field 'config' missing: cannot check that this resume continues the same run")
    differences = config_differences(saved, vars(cfg), saved_state.get("model_fingerprint"), fingerprint)
    allowed = {k.replace("-", "_") for k in cfg.resume_override}
    refused = [d for d in differences if d.split(":", 1)[0] not in allowed]
    if refused:
        keys = " ".join(f"--resume-override {d.split(':', 1)[0]}" for d in refused)
        raise UserError(f"{where}: resuming with other settings than the saved run: {'; '.join(refused)}. "
                        f"Use the saved values, start a new --output, or accept them with {keys}")


def existing_run_files(output: Path) -> list[Path]:
    if not output.is_dir():
        return []
    named = [output / name for name in RUN_FILES if (output / name).exists()]
    return named + sorted(output.glob("checkpoint-step-*"))


def guard_output(cfg, remove: bool = True) -> None:
    """Refuse to start over a run already in cfg.output (unless it is the run being resumed, or --overwrite,
    which first removes that run's files; remove=False: check only, as on the non-main ranks)."""
    output = Path(cfg.output)
    if cfg.resume and Path(cfg.resume).resolve() == output.resolve():
        return
    found = existing_run_files(output)
    if not found:
        return
    if not cfg.overwrite:
        from j1core.checkpoint import resolve_checkpoint

        if resolve_checkpoint(output / "checkpoint") is not None:
            how = f"continue it with `python train.py --resume {output} --output {output}` and the same settings, "
        else:
            how = "it has no complete checkpoint to resume; "
        raise UserError(f"{output} already holds a run ({', '.join(p.name for p in found)}); {how}choose another "
                        "--output, or pass --overwrite to replace it")
    for path in found if remove else ():
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
