"""The judge run: scripted judges through the resumable loop, forced verdicts on the engine against a plain
forward, and end-to-end runs of a tiny random model over every benchmark adapter.

    python -m pytest tests/eval/test_evaluate.py
"""
import argparse
import json
from pathlib import Path

import pytest
import torch

from j1core.data.benchmarks import BENCHMARKS
from j1core.data.pairs import Pair, save_pairs
from j1core.eval.evaluate import (
    add_judge_args,
    check_args,
    check_run_identity,
    engine_judge,
    judge_items,
    read_judgments,
    run_judge,
)
from j1core.eval.report import build_report
from j1core.judge.prompts import OPEN_THINK, render_answer
from j1core.judge.step import build_prompts
from j1core.model import tiny_model

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data not present")

PAIRS = [Pair(f"q{i}", f"What is {i} + {i}?", f"{2 * i}", f"{2 * i + 1}", "toy", "even" if i % 2 == 0 else "odd")
         for i in range(6)]


def parse(*argv):
    parser = argparse.ArgumentParser()
    add_judge_args(parser)
    return parser.parse_args([str(a) for a in argv])


@pytest.fixture(scope="module")
def tiny():
    """The smallest random model the engine runs: one layer, so long benchmark prompts stay cheap on CPU."""
    return tiny_model(seed=0, hidden=32, layers=1, heads=2, kv_heads=1)


@pytest.fixture(scope="module")
def tokenizer(tiny):
    return tiny[1]


def output(text):
    return {"text": text, "finish_reason": "eos", "new_tokens": 5}


def right_judge(items, n, seed):
    """Scripted judge: always names the gold response (pairwise) or scores chosen 8 and rejected 3."""
    def answer(it):
        if it.gold is not None:
            return render_answer("pairwise", verdict=it.gold)
        return render_answer("pointwise", score=8.0 if it.response == "chosen" else 3.0)
    return [[output(OPEN_THINK + "thinking" + answer(it)) for _ in range(n)] for it in items]


def test_scripted_right_judge_through_the_loop(tmp_path, tokenizer):
    items = build_prompts(PAIRS, "pairwise", tokenizer)
    path = tmp_path / "judgments.jsonl"
    assert judge_items(items, right_judge, "pairwise", path, chunk_size=5, progress=False) == len(items)
    records = read_judgments(path)
    assert len(records) == 2 * len(PAIRS) and all(r["correct"] == 1.0 and r["parsed"] for r in records)
    report = build_report(records, PAIRS, "pairwise", seed=0, bootstrap=50, meta={})
    assert report["overall"]["consistent_accuracy"] == 1.0 and report["overall"]["flip_rate"] == 0.0
    assert set(report["by_category"]) == {"even", "odd"}
    assert report["meta"]["pairs"] == len(PAIRS) and report["meta"]["judgments"] == len(records)
    longer = sum(len(p.chosen) > len(p.rejected) for p in PAIRS)
    assert report["by_length"].get("chosen longer", {}).get("pairs", 0) == longer
    assert sum(v["pairs"] for v in report["by_length"].values()) == len(PAIRS)


def test_scripted_pointwise_judge(tmp_path, tokenizer):
    items = build_prompts(PAIRS, "pointwise", tokenizer)
    assert {it.response for it in items} == {"chosen", "rejected"} and all(it.order is None for it in items)
    path = tmp_path / "judgments.jsonl"
    judge_items(items, right_judge, "pointwise", path, samples=2, progress=False)
    report = build_report(read_judgments(path), PAIRS, "pointwise", seed=0, bootstrap=0, meta={})
    assert report["overall"]["accuracy"] == 1.0 and report["mean_score_at_k"]["accuracy"] == 1.0
    assert report["overall"]["flip_rate"] is None


def test_never_parsing_judge_through_the_loop(tmp_path, tokenizer):
    items = build_prompts(PAIRS, "pairwise", tokenizer)
    path = tmp_path / "judgments.jsonl"
    judge_items(items, lambda its, n, seed: [[output("Paris.")] * n for _ in its], "pairwise", path,
                progress=False)
    report = build_report(read_judgments(path), PAIRS, "pairwise", seed=0, bootstrap=0, meta={})
    assert report["overall"]["unparseable_rate"] == 1.0 and report["overall"]["accuracy"] == 0.0


