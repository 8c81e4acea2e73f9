"""Helpers every built-in family shares: number formatting, small vocabularies, length balancing, checks.

    python -m pytest tests/data/builtin -q

Length balancing: a judge that learns "the longer answer wins" (or "the shorter") learns nothing about
judging, so most families call `balance` on each pair: it picks at random which response should be the
longer one and, when that one is not, adds neutral chat openers and closers to it (never numbers, never
claims) until it is. Which response carries filler is therefore no cue either.

Balanced counts are not enough under the consistency reward: a judge that picks the longer response is
order-invariant, so it earns the reward on every pair whose chosen response is the longer, while a
position-biased judge earns nothing, and training drifts towards length. `flip_longer` gives the same pair
with the other response made the longer (filler moved), so a run can show a pair's two orders with opposite
length relations (--flip-length) and pay the consistency reward to neither cue.
"""
from __future__ import annotations

from decimal import Decimal

NAMES = ("Ana", "Ben", "Carla", "Dev", "Emma", "Farid", "Grace", "Hugo", "Ines", "Jon", "Kemi", "Leo", "Maya",
         "Noah", "Omar", "Priya", "Rosa", "Sam", "Tara", "Yuki", "Zoe", "Ivan", "Lena", "Marco", "Nadia", "Oscar")
ITEMS = ("apples", "stickers", "marbles", "books", "coins", "pencils", "cards", "shells", "stamps", "beads",
         "cookies", "oranges", "balloons", "erasers", "candles", "buttons")
TOPICS = ("autumn", "the ocean", "bicycles", "coffee", "libraries", "gardening", "rainy days", "mountains",
          "friendship", "music", "trains", "the moon", "cooking", "winter", "museums", "dogs", "cities",
          "forests", "chess", "summer holidays", "bread", "rivers", "birds", "old maps")

OPENERS = ("Sure!", "Good question.", "Here is my answer.", "Happy to help.", "Let me answer that.",
           "Of course.", "Here you go.", "Okay, let's see.", "Thanks for asking.", "Right, here it is.")
CLOSERS = ("Hope this helps!", "Let me know if you need more.", "I hope that answers it.",
           "Feel free to ask a follow-up.", "That's my answer.", "Glad to help.", "Good luck!",
           "Have a nice day.", "Ask again any time.")


class GenerationError(RuntimeError):
    """A generator produced a pair that its own checker rejects: a bug in the generator, never bad input."""


def ensure(condition: bool, what: str) -> None:
    if not condition:
        raise GenerationError(what)


def fmt(x) -> str:
    """A number as people write it: 1,250 or 2.5 or 1,399.83, never 2.50 or 3.0."""
    value = Decimal(str(x))
    if value == value.to_integral_value():
        return f"{int(value):,}"
    return f"{value.normalize():,f}"


def listed(values) -> str:
    return ", ".join(str(v) for v in values)


def and_listed(values) -> str:
    values = [str(v) for v in values]
    return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " and " + values[-1]


def balance(rng, chosen: str, rejected: str, sep: str = " ") -> tuple[str, str]:
    """Make a random one of the two responses the longer (module docstring); sep joins the filler."""
    responses = [chosen, rejected]
    longer = rng.randrange(2)
    other = 1 - longer
    for _ in range(3):
        if len(responses[longer]) > len(responses[other]):
            break
        responses[longer] = pad(rng, responses[longer], sep)
    return responses[0], responses[1]


def pad(rng, text: str, sep: str) -> str:
    """text with one more filler: an opener (if it has none yet) or a closer, joined by sep."""
    if rng.random() < 0.5 and not text.startswith(OPENERS):
        return rng.choice(OPENERS) + sep + text
    return text + sep + rng.choice(CLOSERS)


MAX_FLIP_FILLERS = 5


def strip_filler(text: str) -> tuple[str, str | None]:
    """(text without the openers and closers `balance` may have added, the separator they were joined with,
    or None when there were none)."""
    sep = None
    for opener in OPENERS:
        for s in (" ", "\n"):
            if text.startswith(opener + s):
                text, sep = text[len(opener) + 1:], s
    stripped = True
    while stripped:
        stripped = False
        for closer in CLOSERS:
            for s in (" ", "\n"):
                if text.endswith(s + closer) and len(text) > len(s + closer):
                    text, sep, stripped = text[:-len(s + closer)], s, True
    return text, sep


def flip_longer(rng, chosen: str, rejected: str) -> tuple[str, str] | None:
    """(chosen, rejected) with filler moved so that the response that was the shorter is now the longer.

    Filler is stripped from both and added, as `balance` adds it (with the separator the pair used), to the
    one to lengthen; None when the two are equally long (nothing to flip) or MAX_FLIP_FILLERS do not make it
    the longer."""
    if len(chosen) == len(rejected):
        return None
    (c, c_sep), (r, r_sep) = strip_filler(chosen), strip_filler(rejected)
    sep = c_sep or r_sep or " "
    responses = [c, r]
    longer = 1 if len(chosen) > len(rejected) else 0
    for _ in range(MAX_FLIP_FILLERS):
        if len(responses[longer]) > len(responses[1 - longer]):
            break
        responses[longer] = pad(rng, responses[longer], sep)
    return (responses[0], responses[1]) if len(responses[longer]) > len(responses[1 - longer]) else None


def pick(rng, options, *avoid):
    """A random option that is none of `avoid`."""
    return rng.choice([o for o in options if o not in avoid])
