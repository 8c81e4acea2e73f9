"""Tests for j1core/data/ppe.py: records in the schemas of lmarena-ai/PPE-Human-Preference-V1 and the PPE
Best-of-K correctness sets (JSONL, Parquet, the hub's folder layout), counts and labels, broken records.

    python -m pytest tests/data/test_ppe.py -q
"""
import json
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from j1core.data.benchmarks import load_benchmark, load_benchmark_counted
from j1core.data.pairs import DataError
from j1core.data.ppe import correctness_set, ppe_scores
from j1core.eval.report import build_report


def human(qid, winner):
    return {"question_id": qid, "model_a": "gpt-4o", "model_b": "llama-3-70b", "winner": winner,
            "prompt": f"question {qid}", "response_1": f"answer of A to {qid}", "response_2": f"answer of B to {qid}",
            "language": "English", "conv_metadata": {"turns": 1, "sum_user_tokens": 12}, "is_code": False,
            "is_refusal": False, "hard_prompt": True, "easy_prompt": False, "if_prompt": False, "math_prompt": False}


HUMAN = [human("h1", "model_a"), human("h2", "model_b"), human("h3", "tie"), human("h4", "tie (bothbad)"),
         human("h5", "model_b")]


def correctness(qid, scores, sampled, k=4):
    row = {"question_id": qid, "question": f"problem {qid}", "category": "physics", "model_name": "gemma-2-9b-it",
           "parsed_outputs": ["A"] * k, "scores": scores, "mean_score": sum(scores) / k, "prompt": f"problem {qid}"}
    row.update({f"response_{n + 1}": f"{'right' if scores[n] else 'wrong'} solution {n} of {qid}" for n in range(k)})
    row["conflict_pairs"] = [[i, j] for i in range(k) for j in range(i + 1, k) if scores[i] != scores[j]]
    row["sampled_conflict_pairs"] = sampled
    return row


CORRECT = [correctness("q1", [True, False, False, True], [[0, 1], [2, 3], [1, 0]]),
           correctness("q2", [False, False, True, False], [[3, 2]]),
           correctness("q1", [True, True, False, True], [[0, 2], [0, 1]])]  # same question, another model's row


