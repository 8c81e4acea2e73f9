"""Worked solutions as tiny programs: run them right, or with a slip in one step carried through to the end,
and write them out in one of several response styles. Used by the arithmetic and units families.

    python -m pytest tests/data/builtin/test_worked.py -q

A problem is a list of Steps, each `a op b` where an operand is a number or Ref(i), the result of step i.
`run` computes every step; with `slip=(i, kind)` step i goes wrong the way people slip (a dropped carry, a
borrow taken the wrong way, one group too few or too many, off by ten, a wrong conversion factor) and the
later steps use the wrong value. Values are exact Fractions; styles print them as people write numbers.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from j1core.data.builtin.common import ensure, fmt
from j1core.data.builtin.mathslip import dropped_carry, smaller_from_larger


class Ref(int):
    """The result of an earlier step, by index."""


@dataclass(frozen=True)
class Step:
    label: str              # what the step finds: "the cost of the pens"
    a: object
    op: str                 # "+", "-", "x" or "/"
    b: object
    wrong_b: object = None  # a plausible wrong operand (a wrong conversion factor) for the "factor" slip


def apply(a: Fraction, op: str, b: Fraction) -> Fraction:
    return {"+": a + b, "-": a - b, "x": a * b, "/": a / b if b else Fraction(0)}[op]


def slip_kinds(step: Step) -> tuple[str, ...]:
    kinds = {"+": ("carry", "ten"), "-": ("borrow", "ten"), "x": ("group", "ten"), "/": ("one",)}[step.op]
    return kinds + (("factor",) if step.wrong_b is not None else ())


def slipped(step: Step, a: Fraction, b: Fraction, kind: str) -> Fraction:
    """The result of a step done wrong in the way `kind` names."""
    right = apply(a, step.op, b)
    whole = a.denominator == b.denominator == 1 and a >= 0 and b >= 0
    if kind == "carry" and whole:
        return Fraction(dropped_carry(int(a), int(b)))
    if kind == "borrow" and whole:
        return Fraction(smaller_from_larger(int(a), int(b)))
    if kind == "group":
        return right - a if b > 2 else right + a  # one group too few (or too many)
    if kind == "factor":
        return apply(a, step.op, b)  # run() passes the wrong operand as b
    if kind == "one":
        return right + 1
    return right + 10 if right < 10 else right - 10


def run(steps, slip=None) -> list[tuple[Step, Fraction, Fraction, Fraction]]:
    """(step, a, b, result) of each step; slip = (step index, kind) or None."""
    done = []
    for i, step in enumerate(steps):
        a, b = (done[x][3] if isinstance(x, Ref) else Fraction(str(x)) for x in (step.a, step.b))
        if slip and slip[0] == i and slip[1] == "factor":
            b = Fraction(str(step.wrong_b))  # the wrong factor is written down, and used
        result = slipped(step, a, b, slip[1]) if slip and slip[0] == i else apply(a, step.op, b)
        done.append((step, a, b, result))
    return done


def num(x: Fraction) -> str:
    """1,250 or 2.5; a value that is not a short decimal is rounded to two places."""
    if x.denominator == 1:
        return fmt(int(x))
    value = Decimal(x.numerator) / Decimal(x.denominator)
    return fmt(value) if len(str(value.normalize())) <= 8 else fmt(round(value, 2))


def cap(text: str) -> str:
    return text[0].upper() + text[1:]


def pick_slip(rng, steps) -> tuple[int, str]:
    i = rng.randrange(len(steps))
    return i, rng.choice(slip_kinds(steps[i]))


# ---------------------------------------------------------------- response styles


def line(a, op, b, r, times="x") -> str:
    return f"{num(a)} {times if op == 'x' else op} {num(b)} = {num(r)}"


def style_steps(done, value, final):
    out = [f"Step {i}: {cap(s.label)}: {line(a, s.op, b, r)}." for i, (s, a, b, r) in
           enumerate(done, 1)]
    return "\n".join(out + [f"Answer: {value}"])


def style_prose(done, value, final):
    parts = [f"for {s.label}, {line(a, s.op, b, r)}" for s, a, b, r in done[:-1]]
    s, a, b, r = done[-1]
    return f"{cap(', and '.join(parts))}. Finally, {s.label}: {line(a, s.op, b, r)}, so {final}."


def style_gsm(done, final_value, final):
    return "\n".join([line(a, s.op, b, r, "*") for s, a, b, r in done] + [f"#### {final_value}"])


def style_boxed(done, final_value, final):
    lines = [f"${line(a, s.op, b, r, chr(92) + 'times')}$ ({s.label})" for s, a, b, r in done]
    return "\n".join(lines) + f"\nThe answer is $\\boxed{{{final_value}}}$."


def style_bullets(done, value, final):
    return "\n".join([f"- {s.label}: {line(a, s.op, b, r)}" for s, a, b, r in done] + [f"So {final}."])


def style_terse(done, value, final):
    return "; ".join(line(a, s.op, b, r) for s, a, b, r in done) + f". {cap(final)}."


def style_teacher(done, value, final):
    words = ["First", "Next", "Then", "After that", "Now"]
    body = " ".join(f"{words[min(i, 4)]}, {s.label}: {line(a, s.op, b, r)}." for i, (s, a, b, r) in enumerate(done))
    return f"Let's work it out together. {body} So {final}. The final answer is {value}."


def style_arrows(done, value, final):
    return "\n".join([f"{s.label} -> {line(a, s.op, b, r)}" for s, a, b, r in done] + [f"Result: {final}"])


def solve(rng, steps, say, style, gold_check, slip=None) -> tuple[str, str] | None:
    """(chosen, rejected) written in `style`, the rejected with `slip` (default: a random one); say(value)
    words the final answer ("the change is $8").
    gold_check(text, value) must accept the chosen (else GenerationError) and refuse the rejected (else None)."""
    right = run(steps)
    wrong = run(steps, slip or pick_slip(rng, steps))
    if wrong[-1][3] == right[-1][3] or wrong[-1][3] < 0:
        return None
    texts = []
    for done in (right, wrong):
        value = num(done[-1][3])
        texts.append(style(done, value, say(value)))
    ensure(gold_check(texts[0], num(right[-1][3])), f"worked: the right solution fails its check: {texts[0]!r}")
    if gold_check(texts[1], num(right[-1][3])):
        return None  # the slip happened to round to the right answer
    return texts[0], texts[1]
