"""Tests for j1core/data/builtin/common.py's length helpers: balance's filler comes off again (strip_filler)
and flip_longer moves it so the other response is the longer, changing nothing else.

    python -m pytest tests/data/builtin/test_common.py -q
"""
import random

from j1core.data.builtin.common import CLOSERS, OPENERS, balance, flip_longer, strip_filler

TEXTS = ["Paris is the capital of France.", "The capital of France is Lyon, a city on the Rhone.",
         "Step 1: 3 x 4 = 12.\nStep 2: 12 + 5 = 17.\nAnswer: 17", "b) 32", "42"]


def test_strip_filler_undoes_balance_for_either_separator():
    rng = random.Random(0)
    for _ in range(300):
        a, b = rng.sample(TEXTS, 2)
        sep = rng.choice((" ", "\n"))
        for padded, plain in zip(balance(rng, a, b, sep=sep), (a, b)):
            text, used = strip_filler(padded)
            assert text == plain
            assert used in (None, sep) and (used is None) == (padded == plain)


def test_strip_filler_keeps_a_text_that_is_only_filler_or_has_none():
    assert strip_filler(CLOSERS[0]) == (CLOSERS[0], None)
    assert strip_filler(f"{OPENERS[0]} 42 {CLOSERS[1]} {CLOSERS[2]}") == ("42", " ")
    assert strip_filler("Sure!42") == ("Sure!42", None)


def test_flip_longer_makes_the_shorter_response_the_longer_and_changes_only_filler():
    rng = random.Random(1)
    flipped = 0
    for _ in range(500):
        a, b = rng.sample(TEXTS, 2)
        chosen, rejected = balance(rng, a, b, sep=rng.choice((" ", "\n")))
        out = flip_longer(rng, chosen, rejected)
        if out is None:  # only when no five fillers can outgrow the other text, or nothing to flip
            assert len(chosen) == len(rejected) or abs(len(a) - len(b)) > 5 * max(map(len, OPENERS + CLOSERS))
            continue
        flipped += 1
        assert (len(out[0]) > len(out[1])) == (len(chosen) < len(rejected))
        assert [strip_filler(t)[0] for t in out] == [a, b]
    assert flipped > 400


def test_flip_longer_gives_up_on_equal_or_far_apart_lengths():
    rng = random.Random(0)
    assert flip_longer(rng, "abc", "xyz") is None
    assert flip_longer(rng, "x" * 1000, "short") is None
