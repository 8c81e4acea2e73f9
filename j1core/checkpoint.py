"""Checkpoints that never lose work: an HF model directory + optimizer safetensors + JSON trainer state.

    python -m pytest tests/test_checkpoint.py -q

Layout of one checkpoint directory (itself loadable by AutoModelForCausalLM.from_pretrained):
    config.json, generation_config.json, model.safetensors   model.save_pretrained (safetensors)
    tokenizer.json, tokenizer_config.json, ...                 tokenizer.save_pretrained
    optimizer.safetensors                                      per-parameter state tensors, "state.<index>.<name>"
    optimizer.json                                             param_groups and non-tensor per-parameter state
    trainer_state.json                                         {"format": 1, "state": <what the trainer passed>}
    checksums.json                                             size and CRC-32 of every file above
    COMPLETE                                                   written last; a directory without it is ignored

Loading checks every file against checksums.json first (a truncated or overwritten file is refused, naming it;
checkpoints written before checksums.json existed load without the check), then refuses, naming the file and
field, whatever cannot be read: a broken safetensors header, trainer-state JSON that is broken or lacks a
field, an RNG state of the wrong shape.

Atomic replacement, for a target `out/checkpoint`:
    1. write everything into `out/.checkpoint.partial`, fsync, then write COMPLETE
    2. rename the current `out/checkpoint` to `out/.checkpoint.previous`
    3. rename `.checkpoint.partial` to `checkpoint`
    4. delete `.checkpoint.previous`
A crash at any point leaves a complete checkpoint: `checkpoint` (before 2 and after 3) or both
`.checkpoint.partial` and `.checkpoint.previous` (between 2 and 3). `resolve_checkpoint` picks the newest
complete one; the next save first finishes an interrupted swap. No pickle anywhere (no torch.save).
"""
from __future__ import annotations

import base64
import json
import os
import random
import shutil
import zlib
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from j1core.errors import UserError

FORMAT = 1
COMPLETE = "COMPLETE"
OPTIMIZER_TENSORS = "optimizer.safetensors"
OPTIMIZER_JSON = "optimizer.json"
TRAINER_STATE = "trainer_state.json"
CHECKSUMS = "checksums.json"


def partial_dir(path: Path) -> Path:
    return path.parent / f".{path.name}.partial"


def previous_dir(path: Path) -> Path:
    return path.parent / f".{path.name}.previous"


def is_complete(path: Path) -> bool:
    return (path / COMPLETE).is_file()


def resolve_checkpoint(path) -> Path | None:
    """The newest complete checkpoint for target `path` (itself, or the halves of an interrupted swap)."""
    path = Path(path)
    for candidate in (path, partial_dir(path), previous_dir(path)):
        if is_complete(candidate):
            return candidate
    return None