class Killed(Exception):
    pass


def test_resume_after_interrupt_redoes_nothing(tmp_path, tokenizer):
    items = build_prompts(PAIRS, "pairwise", tokenizer)
    path = tmp_path / "judgments.jsonl"
    first_chunk = []

    def interrupted(chunk, n, seed):
        if first_chunk:
            raise Killed
        first_chunk.extend(it.key for it in chunk)
        return right_judge(chunk, n, seed)

    with pytest.raises(Killed):
        judge_items(items, interrupted, "pairwise", path, chunk_size=4, progress=False)
    with open(path, "a") as handle:
        handle.write('{"key": "q5|o1|0", "pair')  # killed in the middle of a write
    seen = []

    def counting(chunk, n, seed):
        seen.extend(it.key for it in chunk)
        return right_judge(chunk, n, seed)

    assert judge_items(items, counting, "pairwise", path, chunk_size=4, progress=False) == len(items) - 4
    assert set(seen) == {it.key for it in items} - set(first_chunk)
    keys = [r["key"] for r in read_judgments(path)]
    assert sorted(keys) == sorted(f"{it.key}|0" for it in items)


def test_resume_fills_only_missing_samples(tmp_path, tokenizer):
    items = build_prompts(PAIRS[:1], "pairwise", tokenizer)
    path = tmp_path / "judgments.jsonl"
    judge_items(items, right_judge, "pairwise", path, samples=2, progress=False)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n")  # drop sample 1 of order 1
    assert judge_items(items, right_judge, "pairwise", path, samples=2, progress=False) == 1
    assert sorted(r["key"] for r in read_judgments(path)) == sorted(f"{it.key}|{s}" for it in items for s in (0, 1))


def test_corrupt_middle_line_names_file_and_line(tmp_path):
    path = tmp_path / "judgments.jsonl"
    path.write_text('{"key": "a|o0|0"}\nnot json\n{"key": "a|o1|0"}\n')
    with pytest.raises(ValueError, match=r"judgments.jsonl:2"):
        read_judgments(path)


def test_resume_refuses_other_settings(tmp_path):
    check_run_identity(tmp_path, {"model": "m", "format": "pairwise"})
    check_run_identity(tmp_path, {"model": "m", "format": "pairwise"})
    with pytest.raises(ValueError, match="judge_config.json: field 'format'"):
        check_run_identity(tmp_path, {"model": "m", "format": "pointwise"})


def test_resume_with_another_dtype_is_refused_and_a_trailing_slash_is_the_same_model(tmp_path):
    """Issue 23, cases 20 and 21: --dtype is part of the run's identity; DIR/ and DIR are one model."""
    model = tmp_path / "model"
    model.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    check_run_identity(out, {"model": str(model), "dtype": "fp32"})
    check_run_identity(out, {"model": f"{model}/", "dtype": "fp32"})
    with pytest.raises(ValueError, match="field 'dtype' is 'fp32' but this run has 'bf16'"):
        check_run_identity(out, {"model": str(model), "dtype": "bf16"})


def test_a_judge_config_from_before_dtype_counts_as_fp32(tmp_path):
    (tmp_path / "judge_config.json").write_text('{"model": "m"}')
    check_run_identity(tmp_path, {"model": "m", "dtype": "fp32", "truncate": False})
    with pytest.raises(ValueError, match="field 'dtype'"):
        check_run_identity(tmp_path, {"model": "m", "dtype": "bf16"})


@pytest.mark.parametrize("flags, name", [(("--temperature", -1), "--temperature"), (("--top-p", 0), "--top-p"),
                                         (("--top-p", 1.5), "--top-p"), (("--max-new-tokens", 0), "--max-new-tokens"),
                                         (("--max-think-tokens", -1), "--max-think-tokens"),
                                         (("--chunk-size", 0), "--chunk-size"), (("--seed", -1), "--seed"),
                                         (("--bootstrap", -1), "--bootstrap"), (("--limit", 0), "--limit")])
def test_out_of_range_judge_flags_name_the_flag(flags, name):
    with pytest.raises(ValueError, match=name):
        check_args(parse("--model", "m", "--benchmark", "llmbar", "--out", "o", *flags))


