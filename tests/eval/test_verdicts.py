"""Tests for j1core/eval/verdicts.py: unlabeled pairs files, the reading of a pair's judgments, and
`generate.py judge` on a file without labels, end to end with a tiny random model.

    python -m pytest tests/eval/test_verdicts.py -q
"""
import argparse
import json

import pytest

from j1core.data.pairs import DataError
from j1core.eval.evaluate import add_judge_args, read_judgments, run_judge
from j1core.eval.verdicts import is_unlabeled, load_unlabeled, pair_verdict, summarize_verdicts
from j1core.model import tiny_model

CONVERSATION = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
                {"role": "user", "content": "What is 3 + 4?"}]
RECORDS = [{"id": 7, "prompt": "What is 2 + 2?", "response_a": "4", "response_b": "5"},
           {"prompt": CONVERSATION, "response_a": "7", "response_b": "8", "extra": "kept out"},
           {"id": "x", "prompt": "Name a prime.", "response_a": "9", "response_b": "7"}]


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_load_unlabeled_ids_prompts_and_detection(tmp_path):
    path = write_jsonl(tmp_path / "u.jsonl", RECORDS)
    assert is_unlabeled(path)
    pairs = load_unlabeled(path)
    assert [p.id for p in pairs] == ["7", "line-2", "x"]
    assert pairs[1].prompt == CONVERSATION and (pairs[1].chosen, pairs[1].rejected) == ("7", "8")
    as_list = tmp_path / "u.json"
    as_list.write_text(json.dumps(RECORDS, indent=1))
    assert [p.id for p in load_unlabeled(as_list)] == ["7", "line-8", "x"]  # the line its object starts on
    labelled = write_jsonl(tmp_path / "l.jsonl", [{"id": "a", "prompt": "q", "chosen": "y", "rejected": "n",
                                                   "source": "s"}])
    assert not is_unlabeled(labelled)
    assert not is_unlabeled(write_jsonl(tmp_path / "broken.jsonl", ['{"prompt": ']))


@pytest.mark.parametrize("record,line_field", [
    ({"prompt": "q", "response_a": "a"}, "response_b"),
    ({"prompt": "q", "response_a": "a", "response_b": 3}, "response_b"),
    ({"prompt": " ", "response_a": "a", "response_b": "b"}, "prompt"),
    ({"prompt": [{"role": "bot", "content": "hi"}], "response_a": "a", "response_b": "b"}, "prompt[0].role"),
    ({"prompt": [], "response_a": "a", "response_b": "b"}, "prompt"),
    ({"id": 1.5, "prompt": "q", "response_a": "a", "response_b": "b"}, "id"),
    ({"id": 7, "prompt": "q", "response_a": "a", "response_b": "b"}, "id"),  # duplicate of line 1's id
])
def test_bad_unlabeled_record_names_file_line_and_field(tmp_path, record, line_field):
    path = write_jsonl(tmp_path / "u.jsonl", [RECORDS[0], record])
    with pytest.raises(DataError) as info:
        load_unlabeled(path)
    assert (info.value.line, info.value.field) == (2, line_field)
    assert str(info.value).startswith(f"{path}:2: field '{line_field}'")


def record(order, winner, p_a=None, sample=0, parsed=True):
    r = {"order": order, "winner": winner, "sample": sample, "parsed": parsed, "response": None}
    return r if p_a is None else {**r, "p_a": p_a}


def test_pair_verdict_maps_each_order_back_to_the_responses():
    # Order 0 says A (= a), order 1 says B (= a): both prefer a.
    v = pair_verdict("pairwise", [record(0, "A", 0.9), record(1, "B", 0.2)])
    assert v["verdicts"] == ["a", "a"] and v["agree"] and v["preference"] == "a"
    assert v["p_a"] == pytest.approx([0.9, 0.8]) and v["win_a"] == pytest.approx(0.85)
    # Always "A": a in order 0, b in order 1: inconsistent, P(a) one half.
    v = pair_verdict("pairwise", [record(0, "A", 0.7), record(1, "A", 0.7)])
    assert v["verdicts"] == ["a", "b"] and not v["agree"] and v["preference"] == "inconsistent"
    assert v["win_a"] == pytest.approx(0.5)
    # Free samples: order 0 votes a, a, unparsed; order 1 votes a (B), tie, b (A).
    recs = [record(0, "A", sample=0), record(0, "A", sample=1), record(0, None, sample=2, parsed=False),
            record(1, "B", sample=0), record(1, "tie", sample=1), record(1, "A", sample=2)]
    v = pair_verdict("pairwise_scores", recs)
    assert v["verdicts"] == ["a", "tie"] and v["preference"] == "inconsistent" and "p_a" not in v
    assert v["win_a"] == pytest.approx(((1 + 1 + 0.5) / 3 + (1 + 0.5 + 0) / 3) / 2)
    v = pair_verdict("pairwise_scores", [record(0, "tie"), record(1, "tie")])
    assert v["verdicts"] == ["tie", "tie"] and v["preference"] == "tie" and not v["agree"]
    assert pair_verdict("pairwise", [record(0, None, parsed=False), record(1, "A")])["verdicts"] == [None, "b"]
    with pytest.raises(ValueError, match="both orders"):
        pair_verdict("pairwise", [record(0, "A")])


