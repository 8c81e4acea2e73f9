"""Tests for j1core/data/fit.py: pairs longer than the model's context are refused, dropped or cut, on token
counts checked against the rendered prompts, and absurd texts are never tokenized whole.

    python -m pytest tests/data/test_fit.py -q
"""
import random

import pytest

from j1core.data.fit import CUT_MARK, exact_need, fit_pairs, formats_of
from j1core.data.pairs import Pair
from j1core.model import SMOLLM2_ALIAS, load_tokenizer

WORDS = "the judge reads both answers and weighs each claim against the question carefully".split()


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer(SMOLLM2_ALIAS)


def text(rng, n_words):
    return " ".join(rng.choice(WORDS) for _ in range(n_words))


def pair(i, prompt, chosen, rejected):
    return Pair(f"p{i}", prompt, chosen, rejected, "test")


@pytest.mark.parametrize("fmt", ["pairwise", "pointwise", "mixed"])
def test_the_token_estimate_keeps_exactly_what_fits(tok, fmt):
    """fit_pairs (batched per-text counts, exact rendering near the limit) against the plain reference: render
    every judge prompt and keep the pair when all of them fit."""
    rng = random.Random(0)
    context, completion = 400, 40
    pairs = [pair(i, text(rng, rng.randint(1, 120)), text(rng, rng.randint(1, 150)) + " A",
                  text(rng, rng.randint(1, 150)) + " B") for i in range(60)]
    kept, dropped, cut = fit_pairs(pairs, tok, fmt, "compact", context, completion, skip_invalid=True)
    expected = [p for p in pairs if all(exact_need(tok, f, "compact", p) <= context - completion
                                        for f in formats_of(fmt))]
    assert [p.id for p in kept] == [p.id for p in expected]
    assert 0 < len(kept) < len(pairs) and dropped == len(pairs) - len(kept) and cut == 0


def test_a_pair_past_the_context_is_refused_naming_it(tok):
    pairs = [pair(0, "q", "short", "other"), pair(1, "q", "long " * 500, "other")]
    with pytest.raises(ValueError, match="data.jsonl: pair 'p1' does not fit the model.*--truncate"):
        fit_pairs(pairs, tok, "pairwise", "compact", 300, 20, where="data.jsonl")
    with pytest.warns(UserWarning, match="too_long=1"):
        kept, dropped, _ = fit_pairs(pairs, tok, "pairwise", "compact", 300, 20, skip_invalid=True)
    assert [p.id for p in kept] == ["p0"] and dropped == 1


@pytest.mark.parametrize("fmt", ["pairwise", "pointwise"])
def test_truncate_cuts_the_longest_texts_to_fit(tok, fmt):
    context, completion = 300, 20
    long_prompt, long_a, short_b = "why " * 400, "because " * 300, "no."
    kept, dropped, cut = fit_pairs([pair(0, long_prompt, long_a, short_b), pair(1, "q", "a", "b")], tok, fmt,
                                   "compact", context, completion, truncate=True)
    assert dropped == 0 and cut == 1
    cut_pair, untouched = kept
    assert untouched == pair(1, "q", "a", "b")
    assert cut_pair.prompt.endswith(CUT_MARK) and cut_pair.chosen.endswith(CUT_MARK)
    assert cut_pair.rejected == short_b  # shorter than the common cap: kept whole
    assert long_prompt.startswith(cut_pair.prompt.removesuffix(CUT_MARK))
    assert exact_need(tok, fmt, "compact", cut_pair) <= context - completion
    n_prompt = len(tok(cut_pair.prompt.removesuffix(CUT_MARK))["input_ids"])
    n_chosen = len(tok(cut_pair.chosen.removesuffix(CUT_MARK))["input_ids"])
    assert abs(n_prompt - n_chosen) <= 2  # one common cap


def test_identical_once_cut_is_dropped_as_too_long(tok):
    same_start = "same words " * 300
    with pytest.raises(ValueError, match="cannot be cut to fit"):
        fit_pairs([pair(0, "q", same_start + "A", same_start + "B")], tok, "pairwise", "compact", 300, 20,
                  truncate=True)


def spy_on(tok, seen):
    class Spy:
        def __getattr__(self, name):
            return getattr(tok, name)

        def __call__(self, texts, **kwargs):
            seen.extend([texts] if isinstance(texts, str) else texts)
            return tok(texts, **kwargs)
    return Spy()


def test_a_huge_response_is_never_tokenized_whole(tok):
    seen = []
    huge = "x" * 10_000_000
    with pytest.raises(ValueError, match="pair 'p0' does not fit"):
        fit_pairs([pair(0, "q", huge, "b")], spy_on(tok, seen), "pairwise", "compact", 2048, 64)
    longest_token = max(len(t) for t in tok.get_vocab())
    assert max(len(t) for t in seen) <= 2048 * longest_token + 1


def test_pairs_that_fit_on_bytes_are_not_tokenized(tok):
    seen = []
    pairs = [pair(i, f"question {i}", f"marker answer {i}", f"marker other {i}") for i in range(50)]
    kept, dropped, cut = fit_pairs(pairs, spy_on(tok, seen), "pairwise", "compact", 2048, 64)
    assert kept == pairs and (dropped, cut) == (0, 0)
    assert not any("marker" in t for t in seen)


def test_conversations_are_measured_as_their_transcripts(tok):
    """A conversation prompt fits or not as the transcript the judge reads; one that must be cut becomes that
    transcript, cut; one that fits stays a conversation."""
    rng = random.Random(2)
    context, completion = 400, 40
    turns = [{"role": "user", "content": text(rng, 20)}, {"role": "assistant", "content": text(rng, 20)},
             {"role": "user", "content": text(rng, 20)}]
    short = pair(0, turns, "yes A", "no B")
    long_turns = turns + [{"role": "assistant", "content": text(rng, 400)}, {"role": "user", "content": "ok?"}]
    long = pair(1, long_turns, "yes A", "no B")
    kept, dropped, cut = fit_pairs([short, long], tok, "pairwise", "compact", context, completion, skip_invalid=True)
    assert (kept, dropped, cut) == ([short], 1, 0)
    kept, dropped, cut = fit_pairs([short, long], tok, "pairwise", "compact", context, completion, truncate=True)
    assert cut == 1 and kept[0] is short and isinstance(kept[1].prompt, str)
    assert kept[1].prompt.startswith("[User]: ") and kept[1].prompt.endswith(CUT_MARK)
    assert exact_need(tok, "pairwise", "compact", kept[1]) <= context - completion
