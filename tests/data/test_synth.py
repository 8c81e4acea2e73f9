"""Tests of `generate.py synth` (j1core/data/synth.py, j1core/data/synth_inputs.py).

    python -m pytest tests/data/test_synth.py -q

Most tests drive the pipeline with a scripted sampler (given texts per message); the tiny-model tests run
the real RolloutEngine end to end.
"""
import argparse
import json
from pathlib import Path

import pytest

from j1core.data.pairs import DataError, load_pairs
from j1core.data.synth import (
    MODIFY_PREFILL,
    MODIFY_TEMPLATE,
    ChatSampler,
    Sample,
    SynthSettings,
    add_synth_args,
    dropped_path,
    near_identical,
    parse_modified_instruction,
    run_synth,
    run_synth_items,
)
from j1core.data.synth_inputs import SourceItem, read_instructions, read_problems

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data not present")


class ScriptedSampler:
    """Engine-like stand-in: replies[message] is a list of (text, truncated) used in turn for each sample."""

    def __init__(self, replies):
        self.replies = {message: list(texts) for message, texts in replies.items()}
        self.calls = []

    def sample(self, user_messages, n, max_new_tokens, temperature, seed, prefills=None):
        self.calls.append({"messages": list(user_messages), "n": n, "seed": seed, "prefills": prefills})
        out = []
        for message in user_messages:
            group = []
            for _ in range(n):
                text, truncated = self.replies[message].pop(0)
                group.append(Sample(text, len(text.split()) + 1, truncated))
            out.append(group)
        return out


class RecordingSampler:
    """Passes calls through to a real sampler and keeps every returned text."""

    def __init__(self, inner):
        self.inner, self.texts = inner, []

    def sample(self, *args, **kwargs):
        out = self.inner.sample(*args, **kwargs)
        self.texts.append([[s.text for s in group] for group in out])
        return out


def settings(**kw):
    return SynthSettings(**{"generator": "scripted", "seed": 3, "max_new_tokens": 32, "samples": 3,
                            "batch_size": 4, **kw})


def modify(instruction):
    return MODIFY_TEMPLATE.format(instruction=instruction)


def read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


# ---------------------------------------------------------------- parsing

@pytest.mark.parametrize("text, truncated, expected", [
    ("<instruction>List three rivers in Asia.</instruction>", False, "List three rivers in Asia."),
    ("Sure! < Instruction >\n  List rivers.\n</ instruction > bye", False, "List rivers."),
    ("<new_instruction>Name a lake.</new_instruction>", False, "Name a lake."),
    ("<instruction>Name a lake.", False, "Name a lake."),
    ("<instruction>Name a lake and then keep going without", True, None),
    ("New instruction: Describe a mountain.\n\nHere is why...", False, "Describe a mountain."),
    ("**Modified instruction:** \"Describe a desert.\"", False, "Describe a desert."),
    ("<instruction>  </instruction>", False, None),
    ("I cannot help with that.", False, None),
])
def test_parse_modified_instruction(text, truncated, expected):
    assert parse_modified_instruction(text, truncated) == expected


def test_near_identical_uses_ratio_and_word_overlap():
    base = "The capital of France is Paris, a city on the Seine with many museums."
    assert near_identical(base, base.upper().replace(",", ""))
    assert near_identical(base, "The capital of France is Paris, a city on the Seine with many museum.")
    shuffled = " ".join(reversed(base.split()))
    assert near_identical(base, shuffled)  # word overlap catches a reordering difflib scores low
    assert not near_identical(base, "Rome is the capital of Italy and sits on the Tiber river.")


# ---------------------------------------------------------------- noisy pipeline, scripted

GOOD_A = "Paris is the capital of France."
GOOD_B = "Berlin has been the capital of Germany since reunification in 1990."


