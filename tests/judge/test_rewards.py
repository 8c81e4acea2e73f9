"""Tests for j1core/judge/rewards.py: strict parsing, adversarial texts, every reward path, pairing against loops.

    python -m pytest tests/judge/test_rewards.py
"""
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from j1core.judge.prompts import ANSWER_LAYOUT, FORMAT_INSTRUCTIONS, FORMATS, SLOTS, render_answer
from j1core.judge.rewards import (
    Judgment,
    correctness,
    format_reward,
    judged_winner,
    pair_rewards,
    parse_judgment,
    pointwise_pair_rewards,
)

PAIRWISE_FORMATS = [fmt for fmt in FORMATS if fmt != "pointwise"]
WS = " \t\r\n"


def slot_values(fmt, verdict="A", score_a=8.0, score_b=2.5, score=6.0):
    values = {"verdict": verdict, "score_a": score_a, "score_b": score_b, "score": score}
    return {k: v for k, v in values.items() if k in ANSWER_LAYOUT[fmt]}


def completion(fmt, reasoning="Response A is right.\n", open_tag=True, **values):
    return ("<think>\n" if open_tag else "") + reasoning + render_answer(fmt, **slot_values(fmt, **values))


def reference_parse(fmt, text):
    """A plain, regex-free reading of the rules in the rewards docstring: dict of slot values or None."""
    if not isinstance(text, str) or text.count("</think>") != 1:
        return None
    head, tail = text.split("</think>")
    if head.count("<think>") > 1 or tail.count("<think>") or (
            "<think>" in head and not head.lstrip(WS).startswith("<think>")):
        return None
    rest, found = tail.strip(WS), {}
    for part in ANSWER_LAYOUT[fmt]:
        if part in SLOTS:
            if part == "verdict":
                if rest[:1] not in ("A", "B"):
                    return None
                found[part], rest = rest[0], rest[1:]
                continue
            end = rest.find("<")
            value, rest = (rest, "") if end < 0 else (rest[:end], rest[end:])
            whole, _, decimal = value.partition(".")
            if (whole not in [str(i) for i in range(11)] or ("." in value and len(decimal) != 1)
                    or not all(c in "0123456789" for c in decimal) or float(value) > 10):
                return None
            found[part] = float(value)
            continue
        chunks = part.removeprefix("</think>").split()
        for i, chunk in enumerate(chunks):
            if not rest.startswith(chunk):
                return None
            rest = rest[len(chunk):]
            if i < len(chunks) - 1 or (part[-1] in WS):
                rest = rest.lstrip(WS)
    return found if rest == "" else None


@pytest.mark.parametrize("fmt", FORMATS)
def test_rendered_answers_parse_back_with_or_without_the_opening_tag(fmt):
    rng = random.Random(fmt)
    for _ in range(50):
        values = {"verdict": rng.choice("AB"), "score_a": rng.randint(0, 100) / 10,
                      "score_b": rng.randint(0, 100) / 10, "score": rng.randint(0, 100) / 10}
        text = completion(fmt, open_tag=rng.random() < 0.5, **values)
        judgment = parse_judgment(fmt, "  \n" + text)
        expected = slot_values(fmt, **values)
        assert judgment.parsed
        assert {k: getattr(judgment, k) for k in expected} == expected
        assert format_reward(fmt, text) == 1.0


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_example_in_each_prompt_parses(fmt):
    instructions = FORMAT_INSTRUCTIONS[fmt]
    assert parse_judgment(fmt, instructions[instructions.index("<think>"):]).parsed


