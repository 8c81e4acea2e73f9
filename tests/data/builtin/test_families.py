"""Tests for the facts, nearby, offtopic and confident families (j1core/data/builtin/facts.py, fact_tables.py,
nearby.py, offtopic.py, confident.py): the chosen response has the right fact and the rejected the wrong one,
a nearby answer is correct for its own question, an off-topic one is about something else, and in the
confident family the loud response is right only half the time.

    python -m pytest tests/data/builtin/test_families.py -q
"""
import json
import re

from j1core.data.builtin import all_builtin_pairs, family_of, template_of
from j1core.data.builtin.confident import SURE, TRICKS
from j1core.data.builtin.fact_tables import FACTS
from j1core.data.builtin.offtopic import HOW_TO, WORDS


def pairs_of(family):
    return [p for p in all_builtin_pairs(0) if family_of(p) == family]


def test_fact_tables_are_consistent():
    assert len(FACTS) >= 100
    assert len({f.question for f in FACTS}) == len(FACTS)
    assert all(f.right != f.wrong and "{}" in f.statement for f in FACTS)


def fact_asked(prompt):
    """The fact a prompt asks about: its question, its blank, or its statement (true/false) is in the prompt."""
    found = [f for f in FACTS if f.question[1:] in prompt or f.say("_____") in prompt or f.say(f.right) in prompt
             or f.say(f.wrong) in prompt]
    assert len(found) == 1, (prompt, found)
    return found[0]


def test_facts_chosen_says_the_right_answer_and_rejected_the_wrong_one():
    pairs = pairs_of("facts")
    assert len(pairs) >= 700
    for p in pairs:
        fact = fact_asked(p.prompt)
        if template_of(p) == "json_answer":
            assert list(json.loads(p.chosen).values()) == [fact.right]
            assert list(json.loads(p.rejected).values()) == [fact.wrong]
        elif template_of(p) == "true_false":
            assert fact.say(fact.right) in p.chosen and fact.say(fact.wrong) in p.rejected
        else:
            assert re.search(rf"(^|\W){re.escape(fact.right)}(\W|$)", p.chosen), p
            assert re.search(rf"(^|\W){re.escape(fact.wrong)}(\W|$)", p.rejected), p
            assert not re.search(rf"(^|\W){re.escape(fact.wrong)}(\W|$)", p.chosen), p


def sums_hold(text):
    """Every 'a op b = c' in a text is right (nearby answers are right, for their own question)."""
    found = re.findall(r"(\d+) ([-+x]) (\d+) = (\d+)", text)
    return found and all({"+": int(a) + int(b), "-": int(a) - int(b), "x": int(a) * int(b)}[op] == int(c)
                         for a, op, b, c in found)


def test_nearby_answers_are_right_for_the_question_they_answer():
    pairs = pairs_of("nearby")
    assert len(pairs) >= 1000
    for p in pairs:
        if template_of(p) == "other_quantity":
            assert sums_hold(p.chosen) and sums_hold(p.rejected), p
        if template_of(p) == "other_direction" and "than" in p.prompt:
            k, want, x = re.search(r"What number is (\d+) (more|less) than (\d+)", p.prompt).groups()
            right = int(x) + int(k) if want == "more" else int(x) - int(k)
            assert p.chosen.rstrip(".").endswith(f"is {right}") or f"is {right}." in p.chosen, p
            other = int(x) - int(k) if want == "more" else int(x) + int(k)
            assert f"is {other}." in p.rejected, p


def test_confident_family_is_loud_and_right_only_half_the_time():
    pairs = pairs_of("confident")
    loud = [p for p in pairs if any(s.split("{}")[-1].strip() and s.split("{}")[-1].strip() in p.chosen + p.rejected
                                    for s in SURE)]
    chosen_loud = sum(any(s.split("{}")[-1].strip() in p.chosen for s in SURE if s.split("{}")[-1].strip())
                      for p in loud)
    assert len(loud) >= 300
    assert 0.4 <= chosen_loud / len(loud) <= 0.6


def test_trick_answers_and_math_pairs_are_right_in_chosen():
    tricks = {q: (right, wrong) for q, right, wrong in TRICKS}
    for p in pairs_of("confident"):
        asked = [q for q in tricks if q in p.prompt]
        if asked:
            right, wrong = tricks[asked[0]]
            assert right in p.chosen and wrong in p.rejected, p
        if template_of(p) == "math_confident":
            a, op, b, c = re.search(r"(\d+) ([x+]) (\d+) = (\d+)", p.chosen).groups()
            assert (int(a) * int(b) if op == "x" else int(a) + int(b)) == int(c)
            a, op, b, c = re.search(r"(\d+) ([x+]) (\d+) = (\d+)", p.rejected).groups()
            assert (int(a) * int(b) if op == "x" else int(a) + int(b)) != int(c)


def test_offtopic_chosen_answers_the_question_and_rejected_is_about_something_else():
    how_to = dict(HOW_TO)
    words = dict(WORDS)
    pairs = pairs_of("offtopic")
    assert len(pairs) >= 500
    for p in pairs:
        template = template_of(p)
        if template == "how_to":
            task = next(t for t in how_to if t in p.prompt)
            assert how_to[task] in p.chosen and how_to[task] not in p.rejected
        elif template == "define_word":
            word = next(w for w in words if f" {w}" in p.prompt or f"'{w}'" in p.prompt)
            assert words[word] in p.chosen and word not in p.rejected
        elif template == "sum_or_story":
            a, b = map(int, re.search(r"add (\d+) and (\d+)", p.prompt).groups())
            assert f"= {a + b}." in p.chosen and "=" not in p.rejected
        elif template == "fact_for_fact":
            fact = fact_asked(p.prompt)
            assert fact.say(fact.right) in p.chosen
            assert not any(f.say(f.right) in p.rejected for f in FACTS if f.table == fact.table)