def test_argument_checks():
    with pytest.raises(ValueError, match="--temperature"):
        check_args(parse("--model", "m", "--benchmark", "llmbar", "--out", "o", "--samples", 4))
    with pytest.raises(ValueError, match="--forced-verdict"):
        check_args(parse("--model", "m", "--benchmark", "llmbar", "--out", "o", "--forced-verdict",
                         "--format", "pointwise"))
    check_args(parse("--model", "m", "--benchmark", "llmbar", "--out", "o", "--samples", 4, "--temperature", 1))


@pytest.mark.parametrize("think", [0, 3])
def test_forced_judge_reads_the_letter_off_the_engine(tiny, think):
    """Greedy forced verdicts: the letter is the larger of the A/B logits after prompt + sampled reasoning +
    suffix, p_a is softmax over those two logits at T = 1 (plain HF forward), and the text is what was sampled."""
    from j1core.engine.rollout import RolloutEngine
    from j1core.judge.rollout import SamplingParams, sample_judgments
    from j1core.judge.tokens import forced_suffix_ids, letter_ids

    model, tok = tiny
    items = build_prompts(PAIRS[:3], "pairwise", tok)
    engine = RolloutEngine(model, tok)
    outputs = engine_judge(engine, tok, "pairwise", True, 8, think, 0.0, 1.0)(items, 1, 0)
    params = SamplingParams(forced_verdict=True, max_think_tokens=think, temperature=0.0)
    samples = sample_judgments(engine, tok, [it.ids for it in items], "pairwise", params, [0] * len(items))
    suffix, letters = forced_suffix_ids(tok), letter_ids(tok)
    for item, (out,), (sample,) in zip(items, outputs, samples):
        assert out["finish_reason"] == "forced" and out["new_tokens"] == len(sample.token_ids)
        reasoning = sample.token_ids[:-1 - len(suffix)]  # greedy: the same tokens whatever the seed
        assert len(reasoning) <= think and sample.token_ids[-1 - len(suffix):-1] == suffix
        with torch.no_grad():
            logits = model(torch.tensor([item.ids + reasoning + suffix])).logits[0, -1, letters]
        assert out["p_a"] == pytest.approx(torch.softmax(logits.float(), -1)[0].item(), abs=1e-4)
        letter = "AB"[int(logits.argmax())]
        assert out["text"] == (OPEN_THINK + tok.decode(reasoning, skip_special_tokens=True)
                               + render_answer("pairwise", letter))


# ---------------------------------------------------------------- end to end with a tiny model

@pytest.fixture(scope="module")
def tiny_dir(tiny, tmp_path_factory):
    model, tok = tiny
    path = tmp_path_factory.mktemp("tiny-judge")
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def run_tiny(tiny_dir, out, *extra):
    args = parse("--model", tiny_dir, "--out", out, "--max-new-tokens", 8, "--bootstrap", 50, "--no-progress",
                 "--limit", 5, *extra)
    return run_judge(args)


def check_report_files(out: Path, pairs: int, judgments: int):
    report = json.loads((out / "report.json").read_text())
    assert report["meta"]["pairs"] == pairs and report["meta"]["judgments"] == judgments
    overall = report["overall"]
    for name in ("accuracy", "accuracy_order0", "accuracy_order1", "consistent_accuracy", "unparseable_rate"):
        assert 0.0 <= overall[name] <= 1.0
    assert set(overall["ci95"]) == {"accuracy", "consistent_accuracy", "flip_rate"}
    assert report["by_category"]
    assert "consistent_accuracy" in (out / "report.md").read_text()
    assert sum(v["pairs"] for v in report["by_length"].values()) == pairs
    assert ("length_bias" in (out / "report.md").read_text()) == (report["length_bias"] is not None)
    assert len((out / "judgments.jsonl").read_text().splitlines()) == judgments
    return report


@needs_shared
@pytest.mark.parametrize("bench_name", [b for b in BENCHMARKS if b not in ("rewardbench", "ppe", "followbench")])
def test_shared_benchmark_end_to_end(bench_name, tiny_dir, tmp_path):  # the other three: not in ../shared/data
    report = run_tiny(tiny_dir, tmp_path, "--benchmark", bench_name)
    check_report_files(tmp_path, 5, 10)
    assert report["meta"]["items_judged_this_run"] == 10