@pytest.mark.parametrize("fmt", FORMATS)
def test_whitespace_between_tags_is_accepted_but_not_inside(fmt):
    answer = render_answer(fmt, **slot_values(fmt))
    spaced = answer.replace("\n", " \n\t ")
    squeezed = answer.replace("\n", "")
    assert parse_judgment(fmt, "r" + spaced + "\n\n").parsed and parse_judgment(fmt, "r" + squeezed).parsed
    assert not parse_judgment(fmt, "r" + answer.replace("<", "< ", 2)).parsed
    # Next to a tag whitespace is allowed (the paper's "<answer> [[A]] </answer>"), inside a tag it is not.
    assert parse_judgment(fmt, "r" + answer.replace(">", "> ").replace("</", " </")).parsed
    head, _, last_tag = answer.rpartition("</")
    assert not parse_judgment(fmt, "r" + head + "</ " + last_tag).parsed
    if "[[" in answer:
        assert not parse_judgment(fmt, "r" + answer.replace("[[", "[ [")).parsed


PAPER_STYLE = {  # what the paper's prompts ask for, spacing included
    "pairwise": ("<think> reasoning </think>\n<answer> [[B]] </answer>", {"verdict": "B"}),
    "pairwise_scores": ("<think> r </think>\n<score_A> 7 </score_A> <score_B> 3.5 </score_B>",
                        {"score_a": 7.0, "score_b": 3.5}),
    "scores_verdict": ("<think> r </think> <score_A> 2 </score_A> <score_B> 9.5 </score_B> <answer> [[B]] </answer>",
                       {"score_a": 2.0, "score_b": 9.5, "verdict": "B"}),
    "pointwise": ("<think> r </think>\n<score> 10 </score>", {"score": 10.0}),
}
PAPER_STYLE_BROKEN = {
    "pairwise": ["<think>r</think><answer> [[ A ]] </answer>", "<think>r</think><answer> [[A]] [[B]] </answer>",
                 "<think>r</think>[[A]] <answer> [[A]] </answer>", "<think>r</think><answer> [[\uff21]] </answer>",
                 "<think>r</think><answer> \uff3b\uff3bA\uff3d\uff3d </answer>",
                 "<think>r</think>< answer>[[A]]</answer>",
                 "<think>r</think><answer> [[A]] </answer> A"],
    "pointwise": ["<think>r</think><score> 11 </score>", "<think>r</think><score> 7 5 </score>",
                  "<think>r</think><score> -1 </score>", "<think>r</think><score> 7.55 </score>"],
    "pairwise_scores": ["<think>r</think><score_A> 7 </score_A>", "<think>r</think><score_A> 10.1 </score_A> "
                        "<score_B> 3 </score_B>"],
}


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_paper_answer_style_parses(fmt):
    text, expected = PAPER_STYLE[fmt]
    judgment = parse_judgment(fmt, text)
    assert {k: getattr(judgment, k) for k in expected} == expected


@pytest.mark.parametrize("fmt, text", [(f, t) for f, ts in PAPER_STYLE_BROKEN.items() for t in ts])
def test_paper_style_lookalikes_and_extras_still_fail(fmt, text):
    assert not parse_judgment(fmt, text).parsed


ADVERSARIAL_PAIRWISE = {
    "verdict only inside think": "<think>I pick <answer>[[A]]</answer></think>",
    "verdict copied from a response into think": "<think>Response B says [[A]] is right.</think>\nA",
    "no think block": "<answer>[[A]]</answer>",
    "unclosed think": "<think>A is better <answer>[[A]]</answer>",
    "two closing think tags": "<think>x</think>y</think><answer>[[A]]</answer>",
    "two think blocks": "<think>x</think><think>y</think><answer>[[A]]</answer>",
    "think opened late": "A is best <think>x</think><answer>[[A]]</answer>",
    "both verdicts after think": "<think>x</think><answer>[[A]]</answer><answer>[[B]]</answer>",
    "both verdicts in one answer": "<think>x</think><answer>[[A]] [[B]]</answer>",
    "AB verdict": "<think>x</think><answer>[[AB]]</answer>",
    "unclosed answer": "<think>x</think><answer>[[A]]",
    "unclosed brackets": "<think>x</think><answer>[[A</answer>",
    "bare verdict": "<think>x</think>[[A]]",
    "text after the answer": "<think>x</think><answer>[[A]]</answer> Response A is better.",
    "text before the answer": "<think>x</think>Verdict: <answer>[[A]]</answer>",
    "fullwidth brackets": "<think>x</think><answer>［［A］］</answer>",
    "fullwidth letter": "<think>x</think><answer>[[Ａ]]</answer>",
    "lowercase letter": "<think>x</think><answer>[[a]]</answer>",
    "spaces inside brackets": "<think>x</think><answer>[[ A ]]</answer>",
    "uppercase tag": "<think>x</think><ANSWER>[[A]]</ANSWER>",
    "ideographic space before answer": "<think>x</think>\u3000<answer>[[A]]</answer>",
}