def noisy_case(tmp_path):
    items = [SourceItem(f"i{k}", f"instruction {k}", "jsonl", "cat") for k in range(6)]
    replies = {
        # ok
        "instruction 0": [(GOOD_A, False)],
        modify("instruction 0"): [("Name the capital of Germany.</instruction>", False)],
        "Name the capital of Germany.": [(GOOD_B, False)],
        # unparsed: the tag is closed straight away
        "instruction 1": [(GOOD_A, False)], modify("instruction 1"): [("</instruction>", False)],
        # same_instruction (normalised: case and punctuation)
        "instruction 2": [(GOOD_A, False)], modify("instruction 2"): [("Instruction 2!</instruction>", False)],
        # empty_response: the chosen answer is blank
        "instruction 3": [("  ", False)], modify("instruction 3"): [("Tell a joke.</instruction>", False)],
        # too_long: the rejected answer hit max_new_tokens
        "instruction 4": [(GOOD_A, False)], modify("instruction 4"): [("Write a poem.</instruction>", False)],
        "Write a poem.": [("Roses are red and the poem goes on and", True)],
        # near_identical: the rejected answer repeats the chosen one
        "instruction 5": [(GOOD_A, False)], modify("instruction 5"): [("Capital of France?</instruction>", False)],
        "Capital of France?": [(GOOD_A + " ", False)],
    }
    return items, ScriptedSampler(replies)


def test_noisy_writes_valid_pairs_and_counts_every_drop_reason(tmp_path):
    items, sampler = noisy_case(tmp_path)
    out = tmp_path / "pairs.jsonl"
    summary = run_synth_items("noisy", items, sampler, out, settings(), progress=None)
    assert summary["drops"] == {"unparsed": 1, "same_instruction": 1, "empty_response": 1, "too_long": 1,
                                "near_identical": 1}
    assert summary["pairs_written"] == 1 and summary["yield"] == pytest.approx(1 / 6)
    (pair,) = load_pairs(out)
    assert (pair.id, pair.prompt, pair.chosen, pair.rejected) == ("synth-noisy-i0", "instruction 0", GOOD_A, GOOD_B)
    assert (pair.source, pair.category) == ("synth-noisy", "cat")
    (row,) = read_jsonl(out)
    assert row["generator"] == "scripted" and row["seed"] == 3 and row["source_id"] == "i0"
    assert row["family"] == "jsonl" and row["modified_instruction"] == "Name the capital of Germany."
    dropped = {r["source_id"]: r["reason"] for r in read_jsonl(dropped_path(out))}
    assert dropped == {"i1": "unparsed", "i2": "same_instruction", "i3": "empty_response", "i4": "too_long",
                       "i5": "near_identical"}
    first = sampler.calls[0]
    assert first["prefills"] == [""] * 4 + [MODIFY_PREFILL] * 4  # chunk of 4: answers, then modifications


def test_tokens_generated_sums_every_sample(tmp_path):
    items, sampler = noisy_case(tmp_path)
    expected = sum(len(text.split()) + 1 for texts in sampler.replies.values() for text, _ in texts)
    summary = run_synth_items("noisy", items, sampler, tmp_path / "p.jsonl", settings(), progress=None)
    assert summary["tokens_generated"] == expected


# ---------------------------------------------------------------- math pipeline, scripted

MATH_PROMPT = "Solve this problem step by step. Write the final answer on the last line as \"#### <number>\".\n\n{}"


def math_case():
    items = [SourceItem(f"gsm8k-{k}", f"problem {k}", "gsm8k", "gsm8k", "1000") for k in range(4)]
    replies = {
        MATH_PROMPT.format("problem 0"): [("so 999 + 1 = 1,000 apples. #### 1,000", False), ("#### 999", False),
                                          ("The answer is $1000.", False)],
        MATH_PROMPT.format("problem 1"): [("#### 1000.0", False), ("The answer is 1000", False),
                                          ("\\boxed{1000}", False)],
        MATH_PROMPT.format("problem 2"): [("#### 7", False), ("no idea", False), ("#### 1000", True)],
        MATH_PROMPT.format("problem 3"): [("#### 12", False), ("\\boxed{\\frac{2000}{2}}", False), ("", False)],
    }
    return items, ScriptedSampler(replies)


