"""Tests for j1core/data/formats.py: the same pairs from JSONL, a JSON array, JSON Lines named .json, Parquet and
saved Hugging Face datasets; the --fields map; integer ids and a missing source; errors naming file:row:field.

    python -m pytest tests/data/test_formats.py -q
"""
import argparse
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from j1core.config import parse_config
from j1core.data.formats import data_files, iter_records, parse_field_map
from j1core.data.pairs import DataError, load_pairs
from j1core.eval.evaluate import add_judge_args, check_args, load_eval_pairs

ROWS = [{"id": 7, "prompt": "What is 2+2?", "chosen": "4", "rejected": "5", "category": "math"},
        {"id": 8, "prompt": "Capital of France?", "chosen": "Paris", "rejected": "Lyon", "source": "geo"}]
EXPECTED = [("7", "What is 2+2?", "4", "5", "pairs", "math"), ("8", "Capital of France?", "Paris", "Lyon", "geo", None)]


def as_tuples(pairs):
    return [(p.id, p.prompt, p.chosen, p.rejected, p.source, p.category) for p in pairs]


def write(path, rows, kind):
    if kind == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif kind == "json":
        path.write_text(json.dumps(rows, indent=1))
    elif kind == "json_lines":  # what Dataset.to_json writes under a .json name
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif kind == "parquet":  # every column in every row; a field a record lacks is null
        names = list(dict.fromkeys(k for r in rows for k in r))
        pq.write_table(pa.table({k: [r.get(k) for r in rows] for k in names}), path)
    return path


@pytest.mark.parametrize("kind, suffix", [("jsonl", ".jsonl"), ("json", ".json"), ("json_lines", ".json"),
                                          ("parquet", ".parquet")])
def test_every_file_format_gives_the_same_pairs(tmp_path, kind, suffix):
    path = write(tmp_path / f"pairs{suffix}", ROWS, kind)
    assert as_tuples(load_pairs(path)) == EXPECTED  # int id -> "7", no source -> the file's stem "pairs"


def test_saved_dataset_and_dataset_dict(tmp_path):
    datasets = pytest.importorskip("datasets")
    columns = {k: [r.get(k) for r in ROWS] for k in ("id", "prompt", "chosen", "rejected", "source", "category")}
    datasets.Dataset.from_dict(columns).save_to_disk(str(tmp_path / "pairs"))
    assert as_tuples(load_pairs(tmp_path / "pairs")) == EXPECTED
    other = {**columns, "id": [1, 2], "chosen": ["four", "Paris!"]}
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(columns),
                          "test": datasets.Dataset.from_dict(other)}).save_to_disk(str(tmp_path / "dd"))
    assert [p.id for p in load_pairs(tmp_path / "dd")] == ["7", "8"]  # the train split by default
    assert [p.chosen for p in load_pairs(tmp_path / "dd", split="test")] == ["four", "Paris!"]
    with pytest.raises(ValueError, match="'dev' is not a split; splits: train, test"):
        load_pairs(tmp_path / "dd", split="dev")
    datasets.DatasetDict({"test": datasets.Dataset.from_dict(other),
                          "dev": datasets.Dataset.from_dict(other)}).save_to_disk(str(tmp_path / "nodefault"))
    with pytest.raises(ValueError, match="choose one with --data-split"):
        load_pairs(tmp_path / "nodefault")


def test_field_map_renames_columns(tmp_path):
    rows = [{"uid": 1, "question": "q1", "response_a": "good", "response_b": "bad"},
            {"uid": 2, "question": "q2", "response_a": "fine", "response_b": "poor"}]
    path = write(tmp_path / "other.parquet", rows, "parquet")
    fields = parse_field_map("id=uid, prompt=question,chosen=response_a,rejected=response_b")
    assert as_tuples(load_pairs(path, fields=fields)) == [("1", "q1", "good", "bad", "other", None),
                                                          ("2", "q2", "fine", "poor", "other", None)]
    with pytest.raises(DataError) as info:
        load_pairs(path, fields={**fields, "prompt": "instruction"})
    message = str(info.value)
    assert "other.parquet:1: field 'instruction'" in message and "--fields prompt=instruction" in message