def test_rewardbench_end_to_end_reports_sections(tiny_dir, tmp_path):
    subsets = ("alpacaeval-easy", "llmbar-natural", "donotanswer", "math-prm", "hep-go")
    rows = [{"prompt": f"q{i}", "chosen": f"good {i}", "rejected": f"bad {i}", "chosen_model": "a",
             "rejected_model": "b", "subset": subset, "id": i} for i, subset in enumerate(subsets)]
    data = tmp_path / "filtered.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    report = run_tiny(tiny_dir, out, "--benchmark", "rewardbench", "--data", data, "--forced-verdict")
    check_report_files(out, 5, 10)
    sections = report["rewardbench"]["sections"]
    assert set(sections) == {"Chat", "Chat Hard", "Safety", "Reasoning"}
    by_subset = {name: summary["accuracy"] for name, summary in report["by_category"].items()}
    assert sections["Reasoning"] == pytest.approx((984 * by_subset["math-prm"] + 164 * by_subset["hep-go"]) / 1148)
    assert report["rewardbench"]["score"] == pytest.approx(sum(sections.values()) / 4)
    assert "## RewardBench" in (out / "report.md").read_text()


@needs_shared
def test_shared_forced_verdict_always_parses(tiny_dir, tmp_path):
    report = run_tiny(tiny_dir, tmp_path, "--benchmark", "llmbar", "--subset", "Natural", "--forced-verdict",
                      "--max-think-tokens", 3)
    check_report_files(tmp_path, 5, 10)
    assert report["overall"]["unparseable_rate"] == 0.0 and report["overall"]["flip_pairs"] == 5
    records = read_judgments(tmp_path / "judgments.jsonl")
    assert all(0.0 <= r["p_a"] <= 1.0 and r["verdict"] in ("A", "B") for r in records)


@needs_shared
def test_shared_resume_end_to_end(tiny_dir, tmp_path):
    run_tiny(tiny_dir, tmp_path, "--benchmark", "gsm8k")
    path = tmp_path / "judgments.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:6]) + "\n" + lines[6][:20])  # killed: 3 lines written, one half-way
    report = run_tiny(tiny_dir, tmp_path, "--benchmark", "gsm8k")
    assert report["meta"]["items_judged_this_run"] == 4
    check_report_files(tmp_path, 5, 10)


def test_jsonl_sampled_scores_end_to_end(tiny_dir, tmp_path):
    save_pairs(PAIRS, tmp_path / "pairs.jsonl")
    out = tmp_path / "out"
    report = run_tiny(tiny_dir, out, "--benchmark", "jsonl", "--data", tmp_path / "pairs.jsonl",
                      "--format", "pairwise_scores", "--samples", 2, "--temperature", 1.0)
    check_report_files(out, 5, 20)
    assert "sc_at_k" in report and "mean_score_at_k" in report


def test_jsonl_forced_verdict_sampled_end_to_end(tiny_dir, tmp_path):
    save_pairs(PAIRS, tmp_path / "pairs.jsonl")
    out = tmp_path / "out"
    report = run_tiny(tiny_dir, out, "--benchmark", "jsonl", "--data", tmp_path / "pairs.jsonl", "--forced-verdict",
                      "--max-think-tokens", 2, "--samples", 3, "--temperature", 1.0)
    check_report_files(out, 5, 30)
    assert report["sc_at_k"]["unparseable_rate"] == 0.0
    records = read_judgments(out / "judgments.jsonl")
    assert all(r["text"].count("</think>") == 1 and r["parsed"] for r in records)


def test_rollout_dtype_judges_in_bf16_and_is_part_of_the_identity(tiny_dir, tmp_path):
    save_pairs(PAIRS, tmp_path / "pairs.jsonl")
    out = tmp_path / "out"
    report = run_tiny(tiny_dir, out, "--benchmark", "jsonl", "--data", tmp_path / "pairs.jsonl", "--forced-verdict",
                      "--max-think-tokens", 0, "--rollout-dtype", "bf16")
    check_report_files(out, 5, 10)
    assert report["meta"]["rollout_dtype_used"] == "bfloat16"
    with pytest.raises(ValueError, match="field 'rollout_dtype' is 'bf16' but this run has 'model'"):
        run_tiny(tiny_dir, out, "--benchmark", "jsonl", "--data", tmp_path / "pairs.jsonl", "--forced-verdict",
                 "--max-think-tokens", 0)
