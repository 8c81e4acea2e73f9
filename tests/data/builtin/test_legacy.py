"""Tests for the first built-in families, j1core/data/builtin/relevance.py and mathslip.py: templates at
every level, sorting that follows the instruction, worked steps that hold, slips that match a reference.

    python -m pytest tests/data/builtin/test_legacy.py -q
"""
import random
import re
from itertools import pairwise

from j1core.data.builtin import all_builtin_pairs, family_of, mathslip, relevance, template_of
from j1core.data.builtin.common import strip_filler
from j1core.data.builtin.mathslip import dropped_carry, smaller_from_larger
from j1core.data.builtin.relevance import LEVELS

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


def unpadded(text):
    """The response without the openers and closers that length balancing adds (common.balance)."""
    return strip_filler(text)[0]


def final_numbers(text):
    """Numbers of the last clause of a worked solution: its answer."""
    return re.findall(NUMBER, re.split(r"\. |, so ", text.rstrip("."))[-1])


def test_both_families_keep_their_twelve_templates():
    pairs = all_builtin_pairs(0)
    for family in ("relevance", "math"):
        assert len({template_of(p) for p in pairs if family_of(p) == family}) == 12


def test_every_template_draws_at_every_level():
    rng = random.Random(0)
    for template in relevance.TEMPLATES + mathslip.TEMPLATES:
        for level in LEVELS:
            drawn = [template.__wrapped__(rng, level) for _ in range(50)]
            assert any(d is not None for d in drawn), (template.__name__, level)


def test_responses_are_short():
    for p in all_builtin_pairs(0):
        if family_of(p) in ("relevance", "math"):
            for response in (p.chosen, p.rejected):
                assert 1 <= len(re.split(r"[.?!] ", response)) <= 6, response


def test_math_chosen_steps_hold_and_rejected_answer_differs():
    math = [p for p in all_builtin_pairs(0) if family_of(p) == "math"]
    checked = 0
    for p in math:
        for left, right in equalities(p.chosen):
            assert abs(left - right) < 0.01, p.chosen
            checked += 1
        assert final_numbers(unpadded(p.chosen)) != final_numbers(unpadded(p.rejected)), p
        assert final_numbers(unpadded(p.chosen)), p
    assert checked >= len(math)


def test_relevance_sorting_answers_follow_the_instruction():
    for p in all_builtin_pairs(0):
        if p.category != "relevance/sort_order" or not re.search(r"\d", p.prompt):
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
