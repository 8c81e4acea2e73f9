"""Preference pairs for j1: one schema, strict loading, both orders, seeded splits and a resumable stream.

    python -m pytest tests/data/test_pairs.py -q

A pair is (id, prompt, chosen, rejected, source, category); the prompt is a string or a conversation, a list
of {"role", "content"} messages (j1core/data/messages.py). Files are JSONL (one object a line), a JSON
list, Parquet or a saved Hugging Face dataset (j1core/data/formats.py, which also maps columns with --fields,
turns integer ids into text and gives a record without a source the file's stem); JSON text is UTF-8 (a
leading byte-order mark is allowed). Every bad record raises a DataError that names the file, the line (a
row for Parquet and datasets) and the field; with skip_invalid=True bad records are skipped instead and one
warning sums them up per reason. A line that is not UTF-8, nested past Python's recursion limit, or holds a
lone surrogate (e.g. "\ud800", which no UTF-8 text can hold) is a bad record too. A file with no valid pair
is refused.
Extra fields in a record are ignored. Blank JSONL lines are allowed.

J1 trains on both orders of every pair, (x, a, b) with gold A and (x, b, a) with gold B: j1core/judge/step.py
builds the two judge prompts of a pair side by side, so a step always holds both.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
import warnings
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from j1core.data.messages import conversation_problem, prompt_key
from j1core.errors import UserError

REQUIRED_TEXT_FIELDS = ("id", "prompt", "chosen", "rejected", "source")
REASONS = ("invalid_json", "invalid_utf8", "not_object", "missing_field", "wrong_type", "invalid_text",
           "empty_text", "identical", "duplicate_id")


@dataclass
class Pair:
    id: str
    prompt: str | list[dict]  # a conversation: [{"role": "user" | "assistant" | "system", "content": str}, ...]
    chosen: str
    rejected: str
    source: str
    category: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


class DataError(UserError):
    """A bad record: names the file, the line (1-based) and the field, plus a reason code from REASONS."""

    def __init__(self, path, line: int, field: str, reason: str, detail: str):
        self.path, self.line, self.field, self.reason = str(path), line, field, reason
        super().__init__(f"{path}:{line}: field '{field}': {detail} [{reason}]")


# ---------------------------------------------------------------- loading and validation

def load_pairs(path, skip_invalid: bool = False, fields=None, split=None) -> list[Pair]:
    """Load pairs from JSONL, a JSON list, Parquet or a saved HF dataset (j1core/data/formats.py; fields: the
    --fields map, split: --data-split); raise the first DataError, or skip bad records and warn."""
    pairs, errors = read_pairs(path, fields, split)
    if errors and not skip_invalid:
        raise errors[0]
    if not pairs:
        what = f"all {len(errors)} records are invalid, first: {errors[0]}" if errors else "it holds no records"
        raise UserError(f"{path}: no valid pairs: {what}")
    if errors:
        counts = Counter(e.reason for e in errors)
        summary = ", ".join(f"{reason}={counts[reason]}" for reason in REASONS if counts[reason])
        warnings.warn(f"{path}: skipped {len(errors)} invalid records ({summary}); first: {errors[0]}",
                      stacklevel=2)
    return pairs


def read_pairs(path, fields=None, split=None) -> tuple[list[Pair], list[DataError]]:
    """All valid pairs of a file and one DataError per invalid record, in file order."""
    from j1core.data.formats import iter_records, normalize_pair_record

    path = Path(path)
    pairs, errors, first_line_of_id = [], [], {}
    for line, record in iter_records(path, split):
        if isinstance(record, DataError):
            errors.append(record)
            continue
        try:
            pair = pair_from_record(normalize_pair_record(record, path, line, fields), path, line)
            if pair.id in first_line_of_id:
                raise DataError(path, line, "id", "duplicate_id",
                                f"id {pair.id!r} already used on line {first_line_of_id[pair.id]}")
        except DataError as error:
            errors.append(error)
            continue
        first_line_of_id[pair.id] = line
        pairs.append(pair)
    return pairs, errors


def pair_from_record(record, path="<record>", line: int = 0) -> Pair:
    """Validate one decoded record and build its Pair; raises DataError naming the field."""
    if not isinstance(record, dict):
        raise DataError(path, line, "(record)", "not_object", f"expected a JSON object, got {_kind(record)}")
    for field in REQUIRED_TEXT_FIELDS:
        check_text_field(record, field, path, line)
    category = record.get("category")
    if category is not None and not isinstance(category, str):
        raise DataError(path, line, "category", "wrong_type", f"expected a string or null, got {_kind(category)}")
    if category is not None and not is_utf8(category):
        raise DataError(path, line, "category", "invalid_text", "holds a lone surrogate (not valid Unicode text)")
    if record["chosen"].strip() == record["rejected"].strip():
        raise DataError(path, line, "rejected", "identical", "identical to 'chosen'")
    prompt = record["prompt"]
    if isinstance(prompt, list):
        prompt = [{"role": m["role"], "content": m["content"]} for m in prompt]
    return Pair(record["id"], prompt, record["chosen"], record["rejected"], record["source"], category)


def check_text_field(record: dict, field: str, path="<record>", line: int = 0) -> None:
    """DataError unless record[field] is non-empty valid text ("prompt": or a valid list of chat messages)."""
    if field not in record:
        raise DataError(path, line, field, "missing_field", "missing")
    value = record[field]
    if field == "prompt" and isinstance(value, list):
        problem = conversation_problem(value)
        if problem:
            raise DataError(path, line, *problem)
        return
    if not isinstance(value, str):
        wanted = "a string or a list of messages" if field == "prompt" else "a string"
        raise DataError(path, line, field, "wrong_type", f"expected {wanted}, got {_kind(value)}")
    if not value.strip():
        raise DataError(path, line, field, "empty_text", "empty text")
    if not is_utf8(value):
        raise DataError(path, line, field, "invalid_text", "holds a lone surrogate (not valid Unicode text)")


def is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _kind(value) -> str:
    return "null" if value is None else type(value).__name__


def _records(path: Path, raw: bytes):
    """Yield (line, decoded record or DataError) for a JSON list or a JSONL file (raw bytes; a .json file that
    starts with "{" is JSON Lines, as `Dataset.to_json` writes it)."""
    raw = raw.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte-order mark
    start = raw.lstrip()[:1]
    if path.suffix != ".jsonl" and (start == b"[" or (path.suffix == ".json" and start != b"{")):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise DataError(path, raw.count(b"\n", 0, error.start) + 1, "(file)", "invalid_utf8",
                            f"not UTF-8 (byte 0x{raw[error.start]:02x})") from None
        yield from _json_list_records(path, text)
        return
    for line, raw_line in enumerate(raw.split(b"\n"), start=1):
        try:
            text = raw_line.decode("utf-8")
        except UnicodeDecodeError as error:
            yield line, DataError(path, line, "(record)", "invalid_utf8",
                                  f"not UTF-8 (byte 0x{raw_line[error.start]:02x} at column {error.start + 1})")
            continue
        if not text.strip():
            continue
        try:
            yield line, json.loads(text)
        except json.JSONDecodeError as error:
            yield line, DataError(path, line, "(record)", "invalid_json", f"invalid JSON: {error.msg}")
        except RecursionError:
            yield line, DataError(path, line, "(record)", "invalid_json", "invalid JSON: nested too deeply")


def _json_list_records(path: Path, text: str):
    """Decode a JSON list element by element so each record keeps the line it starts on."""
    decoder = json.JSONDecoder()
    pos = _skip_space(text, 0)
    if not text.startswith("[", pos):
        raise DataError(path, _line_of(text, pos), "(file)", "invalid_json", "expected a JSON list of objects")
    pos = _skip_space(text, pos + 1)
    if text.startswith("]", pos):
        return
    while True:
        try:
            record, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as error:
            # A broken element of a JSON list cannot be skipped: the rest of the list cannot be resynced.
            raise DataError(path, error.lineno, "(record)", "invalid_json", f"invalid JSON: {error.msg}") from None
        except RecursionError:
            raise DataError(path, _line_of(text, pos), "(record)", "invalid_json",
                            "invalid JSON: nested too deeply") from None
        yield _line_of(text, pos), record
        pos = _skip_space(text, end)
        if text.startswith("]", pos):
            return
        if not text.startswith(",", pos):
            raise DataError(path, _line_of(text, pos), "(record)", "invalid_json", "expected ',' or ']'")
        pos = _skip_space(text, pos + 1)


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def save_pairs(pairs, path) -> None:
    """Write pairs as JSONL (or a JSON list when the name ends in .json), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [pair.to_dict() for pair in pairs]
    if path.suffix == ".json":
        body = json.dumps(rows, ensure_ascii=False, indent=1) + "\n"
    else:
        body = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(body)
    os.replace(tmp, path)


