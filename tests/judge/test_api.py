"""Tests for j1core/judge/api.py: Judge.compare against a plain forward, batching, multi-turn prompts, scoring,
settings from a checkpoint, and the refusals.

    python -m pytest tests/judge/test_api.py -q
"""
import json
import subprocess
import sys

import pytest
import torch

from j1core.judge.api import Judge, trained_settings
from j1core.judge.prompts import OPEN_THINK, judge_prompt_ids, render_answer
from j1core.judge.tokens import forced_suffix_ids, letter_ids
from j1core.model import tiny_model

QUESTION = "What is 7 times 6?"
GOOD, BAD = "7 times 6 is 42.", "7 times 6 is 48."
CONVERSATION = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Hi!"},
                {"role": "assistant", "content": "Hello. What can I do?"}, {"role": "user", "content": QUESTION}]


@pytest.fixture(scope="module")
def tiny():
    return tiny_model(seed=5, hidden=32, layers=1, heads=2, kv_heads=1)


@pytest.fixture(scope="module")
def forced(tiny):
    return Judge(*tiny)  # pairwise, forced verdict, no thinking, greedy


def plain_p_letter_a(model, tokenizer, prompt, response_a, response_b):
    """P(letter A) against B after the judge prompt and the forced suffix, from one HF forward."""
    ids = judge_prompt_ids(tokenizer, "pairwise", prompt, response_a, response_b) + forced_suffix_ids(tokenizer)
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, -1, letter_ids(tokenizer)]
    return torch.softmax(logits.float(), -1)[0].item()


@pytest.mark.parametrize("prompt", [QUESTION, CONVERSATION])
def test_compare_gives_both_orders_mapped_back_to_a_and_b(tiny, forced, prompt):
    model, tokenizer = tiny
    result = forced.compare(prompt, GOOD, BAD)
    p0 = plain_p_letter_a(model, tokenizer, prompt, GOOD, BAD)        # order 0: a shown as A
    p1 = 1 - plain_p_letter_a(model, tokenizer, prompt, BAD, GOOD)    # order 1: a shown as B
    assert result.p_a == pytest.approx([p0, p1], abs=1e-4)
    assert result.verdicts == ["a" if p0 > 0.5 else "b", "a" if p1 > 0.5 else "b"]
    assert result.agree == (result.verdicts[0] == result.verdicts[1])
    assert result.preference == (result.verdicts[0] if result.agree else "inconsistent")
    assert result.win_a == pytest.approx((p0 + p1) / 2, abs=1e-4)
    letters = ["A" if result.verdicts[0] == "a" else "B", "B" if result.verdicts[1] == "a" else "A"]
    assert result.texts == [[OPEN_THINK + render_answer("pairwise", letter)] for letter in letters]


def test_a_conversation_is_judged_as_its_transcript(forced):
    transcript = "[System]: Answer briefly.\n[User]: Hi!\n[Assistant]: Hello. What can I do?\n[User]: " + QUESTION
    assert forced.compare(CONVERSATION, GOOD, BAD) == forced.compare(transcript, GOOD, BAD)
    one_message = [{"role": "user", "content": QUESTION}]
    assert forced.compare(one_message, GOOD, BAD) == forced.compare(QUESTION, GOOD, BAD)
    assert forced.compare(CONVERSATION, GOOD, BAD).p_a != forced.compare(QUESTION, GOOD, BAD).p_a


def test_swapping_the_responses_swaps_the_verdicts(forced):
    ab, ba = forced.compare(QUESTION, GOOD, BAD), forced.compare(QUESTION, BAD, GOOD)
    flip = {"a": "b", "b": "a"}
    assert ba.verdicts == [flip[v] for v in reversed(ab.verdicts)]
    assert ba.win_a == pytest.approx(1 - ab.win_a, abs=1e-5)


def test_batched_compare_equals_one_at_a_time_with_sampling(tiny):
    """Free reasoning, 2 samples at T = 1: each item samples from its own seed, so the batch changes nothing."""
    judge = Judge(*tiny, forced_verdict=False, max_new_tokens=6, temperature=1.0, samples=2)
    items = [(QUESTION, GOOD, BAD), (CONVERSATION, "42", "48"), (QUESTION, GOOD, BAD)]
    batched = judge.compare_many(items)
    assert batched == [judge.compare(*item) for item in items]
    assert batched[0] == batched[2] and all(len(t) == 2 for c in batched for t in c.texts)
    assert batched[0].texts[0][0] != batched[0].texts[0][1]  # two different samples of one order
    assert all(c.p_a is None and 0.0 <= c.win_a <= 1.0 for c in batched)
    assert judge.compare_many([]) == []