def test_pair_verdict_pointwise_compares_mean_scores():
    def scored(response, score):
        return {"order": None, "response": response, "score": score, "parsed": score is not None}
    v = pair_verdict("pointwise", [scored("chosen", 6.0), scored("chosen", None), scored("rejected", 7.5)])
    assert v == {"score_a": 6.0, "score_b": 7.5, "preference": "b"}
    assert pair_verdict("pointwise", [scored("chosen", 6.0), scored("rejected", None)])["preference"] is None


def test_summary_counts_agreement_and_first_position():
    rows = [{"verdicts": ["a", "a"], "agree": True, "preference": "a", "win_a": 0.9},
            {"verdicts": ["a", "b"], "agree": False, "preference": "inconsistent", "win_a": 0.5},
            {"verdicts": [None, "b"], "agree": False, "preference": "inconsistent", "win_a": 0.4}]
    records = [{"parsed": True}] * 5 + [{"parsed": False}]
    s = summarize_verdicts(rows, records, "pairwise")
    assert s["pairs"] == 3 and s["preference"] == {"a": 1, "inconsistent": 2}
    assert s["agreement_rate"] == pytest.approx(1 / 3) and s["unparseable_rate"] == pytest.approx(1 / 6)
    # Strict verdicts: (0,a) first, (1,a) second, (0,a) first, (1,b) first, (1,b) first -> 4 of 5 shown first.
    assert s["first_position_rate"] == pytest.approx(4 / 5) and s["mean_win_a"] == pytest.approx(0.6)


def parse(*argv):
    parser = argparse.ArgumentParser()
    add_judge_args(parser)
    return parser.parse_args([str(a) for a in argv])


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    model, tok = tiny_model(seed=0, hidden=32, layers=1, heads=2, kv_heads=1)
    path = tmp_path_factory.mktemp("tiny-judge")
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def test_judge_on_an_unlabeled_file_writes_verdicts(tiny_dir, tmp_path, capsys):
    data = write_jsonl(tmp_path / "u.jsonl", RECORDS)
    out = tmp_path / "run"
    argv = ("--model", tiny_dir, "--benchmark", "jsonl", "--data", data, "--forced-verdict", "--out", out,
            "--no-progress")
    report = run_judge(parse(*argv))
    rows = [json.loads(line) for line in (out / "verdicts.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["7", "line-2", "x"]
    records = read_judgments(out / "judgments.jsonl")
    assert len(records) == 6 and all(r["gold"] is None and r["correct"] is None for r in records)
    for row in rows:  # each row is the reading of its own two judgments
        assert row == {"id": row["id"], **pair_verdict("pairwise", [r for r in records if r["pair_id"] == row["id"]])}
        assert 0.0 < row["win_a"] < 1.0 and len(row["p_a"]) == 2
    assert report["pairs"] == 3 and report["meta"]["unlabeled"] and sum(report["preference"].values()) == 3
    assert report["agreement_rate"] == pytest.approx(sum(r["agree"] for r in rows) / 3)
    assert json.loads((out / "report.json").read_text()) == report
    assert "agreement_rate" in (out / "report.md").read_text()
    assert "verdicts.jsonl: 3 pairs, agreement" in capsys.readouterr().out
    again = run_judge(parse(*argv))  # resumes from judgments.jsonl: nothing left to judge, the same verdicts
    assert again["meta"]["items_judged_this_run"] == 0
    assert [json.loads(line) for line in (out / "verdicts.jsonl").read_text().splitlines()] == rows


def test_judge_on_an_unlabeled_file_pointwise(tiny_dir, tmp_path):
    data = write_jsonl(tmp_path / "u.jsonl", RECORDS[:2])
    out = tmp_path / "run"
    report = run_judge(parse("--model", tiny_dir, "--benchmark", "jsonl", "--data", data, "--format", "pointwise",
                             "--max-new-tokens", 4, "--out", out, "--no-progress"))
    rows = [json.loads(line) for line in (out / "verdicts.jsonl").read_text().splitlines()]
    assert [set(r) for r in rows] == [{"id", "score_a", "score_b", "preference"}] * 2
    assert report["pairs"] == 2 and "agreement_rate" not in report
