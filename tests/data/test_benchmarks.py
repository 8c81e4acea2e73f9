"""Tests for j1core/data/benchmarks.py: label mapping on tiny fake files, and whole-file counts on ../shared/data.

    python -m pytest tests/data/test_benchmarks.py -q
"""
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from j1core.data.benchmarks import BENCHMARKS, load_benchmark, load_benchmark_counted

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data not present")


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


# ---------------------------------------------------------------- label mapping on fake files

def test_judgebench_labels_and_subset(tmp_path):
    rows = [{"pair_id": "a", "question": "q", "response_A": "ra", "response_B": "rb", "label": "A>B", "source": "s1"},
            {"pair_id": "b", "question": "q", "response_A": "ra", "response_B": "rb", "label": "B>A", "source": "s2"},
            {"pair_id": "c", "question": "q", "response_A": "same", "response_B": "same", "label": "B>A",
             "source": "s2"}]
    write_jsonl(tmp_path / "dataset=judgebench,response_model=gpt-x.jsonl", rows[:2])
    write_jsonl(tmp_path / "dataset=judgebench,response_model=claude-y.jsonl", rows[2:])
    pairs, drops = load_benchmark_counted("judgebench", tmp_path)
    assert [(p.id, p.chosen, p.rejected, p.category) for p in pairs] == [("a", "ra", "rb", "s1"),
                                                                         ("b", "rb", "ra", "s2")]
    assert drops == Counter(identical=1)
    assert [p.id for p in load_benchmark("judgebench", tmp_path, subset="gpt")] == ["a", "b"]


def test_llmbar_labels_and_subsets(tmp_path):
    rows = [{"input": "q", "output_1": "one", "output_2": "two", "label": 1},
            {"input": "q", "output_1": "one", "output_2": "two", "label": 2}]
    (tmp_path / "LLMBar_Natural.json").write_text(json.dumps(rows))
    (tmp_path / "LLMBar_Adversarial_Manual.json").write_text(json.dumps(rows[:1]))
    pairs = load_benchmark("llmbar", tmp_path)
    assert [(p.chosen, p.category) for p in pairs] == [("one", "Natural"), ("two", "Natural"),
                                                      ("one", "Adversarial_Manual")]
    assert len(load_benchmark("llmbar", tmp_path, subset="Adversarial")) == 1
    with pytest.raises(ValueError, match="no pairs in subset"):
        load_benchmark("llmbar", tmp_path, subset="Processed")


def test_rmbench_math_domain_when_supplied(tmp_path):
    record = {"id": 3, "prompt": "1+1?", "chosen": ["2", "It is 2.", "**2**"], "rejected": ["3", "It is 3.", "**3**"]}
    (tmp_path / "math_filtered.json").write_text(json.dumps([record, {**record, "id": 4}]))
    pairs = load_benchmark("rmbench", tmp_path)
    assert len(pairs) == 18 and {p.category.split("/")[0] for p in pairs} == {"math"}
    assert sum(p.category == "math/hard" for p in pairs) == 6  # 3 upper-right cells x 2 records
    assert all("2" in p.chosen and "3" in p.rejected for p in pairs)
    assert len(load_benchmark("rmbench", tmp_path, subset="math/easy")) == 6


def test_rmbench_grid_levels(tmp_path):
    record = {"id": 1, "prompt": "q", "chosen": ["c0", "c1", "c2"], "rejected": ["r0", "r1", "r2"]}
    (tmp_path / "chat_filtered.json").write_text(json.dumps([record]))
    (tmp_path / "safety-refuse_filtered.json").write_text(json.dumps([record]))
    pairs = load_benchmark("rmbench", tmp_path)
    assert len(pairs) == 18 and len({p.id for p in pairs}) == 18
    for p in pairs:
        i, j = int(p.chosen[1]), int(p.rejected[1])
        expected = "hard" if i < j else ("normal" if i == j else "easy")  # upper right / diagonal / lower left
        assert p.category.endswith("/" + expected)
    assert Counter(p.category for p in load_benchmark("rmbench", tmp_path, subset="safety")) == Counter(
        {"safety/hard": 3, "safety/normal": 3, "safety/easy": 3})


