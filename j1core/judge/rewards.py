"""Parse judge completions and turn them into GRPO rewards: correctness, consistency, score agreement.

    python -m pytest tests/judge/test_rewards.py

Parsing is strict; anything off the rules below is unparseable and earns 0 (never an exception):
  * `text` is the decoded completion (special tokens skipped). Leading ASCII whitespace is ignored.
  * Exactly one "</think>". At most one "<think>", and only at the very start: the prompt may already have
    opened the reasoning (prompts.OPEN_THINK), so the opening tag is optional. A text without a closed think
    block is unparseable; whatever the reasoning says (a verdict, a copied [[A]]) is never read.
  * After "</think>" comes exactly the format's answer (prompts.ANSWER_LAYOUT) and nothing else: its tags in
    order, e.g. "<answer>[[A]]</answer>" or "<score_A>7.5</score_A> <score_B>3</score_B>". Next to a tag
    (and at both ends) any run of ASCII whitespace, or none, is accepted: the paper's own prompt asks for
    "<answer> [[A]] </answer>" and "<score_A> 7 </score_A>". None inside the brackets or a tag ("[[ A ]]",
    "< answer>" fail). Lookalike characters (fullwidth brackets or letters, lowercase tags) do not match; a
    second verdict or score, or any extra text, makes the answer unparseable.
  * Scores are ASCII decimals in [0, 10] with at most one decimal: "0", "7.5", "10.0". Not "11", "-1",
    "+5", "7.55", "7.", ".5", "NaN", "inf".
Winners: pairwise -> the verdict; pairwise_scores -> the higher score ("tie" when equal); scores_verdict ->
the verdict only when the scores agree with it strictly, otherwise no winner (a self-contradicting judgment
is wrong); pointwise -> no winner from one judgment (see pointwise_pair_rewards).
Pairing the two orders of a pair (consistency, pointwise): "index" matches rollout i of one side with
rollout i of the other; "expected" (default) averages over all rollouts of the other side, i.e. a rollout's
own outcome times the mean outcome of the other side. Expected pairing has less variance and does not
depend on the arbitrary sample order.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from j1core.judge.prompts import (
    ANSWER_LAYOUT,
    CLOSE_THINK,
    SCORE_A_SLOT,
    SCORE_B_SLOT,
    SCORE_SLOT,
    SLOTS,
    VERDICT_SLOT,
    check_format,
    is_pairwise,
)

OPEN_TAG = "<think>"
WHITESPACE = " \t\r\n"  # ASCII only: str.strip() would also eat unicode spaces
_WS = "[ \t\r\n]*"
_WS_RUN = "[ \t\r\n]+"
_SCORE = "(?:10|[0-9])(?:\\.[0-9])?"
_SLOT_PATTERNS = {VERDICT_SLOT: f"(?P<{VERDICT_SLOT}>[AB])"}
_SLOT_PATTERNS.update({slot: f"(?P<{slot}>{_SCORE})" for slot in (SCORE_A_SLOT, SCORE_B_SLOT, SCORE_SLOT)})


def _answer_pattern(layout) -> re.Pattern:
    """The layout as a regex. Between a tag and what touches it (another tag, "[[", "]]", a score) any run of
    ASCII whitespace or none is allowed, as the paper's `<answer> [[A]] </answer>` has; nowhere else."""
    pieces = []  # (is_tag, regex)
    for part in layout:
        if part in SLOTS:
            pieces.append((False, _SLOT_PATTERNS[part]))
            continue
        literal = part.removeprefix(CLOSE_THINK)  # matched against the text after </think>
        for chunk in re.split(r"(<[^<>]+>)", literal):
            if chunk.strip(WHITESPACE):
                pieces.append((chunk.startswith("<"), re.escape(chunk.strip(WHITESPACE))))
    regex = pieces[0][1]
    for (left_tag, _), (right_tag, piece) in zip(pieces, pieces[1:]):
        regex += (_WS if left_tag or right_tag else "") + piece
    return re.compile(regex, re.ASCII)


ANSWER_PATTERNS = {fmt: _answer_pattern(layout) for fmt, layout in ANSWER_LAYOUT.items()}


@dataclass
class Judgment:
    verdict: str | None = None
    score_a: float | None = None
    score_b: float | None = None
    score: float | None = None
    parsed: bool = False


def answer_tail(text) -> str | None:
    """The text after the one closing </think>, or None when the think block breaks the rules."""
    if not isinstance(text, str) or text.count(CLOSE_THINK) != 1:
        return None
    head, tail = text.split(CLOSE_THINK)
    openings = head.count(OPEN_TAG)
    if openings > 1 or (openings == 1 and not head.lstrip(WHITESPACE).startswith(OPEN_TAG)):
        return None
    if OPEN_TAG in tail:
        return None
    return tail