# ---------------------------------------------------------------- seeds and splits

def stable_hash(*parts) -> int:
    """A hash that does not change between runs or machines (unlike Python's hash of a str)."""
    text = "\x1f".join(str(part) for part in parts)
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big")


def split_pairs(pairs, heldout_fraction: float, seed: int) -> tuple[list[Pair], list[Pair]]:
    """Deterministic (train, heldout); pairs that share a prompt land on the same side.

    Prompts are ranked by a seeded hash and whole prompt groups go to heldout until it holds at least
    round(len(pairs) * heldout_fraction) pairs. Both outputs keep the input order.
    """
    if not 0.0 <= heldout_fraction <= 1.0:
        raise UserError(f"heldout_fraction must be in [0, 1], got {heldout_fraction}")
    target = round(len(pairs) * heldout_fraction)
    group_sizes = Counter(prompt_key(p.prompt) for p in pairs)
    heldout_prompts, taken = set(), 0
    for prompt in sorted(group_sizes, key=lambda text: (stable_hash("split", seed, text), text)):
        if taken >= target:
            break
        heldout_prompts.add(prompt)
        taken += group_sizes[prompt]
    train = [p for p in pairs if prompt_key(p.prompt) not in heldout_prompts]
    heldout = [p for p in pairs if prompt_key(p.prompt) in heldout_prompts]
    return train, heldout