def test_autoj_and_pandalm_ties_dropped_and_counted(tmp_path):
    rows = [{"scenario": "s", "label": 0, "prompt": "q", "response 1": "x", "response 2": "y"},
            {"scenario": "s", "label": 1, "prompt": "q", "response 1": "x", "response 2": "y"},
            {"scenario": "s", "label": 2, "prompt": "q", "response 1": "x", "response 2": "y"}]
    write_jsonl(tmp_path / "testdata_pairwise.jsonl", rows)
    pairs, drops = load_benchmark_counted("autoj", tmp_path)
    assert [p.chosen for p in pairs] == ["x", "y"] and drops == Counter(tie=1)

    def panda(idx, votes, first="x", second="y"):
        return {"idx": idx, "motivation_app": "app", "instruction": "do", "input": "", "response1": first,
                "response2": second, "annotator1": votes[0], "annotator2": votes[1], "annotator3": votes[2]}
    rows = [panda(0, (1, 1, 2)), panda(1, (2, 2, 0)), panda(2, (0, 0, 1)), panda(3, (1, 1, 1), True, "no"),
            panda(4, (2, 2, 2), "", "y")]
    (tmp_path / "testset-v1.json").write_text(json.dumps(rows))
    pairs, drops = load_benchmark_counted("pandalm", tmp_path)
    assert [(p.id, p.chosen) for p in pairs] == [("pandalm-0", "x"), ("pandalm-1", "y"), ("pandalm-3", "True")]
    assert drops == Counter(tie=1, empty_text=1)


def test_unknown_benchmark_and_missing_folder(tmp_path):
    with pytest.raises(ValueError, match="unknown benchmark"):
        load_benchmark("nope")
    with pytest.raises(FileNotFoundError):
        load_benchmark("autoj", tmp_path / "absent")


# ---------------------------------------------------------------- whole files on ../shared/data

def manifest_records(prefix):
    files = json.loads((SHARED / "MANIFEST.files.json").read_text())
    return {f["path"]: f["records"] for f in files if f["path"].startswith(prefix) and f.get("records")}


def read_rows(path):
    path = SHARED / path
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return json.loads(path.read_text())


def bad_texts(a, b):
    """A raw pair that cannot be kept: an empty response or two identical responses."""
    a, b = str(a).strip(), str(b).strip()
    return not a or not b or a == b


def expected_shared(name):
    """(records in MANIFEST, drops counted here straight from the raw files) for one benchmark."""
    if name == "judgebench":
        records = manifest_records("JudgeBench/dataset=judgebench")
        drops = sum(bad_texts(r["response_A"], r["response_B"]) for path in records for r in read_rows(path))
    elif name == "llmbar":
        records = manifest_records("LLMBar/")
        drops = sum(bad_texts(r["output_1"], r["output_2"]) for path in records for r in read_rows(path))
    elif name == "rmbench":
        records = {path: 9 * n for path, n in manifest_records("RM-Bench/").items()}
        drops = sum(bad_texts(c, r) for path in records for row in read_rows(path)
                    for c in row["chosen"] for r in row["rejected"])
    elif name == "autoj":
        records = manifest_records("Auto-J/testdata_pairwise")
        rows = read_rows("Auto-J/testdata_pairwise.jsonl")
        drops = sum(r["label"] == 2 or bad_texts(r["response 1"], r["response 2"]) for r in rows)
    elif name == "pandalm":
        records = manifest_records("PandaLM/testset-v1")
        rows = read_rows("PandaLM/testset-v1.json")
        ties = sum(sorted((r["annotator1"], r["annotator2"], r["annotator3"]))[1] == 0 for r in rows)
        drops = ties + sum(sorted((r["annotator1"], r["annotator2"], r["annotator3"]))[1] != 0
                           and bad_texts(r["response1"], r["response2"]) for r in rows)
    else:
        records = manifest_records("GSM8K/example_model_solutions")
        rows = read_rows("GSM8K/example_model_solutions.jsonl")
        keys = [k for k in rows[0] if isinstance(rows[0][k], dict)]
        verdicts = [{r[k]["is_correct"] for k in keys} for r in rows]
        drops = sum(v != {True, False} for v in verdicts)
    return sum(records.values()), drops


@needs_shared
@pytest.mark.shared
@pytest.mark.parametrize("name", [name for name in BENCHMARKS if name not in ("rewardbench", "ppe", "followbench")])
def test_shared_counts_match_manifest_minus_drops(name):  # those three are not in ../shared/data
    records, drops = expected_shared(name)
    pairs, counted = load_benchmark_counted(name)
    assert records > 0
    assert len(pairs) == records - drops
    assert sum(counted.values()) == drops
    assert len({p.id for p in pairs}) == len(pairs)
    assert all(p.source == name and p.category for p in pairs)