def test_score_reads_the_mean_parsed_score(tiny):
    """score_many through a scripted sampler: every prompt of the batch gets its scripted outputs; the score
    is the mean over parsed samples, None when none parsed."""
    judge = Judge(*tiny, format="pointwise", temperature=1.0, samples=3)
    scripted = {GOOD: [8.0, 9.0, None], BAD: [None, None, None]}
    calls = []

    def sampler(items, n, seed):
        calls.append(len(items))
        out = []
        for it in items:
            response = GOOD if GOOD in judge.tokenizer.decode(it.ids) else BAD
            out.append([{"text": OPEN_THINK + ("x" + render_answer("pointwise", score=s) if s is not None
                                              else "no answer"), "finish_reason": "eos"}
                        for s in scripted[response]])
        return out
    judge._sample = sampler
    good, bad = judge.score_many([(QUESTION, GOOD), (CONVERSATION, BAD)])
    assert calls == [2]  # one call, one prompt per response
    assert good.score == pytest.approx(8.5) and good.scores == [8.0, 9.0, None] and len(good.texts) == 3
    assert bad.score is None and bad.scores == [None, None, None]


def test_score_on_the_engine_is_deterministic(tiny):
    judge = Judge(*tiny, format="pointwise", max_new_tokens=5, temperature=1.0, samples=2, seed=3)
    first = judge.score(QUESTION, GOOD)
    assert first == judge.score_many([(QUESTION, BAD), (QUESTION, GOOD)])[1]
    assert len(first.texts) == 2 and first.texts[0].startswith(OPEN_THINK)


def test_refusals(tiny, forced):
    with pytest.raises(ValueError, match="use score / score_many"):
        Judge(*tiny, format="pointwise").compare(QUESTION, GOOD, BAD)
    with pytest.raises(ValueError, match="use compare / compare_many"):
        forced.score(QUESTION, GOOD)
    with pytest.raises(ValueError, match="cannot force it"):
        Judge(*tiny, format="pointwise", forced_verdict=True)
    with pytest.raises(ValueError, match="temperature > 0"):
        Judge(*tiny, samples=2)
    with pytest.raises(ValueError, match=r"prompt\[1\]\.role: role 'robot'"):
        forced.compare([{"role": "user", "content": "q"}, {"role": "robot", "content": "x"}], GOOD, BAD)
    with pytest.raises(ValueError, match="response_b: expected a string, got int"):
        forced.compare(QUESTION, GOOD, 3)
    with pytest.raises(ValueError, match="expected \\(prompt, response_a, response_b\\) items"):
        forced.compare_many([(QUESTION, GOOD)])


def test_load_takes_the_settings_a_checkpoint_was_trained_with(tiny, tmp_path):
    model, tokenizer = tiny
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    assert trained_settings(tmp_path) == {}
    config = {"format": "mixed", "prompt_style": "paper", "forced_verdict": True, "max_think_tokens": 2, "lr": 1.0}
    (tmp_path / "trainer_state.json").write_text(json.dumps({"format": 1, "state": {"config": config}}))
    judge = Judge.load(str(tmp_path), device="cpu")
    assert (judge.format, judge.prompt_style, judge.forced_verdict, judge.max_think_tokens) == \
        ("pairwise", "paper", True, 2)
    pointwise = Judge.load(str(tmp_path), format="pointwise", prompt_style="compact", device="cpu")
    assert (pointwise.format, pointwise.prompt_style, pointwise.forced_verdict) == ("pointwise", "compact", False)
    with pytest.raises(FileNotFoundError, match="not a local Hugging Face directory"):
        Judge.load(str(tmp_path / "missing"))


def test_importing_j1core_does_not_import_the_judge():
    code = ("import sys, j1core; assert 'torch' not in sys.modules and 'j1core.judge.api' not in sys.modules; "
            "from j1core import Judge; assert Judge.__module__ == 'j1core.judge.api'")
    subprocess.run([sys.executable, "-c", code], check=True)