def write(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        pq.write_table(pa.table({k: [r[k] for r in rows] for k in rows[0]}), path)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("name", ["human.jsonl", "human.parquet"])
def test_human_preference_labels_and_ties(tmp_path, name):
    pairs, drops = load_benchmark_counted("ppe", write(tmp_path / name, HUMAN))
    assert drops == Counter(tie=2)
    assert [(p.id, p.chosen, p.rejected, p.category) for p in pairs] == [
        ("ppe-human-h1", "answer of A to h1", "answer of B to h1", "human_preference"),
        ("ppe-human-h2", "answer of B to h2", "answer of A to h2", "human_preference"),
        ("ppe-human-h5", "answer of B to h5", "answer of A to h5", "human_preference")]
    assert all(p.prompt == f"question {p.id[10:]}" and p.source == "ppe" for p in pairs)


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_correctness_pairs_a_correct_with_an_incorrect_response(tmp_path, suffix):
    path = write(tmp_path / "PPE-MATH-Best-of-K" / "data" / f"train-00000-of-00001{suffix}", CORRECT)
    pairs, drops = load_benchmark_counted("ppe", path)
    assert drops == Counter(not_conflict=1)  # q1's second row lists [0, 1], both correct
    assert [p.id for p in pairs] == ["ppe-math-q1-r1-0v1", "ppe-math-q1-r1-2v3", "ppe-math-q1-r1-1v0",
                                     "ppe-math-q2-r2-3v2", "ppe-math-q1-r3-0v2"]
    assert all(p.chosen.startswith("right") and p.rejected.startswith("wrong") for p in pairs)
    assert [(p.chosen, p.rejected) for p in pairs[1:3]] == [("right solution 3 of q1", "wrong solution 2 of q1"),
                                                            ("right solution 0 of q1", "wrong solution 1 of q1")]
    assert {p.category for p in pairs} == {"correctness/math"} and pairs[0].prompt == "problem q1"


def test_without_sampled_pairs_every_conflict_pair_is_used(tmp_path):
    rows = [{k: v for k, v in CORRECT[0].items() if k != "sampled_conflict_pairs"},  # conflict_pairs: 4 pairs
            {k: v for k, v in CORRECT[1].items() if "conflict" not in k},  # neither: the 3 pairs that differ
            {**CORRECT[2], "scores": [0.5, 1.0, 0.0, 1.0], "sampled_conflict_pairs": [[0, 1], [1, 3]]}]
    pairs, drops = load_benchmark_counted("ppe", write(tmp_path / "ifeval.jsonl", rows))
    assert [p.id.split("-", 3)[3] for p in pairs] == ["r1-0v1", "r1-0v2", "r1-1v3", "r1-2v3",
                                                      "r2-0v2", "r2-1v2", "r2-2v3", "r3-0v1"]
    assert [p.chosen for p in pairs][4:] == ["right solution 2 of q2"] * 3 + ["right solution 1 of q1"]
    assert drops == Counter(not_conflict=1)  # scores 1.0 and 1.0; the higher of unequal scores is chosen


def test_hub_folder_layout_names_each_set(tmp_path):
    root = tmp_path / "ppe"
    write(root / "PPE-Human-Preference-V1" / "data" / "test-00000-of-00001.parquet", HUMAN)
    for name in ("PPE-MMLU-Pro-Best-of-K", "PPE-MATH-Best-of-K", "PPE-GPQA-Best-of-K", "PPE-IFEval-Best-of-K",
                 "PPE-MBPP-Plus-Best-of-K"):
        write(root / name / "data" / "train-00000-of-00001.parquet", CORRECT[:2])
    pairs, drops = load_benchmark_counted("ppe", root)
    counts = Counter(p.category for p in pairs)
    assert counts == {"human_preference": 3, "correctness/mmlu_pro": 4, "correctness/math": 4,
                      "correctness/gpqa": 4, "correctness/ifeval": 4, "correctness/mbpp_plus": 4}
    assert drops == Counter(tie=2) and len({p.id for p in pairs}) == len(pairs)
    assert len(load_benchmark("ppe", root, subset="correctness")) == 20
    assert len(load_benchmark("ppe", root, subset="correctness/gpqa")) == 4
    assert len(load_benchmark("ppe", root, subset="human_preference")) == 3


def test_set_name_comes_from_the_path_below_data(tmp_path):
    assert correctness_set(tmp_path / "mmlu_math_dir" / "ifeval.jsonl", tmp_path / "mmlu_math_dir") == "ifeval"
    assert correctness_set(tmp_path / "x" / "pairs.jsonl", tmp_path / "x") == "pairs"  # tmp_path's name unused


@pytest.mark.parametrize("rows, line, field, reason", [
    ([human("h1", "model_a"), human("h2", "model_c")], 2, "winner", "wrong_type"),
    ([{**human("h1", "model_a"), "response_2": None}], 1, "response_2", "wrong_type"),
    ([CORRECT[0], {**CORRECT[1], "sampled_conflict_pairs": [[3, 9]]}], 2, "sampled_conflict_pairs", "wrong_type"),
    ([{**CORRECT[0], "sampled_conflict_pairs": "0,1"}], 1, "sampled_conflict_pairs", "wrong_type"),
    ([{**CORRECT[0], "scores": "1010"}], 1, "scores", "wrong_type"),
    ([{k: v for k, v in CORRECT[0].items() if k != "response_2"}], 1, "response_2", "missing_field"),
    ([{"question_id": "x", "prompt": "p"}], 1, "winner", "missing_field"),
])
def test_broken_records_name_file_line_field(tmp_path, rows, line, field, reason):
    path = write(tmp_path / "broken.jsonl", rows)
    with pytest.raises(DataError) as info:
        load_benchmark("ppe", path)
    assert (info.value.line, info.value.field, info.value.reason) == (line, field, reason)
    assert f"broken.jsonl:{line}: field '{field}'" in str(info.value)


def test_report_gains_ppe_numbers(tmp_path):
    root = tmp_path / "ppe"
    write(root / "human.jsonl", HUMAN)
    write(root / "gpqa.jsonl", CORRECT[:1])   # 3 pairs, all judged right
    write(root / "mbpp.jsonl", CORRECT[1:2])  # 1 pair, judged wrong
    pairs = load_benchmark("ppe", root)
    records = []
    for p in pairs:
        right = p.category != "correctness/mbpp_plus" and p.id != "ppe-human-h5"
        winners = ("A", "B") if right else ("B", "A")
        records += [{"pair_id": p.id, "category": p.category, "format": "pairwise", "order": order, "sample": 0,
                     "parsed": True, "winner": w} for order, w in enumerate(winners)]
    report = build_report(records, pairs, "pairwise", seed=0, bootstrap=0, meta={"benchmark": "ppe"})
    assert report["ppe"]["human_preference"] == pytest.approx(2 / 3)
    assert report["ppe"]["correctness"] == pytest.approx(0.5)  # (1.0 + 0.0) / 2: each set weighs the same
    assert report["ppe"]["correctness_sets"] == {"gpqa": 1.0, "mbpp_plus": 0.0}
    assert ppe_scores({"human_preference": None})["correctness"] is None
