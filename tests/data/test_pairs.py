"""Tests for j1core/data/pairs.py: validation messages, skip counting, both orders, splits, stream resume.

    python -m pytest tests/data/test_pairs.py -q
"""
import json
import random

import pytest

from j1core.data.pairs import (
    DataError,
    Pair,
    PairStream,
    load_pairs,
    read_pairs,
    save_pairs,
    split_pairs,
)
from j1core.judge.prompts import judge_prompt_ids
from j1core.judge.step import build_prompts
from j1core.model import load_tokenizer


def make_pairs(n, prompts=None):
    return [Pair(f"p{i}", f"prompt {i if prompts is None else i % prompts}", f"good {i}", f"bad {i}", "test",
                 "cat" if i % 2 else None) for i in range(n)]


def good_record(i):
    return {"id": f"r{i}", "prompt": f"q{i}", "chosen": "yes", "rejected": "no", "source": "t"}


def write_jsonl(path, rows):
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


def test_bad_line_7_names_line_and_field(tmp_path):
    rows = [good_record(i) for i in range(10)]
    del rows[6]["chosen"]
    path = write_jsonl(tmp_path / "pairs.jsonl", rows)
    with pytest.raises(DataError) as info:
        load_pairs(path)
    message = str(info.value)
    assert "pairs.jsonl:7:" in message and "'chosen'" in message
    assert (info.value.line, info.value.field, info.value.reason) == (7, "chosen", "missing_field")


BAD_RECORDS = {
    "missing_field": ({"id": "x", "prompt": "q", "chosen": "a", "source": "s"}, "rejected"),
    "wrong_type": ({**good_record(0), "id": "x", "prompt": 5}, "prompt"),
    "empty_text": ({**good_record(0), "id": "x", "chosen": "  \n"}, "chosen"),
    "identical": ({**good_record(0), "id": "x", "chosen": "same", "rejected": "same"}, "rejected"),
    "not_object": (["a", "list"], "(record)"),
    "invalid_json": ('{"id": "x", "prompt": ', "(record)"),
    "duplicate_id": ({**good_record(0), "prompt": "other"}, "id"),
}


@pytest.mark.parametrize("reason", sorted(BAD_RECORDS))
def test_each_validation_reason(tmp_path, reason):
    bad, field = BAD_RECORDS[reason]
    path = write_jsonl(tmp_path / "p.jsonl", [good_record(0), good_record(1), bad])
    with pytest.raises(DataError) as info:
        load_pairs(path)
    assert (info.value.line, info.value.field, info.value.reason) == (3, field, reason)
    assert "p.jsonl:3:" in str(info.value)


def test_wrong_category_type(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{**good_record(0), "category": 3}])
    with pytest.raises(DataError, match="category"):
        load_pairs(path)


def test_skip_invalid_counts_each_reason(tmp_path):
    rows = [good_record(i) for i in range(5)] + [bad for bad, _ in BAD_RECORDS.values()]
    path = write_jsonl(tmp_path / "p.jsonl", rows)
    with pytest.warns(UserWarning) as record:
        pairs = load_pairs(path, skip_invalid=True)
    assert [p.id for p in pairs] == [f"r{i}" for i in range(5)]
    message = str(record[0].message)
    assert f"skipped {len(BAD_RECORDS)} invalid records" in message
    for reason in BAD_RECORDS:
        assert f"{reason}=1" in message
    _, errors = read_pairs(path)
    assert sorted(e.reason for e in errors) == sorted(BAD_RECORDS)


def test_json_list_lines_and_round_trip(tmp_path):
    pairs = make_pairs(4)
    save_pairs(pairs, tmp_path / "p.json")
    assert load_pairs(tmp_path / "p.json") == pairs
    save_pairs(pairs, tmp_path / "p.jsonl")
    assert load_pairs(tmp_path / "p.jsonl") == pairs
    rows = [good_record(0), good_record(1), {**good_record(2), "source": ""}]
    text = "[\n" + ",\n".join(json.dumps(row) for row in rows) + "\n]\n"  # record i starts on line i + 2
    (tmp_path / "bad.json").write_text(text)
    with pytest.raises(DataError) as info:
        load_pairs(tmp_path / "bad.json")
    assert (info.value.line, info.value.field, info.value.reason) == (4, "source", "empty_text")


