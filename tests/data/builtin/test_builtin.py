"""Tests for j1core/data/builtin/__init__.py and __main__.py: determinism, sizes, the three splits and what
may not leak between them, length balance, and the evaluation's access to both held-out splits.

    python -m pytest tests/data/builtin/test_builtin.py -q
"""
from collections import Counter, defaultdict

import pytest

from j1core.data.builtin import (
    FAMILIES,
    FILLER_NEUTRAL_FAMILIES,
    HELDOUT_FAMILIES,
    PAIRS_PER_FAMILY,
    SPLITS,
    _pool,
    all_builtin_pairs,
    builtin_pairs,
    family_of,
    is_heldout,
    length_flipped,
    split_of,
    template_of,
)
from j1core.data.builtin.__main__ import main
from j1core.data.builtin.common import strip_filler
from j1core.data.pairs import Pair
from j1core.eval.evaluate import load_eval_pairs


def splits(seed=0):
    return {s: builtin_pairs(s, seed) for s in SPLITS}


def test_same_seed_same_pairs_and_other_seed_differs():
    first = all_builtin_pairs(0)
    _pool.cache_clear()  # draw again rather than read the cache
    assert all_builtin_pairs(0) == first
    assert all_builtin_pairs(1) != first


def test_sizes_families_and_templates():
    pairs = all_builtin_pairs(0)
    assert Counter(family_of(p) for p in pairs) == Counter(PAIRS_PER_FAMILY)
    assert len({(p.prompt, p.chosen, p.rejected) for p in pairs}) == len(pairs)
    assert len({p.id for p in pairs}) == len(pairs)
    assert all(p.source == "builtin" and p.chosen.strip() != p.rejected.strip() for p in pairs)
    templates = defaultdict(set)
    for p in pairs:
        templates[family_of(p)].add(template_of(p))
    assert len(templates) >= 8
    for module in FAMILIES:
        assert len(module.TEMPLATES) >= 6
        assert templates[module.FAMILY] == {t.__name__ for t in module.TEMPLATES}, module.FAMILY
    assert len({family_of(p) for p in builtin_pairs("train")[:40]}) >= 5  # the pool is not ordered by family
    sizes = {s: len(v) for s, v in splits().items()}
    assert sizes["train"] >= 5000 and sizes["heldout"] >= 600 and sizes["heldout_template"] >= 1500


def test_no_prompt_template_or_family_leaks_between_splits():
    by_split = splits()
    prompts = {s: {p.prompt for p in v} for s, v in by_split.items()}
    assert prompts["train"].isdisjoint(prompts["heldout"])
    assert prompts["train"].isdisjoint(prompts["heldout_template"])
    assert prompts["heldout"].isdisjoint(prompts["heldout_template"])
    train_templates = {p.category for p in by_split["train"]}
    assert {p.category for p in by_split["heldout"]} <= train_templates
    assert train_templates.isdisjoint(p.category for p in by_split["heldout_template"])
    train_families = {family_of(p) for p in by_split["train"]}
    assert train_families.isdisjoint(HELDOUT_FAMILIES)
    assert set(HELDOUT_FAMILIES) <= {family_of(p) for p in by_split["heldout_template"]}
    for module in FAMILIES:  # every trained family keeps some templates back, and trains on most
        if module.FAMILY not in HELDOUT_FAMILIES:
            held = {t for t in module.HELDOUT_TEMPLATES}
            assert held and held <= {t.__name__ for t in module.TEMPLATES}
            assert len(module.TEMPLATES) - len(held) >= 4
            assert {f"{module.FAMILY}/{t}" for t in held} <= {p.category for p in by_split["heldout_template"]}
    assert all(is_heldout(p.prompt) for p in by_split["heldout"])
    assert not any(is_heldout(p.prompt) for p in by_split["train"])


def test_other_seeds_never_train_on_a_held_out_prompt():
    held = {p.prompt for s in ("heldout", "heldout_template") for p in builtin_pairs(s, 0)}
    for seed in (1, 2):
        train = builtin_pairs("train", seed)
        assert held.isdisjoint(p.prompt for p in train)
        assert all(split_of(p) == "train" for p in train)


def test_chosen_is_the_longer_response_about_half_the_time():
    pairs = all_builtin_pairs(0)
    longer = sum(len(p.chosen) > len(p.rejected) for p in pairs)
    shorter = sum(len(p.chosen) < len(p.rejected) for p in pairs)
    assert 0.45 <= longer / (longer + shorter) <= 0.55
    for family in PAIRS_PER_FAMILY:
        mine = [p for p in pairs if family_of(p) == family]
        assert 0.35 <= sum(len(p.chosen) > len(p.rejected) for p in mine) / len(mine) <= 0.65, family


def test_length_flipped_swaps_which_response_is_longer_in_filler_neutral_families():
    counts = Counter()
    for pair in builtin_pairs("train"):
        flipped = length_flipped(pair)
        neutral = family_of(pair) in FILLER_NEUTRAL_FAMILIES
        counts[neutral, flipped is not None] += 1
        if flipped is None:
            continue
        assert neutral and flipped == length_flipped(pair)  # seeded by the pair's id
        assert (len(flipped.chosen) > len(flipped.rejected)) == (len(pair.chosen) < len(pair.rejected))
        for new, old in ((flipped.chosen, pair.chosen), (flipped.rejected, pair.rejected)):
            assert strip_filler(new)[0] == strip_filler(old)[0]  # only openers and closers moved
        assert (flipped.id, flipped.prompt, flipped.category) == (pair.id, pair.prompt, pair.category)
    assert counts[True, False] < 0.02 * counts[True, True] and counts[False, True] == 0
    assert counts[False, False] > 0  # constraints and confident pairs stay as they are


def test_length_flipped_leaves_pairs_from_elsewhere_alone():
    pair = builtin_pairs("train")[0]
    other = Pair(pair.id, pair.prompt, pair.chosen, pair.rejected, "mine", pair.category)
    assert length_flipped(other) is None


def test_unknown_split_is_refused():
    with pytest.raises(ValueError, match="split must be one of"):
        builtin_pairs("test")


def test_evaluation_reads_both_held_out_splits_and_filters_by_family():
    assert load_eval_pairs("builtin") == builtin_pairs("heldout")
    assert load_eval_pairs("builtin_template") == builtin_pairs("heldout_template")
    units = load_eval_pairs("builtin_template", subset="units")
    assert units and all(family_of(p) == "units" for p in units)
    assert len(load_eval_pairs("builtin_template", limit=50)) == 50


def test_main_prints_every_family_split_and_the_length_fraction(capsys):
    main(["--samples", "2"])
    out = capsys.readouterr().out
    for family in PAIRS_PER_FAMILY:
        assert f"\n{family} " in out
    assert "heldout_template" in out and "chosen longer than rejected" in out
    train = builtin_pairs("train")
    flippable = sum(length_flipped(p) is not None for p in train)
    assert f"--flip-length reverses which response is longer in {flippable} of {len(train)} train pairs" in out
    assert out.count("\n[") == 2