def save_checkpoint(path, model, tokenizer, optimizer, state: dict) -> Path:
    """Write a complete checkpoint to `path`, replacing the previous one only once the new one is whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    finish_interrupted_swap(path)
    partial = partial_dir(path)
    shutil.rmtree(partial, ignore_errors=True)  # leftovers of a save that died while writing
    partial.mkdir()
    state_text = to_json({"format": FORMAT, "state": state}, "trainer state")  # fail before any file is written
    model.save_pretrained(partial, safe_serialization=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(partial)
    if optimizer is not None:
        write_optimizer(partial, optimizer)
    (partial / TRAINER_STATE).write_text(state_text)
    (partial / CHECKSUMS).write_text(json.dumps(checksums(partial), indent=1))
    fsync_tree(partial)
    write_synced(partial / COMPLETE, f"j1 checkpoint format {FORMAT}\n")
    fsync_dir(partial)
    install(partial, path)
    return path


def install(partial: Path, path: Path) -> None:
    """Steps 2-4 of the swap (module docstring): the complete `partial` becomes `path`; a complete one stays at
    every point."""
    previous = previous_dir(path)
    if path.exists():
        os.replace(path, previous)
        fsync_dir(path.parent)
    os.replace(partial, path)
    fsync_dir(path.parent)
    shutil.rmtree(previous, ignore_errors=True)


def finish_interrupted_swap(path: Path) -> None:
    """Complete a swap a killed save left halfway: the newest complete checkpoint becomes `path`."""
    newest = resolve_checkpoint(path)
    if newest is not None and newest != path:
        shutil.rmtree(path, ignore_errors=True)
        os.replace(newest, path)
        fsync_dir(path.parent)
    if is_complete(path):
        shutil.rmtree(previous_dir(path), ignore_errors=True)


def load_checkpoint(path, model, optimizer=None) -> dict:
    """Restore weights (and optimizer state) from the newest complete checkpoint at `path`; return its state."""
    found = resolve_checkpoint(path)
    if found is None:
        raise UserError(f"{path}: no complete checkpoint (no {COMPLETE} marker) here or beside it")
    state = read_trainer_state(found)  # checks every file first
    load_model_weights(found, model)
    if optimizer is not None:
        read_optimizer(found, optimizer)
    return state


def checksums(folder: Path) -> dict:
    """{relative path: [size, crc32]} of every file under folder (CRC-32: cheap, catches torn or zeroed files)."""
    out = {}
    for file in sorted(p for p in folder.rglob("*") if p.is_file() and p.name not in (CHECKSUMS, COMPLETE)):
        crc = 0
        with open(file, "rb") as handle:
            while chunk := handle.read(1 << 24):
                crc = zlib.crc32(chunk, crc)
        out[str(file.relative_to(folder))] = [file.stat().st_size, crc]
    return out


def verify_checksums(folder: Path) -> None:
    listed = folder / CHECKSUMS
    if not listed.is_file():
        return  # written before checksums existed
    expected = read_json(listed)
    found = checksums(folder)
    for name, value in expected.items():
        if name not in found:
            raise UserError(f"{folder / name}: missing from the checkpoint")
        if found[name] != value:
            raise UserError(f"{folder / name}: does not match its checksum in {CHECKSUMS} (size {found[name][0]}, "
                            f"expected {value[0]}): the file is damaged; resume from another checkpoint")


def read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
        raise UserError(f"{path}: not valid JSON ({getattr(err, 'msg', err)})") from None


def read_trainer_state(found: Path) -> dict:
    """The trainer state of a complete checkpoint directory, after checking its files and its envelope."""
    verify_checksums(found)
    path = found / TRAINER_STATE
    saved = read_json(path)
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        got = saved.get("format") if isinstance(saved, dict) else saved
        raise UserError(f"{path}: field 'format' is {got!r}, expected {FORMAT}")
    if not isinstance(saved.get("state"), dict):
        raise UserError(f"{path}: field 'state' missing or not an object")
    return saved["state"]


def load_model_weights(path: Path, model) -> None:
    weights = {}
    index = path / "model.safetensors.index.json"
    shards = sorted(set(read_json(index).get("weight_map", {}).values())) if index.is_file() \
        else ["model.safetensors"]
    for shard in shards:
        weights.update(load_safetensors(path / shard))
    missing, unexpected = model.load_state_dict(weights, strict=False)
    missing = [k for k in missing if not is_tied_to_loaded(model, k, weights)]
    if missing or unexpected:
        raise UserError(f"{path}: weights do not fit the model: missing {missing}, unexpected {unexpected}")
    for name, tensor in weights.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise UserError(f"{path}: tensor {name!r} holds NaN or infinite values")


def load_safetensors(file: Path) -> dict:
    try:
        return load_file(file)
    except FileNotFoundError:
        raise UserError(f"{file}: missing") from None
    except (SafetensorError, OSError, ValueError) as err:
        raise UserError(f"{file}: not a readable safetensors file ({str(err).splitlines()[0]})") from None


def is_tied_to_loaded(model, key: str, weights: dict) -> bool:
    """A missing key is fine when it shares storage with a loaded one (tied embeddings)."""
    params = dict(model.named_parameters(remove_duplicate=False))
    if key not in params:
        return False
    loaded = {params[k].data_ptr() for k in weights if k in params}
    return params[key].data_ptr() in loaded


def write_optimizer(path: Path, optimizer) -> None:
    """AdamW-style state: tensors -> optimizer.safetensors; groups and plain values -> optimizer.json."""
    sd = optimizer.state_dict()
    tensors, plain = {}, {}
    for index, param_state in sd["state"].items():
        for name, value in param_state.items():
            if torch.is_tensor(value):
                tensors[f"state.{index}.{name}"] = value.detach().cpu().contiguous()
            else:
                plain.setdefault(str(index), {})[name] = value
    save_file(tensors, path / OPTIMIZER_TENSORS)
    meta = {"param_groups": sd["param_groups"], "plain_state": plain}
    (path / OPTIMIZER_JSON).write_text(to_json(meta, "optimizer param_groups"))


def read_optimizer(path: Path, optimizer) -> None:
    meta = read_json(path / OPTIMIZER_JSON)
    if not isinstance(meta, dict) or not isinstance(meta.get("param_groups"), list) \
            or not isinstance(meta.get("plain_state"), dict):
        raise UserError(f"{path / OPTIMIZER_JSON}: fields 'param_groups' (a list) and 'plain_state' (an object) "
                        "expected")
    state: dict[int, dict] = {}
    try:
        for key, value in load_safetensors(path / OPTIMIZER_TENSORS).items():
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
        for index, values in meta["plain_state"].items():
            state.setdefault(int(index), {}).update(values)
    except (ValueError, AttributeError, TypeError) as err:
        if isinstance(err, UserError):
            raise
        raise UserError(f"{path / OPTIMIZER_TENSORS}: unexpected optimizer state layout ({err})") from None
    groups = meta["param_groups"]
    if len(groups) != len(optimizer.param_groups):
        raise UserError(f"{path / OPTIMIZER_JSON}: field 'param_groups' has {len(groups)} groups, "
                         f"the optimizer has {len(optimizer.param_groups)}")
    for saved, current in zip(groups, optimizer.param_groups):
        if len(saved["params"]) != len(current["params"]):
            raise UserError(f"{path / OPTIMIZER_JSON}: field 'param_groups' holds {len(saved['params'])} "
                             f"parameters, the optimizer trains {len(current['params'])} (resumed with "
                             f"different --freeze-embeddings?)")
        for name, value in saved.items():  # JSON turned tuples (betas) into lists
            if isinstance(current.get(name), tuple) and isinstance(value, list):
                saved[name] = tuple(value)
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError, TypeError) as err:
        raise UserError(f"{path / OPTIMIZER_JSON}: the optimizer state does not fit this optimizer ({err})") from None


def to_json(obj, what: str) -> str:
    try:
        return json.dumps(obj, indent=1)
    except TypeError as err:
        raise TypeError(f"{what} must be JSON-serialisable: {err}") from err


def write_synced(path: Path, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def fsync_tree(root: Path) -> None:
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        with open(file, "rb") as f:
            os.fsync(f.fileno())
    fsync_dir(root)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def capture_rng() -> dict:
    """Python, numpy, torch CPU (and CUDA) generator states as plain JSON values."""
    version, mt, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    rng = {
        "python": [version, list(mt), gauss],
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "torch": bytes_to_text(torch.get_rng_state()),
    }
    if torch.cuda.is_available():
        rng["cuda"] = [bytes_to_text(s) for s in torch.cuda.get_rng_state_all()]
    return rng


def restore_rng(rng: dict, where: str = "trainer state") -> None:
    try:
        version, mt, gauss = rng["python"]
        random.setstate((version, tuple(mt), gauss))
        kind, keys, pos, has_gauss, cached = rng["numpy"]
        np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
        torch.set_rng_state(text_to_bytes(rng["torch"]))
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([text_to_bytes(s) for s in rng["cuda"]])
    except (KeyError, TypeError, ValueError, RuntimeError, OverflowError, base64.binascii.Error) as err:
        raise UserError(f"{where}: field 'rng' is not a saved random state ({type(err).__name__}: "
                        f"{str(err).splitlines()[0] if str(err) else ''})") from None


def bytes_to_text(state: torch.Tensor) -> str:
    return base64.b64encode(state.cpu().numpy().tobytes()).decode("ascii")


def text_to_bytes(text: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8)
