"""Tests for j1core/data/rewardbench.py: records in the allenai/reward-bench "filtered" schema (JSONL, Parquet),
counts and labels, a broken record's message, the official section weighting and the report's sections.

    python -m pytest tests/data/test_rewardbench.py -q
"""
import json
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from j1core.data.benchmarks import load_benchmark, load_benchmark_counted
from j1core.data.pairs import DataError
from j1core.data.rewardbench import EXAMPLE_COUNTS, SUBSET_MAPPING, section_scores
from j1core.eval.report import benchmark_table, build_report


def record(i, subset, chosen=None, rejected=None):
    return {"prompt": f"prompt {i}", "chosen": chosen or f"good answer {i}", "chosen_model": "gpt-4",
            "rejected": rejected or f"bad answer {i}", "rejected_model": "llama-2-7b-chat", "subset": subset, "id": i}


RECORDS = [record(30, "alpacaeval-easy"), record(31, "mt-bench-hard"), record(32, "xstest-should-respond"),
           record(33, "math-prm"), record(34, "hep-python"), record(35, "hep-go", "same", "same")]


def write(path, rows):
    if path.suffix == ".parquet":
        pq.write_table(pa.table({k: [r[k] for r in rows] for k in rows[0]}), path)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("name", ["filtered.jsonl", "filtered.parquet"])
def test_counts_labels_and_drops(tmp_path, name):
    path = write(tmp_path / name, RECORDS)
    pairs, drops = load_benchmark_counted("rewardbench", path)
    assert len(pairs) == 5 and drops == Counter(identical=1)
    assert [(p.id, p.category) for p in pairs] == [("rewardbench-30", "alpacaeval-easy"),
                                                   ("rewardbench-31", "mt-bench-hard"),
                                                   ("rewardbench-32", "xstest-should-respond"),
                                                   ("rewardbench-33", "math-prm"), ("rewardbench-34", "hep-python")]
    assert all(p.chosen == f"good answer {p.id[12:]}" and p.rejected.startswith("bad") for p in pairs)
    assert all(p.source == "rewardbench" and p.prompt == f"prompt {p.id[12:]}" for p in pairs)
    assert [p.id for p in load_benchmark("rewardbench", path, subset="math-prm")] == ["rewardbench-33"]


def test_folder_reads_every_file(tmp_path):
    write(tmp_path / "a.jsonl", RECORDS[:2])
    write(tmp_path / "b.parquet", RECORDS[2:5])
    assert len(load_benchmark("rewardbench", tmp_path)) == 5


@pytest.mark.parametrize("change, field, reason", [({"id": 1.5}, "id", "wrong_type"),
                                                   ({"subset": None}, "subset", "wrong_type"),
                                                   ({"chosen": ["a", "list"]}, "chosen", "wrong_type")])
def test_broken_record_names_file_line_field(tmp_path, change, field, reason):
    path = write(tmp_path / "rb.jsonl", RECORDS[:2] + [{**record(40, "donotanswer"), **change}])
    with pytest.raises(DataError) as info:
        load_benchmark("rewardbench", path)
    assert (info.value.line, info.value.field, info.value.reason) == (3, field, reason)
    assert f"rb.jsonl:3: field '{field}'" in str(info.value)


def test_missing_field_is_named(tmp_path):
    bad = record(41, "donotanswer")
    del bad["prompt"]
    path = write(tmp_path / "rb.jsonl", [bad])
    with pytest.raises(DataError, match=r"rb.jsonl:1: field 'prompt': missing"):
        load_benchmark("rewardbench", path)


def test_official_weighting():
    assert sum(EXAMPLE_COUNTS[n] for n in SUBSET_MAPPING["Reasoning"][1:]) == EXAMPLE_COUNTS["math-prm"] == 984
    every_hep = {"math-prm": 1.0, **{n: 0.0 for n in SUBSET_MAPPING["Reasoning"][1:]}}
    chat = {"alpacaeval-easy": 1.0, "mt-bench-easy": 0.0}  # sizes 100 and 28
    scores = section_scores({**every_hep, **chat, "xstest-should-refuse": 0.5, "anthropic_hhh": 0.9})
    assert scores["sections"]["Reasoning"] == pytest.approx(0.5)  # math weighs as much as all code together
    assert scores["sections"]["Chat"] == pytest.approx(100 / 128)
    assert scores["sections"]["Safety"] == pytest.approx(0.5) and "Chat Hard" not in scores["sections"]
    assert scores["score"] == pytest.approx((0.5 + 100 / 128 + 0.5) / 3)
    assert scores["unmapped"] == ["anthropic_hhh"]
    only_python = section_scores({"math-prm": 1.0, "hep-python": 0.0})["sections"]["Reasoning"]
    assert only_python == pytest.approx(984 / (984 + 164))


def judgments(pair_id, category, right):
    """Both orders of one pair judged right (A then B) or wrong (B then A)."""
    winners = ("A", "B") if right else ("B", "A")
    return [{"pair_id": pair_id, "category": category, "format": "pairwise", "order": order, "sample": 0,
             "parsed": True, "winner": winner} for order, winner in enumerate(winners)]


def test_report_gains_the_sections(tmp_path):
    pairs = load_benchmark("rewardbench", write(tmp_path / "rb.jsonl", RECORDS))
    right = {"alpacaeval-easy": True, "mt-bench-hard": False, "xstest-should-respond": True, "math-prm": True,
             "hep-python": False}
    records = [r for p in pairs for r in judgments(p.id, p.category, right[p.category])]
    report = build_report(records, pairs, "pairwise", seed=0, bootstrap=0, meta={"benchmark": "rewardbench"})
    assert report["rewardbench"]["sections"] == {"Chat": 1.0, "Chat Hard": 0.0, "Safety": 1.0,
                                                 "Reasoning": pytest.approx(984 / 1148)}
    assert report["rewardbench"]["score"] == pytest.approx((2 + 984 / 1148) / 4)
    table = "\n".join(benchmark_table(report))
    assert "| Reasoning | 85.7 |" in table and "| score (mean of the sections) | 71.4 |" in table
    plain = build_report(records, pairs, "pairwise", seed=0, bootstrap=0, meta={"benchmark": "jsonl"})
    assert "rewardbench" not in plain and benchmark_table(plain) == []