@pytest.mark.parametrize("spec, says", [("prompt", "is not FIELD=COLUMN"), ("prompt=", "is not FIELD=COLUMN"),
                                        ("answer=x", "'answer' is not a pair field"),
                                        ("prompt=a,prompt=b", "'prompt' is mapped twice")])
def test_bad_field_map_names_the_flag_at_parse_time(spec, says):
    with pytest.raises(ValueError, match="--fields") as info:
        parse_config(["--data", "p.jsonl", "--fields", spec])
    assert says in str(info.value)
    assert parse_config(["--data", "p.jsonl", "--fields", "prompt=q"]).fields == "prompt=q"
    with pytest.raises(ValueError, match="not builtin or --benchmark"):
        parse_config(["--data", "p.jsonl", "--benchmark", "ppe", "--data-split", "test"])


def test_parquet_error_names_row_and_field(tmp_path):
    rows = [dict(ROWS[0]), {**ROWS[1], "id": 9}, {**ROWS[1], "id": 10, "chosen": ""}]
    path = write(tmp_path / "bad.parquet", rows, "parquet")
    with pytest.raises(DataError) as info:
        load_pairs(path)
    assert (info.value.line, info.value.field, info.value.reason) == (3, "chosen", "empty_text")
    assert "bad.parquet:3: field 'chosen'" in str(info.value)


def test_hub_names_and_non_dataset_dirs_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="never downloads a dataset from a hub"):
        load_pairs("allenai/reward-bench")
    (tmp_path / "plain").mkdir()
    with pytest.raises(ValueError, match="must be a saved Hugging Face dataset"):
        list(iter_records(tmp_path / "plain"))


def test_data_files_lists_files_and_dataset_dirs(tmp_path):
    write(tmp_path / "b.jsonl", ROWS, "jsonl")
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub" / "a.parquet", ROWS, "parquet")
    (tmp_path / "README.md").write_text("not data")
    assert [p.relative_to(tmp_path).as_posix() for p in data_files(tmp_path)] == ["b.jsonl", "sub/a.parquet"]


def test_judge_flags_are_checked_when_parsed():
    parser = argparse.ArgumentParser()
    add_judge_args(parser)
    base = ["--model", "m", "--out", "o", "--data", "d"]
    with pytest.raises(ValueError, match="--fields: 'answer' is not a pair field"):
        check_args(parser.parse_args(base + ["--benchmark", "jsonl", "--fields", "answer=x"]))
    with pytest.raises(ValueError, match="read a --benchmark jsonl file"):
        check_args(parser.parse_args(base + ["--benchmark", "rewardbench", "--data-split", "test"]))
    check_args(parser.parse_args(base + ["--benchmark", "jsonl", "--fields", "prompt=x", "--data-split", "test"]))


def test_judge_jsonl_reads_parquet_with_fields(tmp_path):
    rows = [{"question": f"q{i}", "a": f"good {i}", "b": f"bad {i}", "id": i} for i in range(5)]
    path = write(tmp_path / "eval.parquet", rows, "parquet")
    pairs = load_eval_pairs("jsonl", str(path), fields="prompt=question,chosen=a,rejected=b", limit=3, seed=1)
    assert len(pairs) == 3 and all(p.chosen.startswith("good") and p.source == "eval" for p in pairs)


def test_a_missing_reader_package_says_how_to_install_it(tmp_path, monkeypatch):
    import sys

    from j1core.data.formats import iter_records
    from j1core.errors import UserError

    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)  # an import of it now raises ImportError
    path = tmp_path / "pairs.parquet"
    path.write_bytes(b"PAR1")
    with pytest.raises(UserError, match="pairs.parquet: reading it needs the pyarrow package: pip install"):
        list(iter_records(path))
