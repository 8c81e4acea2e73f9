"""FollowBenchEval: what exists, what ../shared/data/FollowBench can rebuild, and an adapter for a rebuild.

    python generate.py judge --model DIR --benchmark followbench --data followbench_pairs.jsonl --out runs/fb
    python -m pytest tests/data/test_followbench.py -q

What FollowBenchEval is. EvalPlanner (Saha et al., 2025) built it from FollowBench (Jiang et al., 2024), whose
instructions carry 1 to 5 fine-grained constraints (types content, situation, style, format, example, mixed;
level L adds one constraint to level L-1): each pair is two responses to one FollowBench instruction, one
that satisfies the instruction's constraints and one that does not (205 pairs, as ../shared/data's note
records). The pairs were not released; no copy of them is known (../shared/data/MANIFEST.md: "not found").

What can be rebuilt from ../shared/data/FollowBench. Only the instructions: 944 records (6 files, levels 0-5,
fields example_id, category, source, level, instruction, target; `example` adds answer). There is no response
and no label, and FollowBench decides whether a response meets the constraints of its open-ended
instructions by prompting a strong LLM (only items with a gold target can be checked by rule). So pairs
cannot be rebuilt from the shared data alone: it takes a generator (responses per instruction) and a
constraint checker, and what comes out is a new benchmark of the same design, not FollowBenchEval: its
numbers are not comparable with the ones EvalPlanner and J1 report.

The adapter below reads such a rebuild (or FollowBenchEval itself, should it appear in this shape): one
record a pair, JSONL / JSON / Parquet / saved HF dataset (j1core/data/formats.py), with FollowBench's own
fields for the instruction plus the two responses:
    example_id (int or str), category (the constraint type), level (0-5, int or digit string),
    instruction, chosen (meets every constraint), rejected (misses at least one)
Pair.id "followbench-<category>-<example_id>-L<level>" (a repeated id within a file gets "-<n>" appended),
Pair.category "<category>/L<level>" so reports give tables per constraint type and per level (`by_level`),
Pair.source "followbench". A record that breaks the schema is a DataError naming file:line (row):field.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from j1core.data.formats import data_files, iter_records
from j1core.data.pairs import DataError, _kind

TEXT_FIELDS = ("category", "instruction", "chosen", "rejected")


def add_followbench(folder: Path, out, subset: str | None) -> None:
    """Pairs of every FollowBenchEval-shaped file under `folder` into `out` (a benchmarks.PairCollector)."""
    for file in data_files(folder):
        seen = Counter()
        for line, r in iter_records(file):
            if isinstance(r, DataError):
                raise r
            level = check_record(r, file, line)
            key = f"followbench-{r['category']}-{r['example_id']}-L{level}"
            seen[key] += 1
            pair_id = key if seen[key] == 1 else f"{key}-{seen[key]}"
            out.add(file, line, pair_id, r["instruction"], r["chosen"], r["rejected"], f"{r['category']}/L{level}")


def check_record(r, file, line: int) -> int:
    """Validate one record; returns its level."""
    if not isinstance(r, dict):
        raise DataError(file, line, "(record)", "not_object", f"expected a JSON object, got {_kind(r)}")
    for field in ("example_id", "level") + TEXT_FIELDS:
        if field not in r:
            raise DataError(file, line, field, "missing_field", "missing (a FollowBenchEval record has example_id, "
                            "category, level, instruction, chosen, rejected)")
    for field in TEXT_FIELDS:
        if not isinstance(r[field], str):
            raise DataError(file, line, field, "wrong_type", f"expected a string, got {_kind(r[field])}")
    if isinstance(r["example_id"], bool) or not isinstance(r["example_id"], (int, str)):
        raise DataError(file, line, "example_id", "wrong_type", f"expected an int or string, got "
                        f"{_kind(r['example_id'])}")
    level = r["level"]
    if isinstance(level, str) and level.strip().isdigit():
        level = int(level)
    if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 5:
        raise DataError(file, line, "level", "wrong_type", f"expected a level 0-5, got {r['level']!r}")
    return level