def test_math_pairs_a_correct_with_an_incorrect_solution(tmp_path):
    items, sampler = math_case()
    out = tmp_path / "math.jsonl"
    summary = run_synth_items("math", items, sampler, out, settings(), progress=None)
    # problem 1: all correct; problem 2: the only correct one was cut at max_new_tokens and does not count
    assert summary["drops"] == {"no_incorrect": 1, "no_correct": 1}
    pairs = {p.id: p for p in load_pairs(out)}
    assert set(pairs) == {"synth-math-gsm8k-0", "synth-math-gsm8k-3"}
    assert pairs["synth-math-gsm8k-0"].chosen.endswith("#### 1,000")
    assert pairs["synth-math-gsm8k-0"].rejected == "#### 999"
    assert pairs["synth-math-gsm8k-3"].chosen == "\\boxed{\\frac{2000}{2}}"
    rows = {r["id"]: r for r in read_jsonl(out)}
    assert rows["synth-math-gsm8k-0"]["gold"] == "1000" and rows["synth-math-gsm8k-0"]["rejected_answer"] == "999"
    assert sampler.calls[0]["n"] == 3


# ---------------------------------------------------------------- resume and determinism

def test_resume_skips_written_and_dropped_ids_and_trims_a_cut_line(tmp_path):
    items, sampler = noisy_case(tmp_path)
    out = tmp_path / "pairs.jsonl"
    first = run_synth_items("noisy", items[:4], sampler, out, settings(batch_size=2), progress=None)
    assert first["processed"] == 4
    with out.open("a") as handle:
        handle.write('{"id": "cut-off')  # a killed run's half-written line
    calls_before = len(sampler.calls)
    second = run_synth_items("noisy", items, sampler, out, settings(batch_size=2), progress=None)
    assert second["already_done"] == 4 and second["processed"] == 2
    assert [m for c in sampler.calls[calls_before:] for m in c["messages"]][:2] == ["instruction 4", "instruction 5"]
    assert {p.id for p in load_pairs(out)} == {"synth-noisy-i0"}
    dropped = [r["source_id"] for r in read_jsonl(dropped_path(out))]
    assert sorted(dropped) == ["i1", "i2", "i3", "i4", "i5"]
    third = run_synth_items("noisy", items, sampler, out, settings(batch_size=2), progress=None)
    assert third["processed"] == 0 and third["tokens_generated"] == 0


def test_seeds_depend_on_seed_and_chunk_not_on_what_was_skipped(tmp_path):
    items, sampler = math_case()
    run_synth_items("math", items, sampler, tmp_path / "a.jsonl", settings(batch_size=2), progress=None)
    seeds = [c["seed"] for c in sampler.calls]
    assert len(set(seeds)) == 2
    items, resumed = math_case()
    out = tmp_path / "b.jsonl"
    out.write_text(json.dumps({"source_id": "gsm8k-0"}) + "\n" + json.dumps({"source_id": "gsm8k-1"}) + "\n")
    run_synth_items("math", items, resumed, out, settings(batch_size=2), progress=None)
    assert [c["seed"] for c in resumed.calls] == seeds[1:]
    items, other_seed = math_case()
    run_synth_items("math", items, other_seed, tmp_path / "c.jsonl", settings(batch_size=2, seed=4), progress=None)
    assert [c["seed"] for c in other_seed.calls] != seeds


# ---------------------------------------------------------------- inputs

def test_inputs_instructions_jsonl_json_and_followbench_layout(tmp_path):
    (tmp_path / "p.jsonl").write_text('{"prompt": "a"}\n\n{"instruction": "b", "id": "x7"}\n')
    assert [(i.source_id, i.text) for i in read_instructions(tmp_path / "p.jsonl")] == [("p-1", "a"), ("p-x7", "b")]
    (tmp_path / "l.json").write_text(json.dumps([{"instruction": "c", "category": "k"}]))
    assert [(i.source_id, i.category) for i in read_instructions(tmp_path / "l.json")] == [("l-1", "k")]
    bench = tmp_path / "fb"
    bench.mkdir()
    records = [{"example_id": 1, "category": "content", "level": 0, "instruction": "", "target": ""},
               {"example_id": 1, "category": "format, content", "level": 1, "instruction": "d", "target": ""}]
    (bench / "mixed_constraints.json").write_text(json.dumps(records))
    (item,) = read_instructions(bench)
    assert (item.source_id, item.text, item.family, item.category) == (
        "followbench-mixed-1-L1", "d", "followbench", "followbench/mixed")