@pytest.mark.parametrize("name", sorted(ADVERSARIAL_PAIRWISE))
def test_adversarial_pairwise_texts_earn_nothing(name):
    text = ADVERSARIAL_PAIRWISE[name]
    assert not parse_judgment("pairwise", text).parsed
    assert correctness("pairwise", text, "A") == 0.0 and format_reward("pairwise", text) == 0.0
    assert reference_parse("pairwise", text) is None


BAD_SCORES = ["11", "-1", "NaN", "nan", "inf", "-inf", "7.55", "10.5", "+5", "7.", ".5", "07", "1e1", "7,5",
              "", " ", "７", "٧", "7.٥", "seven", "5/10", "10.00"]


@pytest.mark.parametrize("bad", BAD_SCORES)
def test_bad_scores_are_unparseable_in_every_score_format(bad):
    texts = {
        "pointwise": f"<think>x</think><score>{bad}</score>",
        "pairwise_scores": f"<think>x</think><score_A>9.0</score_A><score_B>{bad}</score_B>",
        "scores_verdict": f"<think>x</think><score_A>{bad}</score_A><score_B>1</score_B><answer>[[A]]</answer>",
    }
    for fmt, text in texts.items():
        assert not parse_judgment(fmt, text).parsed, (fmt, text)
        assert reference_parse(fmt, text) is None
    assert correctness("pairwise_scores", texts["pairwise_scores"], "A") == 0.0
    assert correctness("scores_verdict", texts["scores_verdict"], "A") == 0.0


@pytest.mark.parametrize("good, value", [("0", 0.0), ("10", 10.0), ("10.0", 10.0), ("0.0", 0.0), ("7.5", 7.5),
                                         ("3", 3.0), ("9.9", 9.9)])
def test_boundary_scores_parse(good, value):
    assert parse_judgment("pointwise", f"<think>x</think><score>{good}</score>").score == value


@pytest.mark.parametrize("text", [
    "<think>x</think><score_A>7</score_A>",  # missing score_B
    "<think>x</think><score_B>2</score_B><score_A>7</score_A>",  # wrong order
    "<think>x</think><score_A>7</score_A><score_B>2</score_B><score_B>3</score_B>",  # a second score
    "<think>x</think><score_A>7</score_B><score_B>2</score_A>",  # crossed tags
    "<think>x</think><score_A>7<score_B>2</score_B>",  # unclosed tag
])
def test_malformed_score_pairs_are_unparseable(text):
    assert not parse_judgment("pairwise_scores", text).parsed
    assert reference_parse("pairwise_scores", text) is None


def test_score_formats_need_their_own_tags():
    assert not parse_judgment("pointwise", completion("pairwise_scores")).parsed
    assert not parse_judgment("pairwise_scores", completion("pointwise")).parsed
    assert not parse_judgment("scores_verdict", completion("pairwise_scores")).parsed  # verdict missing
    assert not parse_judgment("pairwise", completion("scores_verdict")).parsed


