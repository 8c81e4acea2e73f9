"""Inputs of `generate.py synth`: instructions (JSONL/JSON, FollowBench) and math problems (GSM8K, MATH-500).

    python -m pytest tests/data/test_synth.py -q -k inputs

Every input becomes a SourceItem with a stable source id, so re-runs can skip what is done:
- instructions: JSONL or a JSON list of objects with "prompt" or "instruction" (id from "id", else the line);
  FollowBench files (example_id, level, instruction) get "followbench-<type>-<example_id>-L<level>", with
  <type> from the file name (content_constraints.json -> content), also the category "followbench/<type>";
  a directory means every *.json file in it, in name order (FollowBench's layout); FollowBench records
  with an empty instruction (some level-0 ones) are skipped.
- problems: GSM8K ("question", "answer" ending in "#### N") -> "gsm8k-<line>"; MATH-500 ("problem", "answer",
  "unique_id") -> "math500-<unique_id>"; other JSONL with "question"/"problem" and "answer"/"gold" -> "jsonl-<id|line>".
Bad records raise DataError naming the file, the line and the field.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from j1core.data.answer_check import gsm8k_gold
from j1core.data.pairs import DataError


@dataclass
class SourceItem:
    source_id: str
    text: str                # the instruction or the problem statement: the pair's prompt
    family: str              # followbench | jsonl | gsm8k | math500
    category: str | None = None
    gold: str | None = None  # math only


def read_records(path: Path) -> list[tuple[int, dict]]:
    """(line, object) for every record of a JSONL file or a JSON list."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json" or text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise DataError(path, error.lineno, "(file)", "invalid_json", f"invalid JSON: {error.msg}") from None
        if not isinstance(data, list):
            raise DataError(path, 1, "(file)", "not_object", "expected a JSON list of objects")
        records = list(enumerate(data, start=1))  # JSON lists: the position stands in for the line
    else:
        records = []
        for line, raw in enumerate(text.splitlines(), start=1):
            if raw.strip():
                try:
                    records.append((line, json.loads(raw)))
                except json.JSONDecodeError as error:
                    raise DataError(path, line, "(record)", "invalid_json", f"invalid JSON: {error.msg}") from None
    for line, record in records:
        if not isinstance(record, dict):
            raise DataError(path, line, "(record)", "not_object", "expected a JSON object")
    return records


def text_field(path, line: int, record: dict, names: tuple[str, ...]) -> str:
    """The first of `names` present in the record, as a non-empty string."""
    for name in names:
        if name in record:
            value = record[name]
            if not isinstance(value, str) or not value.strip():
                raise DataError(path, line, name, "empty_text", "expected a non-empty string")
            return value
    raise DataError(path, line, "/".join(names), "missing_field", "missing")


def read_instructions(path) -> list[SourceItem]:
    path = Path(path)
    files = sorted(path.glob("*.json")) if path.is_dir() else [path]
    if not files:
        raise FileNotFoundError(f"{path}: no *.json files")
    items = []
    for file in files:
        for line, record in read_records(file):
            if "example_id" in record and "level" in record and not str(record.get("instruction", "")).strip():
                continue  # FollowBench ships some level-0 records with an empty instruction
            text = text_field(file, line, record, ("prompt", "instruction"))
            if "example_id" in record and "level" in record:
                category = file.stem.removesuffix("_constraints")  # the record's own field mixes types
                source_id = f"followbench-{category}-{record['example_id']}-L{record['level']}"
                items.append(SourceItem(source_id, text, "followbench", f"followbench/{category}"))
            else:
                items.append(SourceItem(f"{file.stem}-{record.get('id', line)}", text, "jsonl",
                                        record.get("category")))
    return check_unique(items, path)


def read_problems(path) -> list[SourceItem]:
    path = Path(path)
    items = []
    for line, record in read_records(path):
        if "question" in record and isinstance(record.get("answer"), str) and "####" in record["answer"]:
            items.append(SourceItem(f"gsm8k-{line}", text_field(path, line, record, ("question",)), "gsm8k",
                                    "gsm8k", gsm8k_gold(record["answer"])))
        elif "problem" in record and "unique_id" in record:
            problem = text_field(path, line, record, ("problem",))
            gold = text_field(path, line, record, ("answer",))
            items.append(SourceItem(f"math500-{record['unique_id']}", problem, "math500",
                                    f"math500/{record.get('subject')}", gold))
        else:
            text = text_field(path, line, record, ("question", "problem"))
            gold = text_field(path, line, record, ("answer", "gold"))
            items.append(SourceItem(f"jsonl-{record.get('id', line)}", text, "jsonl", record.get("category"),
                                    gsm8k_gold(gold) or gold))
    return check_unique(items, path)


def check_unique(items: list[SourceItem], path) -> list[SourceItem]:
    seen = set()
    for item in items:
        if item.source_id in seen:
            raise DataError(path, 0, "id", "duplicate_id", f"source id {item.source_id!r} appears twice")
        seen.add(item.source_id)
    return items
