"""Tests for j1core/data/builtin/constraint_checks.py and constraints.py: each checker on hand-made texts, and
every constraints pair read back from its instruction text alone: the chosen response keeps every
constraint the instruction states, the rejected one breaks exactly one.

    python -m pytest tests/data/builtin/test_constraints.py -q
"""
import random
import re

import pytest

from j1core.data.builtin import all_builtin_pairs, family_of
from j1core.data.builtin.constraint_checks import KINDS, NUMBER_WORDS, Constraint, describe, holds

C = Constraint
HAND_MADE = [  # (constraint, a text that keeps it, a text that breaks it)
    (C("max_words", 4), "One two three four.", "One two three four five."),
    (C("min_words", 4), "One, two, three, four.", "One two three."),
    (C("sentences", 2), "It rains. I stay in!", "It rains. I stay in. Tea?"),
    (C("include", "warm"), "A warm day.", "A warmer day."),
    (C("forbid", "day"), "A sunny Monday.", "A sunny Day."),
    (C("lowercase"), "all quiet here.", "All quiet here."),
    (C("uppercase"), "ALL QUIET HERE.", "ALL QUIET HERe."),
    (C("start", "Hi Sam!"), "hi sam! How are you?", "Hello Sam! Hi Sam!"),
    (C("end", "The end."), "A story. The end.", "The end. A story."),
    (C("no_commas"), "No commas here.", "One, two."),
    (C("avoid_letter", "k"), "Bread and jam.", "Cake and jam."),
    (C("quotes"), '"Read more books."', '"Read more books.'),
    (C("title"), "<<Notes on Tea>>\nTea is nice.", "Notes on Tea\nTea is nice."),
    (C("bullets", 2), "- one\n- two", "- one\n- two\n- three"),
    (C("numbered", 2), "1. one\n2. two", "1. one\n3. two"),
    (C("json_keys", ("a", "b")), '{"b": 1, "a": "x"}', "{'a': 1, 'b': 2}"),
]


@pytest.mark.parametrize("constraint, keeps, breaks", HAND_MADE, ids=[c.kind for c, _, _ in HAND_MADE])
def test_checkers_on_hand_made_texts(constraint, keeps, breaks):
    assert holds(constraint, keeps)
    assert not holds(constraint, breaks)


def test_every_kind_has_a_hand_made_case():
    assert {c.kind for c, _, _ in HAND_MADE} == set(KINDS)


def count(word):
    return NUMBER_WORDS.index(word.lower()) if word.lower() in NUMBER_WORDS else int(word)


# Patterns written from the instruction wordings, independently of constraint_checks.describe.
PATTERNS = {
    "max_words": (r"at most (\d+) words", r"no more than (\d+) words", r"under (\d+) words"),
    "min_words": (r"at least (\d+) words", r"no fewer than (\d+) words", r"(\d+) words or longer"),
    "sentences": (r"exactly (\w+) sentences", r"use (\w+) sentences, no more", r"exactly (\d+) sentences long"),
    "include": (r"include the word '([a-z]+)'", r"use the word \"([a-z]+)\"", r"mention the word ([a-z]+)"),
    "forbid": (r"do not use the word '([a-z]+)'", r"avoid the word \"([a-z]+)\"", r"never say the word ([a-z]+)"),
    "lowercase": (r"in lowercase letters", r"no capital letters at all", r"must be lowercase"),
    "uppercase": (r"everything in capital letters", r"only uppercase letters", r"in all caps"),
    "start": (r"start your reply with \"([^\"]+)\"", r"begin with the exact words '([^']+)'", r"open with '([^']+)'"),
    "end": (r"end your reply with \"([^\"]+)\"", r"finish with the exact phrase '([^']+)'", r"close with '([^']+)'"),
    "no_commas": (r"commas",),
    "avoid_letter": (r"the letter '([a-z])' anywhere", r"avoid the letter ([a-z]) completely",
                     r"contain the letter '([a-z])'"),
    "quotes": (r"double quotation marks", r"inside double quotes", r"in \"double quotes\""),
    "title": (r"<<title>>",),
    "bullets": (r"exactly (\w+) bullet points", r"as (\d+) markdown bullets", r"give (\w+) items as a '- '"),
    "numbered": (r"number them 1 to (\d+)", r"exactly (\w+) numbered lines", r"numbered list of (\d+) items"),
    "json_keys": (r"exactly the keys ([a-z, ]+?)(?:\.|$)", r"whose keys are ([a-z, ]+?)(?:\.|$)",
                  r"with the keys ([a-z, ]+?) and nothing else"),
}


def stated_constraints(prompt):
    """The constraints an instruction states, read with PATTERNS."""
    found = []
    for kind, patterns in PATTERNS.items():
        for pattern in patterns:
            match = re.search(pattern, prompt, re.IGNORECASE | re.MULTILINE)
            if not match:
                continue
            value = match.group(1) if match.groups() else None
            if kind == "max_words":
                value = int(value) - (pattern.startswith("under"))
            elif kind == "min_words":
                value = int(value)
            elif kind in ("sentences", "bullets", "numbered"):
                value = count(value)
            elif kind == "json_keys":
                value = tuple(k.strip() for k in value.split(","))
            found.append(Constraint(kind, value))
            break
    return found


def constraint_pairs():
    return [p for p in all_builtin_pairs(0) if family_of(p) == "constraints"]


def test_every_pair_keeps_all_stated_constraints_in_chosen_and_breaks_exactly_one_in_rejected():
    pairs = constraint_pairs()
    assert len(pairs) >= 1000
    broken = []
    for p in pairs:
        stated = stated_constraints(p.prompt)
        assert len(stated) >= 1, p.prompt
        assert all(holds(c, p.chosen) for c in stated), (p.prompt, p.chosen, stated)
        failed = [c.kind for c in stated if not holds(c, p.rejected)]
        assert len(failed) == 1, (p.prompt, p.rejected, failed)
        broken += failed
    assert len(set(broken)) >= 12  # nearly every kind is the broken one somewhere


def test_descriptions_read_back_as_the_same_constraint():
    rng = random.Random(0)
    cases = [C("max_words", 30), C("min_words", 35), C("sentences", 3), C("include", "warm"), C("forbid", "day"),
             C("lowercase"), C("uppercase"), C("start", "Hi Sam!"), C("end", "The end."), C("no_commas"),
             C("avoid_letter", "k"), C("quotes"), C("title"), C("bullets", 4), C("numbered", 5),
             C("json_keys", ("topic", "mood"))]
    for c in cases:
        for _ in range(10):
            text = describe(c, rng) + "."
            stated = [s for s in stated_constraints(text) if s.kind == c.kind]
            assert stated == [c] or (c.kind in ("lowercase", "uppercase", "no_commas", "quotes", "title")
                                     and [s.kind for s in stated] == [c.kind]), text