def test_both_orders_adjacent_with_golds():
    """build_prompts (j1core/judge/step.py) gives every pair its two orders, adjacent, with their golds."""
    tok = load_tokenizer("smollm2-135m-instruct")
    pairs = make_pairs(5)
    ordered = build_prompts(pairs, "pairwise", tok)

    def shown(p, response_a, response_b):  # the prompt shows response_a as A and response_b as B
        return judge_prompt_ids(tok, "pairwise", p.prompt, response_a, response_b)

    assert len(ordered) == 2 * len(pairs)
    for i, pair in enumerate(pairs):
        first, second = ordered[2 * i], ordered[2 * i + 1]
        assert first.pair_id == second.pair_id == pair.id
        assert (first.order, first.gold, first.ids) == (0, "A", shown(pair, pair.chosen, pair.rejected))
        assert (second.order, second.gold, second.ids) == (1, "B", shown(pair, pair.rejected, pair.chosen))
        assert first.category == second.category == pair.category


def test_split_is_deterministic_disjoint_and_keeps_prompt_groups():
    pairs = make_pairs(200, prompts=70)
    train, heldout = split_pairs(pairs, 0.2, seed=3)
    assert (train, heldout) == split_pairs(list(pairs), 0.2, seed=3)
    assert split_pairs(list(reversed(pairs)), 0.2, seed=3)[1] == list(reversed(heldout))
    assert len(train) + len(heldout) == len(pairs)
    assert {p.prompt for p in train}.isdisjoint(p.prompt for p in heldout)
    assert len(heldout) >= 40
    assert split_pairs(pairs, 0.2, seed=4)[1] != heldout


def test_pair_stream_resume_equals_uninterrupted():
    pairs = make_pairs(13)
    uninterrupted = PairStream(pairs, seed=7)
    expected = [p.id for p in uninterrupted.take(5) + uninterrupted.take(20) + uninterrupted.take(9)]
    first = PairStream(pairs, seed=7)
    got = [p.id for p in first.take(5)]
    state = json.loads(json.dumps(first.state_dict()))
    resumed = PairStream(pairs, seed=0)
    resumed.load_state_dict(state)
    got += [p.id for p in resumed.take(20) + resumed.take(9)]
    assert got == expected


def test_pair_stream_epochs_are_permutations_and_reshuffled():
    pairs = make_pairs(11)
    stream = PairStream(pairs, seed=1)
    epochs = [[p.id for p in stream.take(len(pairs))] for _ in range(3)]
    for epoch in epochs:
        assert sorted(epoch) == sorted(p.id for p in pairs)
    assert epochs[0] != epochs[1] or epochs[1] != epochs[2]


def test_pair_stream_refuses_state_of_other_data():
    stream = PairStream(make_pairs(6), seed=0)
    stream.take(3)
    other = PairStream(make_pairs(7), seed=0)
    with pytest.raises(ValueError, match="other data"):
        other.load_state_dict(stream.state_dict())


def test_pair_stream_random_take_sizes_match_flat_reference():
    # Reference: concatenate whole epochs, then cut; the stream must yield the same sequence.
    rng = random.Random(0)
    pairs = make_pairs(9)
    stream, reference = PairStream(pairs, seed=5), PairStream(pairs, seed=5)
    flat = [p.id for _ in range(8) for p in reference.take(len(pairs))]
    got = []
    while len(got) < 60:
        got += [p.id for p in stream.take(rng.randint(0, 12))]
    assert got == flat[:len(got)]


# ---------------------------------------------------------------- multi-turn prompts

CONVERSATION = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "What is 3 + 4?"}]


def test_a_conversation_prompt_loads_splits_and_round_trips(tmp_path):
    extra = [{**m, "name": "kept out"} for m in CONVERSATION]
    rows = [{**good_record(0), "prompt": extra}, {**good_record(1), "prompt": CONVERSATION}, good_record(2)]
    path = write_jsonl(tmp_path / "p.jsonl", rows)
    pairs = load_pairs(path)
    assert pairs[0].prompt == pairs[1].prompt == CONVERSATION  # messages keep role and content only
    save_pairs(pairs, tmp_path / "again.json")
    assert load_pairs(tmp_path / "again.json") == pairs
    for seed in range(5):  # the two pairs with the same conversation land on the same side
        train, heldout = split_pairs(pairs, 0.3, seed)  # holds out one prompt group
        assert {p.id for p in train} in ({"r0", "r1"}, {"r2"}) and len(train) + len(heldout) == 3