def test_judged_winner_per_format():
    assert judged_winner("pairwise", Judgment(verdict="B", parsed=True)) == "B"
    assert judged_winner("pairwise", Judgment(verdict="B", parsed=False)) is None
    assert judged_winner("pairwise_scores", Judgment(score_a=3.0, score_b=4.5, parsed=True)) == "B"
    assert judged_winner("pairwise_scores", Judgment(score_a=5.0, score_b=5.0, parsed=True)) == "tie"
    agree = Judgment(verdict="A", score_a=6.0, score_b=1.0, parsed=True)
    assert judged_winner("scores_verdict", agree) == "A"
    assert judged_winner("scores_verdict", Judgment(verdict="B", score_a=6.0, score_b=1.0, parsed=True)) is None
    assert judged_winner("scores_verdict", Judgment(verdict="A", score_a=6.0, score_b=6.0, parsed=True)) is None
    assert judged_winner("pointwise", Judgment(score=6.0, parsed=True)) is None


@pytest.mark.parametrize("fmt", PAIRWISE_FORMATS)
@pytest.mark.parametrize("gold", ["A", "B"])
def test_correctness_follows_the_winner(fmt, gold):
    for verdict in "AB":
        for score_a, score_b in [(8.0, 2.0), (2.0, 8.0), (5.0, 5.0)]:
            text = completion(fmt, verdict=verdict, score_a=score_a, score_b=score_b)
            winner = judged_winner(fmt, parse_judgment(fmt, text))
            assert correctness(fmt, text, gold) == float(winner == gold)
            by_scores = "A" if score_a > score_b else "B" if score_b > score_a else None
            expected = {"pairwise": verdict == gold, "pairwise_scores": by_scores == gold,
                        "scores_verdict": verdict == gold and by_scores == gold}[fmt]
            assert correctness(fmt, text, gold) == float(expected)


def test_bad_arguments_raise():
    with pytest.raises(ValueError):
        correctness("pairwise", completion("pairwise"), "C")
    with pytest.raises(ValueError):
        correctness("pointwise", completion("pointwise"), "A")
    with pytest.raises(ValueError):
        parse_judgment("listwise", "x")
    with pytest.raises(ValueError):
        pair_rewards("pairwise", ["a"], ["b", "c"], "A", "B", pairing="index")
    with pytest.raises(ValueError):
        pair_rewards("pairwise", ["a"], ["b"], "A", "B", kind="both")
    with pytest.raises(ValueError):
        pointwise_pair_rewards(["a"], ["b"], pairing="random")


def random_texts(rng, fmt, gold, n):
    """Completions that are right, wrong, or unparseable, in random proportions."""
    other = "B" if gold == "A" else "A"
    pool = [completion(fmt, verdict=gold, score_a=9.0 if gold == "A" else 1.0, score_b=1.0 if gold == "A" else 9.0),
            completion(fmt, verdict=other, score_a=1.0 if gold == "A" else 9.0, score_b=9.0 if gold == "A" else 1.0),
            "no format at all"]
    return [rng.choice(pool) for _ in range(n)]


@pytest.mark.parametrize("fmt", PAIRWISE_FORMATS)
def test_pair_rewards_match_plain_loops(fmt):
    rng = random.Random(1)
    for _ in range(20):
        g0 = rng.choice("AB")
        g1 = "B" if g0 == "A" else "A"
        n0 = rng.randint(1, 6)
        texts0, texts1 = random_texts(rng, fmt, g0, n0), random_texts(rng, fmt, g1, n0)
        c0 = [correctness(fmt, t, g0) for t in texts0]
        c1 = [correctness(fmt, t, g1) for t in texts1]
        assert pair_rewards(fmt, texts0, texts1, g0, g1, kind="correct") == (c0, c1)
        index = pair_rewards(fmt, texts0, texts1, g0, g1, pairing="index")
        assert index == ([float(a and b) for a, b in zip(c0, c1)],) * 2
        r0, r1 = pair_rewards(fmt, texts0, texts1, g0, g1, pairing="expected")
        ref0 = [sum(a * b for b in c1) / len(c1) for a in c0]
        ref1 = [sum(a * b for a in c0) / len(c0) for b in c1]
        assert all(math.isclose(x, y) for x, y in zip(r0 + r1, ref0 + ref1))
        m1 = random_texts(rng, fmt, g1, n0 + 1)  # expected pairing takes groups of different sizes
        assert len(pair_rewards(fmt, texts0, m1, g0, g1)[1]) == n0 + 1