def parse_judgment(fmt: str, text) -> Judgment:
    """Read the verdict and scores a completion commits to; Judgment(parsed=False) when it breaks a rule."""
    check_format(fmt)
    tail = answer_tail(text)
    match = None if tail is None else ANSWER_PATTERNS[fmt].fullmatch(tail.strip(WHITESPACE))
    if match is None:
        return Judgment()
    found = match.groupdict()
    scores = {slot: float(found[slot]) for slot in (SCORE_A_SLOT, SCORE_B_SLOT, SCORE_SLOT) if slot in found}
    if any(value > 10.0 for value in scores.values()):  # the pattern allows 10.1 .. 10.9
        return Judgment()
    return Judgment(verdict=found.get(VERDICT_SLOT), score_a=scores.get(SCORE_A_SLOT),
                    score_b=scores.get(SCORE_B_SLOT), score=scores.get(SCORE_SLOT), parsed=True)


def scores_winner(score_a: float, score_b: float) -> str:
    return "A" if score_a > score_b else "B" if score_b > score_a else "tie"


def judged_winner(fmt: str, judgment: Judgment) -> str | None:
    check_format(fmt)
    if not judgment.parsed or fmt == "pointwise":
        return None
    if fmt == "pairwise":
        return judgment.verdict
    by_scores = scores_winner(judgment.score_a, judgment.score_b)
    if fmt == "pairwise_scores":
        return by_scores
    return judgment.verdict if by_scores == judgment.verdict else None


def check_gold(gold) -> None:
    if gold not in ("A", "B"):
        raise ValueError(f"gold must be 'A' or 'B', got {gold!r}")


def correctness(fmt: str, text, gold: str) -> float:
    """1.0 when the completion's winner is the gold response; ties and unparseable texts earn 0."""
    if not is_pairwise(fmt):
        raise ValueError("a pointwise judgment has no winner alone: use pointwise_pair_rewards")
    check_gold(gold)
    return float(judged_winner(fmt, parse_judgment(fmt, text)) == gold)


def format_reward(fmt: str, text) -> float:
    """1.0 when the completion parses under the format's rules (its content may still be wrong)."""
    return float(parse_judgment(fmt, text).parsed)


def _mean(values) -> float:
    return sum(values) / len(values) if values else 0.0


def check_pairing(pairing: str, side0, side1) -> None:
    if pairing not in ("expected", "index"):
        raise ValueError(f"pairing must be 'expected' or 'index', got {pairing!r}")
    if pairing == "index" and len(side0) != len(side1):
        raise ValueError(f"index pairing needs as many rollouts on each side, got {len(side0)} and {len(side1)}")


def pair_both_sides(outcomes0: list[float], outcomes1: list[float], pairing: str) -> tuple[list[float], list[float]]:
    """Reward for 'both sides right': index -> o0[i]*o1[i]; expected -> o0[i]*mean(o1) (and mirrored)."""
    check_pairing(pairing, outcomes0, outcomes1)
    if pairing == "index":
        both = [a * b for a, b in zip(outcomes0, outcomes1)]
        return both, list(both)
    mean0, mean1 = _mean(outcomes0), _mean(outcomes1)
    return [a * mean1 for a in outcomes0], [b * mean0 for b in outcomes1]


def pair_rewards(fmt: str, texts0: list, texts1: list, gold0: str, gold1: str, kind: str = "consistent",
                 pairing: str = "expected") -> tuple[list[float], list[float]]:
    """Rewards of the G completions of order 0 and of order 1 of one pair.

    kind="correct": each completion's own correctness. kind="consistent": 1 only when right in both orders,
    the partner in the other order chosen by `pairing` (see the module docstring)."""
    correct0 = [correctness(fmt, text, gold0) for text in texts0]
    correct1 = [correctness(fmt, text, gold1) for text in texts1]
    if kind == "correct":
        check_pairing(pairing, texts0, texts1)
        return correct0, correct1
    if kind != "consistent":
        raise ValueError(f"kind must be 'consistent' or 'correct', got {kind!r}")
    return pair_both_sides(correct0, correct1, pairing)


def pointwise_pair_rewards(texts_chosen: list, texts_rejected: list,
                           pairing: str = "expected") -> tuple[list[float], list[float]]:
    """Rewards of pointwise completions scoring the chosen and the rejected response of one pair.

    A (chosen, rejected) match earns 1 when both parse and the chosen score is strictly higher; a tie or an
    unparseable side earns 0. index: match i with i; expected: mean over all matches of a completion."""
    check_pairing(pairing, texts_chosen, texts_rejected)
    chosen = [parse_judgment("pointwise", text).score for text in texts_chosen]
    rejected = [parse_judgment("pointwise", text).score for text in texts_rejected]

    def agree(c, r) -> float:
        return float(c is not None and r is not None and c > r)

    if pairing == "index":
        both = [agree(c, r) for c, r in zip(chosen, rejected)]
        return both, list(both)
    return ([_mean([agree(c, r) for r in rejected]) for c in chosen],
            [_mean([agree(c, r) for c in chosen]) for r in rejected])