BAD_CONVERSATIONS = {
    "prompt": ([], "empty_text"),
    "prompt[1]": ([CONVERSATION[0], "hi"], "wrong_type"),
    "prompt[0].role": ([{"content": "hi"}], "missing_field"),
    "prompt[1].content": ([CONVERSATION[0], {"role": "user", "content": 5}], "wrong_type"),
    "prompt[2].content": (CONVERSATION[:2] + [{"role": "assistant", "content": " "}], "empty_text"),
}


@pytest.mark.parametrize("field", sorted(BAD_CONVERSATIONS) + ["role"])
def test_bad_conversation_names_line_and_message(tmp_path, field):
    messages, reason = BAD_CONVERSATIONS.get(field, ([{"role": "tool", "content": "x"}], "wrong_type"))
    field = "prompt[0].role" if field == "role" else field
    path = write_jsonl(tmp_path / "p.jsonl", [good_record(0), {**good_record(1), "prompt": messages}])
    with pytest.raises(DataError) as info:
        load_pairs(path)
    assert (info.value.line, info.value.field, info.value.reason) == (2, field, reason)
    assert f"p.jsonl:2: field '{field}'" in str(info.value)


def test_a_prompt_of_another_type_is_named(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{**good_record(0), "prompt": {"role": "user"}}])
    with pytest.raises(DataError, match="field 'prompt': expected a string or a list of messages, got dict"):
        load_pairs(path)


# ---------------------------------------------------------------- hostile files (issue 23: cases 2-6)

@pytest.mark.parametrize("content", [b"", b"\n \n\t\n", b'{"id": 1}\n[]\n'])
def test_a_file_without_valid_pairs_is_refused_naming_it(tmp_path, content):
    path = tmp_path / "pairs.jsonl"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=f"{path}: no valid pairs"):
        load_pairs(path, skip_invalid=True)


def test_a_byte_order_mark_is_allowed(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + (json.dumps(good_record(0)) + "\n").encode())
    assert [p.id for p in load_pairs(path)] == ["r0"]
    listed = tmp_path / "pairs.json"
    listed.write_bytes(b"\xef\xbb\xbf" + json.dumps([good_record(1)]).encode())
    assert [p.id for p in load_pairs(listed)] == ["r1"]


def test_a_non_utf8_line_names_file_and_line_and_can_be_skipped(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_bytes((json.dumps(good_record(0)) + "\n").encode() + b'{"id": "\xff"}\n'
                     + (json.dumps(good_record(2)) + "\n").encode())
    with pytest.raises(DataError, match=f"{path}:2: field '\\(record\\)': not UTF-8") as info:
        load_pairs(path)
    assert info.value.reason == "invalid_utf8"
    with pytest.warns(UserWarning, match="invalid_utf8=1"):
        assert [p.id for p in load_pairs(path, skip_invalid=True)] == ["r0", "r2"]
    listed = tmp_path / "pairs.json"
    listed.write_bytes(b'[\n{"id": "\xff"}]')
    with pytest.raises(DataError, match=f"{listed}:2: .*not UTF-8"):
        load_pairs(listed)


def test_a_lone_surrogate_is_a_bad_record_not_a_crash(tmp_path):
    path = tmp_path / "pairs.jsonl"
    bad = {**good_record(1), "chosen": "\\ud800 yes"}
    path.write_text(json.dumps(good_record(0)) + "\n" + json.dumps(bad).replace("\\\\ud800", "\\ud800") + "\n")
    with pytest.raises(DataError, match=":2: field 'chosen': holds a lone surrogate"):
        load_pairs(path)
    with pytest.warns(UserWarning, match="invalid_text=1"):
        assert [p.id for p in load_pairs(path, skip_invalid=True)] == ["r0"]


def test_deep_nesting_is_a_bad_record(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps(good_record(0)) + "\n" + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(DataError, match=":2: .*nested too deeply"):
        load_pairs(path)
    with pytest.warns(UserWarning, match="invalid_json=1"):
        assert len(load_pairs(path, skip_invalid=True)) == 1
    listed = tmp_path / "pairs.json"
    listed.write_text("[" + "[" * 100_000 + "]" * 100_000 + "]")
    with pytest.raises(DataError, match="nested too deeply"):
        load_pairs(listed)


def test_pair_stream_refuses_a_cursor_past_the_end():
    stream = PairStream(make_pairs(4), seed=0)
    state = {**stream.state_dict(), "position": 9}
    with pytest.raises(ValueError, match="position 9 is outside the data \\(4 pairs\\)"):
        PairStream(make_pairs(4), seed=0).load_state_dict(state)