@needs_shared
@pytest.mark.shared
def test_shared_rmbench_hard_pairs_have_less_styled_chosen():
    pairs = load_benchmark("rmbench", subset="chat")
    ratio = {level: [len(p.chosen) / len(p.rejected) for p in pairs if p.category.endswith(level)]
             for level in ("hard", "normal", "easy")}
    mean = {level: sum(values) / len(values) for level, values in ratio.items()}
    assert mean["hard"] < mean["normal"] < mean["easy"]


def final_answer(solution):
    answers = re.findall(r"A: *(.+)", solution)
    return answers[-1].strip().replace(",", "") if answers else None


@needs_shared
@pytest.mark.shared
def test_shared_gsm8k_chosen_matches_ground_truth():
    rows = {f"gsm8k-{i}": r for i, r in enumerate(read_rows("GSM8K/example_model_solutions.jsonl"), start=1)}
    pairs = load_benchmark("gsm8k")
    agree = [final_answer(p.chosen) == final_answer(rows[p.id]["ground_truth"]) for p in pairs]
    differ = [final_answer(p.rejected) != final_answer(rows[p.id]["ground_truth"]) for p in pairs]
    assert all(agree) and all(differ)


# ---------------------------------------------------------------- broken benchmark files (issue 23: cases 9-11)

JB = {"pair_id": "a", "question": "q", "response_A": "ra", "response_B": "rb", "label": "A>B", "source": "s"}
JB_FILE = "dataset=judgebench,response_model=gpt-x.jsonl"


@pytest.mark.parametrize("name, filename, content, match", [
    ("judgebench", JB_FILE, json.dumps({k: v for k, v in JB.items() if k != "label"}) + "\n",
     ":1: field 'label': missing"),
    ("judgebench", JB_FILE, json.dumps(JB) + "\n" + json.dumps(JB)[:-5] + "\n",
     ":2: field '\\(record\\)': invalid JSON"),
    ("judgebench", JB_FILE, b'{"pair_id": "\xff"}\n', ":1: field '\\(file\\)': not UTF-8"),
    ("llmbar", "LLMBar_Natural.json", json.dumps([{"input": "q", "output_2": "b", "label": 1}]),
     ":1: field 'output_1': missing"),
    ("llmbar", "LLMBar_Natural.json", json.dumps({"input": "q", "output_1": "a", "output_2": "b", "label": 1}),
     ":1: field '\\(file\\)': expected a JSON list"),
    ("llmbar", "LLMBar_Natural.json", '[{"input": "q", "output_1": "a",', ":1: field '\\(file\\)': invalid JSON"),
    ("llmbar", "LLMBar_Natural.json", json.dumps(["not a record"]), ":1: field '\\(record\\)': expected a JSON object"),
    ("autoj", "testdata_pairwise.jsonl", json.dumps({"prompt": "q", "response 1": "a", "response 2": "b",
                                                     "label": 7, "scenario": "s"}) + "\n",
     ":1: field 'label': expected one of 0, 1, 2, got 7"),
    ("pandalm", "testset-v1.json", json.dumps([{"idx": 1, "instruction": "q", "input": "", "response1": "a",
                                                 "response2": "b", "annotator1": 1, "annotator2": 9, "annotator3": 1,
                                                 "motivation_app": "m"}]),
     ":1: field 'annotator2': expected one of 0, 1, 2"),
    ("rmbench", "chat_filtered.json", json.dumps([{"id": 1, "prompt": "q", "chosen": "a", "rejected": ["b"]}]),
     ":1: field 'chosen': expected a list"),
    ("gsm8k", "example_model_solutions.jsonl", json.dumps({"question": "q"}) + "\n",
     ":1: field '175b_verification': missing"),
])
def test_broken_benchmark_records_name_file_line_and_field(tmp_path, name, filename, content, match):
    path = tmp_path / filename
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ValueError, match=re.escape(str(path)) + match):
        load_benchmark(name, tmp_path)


def test_duplicate_judgebench_pair_ids_are_refused(tmp_path):
    write_jsonl(tmp_path / JB_FILE, [JB, {**JB, "label": "B>A"}])
    with pytest.raises(ValueError, match=":2: field 'id': pair id 'a' already used at .*gpt-x.jsonl:1"):
        load_benchmark("judgebench", tmp_path)
