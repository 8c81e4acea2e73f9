"""Tests for j1core/data/followbench.py: a FollowBenchEval-shaped rebuild (FollowBench's instruction fields plus
chosen/rejected) in JSONL and Parquet, its categories per constraint type and level, broken records; and, on
../shared/data, that FollowBench holds instructions only (nothing to pair).

    python -m pytest tests/data/test_followbench.py -q
"""
import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from j1core.data.benchmarks import load_benchmark, load_benchmark_counted
from j1core.data.pairs import DataError
from j1core.eval.metrics import level_of

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


def pair(example_id, category, level, chosen="meets every constraint", rejected="misses the word limit"):
    return {"example_id": example_id, "category": category, "source": "quora", "level": level,
            "instruction": f"{category} instruction {example_id} at level {level}", "chosen": chosen,
            "rejected": rejected}


ROWS = [pair(1, "format", 1), pair(1, "format", 3), pair("2", "style", "5"), pair(3, "content", 2, "same", "same"),
        pair(1, "format", 3, "also meets them", "also misses one")]


def write(path, rows):
    if path.suffix == ".parquet":
        pq.write_table(pa.table({k: [str(r[k]) if k in ("example_id", "level") else r[k] for r in rows]
                                 for k in rows[0]}), path)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("name", ["followbench_eval.jsonl", "followbench_eval.parquet"])
def test_pairs_categories_and_levels(tmp_path, name):
    pairs, drops = load_benchmark_counted("followbench", write(tmp_path / name, ROWS))
    assert drops == Counter(identical=1)
    assert [(p.id, p.category) for p in pairs] == [("followbench-format-1-L1", "format/L1"),
                                                   ("followbench-format-1-L3", "format/L3"),
                                                   ("followbench-style-2-L5", "style/L5"),
                                                   ("followbench-format-1-L3-2", "format/L3")]
    assert pairs[0].prompt == "format instruction 1 at level 1" and pairs[0].chosen == "meets every constraint"
    assert [level_of({"category": p.category}) for p in pairs] == ["L1", "L3", "L5", "L3"]  # report's by_level
    assert len(load_benchmark("followbench", tmp_path / name, subset="format")) == 3


@pytest.mark.parametrize("change, field", [({"level": 6}, "level"), ({"level": "two"}, "level"),
                                           ({"chosen": None}, "chosen"), ({"example_id": [1]}, "example_id")])
def test_broken_record_names_file_line_field(tmp_path, change, field):
    path = write(tmp_path / "fb.jsonl", ROWS[:1] + [{**pair(9, "style", 2), **change}])
    with pytest.raises(DataError) as info:
        load_benchmark("followbench", path)
    assert (info.value.line, info.value.field) == (2, field)
    assert f"fb.jsonl:2: field '{field}'" in str(info.value)


@pytest.mark.shared
@pytest.mark.skipif(not (SHARED / "FollowBench").is_dir(), reason="../shared/data/FollowBench not present")
def test_shared_followbench_has_instructions_but_no_responses():
    rows = [r for f in sorted((SHARED / "FollowBench").glob("*_constraints.json")) for r in json.loads(f.read_text())]
    assert len(rows) == 944
    assert not any(key in r for r in rows for key in ("chosen", "rejected", "response", "output"))
    with pytest.raises(DataError, match="field 'chosen'"):  # the adapter refuses the prompts-only files
        load_benchmark("followbench", SHARED / "FollowBench" / "content_constraints.json")
