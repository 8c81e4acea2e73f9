"""Tests for bench/forced_lengths.py: every generator of the rollout bench writes exactly the drawn lengths.

    OMP_NUM_THREADS=1 python -m pytest tests/bench/test_forced_lengths.py -q
"""
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from forced_lengths import ForceLengths, draw_lengths, force_engine_lengths  # noqa: E402

from j1core.engine.rollout import RolloutEngine  # noqa: E402
from j1core.model import tiny_model  # noqa: E402

PROMPTS = [[1, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 100, 101], [1, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 200, 300],
           [4, 3, 2000]]


def test_draw_lengths_is_seeded_and_bounded():
    a = draw_lengths(8, 8, 512, 200, seed=0)
    assert a == draw_lengths(8, 8, 512, 200, seed=0)
    assert a != draw_lengths(8, 8, 512, 200, seed=1)
    flat = [x for row in a for x in row]
    assert len(flat) == 64 and min(flat) >= 16 and max(flat) <= 512
    assert len(set(flat)) > 20  # samples really end at different lengths


def test_engine_and_hf_write_exactly_the_drawn_lengths():
    model, tokenizer = tiny_model("llama", seed=0, initializer_range=0.2)
    lengths = draw_lengths(len(PROMPTS), 4, 12, 6, min_len=1, seed=3)
    eos = tokenizer.eos_token_id
    engine = RolloutEngine(model, tokenizer, max_batch_tokens=1 << 16)
    with force_engine_lengths(lengths, 7, engine.eos_ids, eos):
        out = engine.generate(PROMPTS, n=4, max_new_tokens=12, temperature=1.0, seed=7)
    assert [[len(c.token_ids) for c in group] for group in out] == lengths
    for group, row in zip(out, lengths):
        for c, length in zip(group, row):
            assert c.token_ids[-1] == eos and eos not in c.token_ids[:-1] and c.finish_reason == "eos"
            assert length == len(c.token_ids)

    tokenizer.padding_side = "left"
    batch = tokenizer.pad({"input_ids": PROMPTS}, return_tensors="pt")
    width = batch["input_ids"].shape[1]
    torch.manual_seed(0)
    with torch.inference_mode():
        gen = model.generate(**batch, do_sample=True, num_return_sequences=4, max_new_tokens=12,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=[eos],
                             logits_processor=[ForceLengths(lengths, width, [eos], eos)])
    rows = gen[:, width:].tolist()
    got = [row.index(eos) + 1 for row in rows]
    assert [got[i * 4:(i + 1) * 4] for i in range(len(PROMPTS))] == lengths


def test_a_different_seed_is_refused():
    model, tokenizer = tiny_model("llama", seed=0, initializer_range=0.2)
    engine = RolloutEngine(model, tokenizer, max_batch_tokens=1 << 16)
    lengths = [[3, 4]] * len(PROMPTS)
    with pytest.raises(RuntimeError, match="uniforms"), \
            force_engine_lengths(lengths, 7, engine.eos_ids, tokenizer.eos_token_id):
        engine.generate(PROMPTS, n=2, max_new_tokens=4, temperature=1.0, seed=8)
