"""Family "constraints": instructions with verifiable constraints; the rejected response breaks exactly one.

    python -m j1core.data.builtin

Both responses are written independently from small banks of sentences and list items about a random topic,
so they differ in content as well; the rejected one is written with one constraint deliberately broken (a
word too many, a sentence or bullet too few or many, the keyword left out, a forbidden word or letter used,
the case or format wrong). Every pair is checked with constraint_checks.holds before it is kept: the chosen
response keeps all constraints, the rejected one breaks exactly the one it was meant to.
"""
from __future__ import annotations

import json

from j1core.data.builtin.common import NAMES, TOPICS, ensure
from j1core.data.builtin.constraint_checks import Constraint, describe, holds

FAMILY = "constraints"

SENTENCES = (
    "{T} can turn an ordinary day into a good one.", "Many people enjoy {t} more than they expect.",
    "There is always something new to notice about {t}.", "Thinking about {t} reminds me of slow mornings.",
    "A little time with {t} helps me think clearly.", "People have written about {t} for centuries.",
    "My favourite thing about {t} is how calm it feels.", "Some find {t} boring, but I find it fascinating.",
    "Children often ask simple questions about {t}.", "The look of {t} changes with every season.",
    "It is easy to start learning about {t}.", "Good stories about {t} are worth sharing.",
    "Even a short walk can lead to thoughts of {t}.", "Friends bond over a shared love of {t}.",
    "Artists keep finding fresh ideas in {t}.", "The best part of {t} is the small details.",
    "Nobody needs to be an expert to enjoy {t}.", "Photos of {t} rarely capture the real thing.",
    "Every town has its own way of enjoying {t}.", "Time with {t} teaches patience, in its own quiet way.",
    "When I think of {t}, I feel curious.", "Old books say a lot about {t}.", "I could talk about {t} all day.",
    "Most of us met {t} as children.", "You can share {t} with almost anyone.",
)
ITEMS = (
    "Learn the basics of {t}", "Share {t} with a friend", "Read one good book about {t}", "Keep notes on {t}",
    "Visit a place known for {t}", "Ask an expert about {t}", "Take photos of {t}", "Spend ten minutes a day on {t}",
    "Compare old and new views of {t}", "Teach a child about {t}", "Join a club that loves {t}",
    "Write down what surprises you about {t}", "Watch a short film about {t}", "Plan a weekend around {t}",
    "Draw a quick sketch of {t}", "Listen to a podcast on {t}",
)
KEYWORDS = ("bright", "gentle", "curious", "simple", "patient", "golden", "lively", "honest", "warm", "steady")
KEYWORD_SENTENCES = ("Everything about it feels {k}.", "One word for it is {k}.", "I would describe it as {k}.",
                     "It always seems {k} to me.")
KEYWORD_ITEMS = ("Keep it {k}", "Stay {k} about it", "Look for the {k} side of it", "Be {k} with yourself")
FORBIDDEN = ("people", "time", "day", "enjoy", "love", "think", "small", "new", "good", "old")
LETTERS = ("k", "w", "v", "y", "b", "p", "g", "f")
START_PHRASES = ("Here is my answer:", "My short take:", "Quick thoughts:", "In brief:", "Honestly:")
END_PHRASES = ("That is all.", "Thanks for reading.", "Hope you agree.", "The end.", "Enough said.")
JSON_KEYS = (("topic", "summary", "mood"), ("title", "tip"), ("subject", "fact", "opinion"), ("name", "note"))


def fill(frame: str, topic: str, keyword: str = "") -> str:
    return frame.format(t=topic, T=topic[0].upper() + topic[1:], k=keyword)


