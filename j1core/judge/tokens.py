"""Token ids of a forced pairwise verdict: the suffix fed after the reasoning and the letters chosen among.

    python -m pytest tests/judge/test_rollout.py -q

The one place these ids come from, so that the judge sampler (j1core/judge/rollout.py, used by training and
by evaluation), the completion-length cap and test scripts feed and choose the same tokens.
"""
from __future__ import annotations

from j1core.judge.prompts import answer_choices, forced_suffix


def forced_suffix_ids(tokenizer) -> list[int]:
    """Token ids of "</think>\\n<answer>[[", fed before a forced pairwise verdict."""
    return tokenizer(forced_suffix("pairwise"), add_special_tokens=False)["input_ids"]


def letter_ids(tokenizer) -> list[int]:
    """Ids of the single tokens "A" and "B", in that order; ValueError when the tokenizer has none."""
    ids = [tokenizer.convert_tokens_to_ids(letter) for letter in answer_choices("pairwise")]
    if any(i is None or i == tokenizer.unk_token_id for i in ids):
        raise ValueError("the tokenizer has no single tokens for the verdict letters; use free sampling")
    return ids
