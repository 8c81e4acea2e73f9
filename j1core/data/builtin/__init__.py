"""Built-in preference pairs written by j1's own code, so training runs without ../shared/data.

    python -m j1core.data.builtin            # counts per family and split, chosen-longer fraction, samples
    python -m pytest tests/data/builtin -q

The pairs teach judging rather than one wording: nine families of what makes a response worse, each with
several surface templates (a template is its own phrasing of the instruction and its own response style;
its content - numbers, names, topics, facts - is drawn at random from small in-code vocabularies):

  constraints.py   constraints: breaks exactly one verifiable instruction (a count, a keyword, format, case)
  arithmetic.py    arithmetic: a worked word problem with a slip in one step, carried through
  units.py         units: a unit problem with a wrong conversion factor (or another slip) in one step
  facts.py         facts: a plausible wrong fact (a capital, a symbol, a year, a count) from fact_tables.py
  nearby.py        nearby: a correct answer to a subtly different instruction (J1's noisy instructions)
  offtopic.py      offtopic: a fluent, correct answer about something else entirely
  confident.py     confident: long and sure of itself against short or hedged; which one is right is random
  relevance.py     relevance: the first built-in set's nearby instructions
  mathslip.py      math: the first built-in set's worked solutions with one slip
Shared pieces: common.py (vocabularies, length balancing), constraint_checks.py (the verifiers), worked.py
(worked solutions with a slip, in eight response styles).

Which response is longer is random (common.balance), so length predicts no label; `python -m
j1core.data.builtin` prints the fraction of pairs whose chosen response is the longer. The consistency reward
still pays a judge that picks the longer response (it is order-invariant); length_flipped gives a pair of the
FILLER_NEUTRAL_FAMILIES with its filler moved so that the other response is the longer, and --flip-length shows
the second order that way and trains on those pairs only (common.py's docstring).

Splits (the same for every seed):
- "train": the training templates of the training families, minus the prompt-held-out prompts;
- "heldout" (prompt-held-out): the same templates, the prompts whose hash falls in one of HELDOUT_BUCKETS;
- "heldout_template": every family's HELDOUT_TEMPLATES and the whole of HELDOUT_FAMILIES, which training
  never sees in any form.
Prompts are distinct over the whole pool, so no prompt is in two splits. Pair.source is "builtin",
Pair.category "<family>/<template>", Pair.id "builtin-<family>-<hash of the prompt>".
"""
from __future__ import annotations

import random
from dataclasses import replace
from functools import lru_cache

from j1core.data.builtin import (
    arithmetic,
    confident,
    constraints,
    facts,
    mathslip,
    nearby,
    offtopic,
    relevance,
    units,
)
from j1core.data.builtin.common import flip_longer
from j1core.data.builtin.mathslip import dropped_carry, smaller_from_larger  # noqa: F401  (tests use them)
from j1core.data.pairs import Pair, stable_hash

SOURCE = "builtin"
SPLITS = ("train", "heldout", "heldout_template")
FAMILIES = (constraints, arithmetic, units, facts, nearby, offtopic, confident, relevance, mathslip)
HELDOUT_FAMILIES = ("units",)
# pairs drawn per family (both splits); fact tables are small, so those families draw fewer
PAIRS_PER_FAMILY = {"constraints": 1600, "arithmetic": 1200, "units": 300, "facts": 800, "nearby": 1200,
                    "offtopic": 600, "confident": 900, "relevance": 1200, "math": 1200}
# families whose pairs `balance` lengthened with filler, so moving the filler never changes which is right
# (constraints count words and check endings; confident is about length and tone itself)
FILLER_NEUTRAL_FAMILIES = ("arithmetic", "units", "facts", "nearby", "offtopic", "relevance", "math")
HELDOUT_BUCKETS = 8  # 1 prompt in 8 of the training templates is held out
GIVE_UP_AFTER = 300  # consecutive repeated prompts after which a template counts as exhausted


def builtin_pairs(split: str = "train", seed: int = 0) -> list[Pair]:
    """The pairs of one split of the pool drawn with this seed (same seed, same pairs)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return [p for p in all_builtin_pairs(seed) if split_of(p) == split]


def all_builtin_pairs(seed: int = 0) -> list[Pair]:
    """Every split of the pool of one seed (fresh Pair objects on every call)."""
    return [replace(p) for p in _pool(seed)]


def family_of(pair: Pair) -> str:
    return pair.category.split("/", 1)[0]


def length_flipped(pair: Pair) -> Pair | None:
    """The pair with the other response made the longer (common.flip_longer, seeded by its id), or None
    when its family's filler is not neutral or nothing can be flipped."""
    if pair.source != SOURCE or family_of(pair) not in FILLER_NEUTRAL_FAMILIES:
        return None
    flipped = flip_longer(random.Random(f"j1-length-flip:{pair.id}"), pair.chosen, pair.rejected)
    return None if flipped is None else replace(pair, chosen=flipped[0], rejected=flipped[1])


def template_of(pair: Pair) -> str:
    return pair.category.split("/", 1)[1]


@lru_cache(maxsize=1)
def heldout_templates() -> frozenset[str]:
    """Categories ("<family>/<template>") of the template-held-out split."""
    return frozenset(f"{m.FAMILY}/{t.__name__}" for m in FAMILIES for t in m.TEMPLATES
                     if m.FAMILY in HELDOUT_FAMILIES or t.__name__ in m.HELDOUT_TEMPLATES)


def split_of(pair: Pair) -> str:
    if pair.category in heldout_templates():
        return "heldout_template"
    return "heldout" if is_heldout(pair.prompt) else "train"


def is_heldout(prompt: str) -> bool:
    """Whether a prompt of a training template is prompt-held-out (a hash of its text alone)."""
    return stable_hash("j1-builtin-heldout", prompt) % HELDOUT_BUCKETS == 0


@lru_cache(maxsize=4)
def _pool(seed: int) -> tuple[Pair, ...]:
    seen: set[str] = set()
    pairs = []
    for module in FAMILIES:
        pairs += draw_family(module.FAMILY, module.TEMPLATES, PAIRS_PER_FAMILY[module.FAMILY], seed, seen)
    random.Random(f"j1-builtin-order:{seed}").shuffle(pairs)  # families mixed, so any slice holds them all
    return tuple(pairs)


def draw_family(family: str, templates, count: int, seed: int, seen: set[str]) -> list[Pair]:
    """Round-robin over the templates until `count` prompts not in `seen` (updated); spent templates drop out."""
    rng = random.Random(f"j1-builtin:{family}:{seed}")
    pairs = []
    misses = dict.fromkeys(templates, 0)
    while len(pairs) < count:
        live = [t for t in templates if misses[t] < GIVE_UP_AFTER]
        if not live:
            raise RuntimeError(f"{family}: templates exhausted after {len(pairs)} of {count} pairs")
        for template in live:
            drawn = template(rng)  # (prompt, chosen, rejected), or None when the draw has no valid pair
            if drawn is None or drawn[0] in seen:
                misses[template] += 1
                continue
            prompt, chosen, rejected = drawn
            misses[template] = 0
            seen.add(prompt)
            pairs.append(Pair(f"{SOURCE}-{family}-{stable_hash('id', prompt):016x}", prompt, chosen, rejected,
                              SOURCE, f"{family}/{template.__name__}"))
            if len(pairs) == count:
                break
    return pairs