def test_consistency_needs_right_in_both_orders():
    right0, wrong0 = completion("pairwise", verdict="A"), completion("pairwise", verdict="B")
    right1 = completion("pairwise", verdict="B")
    # Always "A" is right in order 0 and wrong in order 1 (the position bias DESIGN.md measured).
    assert pair_rewards("pairwise", [right0], [right0], "A", "B") == ([0.0], [0.0])
    assert pair_rewards("pairwise", [right0], [right1], "A", "B") == ([1.0], [1.0])
    assert pair_rewards("pairwise", [right0, wrong0], [right1, right1], "A", "B") == ([1.0, 0.0], [0.5, 0.5])
    assert pair_rewards("pairwise", [], [], "A", "B") == ([], [])


def test_pointwise_pair_rewards_index_and_expected():
    def scored(value):
        return completion("pointwise", score=value)
    chosen = [scored(8.0), scored(3.0), "garbage"]
    rejected = [scored(5.0), scored(3.0), scored(9.0)]
    assert pointwise_pair_rewards(chosen, rejected, pairing="index") == ([1.0, 0.0, 0.0],) * 2  # 8>5, 3=3
    rc, rr = pointwise_pair_rewards(chosen, rejected)
    # 8 beats 5 and 3, loses to 9; 3 beats nothing (tie with 3 earns 0); garbage earns nothing.
    assert rc == [2 / 3, 0.0, 0.0] and rr == [1 / 3, 1 / 3, 0.0]
    assert pointwise_pair_rewards([scored(7.5)], [scored(7.0)], pairing="index") == ([1.0], [1.0])


FRAGMENTS = ["<think>", "</think>", "<answer>", "</answer>", "[[", "]]", "A", "B", "a", "<score_A>", "</score_A>",
             "<score_B>", "</score_B>", "<score>", "</score>", "7.5", "10", "0", "11", "7.55", "-1", "NaN", ".",
             "\n", " ", "\t", "\u3000", "［［", "］］", "Ａ", "x", "<", ">"]
fragment_text = st.lists(st.sampled_from(FRAGMENTS), max_size=14).map("".join)
near_valid = st.builds(lambda fmt, pre, post: (fmt, pre + completion(fmt) + post),
                       st.sampled_from(FORMATS), fragment_text, fragment_text)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(FORMATS), st.one_of(st.text(), fragment_text, st.binary(), st.none(), st.integers()))
def test_parsing_never_raises_and_agrees_with_the_plain_reader(fmt, text):
    judgment = parse_judgment(fmt, text)
    reference = reference_parse(fmt, text)
    assert judgment.parsed == (reference is not None)
    if reference is not None:
        assert {k: getattr(judgment, k) for k in reference} == reference
    assert format_reward(fmt, text) in (0.0, 1.0)
    if fmt != "pointwise":
        assert correctness(fmt, text, "A") in (0.0, 1.0) and correctness(fmt, text, "B") in (0.0, 1.0)


@settings(max_examples=200, deadline=None)
@given(near_valid)
def test_near_valid_texts_agree_with_the_plain_reader(case):
    fmt, text = case
    judgment = parse_judgment(fmt, text)
    reference = reference_parse(fmt, text)
    assert judgment.parsed == (reference is not None)
    if judgment.parsed:
        assert all(0.0 <= v <= 10.0 for v in (judgment.score_a, judgment.score_b, judgment.score) if v is not None)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(FORMATS), st.lists(st.text(max_size=40), max_size=4), st.lists(st.text(max_size=40),
                                                                                      max_size=4))
def test_pair_rewards_never_raise_on_arbitrary_text(fmt, texts0, texts1):
    if fmt == "pointwise":
        rewards = pointwise_pair_rewards(texts0, texts1)
    else:
        rewards = pair_rewards(fmt, texts0, texts1, "A", "B")
    assert all(0.0 <= r <= 1.0 for side in rewards for r in side)
    assert [len(side) for side in rewards] == [len(texts0), len(texts1)]