def write(rng, shape: str, topic: str, cs: dict, broken: str | None) -> str:
    """A response of `shape` ("prose", "bullets", "numbered", "json") keeping every constraint in `cs`
    (kind -> Constraint) except `broken`, which it breaks on purpose."""
    def keeps(text):
        return all(holds(c, text) for kind, c in cs.items() if kind != broken and kind in filters)
    filters = ("forbid", "avoid_letter", "no_commas")
    bank = SENTENCES if shape in ("prose", "json") else ITEMS
    pool = [fill(f, topic) for f in bank]
    good = [s for s in pool if keeps(s)]
    rng.shuffle(good)
    count_kind = next((k for k in ("sentences", "bullets", "numbered") if k in cs), None)
    n = cs[count_kind].value if count_kind else rng.randint(2, 4)
    if count_kind and broken == count_kind:
        n = n + 1 if n == 1 or rng.random() < 0.5 else n - 1
    if shape == "json":
        n = len(cs["json_keys"].value)
    units, keyword = good[:n], None
    if "include" in cs and broken != "include":
        frames = KEYWORD_SENTENCES if shape in ("prose", "json") else KEYWORD_ITEMS
        fitting = [f for f in frames if keeps(fill(f, topic, cs["include"].value))] or frames
        keyword = fill(rng.choice(fitting), topic, cs["include"].value)
        units[rng.randrange(len(units))] = keyword
    if broken in filters:
        bad = [s for s in pool if not holds(cs[broken], s) and s not in units]
        units[rng.randrange(len(units))] = rng.choice(bad) if bad else units[0]
    if "max_words" in cs:
        limit = cs["max_words"].value
        spare = [s for s in good if s not in units]
        while broken == "max_words" and len(" ".join(units).split()) <= limit and spare:
            units.append(spare.pop())
        while broken != "max_words" and len(" ".join(units).split()) > limit - 8 and len(units) > 1:
            units.remove(next(u for u in reversed(units) if u != keyword))
    if "min_words" in cs:
        limit = cs["min_words"].value
        spare = [s for s in good if s not in units]
        while broken != "min_words" and len(" ".join(units).split()) < limit + 2 and spare:
            units.append(spare.pop())
        while broken == "min_words" and len(" ".join(units).split()) > limit - 12 and len(units) > 1:
            units.remove(next(u for u in reversed(units) if u != keyword))
    text = render(rng, shape, units, cs, broken, topic)
    if "lowercase" in cs and broken != "lowercase":
        text = text.lower()
    if "uppercase" in cs and broken != "uppercase":
        text = text.upper()
    return text


def render(rng, shape, units, cs, broken, topic) -> str:
    if shape == "prose":
        text = " ".join(units)
    elif shape in ("bullets", "numbered"):
        marks = ["- "] * len(units) if shape == "bullets" else [f"{i}. " for i in range(1, len(units) + 1)]
        text = "\n".join(m + u for m, u in zip(marks, units))
    else:
        keys = cs["json_keys"].value
        record = dict(zip(keys, units))
        if broken == "json_keys":
            how = rng.choice(("missing", "extra", "single quotes", "preamble"))
            if how == "missing":
                record.pop(keys[-1])
            elif how == "extra":
                record["note"] = units[0]
        text = json.dumps(record, indent=rng.choice((None, 2)))
        if broken == "json_keys" and how == "single quotes":
            text = text.replace('"', "'")
        elif broken == "json_keys" and how == "preamble":
            text = "Here is the JSON you asked for:\n" + text
    if "title" in cs and broken != "title":
        text = f"<<{rng.choice(('Notes on', 'Thoughts on', 'All About'))} {cap(topic)}>>\n" + text
    if "start" in cs and broken != "start":
        text = cs["start"].value + " " + text
    if "end" in cs and broken != "end":
        text = text + ("\n" if shape in ("bullets", "numbered") else " ") + cs["end"].value
    if "quotes" in cs and broken != "quotes":
        text = f'"{text}"'
    return text


def extra(rng, kind: str, topic: str) -> Constraint:
    """A random instance of a constraint kind that a response about `topic` can keep."""
    value = {"max_words": rng.choice((25, 30, 35, 40, 45)), "min_words": rng.choice((25, 30, 35, 40)),
             "sentences": rng.randint(2, 5),
             "include": rng.choice(KEYWORDS), "forbid": rng.choice(FORBIDDEN),
             "avoid_letter": rng.choice([c for c in LETTERS if c not in topic]),
             "start": rng.choice(START_PHRASES), "end": rng.choice(END_PHRASES),
             "bullets": rng.randint(2, 5), "numbered": rng.randint(2, 5),
             "json_keys": rng.choice(JSON_KEYS)}.get(kind)
    return Constraint(kind, value)


