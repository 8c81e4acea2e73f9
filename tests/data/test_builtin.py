"""Tests for j1core/data/builtin.py: determinism, size, distinctness, a fixed held-out split, correct math answers.

    python -m pytest tests/data/test_builtin.py -q
"""
import random
import re
from collections import defaultdict
from itertools import pairwise

from j1core.data.builtin import (
    _pool,
    all_builtin_pairs,
    builtin_pairs,
    dropped_carry,
    is_heldout,
    smaller_from_larger,
)

NUMBER = r"-?\d[\d,]*(?:\.\d+)?"
ARITHMETIC = r"[-\d$,.() +x/]*"  # characters of a written calculation such as "$80 - $20" or "2 x (7 + 4)"


def value(text):
    return float(text.replace(",", ""))


def evaluate(expression):
    """Value of a written calculation, or None when the text is not one."""
    cleaned = expression.replace("$", "").replace(",", "").strip().rstrip(".").replace("x", "*")
    if not re.search(r"\d", cleaned):
        return None
    try:
        return eval(cleaned, {"__builtins__": {}})  # only digits, operators and brackets reach here
    except (SyntaxError, ZeroDivisionError):
        return None


def equalities(text):
    """(left value, right value) of each "calculation = calculation" in a worked solution."""
    sides = text.split(" = ")
    for left, right in pairwise(sides):
        left, right = re.split(r"[.;] ", left)[-1], re.split(r"[.;] ", right)[0]
        if ":" in left or ":" in right:
            continue  # clock times
        a = evaluate(re.search(ARITHMETIC + "$", left).group())
        b = evaluate(re.match(ARITHMETIC, right).group())
        if a is not None and b is not None:
            yield a, b


def final_numbers(text):
    """Numbers of the last clause of a worked solution: its answer."""
    return re.findall(NUMBER, re.split(r"\. |, so ", text.rstrip("."))[-1])


def test_same_seed_same_pairs_and_other_seed_differs():
    first = all_builtin_pairs(0)
    _pool.cache_clear()  # draw again rather than read the cache
    assert all_builtin_pairs(0) == first
    assert all_builtin_pairs(1) != first


def test_at_least_5000_distinct_pairs_in_two_families():
    pairs = builtin_pairs("train") + builtin_pairs("heldout")
    assert len({(p.prompt, p.chosen, p.rejected) for p in pairs}) >= 5000
    assert all(p.chosen.strip() != p.rejected.strip() for p in pairs)
    templates, levels = defaultdict(set), defaultdict(set)
    for p in pairs:
        template, level = p.category.split("/")
        templates[p.source].add(template)
        levels[p.source].add(level)
    assert set(templates) == {"builtin-relevance", "builtin-math"}
    for source in templates:
        assert len(templates[source]) >= 8
        assert levels[source] == {"easy", "medium", "hard"}


def test_heldout_is_fixed_disjoint_and_large_enough():
    train, heldout = builtin_pairs("train"), builtin_pairs("heldout")
    assert len(heldout) >= 600
    assert {p.id for p in train}.isdisjoint(p.id for p in heldout)
    assert {p.prompt for p in train}.isdisjoint(p.prompt for p in heldout)
    assert all(is_heldout(p.prompt) for p in heldout) and not any(is_heldout(p.prompt) for p in train)
    other_seed_train = {p.prompt for p in builtin_pairs("train", seed=1)}
    assert other_seed_train.isdisjoint(p.prompt for p in heldout)


def test_responses_are_short():
    for p in all_builtin_pairs(0):
        for response in (p.chosen, p.rejected):
            assert 1 <= len(re.split(r"[.?!] ", response)) <= 4, response


def test_math_chosen_steps_hold_and_rejected_answer_differs():
    math = [p for p in all_builtin_pairs(0) if p.source == "builtin-math"]
    checked = 0
    for p in math:
        for left, right in equalities(p.chosen):
            assert abs(left - right) < 0.01, p.chosen
            checked += 1
        assert final_numbers(p.chosen) != final_numbers(p.rejected), p
    assert checked >= len(math)


def test_relevance_sorting_answers_follow_the_instruction():
    for p in all_builtin_pairs(0):
        if not p.category.startswith(("sort_order/easy", "sort_order/medium")):
            continue
        chosen = [value(v) for v in re.findall(NUMBER, p.chosen)]
        rejected = [value(v) for v in re.findall(NUMBER, p.rejected)]
        ascending = "ascending" in p.prompt
        assert chosen == sorted(chosen, reverse=not ascending)
        assert rejected == sorted(rejected, reverse=ascending)


def column_sum_reference(a, b, subtract):
    """Plain reference for the slips: digits as strings, one column at a time, no carries or borrows."""
    width = max(len(str(a)), len(str(b)))
    left, right = str(a).zfill(width), str(b).zfill(width)
    digits = [abs(int(x) - int(y)) if subtract else (int(x) + int(y)) % 10 for x, y in zip(left, right)]
    return int("".join(map(str, digits)))


def test_slips_match_column_reference_on_random_operands():
    rng = random.Random(0)
    for _ in range(500):
        a, b = rng.randint(0, 99999), rng.randint(0, 99999)
        assert dropped_carry(a, b) == column_sum_reference(a, b, subtract=False)
        assert smaller_from_larger(a, b) == column_sum_reference(a, b, subtract=True)
