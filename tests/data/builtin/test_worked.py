"""Tests for j1core/data/builtin/worked.py and the families built on it (arithmetic.py, units.py): every
written step of a chosen solution holds, the rejected one has exactly one slip (a step that does not hold,
or a wrong conversion factor), and their final answers differ under answer_check.

    python -m pytest tests/data/builtin/test_worked.py -q
"""
import random
import re
from fractions import Fraction

from j1core.data.answer_check import answers_equal, extract_answer
from j1core.data.builtin import all_builtin_pairs, family_of
from j1core.data.builtin.worked import Ref, Step, num, run, slip_kinds

STEP = re.compile(r"(-?[\d,]+(?:\.\d+)?) (x|\*|\\times|\+|-|/) (-?[\d,]+(?:\.\d+)?) = (-?[\d,]+(?:\.\d+)?)")
FACTORS = {Fraction(10), Fraction(100), Fraction(1000), Fraction(1, 2)}


def value(text):
    return Fraction(text.replace(",", ""))


def written_steps(text):
    """(a, op, b, result) of every 'a op b = result' in a solution."""
    return [(value(a), {"*": "x", "\\times": "x"}.get(op, op), value(b), value(r)) for a, op, b, r in
            STEP.findall(text)]


def holds(a, op, b, r):
    exact = {"x": a * b, "+": a + b, "-": a - b, "/": a / b}[op]
    return abs(exact - r) <= Fraction(1, 200)  # results are written to two places at most


def worked_pairs():
    return [p for p in all_builtin_pairs(0) if family_of(p) in ("arithmetic", "units")]


def test_chosen_steps_hold_and_rejected_has_one_slip():
    pairs = worked_pairs()
    assert len(pairs) >= 1000
    factor_slips = 0
    for p in pairs:
        chosen, rejected = written_steps(p.chosen), written_steps(p.rejected)
        assert len(chosen) >= 2 and len(chosen) == len(rejected), p
        assert all(holds(*s) for s in chosen), p.chosen
        wrong = [s for s in rejected if not holds(*s)]
        if not wrong:  # then the slip is a wrong conversion factor, written and used
            first = next(i for i, (c, r) in enumerate(zip(chosen, rejected)) if c != r)
            assert family_of(p) == "units" and rejected[first][2] in FACTORS, p.rejected
            assert rejected[first][2] != chosen[first][2]
            factor_slips += 1
        else:
            assert len(wrong) == 1, p.rejected
        assert not answers_equal(extract_answer(p.rejected), extract_answer(p.chosen)), p
    assert factor_slips >= 100


def test_run_carries_a_slip_to_the_end():
    steps = [Step("a", 47, "+", 38), Step("b", Ref(0), "x", 3), Step("c", 500, "-", Ref(1))]
    right = [r for *_, r in run(steps)]
    assert right == [85, 255, 245]
    carried = [r for *_, r in run(steps, (0, "carry"))]  # 47 + 38 with the carry dropped: 75
    assert carried == [75, 225, 275]
    factor = run([Step("cm", 3, "x", 100, wrong_b=10)], (0, "factor"))
    assert factor[0][2] == 10 and factor[0][3] == 30


def test_every_slip_kind_changes_the_result_on_random_steps():
    rng = random.Random(0)
    for _ in range(300):
        op = rng.choice("+-x/")
        a, b = rng.randint(10, 999), rng.randint(3, 99)
        step = Step("s", a, op, b, wrong_b=rng.choice((10, 100)) if rng.random() < 0.5 else None)
        for kind in slip_kinds(step):
            if kind == "factor" and step.wrong_b == b:
                continue
            (_, _, _, right), = run([step])
            (_, _, _, slipped), = run([step], (0, kind))
            if kind in ("carry", "borrow") and slipped == right:
                continue  # no carry or borrow to get wrong in this sum
            assert slipped != right, (step, kind)


def test_num_writes_numbers_as_people_do():
    assert [num(Fraction(x)) for x in ("1250", "5/2", "1/3", "-7", "3/8")] == ["1,250", "2.5", "0.33", "-7", "0.375"]
