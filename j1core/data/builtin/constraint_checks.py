"""Verifiable instruction constraints: what each one asks, in words, and a checker for it (IFEval-style).

    python -m pytest tests/data/builtin/test_constraints.py -q

The constraints family (constraints.py) writes responses to these and asserts with `holds` that the chosen
response keeps every constraint and the rejected one breaks exactly one. Checks are on the text alone:
words are runs of letters, digits and apostrophes; sentences end in . ! or ? followed by space or the end;
keyword, phrase and letter checks ignore case.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

KINDS = ("max_words", "min_words", "sentences", "include", "forbid", "lowercase", "uppercase", "start", "end",
         "no_commas", "avoid_letter", "quotes", "title", "bullets", "numbered", "json_keys")
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


@dataclass(frozen=True)
class Constraint:
    kind: str
    value: object = None  # a count, a word, a phrase, a letter or a tuple of JSON keys


def words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z0-9']+", text)


def sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])[\"']?\s+", text.strip()) if re.search(r"[A-Za-z]", s)]


def has_word(text: str, word: str) -> bool:
    return re.search(rf"\b{re.escape(word.lower())}\b", text.lower()) is not None


def list_lines(text: str, numbered: bool) -> list[str] | None:
    """The items of a text made only of list lines ('- x' or '1. x', numbered in order), else None."""
    lines = [line for line in text.strip().split("\n") if line.strip()]
    marks = [f"{i}. " for i in range(1, len(lines) + 1)] if numbered else ["- "] * len(lines)
    if not lines or not all(line.startswith(mark) for line, mark in zip(lines, marks)):
        return None
    return [line[len(mark):] for line, mark in zip(lines, marks)]


def json_object(text: str):
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def holds(c: Constraint, text: str) -> bool:
    """Whether `text` keeps the constraint."""
    k, v = c.kind, c.value
    if k == "max_words":
        return len(words(text)) <= v
    if k == "min_words":
        return len(words(text)) >= v
    if k == "sentences":
        return len(sentences(text)) == v
    if k == "include":
        return has_word(text, v)
    if k == "forbid":
        return not has_word(text, v)
    if k == "lowercase":
        return text == text.lower()
    if k == "uppercase":
        return text == text.upper()
    if k == "start":
        return text.lower().startswith(v.lower())
    if k == "end":
        return text.rstrip().lower().endswith(v.lower())
    if k == "no_commas":
        return "," not in text
    if k == "avoid_letter":
        return v not in text.lower()
    if k == "quotes":
        stripped = text.strip()
        return len(stripped) > 2 and stripped[0] == stripped[-1] == '"'
    if k == "title":
        return re.match(r"<<[^<>\n]+>>\n", text) is not None
    if k in ("bullets", "numbered"):
        items = list_lines(text, numbered=k == "numbered")
        return items is not None and len(items) == v
    if k == "json_keys":
        value = json_object(text)
        return value is not None and sorted(value) == sorted(v)
    raise ValueError(f"unknown constraint kind {k!r}")


def count_word(n: int) -> str:
    return NUMBER_WORDS[n] if n < len(NUMBER_WORDS) else str(n)


def describe(c: Constraint, rng) -> str:
    """The constraint as an instruction, in one of a few phrasings."""
    k, v = c.kind, c.value
    keys = ", ".join(v) if k == "json_keys" else ""
    n, more = (count_word(v), v + 1) if isinstance(v, int) else ("", "")
    options = {
        "max_words": (f"Use at most {v} words", f"Keep it under {more} words", f"No more than {v} words"),
        "min_words": (f"Use at least {v} words", f"Write no fewer than {v} words", f"Make it {v} words or longer"),
        "sentences": (f"Write exactly {n} sentences", f"Use {n} sentences, no more, no less",
                      f"It must be exactly {v} sentences long"),
        "include": (f"Include the word '{v}'", f"Make sure to use the word \"{v}\"", f"Mention the word {v}"),
        "forbid": (f"Do not use the word '{v}'", f"Avoid the word \"{v}\"", f"Never say the word {v}"),
        "lowercase": ("Write everything in lowercase letters", "Use no capital letters at all",
                      "Your whole reply must be lowercase"),
        "uppercase": ("Write everything in capital letters", "Use only uppercase letters",
                      "Your whole reply must be in ALL CAPS"),
        "start": (f"Start your reply with \"{v}\"", f"Begin with the exact words '{v}'", f"Open with '{v}'"),
        "end": (f"End your reply with \"{v}\"", f"Finish with the exact phrase '{v}'", f"Close with '{v}'"),
        "no_commas": ("Do not use any commas", "Use no commas", "Avoid commas entirely"),
        "avoid_letter": (f"Do not use the letter '{v}' anywhere", f"Avoid the letter {v} completely",
                         f"No word may contain the letter '{v}'"),
        "quotes": ("Wrap your entire reply in double quotation marks", "Put the whole answer inside double quotes",
                   "Enclose everything you write in \"double quotes\""),
        "title": ("Give it a title wrapped in double angular brackets, like <<title>>",
                  "Put a title on the first line in the form <<title>>", "Start with a <<title>> line"),
        "bullets": (f"Use exactly {n} bullet points starting with '- '",
                    f"Format it as {v} markdown bullets (- )", f"Give {n} items as a '- ' bulleted list"),
        "numbered": (f"Number them 1 to {v}, one per line", f"Give exactly {n} numbered lines (1., 2., ...)",
                     f"Write a numbered list of {v} items"),
        "json_keys": (f"Reply with only a JSON object with exactly the keys {keys}",
                      f"Output valid JSON only, an object whose keys are {keys}",
                      f"Answer as a JSON object with the keys {keys} and nothing else"),
    }[k]
    return rng.choice(options)