# ---------------------------------------------------------------- stream for the trainer

def fingerprint(pairs) -> str:
    """Short digest of the pair ids in order, to refuse resuming a stream on different data."""
    digest = hashlib.sha256()
    for p in pairs:
        digest.update(p.id.encode("utf-8") + b"\x00")
    return digest.hexdigest()[:16]


class PairStream:
    """Endless seeded stream of pairs: each epoch is a fresh permutation, take(k) may cross epochs.

    The permutation of epoch e depends only on (seed, e), so the state is just (epoch, position) and a
    resumed stream continues exactly where the saved one stopped.
    """

    def __init__(self, pairs, seed: int = 0):
        if not pairs:
            raise UserError("no training pairs to stream (the data is empty or all held out)")
        self.pairs = list(pairs)
        self.seed = seed
        self.epoch = 0
        self.position = 0
        self._order = self._permutation(0)

    def _permutation(self, epoch: int) -> list[int]:
        order = list(range(len(self.pairs)))
        random.Random(f"j1-pairstream:{self.seed}:{epoch}").shuffle(order)
        return order

    def take(self, k: int) -> list[Pair]:
        out = []
        while len(out) < k:
            if self.position == len(self.pairs):
                self.epoch += 1
                self.position = 0
                self._order = self._permutation(self.epoch)
            n = min(k - len(out), len(self.pairs) - self.position)
            out.extend(self.pairs[i] for i in self._order[self.position:self.position + n])
            self.position += n
        return out

    def state_dict(self) -> dict:
        return {"seed": self.seed, "epoch": self.epoch, "position": self.position,
                "num_pairs": len(self.pairs), "fingerprint": fingerprint(self.pairs)}

    def load_state_dict(self, state: dict) -> None:
        if state["num_pairs"] != len(self.pairs) or state["fingerprint"] != fingerprint(self.pairs):
            raise UserError(f"PairStream state was saved for other data ({state['num_pairs']} pairs, "
                             f"fingerprint {state['fingerprint']}); this stream has {len(self.pairs)} pairs, "
                             f"fingerprint {fingerprint(self.pairs)}")
        epoch, position = state["epoch"], state["position"]
        if not (isinstance(epoch, int) and isinstance(position, int) and epoch >= 0
                and 0 <= position <= len(self.pairs)):
            raise UserError(f"PairStream state: epoch {epoch!r}, position {position!r} is outside the data "
                            f"({len(self.pairs)} pairs)")
        self.seed, self.epoch, self.position = state["seed"], epoch, position
        self._order = self._permutation(self.epoch)