def test_inputs_problems_gsm8k_math500_and_plain(tmp_path):
    rows = [{"question": "q", "answer": "work <<1+1=2>>\n#### 1,200"},
            {"problem": "p", "answer": "\\frac{1}{2}", "subject": "Algebra", "unique_id": "test/algebra/1.json"},
            {"question": "r", "gold": "5", "id": 9}]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    got = [(i.source_id, i.text, i.family, i.category, i.gold) for i in read_problems(tmp_path / "m.jsonl")]
    assert got == [("gsm8k-1", "q", "gsm8k", "gsm8k", "1,200"),
                   ("math500-test/algebra/1.json", "p", "math500", "math500/Algebra", "\\frac{1}{2}"),
                   ("jsonl-9", "r", "jsonl", None, "5")]


@pytest.mark.parametrize("line, field", [('{"question": "q"}', "answer/gold"), ('{"answer": "1"}', "question/problem"),
                                         ('{"question": "", "answer": "1"}', "question"), ("[1", "(record)")])
def test_inputs_bad_records_name_file_line_and_field(tmp_path, line, field):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"question": "ok", "answer": "2"}\n' + line + "\n")
    with pytest.raises(DataError) as error:
        read_problems(path)
    assert (error.value.path, error.value.line, error.value.field) == (str(path), 2, field)


@needs_shared
def test_shared_inputs_read_followbench_gsm8k_math500():
    followbench = read_instructions(SHARED / "FollowBench")
    assert len(followbench) == len({i.source_id for i in followbench}) > 900
    assert all(i.text.strip() for i in followbench)
    gsm8k = read_problems(SHARED / "GSM8K" / "test.jsonl")
    assert len(gsm8k) == 1319 and gsm8k[0].gold == "18"
    math500 = read_problems(SHARED / "MATH500" / "test.jsonl")
    assert len(math500) == 500 and all(i.gold for i in math500)


# ---------------------------------------------------------------- real engine with a tiny model

@pytest.fixture(scope="module")
def tiny():
    from j1core.model import tiny_model

    return tiny_model(seed=0)


def test_tiny_model_math_is_deterministic_for_a_seed(tmp_path, tiny):
    from j1core.engine.rollout import RolloutEngine

    model, tokenizer = tiny
    items = [SourceItem(f"gsm8k-{k}", f"What is {k} + {k}?", "gsm8k", "gsm8k", str(2 * k)) for k in range(2)]
    texts = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        sampler = RecordingSampler(ChatSampler(RolloutEngine(model, tokenizer), tokenizer))
        summary = run_synth_items("math", items, sampler, tmp_path / f"{name}.jsonl",
                                  settings(max_new_tokens=4, samples=2, seed=seed), progress=None)
        assert 0 < summary["tokens_generated"] <= 2 * 2 * 4  # 2 problems x 2 samples x at most 4 tokens
        assert summary["pairs_written"] + sum(summary["drops"].values()) == 2
        texts[name] = sampler.texts
    assert texts["a"] == texts["b"] and texts["a"] != texts["c"]


def test_cli_flags_and_run_synth_with_a_saved_tiny_model(tmp_path, tiny):
    model, tokenizer = tiny
    model_dir = tmp_path / "tiny"
    model.save_pretrained(model_dir, safe_serialization=True)
    tokenizer.save_pretrained(model_dir)
    (tmp_path / "p.jsonl").write_text("".join(json.dumps({"prompt": f"Say {w}."}) + "\n" for w in "abc"))
    parser = argparse.ArgumentParser()
    add_synth_args(parser)
    args = parser.parse_args(["noisy", "--model", str(model_dir), "--prompts", str(tmp_path / "p.jsonl"),
                              "--out", str(tmp_path / "out.jsonl"), "--limit", "2", "--max-new-tokens", "5",
                              "--device", "cpu", "--seed", "1", "--batch-size", "2"])
    summary = run_synth(args)
    assert summary["inputs"] == 2 and summary["processed"] == 2
    assert summary["pairs_written"] + sum(summary["drops"].values()) == 2
    assert summary["tokens_generated"] >= 2 * 2  # chosen and modification of each input, >= 1 token each
