"""Tests of final-answer extraction and verification: python -m pytest tests/data/test_answer_check.py -q"""
import itertools
import json
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from j1core.data.answer_check import (
    answers_equal,
    as_number,
    extract_answer,
    gsm8k_gold,
    is_correct,
    last_boxed,
    normalize_answer,
)

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data not present")


@pytest.mark.parametrize("text, expected", [
    ("She makes 9 * 2 = $18.\n#### 18", "18"),
    ("#### 1,234\nthen more text with 7", "1,234"),
    ("so x = \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}"),
    ("first \\boxed{3} then \\boxed{\\sqrt{x^{2}}}", "\\sqrt{x^{2}}"),
    ("hence \\fbox{7}", "7"),
    ("The answer is $18.", "$18"),
    ("The final answer is: 3.5.", "3.5"),
    ("So the answer is 12 apples. Done", "12 apples"),
    ("The answer is 20 x (20 / 100) = 20 * 0.2 = 4", "4"),
    ("Adding 3 and 4 gives 7 apples", "7"),
    ("A: 1,000", "1,000"),
    ("no digits at all", None),
])
def test_extract_answer_styles(text, expected):
    assert extract_answer(text) == expected


def test_hashes_win_over_boxed_and_boxed_over_stated():
    assert extract_answer("\\boxed{4}\nThe answer is 5\n#### 6") == "6"
    assert extract_answer("The answer is 5, so \\boxed{4}") == "4"


def test_last_boxed_unbalanced_is_none():
    assert last_boxed("cut off \\boxed{\\frac{1}{2}") is None
    assert last_boxed("\\boxed 5.") == "5"


@pytest.mark.parametrize("a, b", [
    ("1,000", "1000"), ("1000.0", "1000"), ("$1000", "1000"), ("\\$1,000.00", "1000"), ("1000", "1000.0"),
    ("\\frac{1}{2}", "0.5"), ("1/2", "0.5"), ("\\frac{1}{2}", "1/2"), ("\\dfrac{1}{2}", ".5"), ("\\tfrac12", "1/2"),
    ("-\\frac{3}{4}", "-0.75"), ("50%", "50"), ("50\\%", "50"), ("90^\\circ", "90"), ("x = 5", "5"),
    ("18 dollars", "18"), ("\\text{Evelyn}", "evelyn"), ("1,-2", "-2, 1"), ("3, 5, 7", "7,3,5"),
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})"), ("11\\sqrt2", "11\\sqrt{2}"),
    ("0.333333", "\\frac{1}{3}"), ("0.667", "2/3"), ("\\boxed{12}", "12"),
])
def test_equal_answers_written_differently(a, b):
    assert answers_equal(a, b)
    assert answers_equal(b, a)


@pytest.mark.parametrize("a, b", [
    ("1000", "100"), ("1,001", "1000"), ("\\frac{1}{2}", "0.6"), ("1/2", "2/1"), ("-5", "5"), ("0.33", "1/3"),
    ("0.666", "2/3"), ("999999", "1000000"), ("1000.5", "1000"),
    ("1,-2", "1,2"), ("3, 5", "3, 5, 7"), ("(1,2)", "(2,1)"), ("", ""), (None, "1"), ("evelyn", "bob"),
])
def test_different_answers_are_not_equal(a, b):
    assert not answers_equal(a, b)


def test_thousands_commas_are_not_lists():
    assert normalize_answer("1,234,567") == "1234567"
    assert normalize_answer("1,23") == "1,23"  # not a thousands pattern: kept as a list


@settings(max_examples=200, deadline=None)
@given(st.integers(-10 ** 7, 10 ** 7))
def test_integer_spellings_agree(n):
    spellings = [str(n), f"{n:,}", f"{n}.0", f"{n:.2f}", f"${n}" if n >= 0 else f"-${-n}", f"\\boxed{{{n}}}"]
    for spelled in spellings:
        assert answers_equal(spelled, str(n)), spelled
        assert not answers_equal(spelled, str(n + 1)), spelled


@settings(max_examples=200, deadline=None)
@given(st.integers(-999, 999), st.integers(1, 999))
def test_fraction_spellings_agree_with_exact_value(p, q):
    value = Fraction(p, q)
    sign = "-" if value < 0 else ""
    num, den = abs(value.numerator), value.denominator
    for spelled in (f"{sign}\\frac{{{num}}}{{{den}}}", f"{sign}\\dfrac{{{num}}}{{{den}}}", f"{sign}{num}/{den}"):
        assert as_number(normalize_answer(spelled)) == value, spelled
        assert answers_equal(spelled, f"{value.numerator}/{value.denominator}")
        assert not answers_equal(spelled, f"{value.numerator + 1}/{value.denominator}")
    if 10 ** 6 % den == 0:  # a terminating decimal: compare with the decimal expansion too
        assert answers_equal(f"{float(value):.6f}", f"{sign}\\frac{{{num}}}{{{den}}}")


def test_gsm8k_gold_and_is_correct():
    answer = "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\nShe makes 9 * 2 = $18.\n#### 18"
    assert gsm8k_gold(answer) == "18"
    assert is_correct("so she makes $18 every day.", "18")
    assert not is_correct("so she makes $26 every day.", "18")


@needs_shared
def test_shared_gsm8k_model_solutions_agree_with_their_labels():
    """GSM8K ships 4 model solutions per problem labelled is_correct; the checker must agree with all."""
    path = SHARED / "GSM8K" / "example_model_solutions.jsonl"
    disagreements, total = [], 0
    for line in path.read_text(encoding="utf-8").splitlines()[:300]:
        record = json.loads(line)
        gold = record["ground_truth"].rsplit("A:", 1)[1].strip()
        for key in ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification"):
            total += 1
            if is_correct(record[key]["solution"], gold) != record[key]["is_correct"]:
                disagreements.append((record[key]["solution"][-60:], gold))
    assert total == 1200 and not disagreements, disagreements[:3]


@needs_shared
def test_shared_math500_gold_answers_verify_against_themselves_and_not_their_neighbours():
    records = [json.loads(line) for line in (SHARED / "MATH500" / "test.jsonl").read_text().splitlines()]
    assert all(is_correct(r["solution"], r["answer"]) for r in records)
    distinct = [(a["answer"], b["answer"]) for a, b in itertools.pairwise(records)
                if normalize_answer(a["answer"]) != normalize_answer(b["answer"])]
    assert not [pair for pair in distinct if answers_equal(*pair)]