def make(rng, shape: str, fixed: tuple, optional: tuple, ask, start=None) -> tuple[str, str, str] | None:
    """Constraints: all of `fixed` and one or two of `optional` (`start`: the start phrase, when one is
    fixed); `ask(topic, descriptions)` words the instruction. None when the constraints clash or no pair
    with exactly one broken constraint came out of a few draws."""
    topic = rng.choice(TOPICS)
    kinds = list(fixed) + rng.sample(optional, rng.randint(1, min(2, len(optional))))
    clashes = ({"lowercase", "uppercase"}, {"sentences", "end"}, {"max_words", "min_words"}, {"sentences", "min_words"})
    if any(clash <= set(kinds) for clash in clashes):
        return None
    cs = {k: extra(rng, k, topic) for k in kinds}
    if start is not None:
        cs["start"] = Constraint("start", start)
    fixed_words = " ".join([topic] + [str(cs[k].value) for k in ("include", "start", "end") if k in cs])
    for avoid in ("forbid", "avoid_letter"):  # the topic, keyword and phrases themselves must keep them
        if avoid in cs and not holds(cs[avoid], fixed_words):
            return None
    broken = rng.choice(kinds)
    chosen_longer = rng.random() < 0.5  # which one should be the longer: a valid pair that agrees is preferred
    found = []
    for _ in range(8):
        chosen, rejected = write(rng, shape, topic, cs, None), write(rng, shape, topic, cs, broken)
        if all(holds(c, chosen) for c in cs.values()) and \
                [k for k, c in cs.items() if not holds(c, rejected)] == [broken]:
            ensure(chosen != rejected, "constraints: identical responses")
            found.append((chosen, rejected))
            if (len(chosen) > len(rejected)) == chosen_longer:
                break
    if not found:
        return None
    return ask(topic, [describe(cs[k], rng) for k in kinds]), *found[-1]


def cap(text: str) -> str:
    return text[0].upper() + text[1:]


# ---------------------------------------------------------------- surface templates

PROSE = ("max_words", "min_words", "include", "forbid", "lowercase", "uppercase", "start", "end", "no_commas",
         "avoid_letter")
LISTED = ("include", "forbid", "lowercase", "uppercase", "avoid_letter", "end")


def rules_block(rng):
    return make(rng, "prose", (), PROSE, lambda t, d: f"Write a short paragraph about {t}.\nRules:\n"
                + "\n".join(f"- {x}." for x in d))


def sentence_count(rng):
    return make(rng, "prose", ("sentences",), ("include", "forbid", "lowercase", "no_commas", "avoid_letter"),
                lambda t, d: f"Explain why you care about {t}. {d[0]}. Also: {'; '.join(x.lower() for x in d[1:])}.")


def note_to_friend(rng):
    name = rng.choice(NAMES)
    return make(rng, "prose", ("start",), ("include", "forbid", "max_words", "min_words", "end", "avoid_letter"),
                lambda t, d: f"Can you write a quick message to my friend {name} about {t}? {'. '.join(d)}.",
                start=rng.choice((f"Hi {name}!", f"Dear {name}:", f"Hey {name}!")))


def bullet_points(rng):
    return make(rng, "bullets", ("bullets",), LISTED,
                lambda t, d: f"Give me some tips about {t}. {d[0]}. {' and '.join(d[1:])}.")


def numbered_steps(rng):
    return make(rng, "numbered", ("numbered",), LISTED,
                lambda t, d: f"How would a beginner get into {t}? {d[0]}.\nConstraints: {' | '.join(d[1:])}")


def json_record(rng):
    return make(rng, "json", ("json_keys",), ("include", "forbid", "lowercase", "avoid_letter"),
                lambda t, d: f"Describe {t} for a database entry. {d[0]}. {'. '.join(d[1:])}.")


def titled_post(rng):
    return make(rng, "prose", ("title",), ("include", "forbid", "max_words", "min_words", "no_commas", "end"),
                lambda t, d: f"Write a tiny blog post on {t}.\n* " + "\n* ".join(d))


def quoted_tagline(rng):
    return make(rng, "prose", ("quotes",), ("max_words", "include", "forbid", "lowercase", "uppercase"),
                lambda t, d: f"I need a slogan-style blurb for a poster about {t}. Requirements: "
                + "; ".join(x.lower() for x in d) + ".")


def shouted_answer(rng):
    return make(rng, "prose", ("uppercase",), ("include", "forbid", "sentences", "no_commas"),
                lambda t, d: f"Q: What do you like about {t}?\n(" + ", ".join(d) + ")")


TEMPLATES = (rules_block, sentence_count, note_to_friend, bullet_points, numbered_steps, json_record, titled_post,
             quoted_tagline, shouted_answer)
HELDOUT_TEMPLATES = ("numbered_steps", "quoted_tagline")
