"""Tests for j1core/engine/attention.py: shared-prompt decode attention against its plain per-row reference."""
import pytest
import torch

from j1core.engine.attention import BlockAttention, SharedPromptAttention
from j1core.engine.kv_cache import KVCache
from tests.engine.reference import shared_prompt_attention_reference

LAYERS, KV, GROUPS, DIM = 2, 2, 3, 8


def random_cache(batch, length, gen):
    cache = KVCache(LAYERS, batch, KV, length, DIM, torch.float32, "cpu")
    cache.data.copy_(torch.randn(cache.data.shape, generator=gen))
    return cache


@pytest.mark.parametrize("live", [[0, 1, 2, 3, 4, 5], [1, 2, 5], [4]])
def test_shared_prompt_attention_matches_reference(live):
    gen = torch.Generator().manual_seed(len(live))
    prompts, n, width, col = 3, 2, 7, 4
    lengths = torch.tensor([7, 3, 5])
    valid = torch.arange(width)[None, :] < lengths[:, None]
    bias = torch.zeros(prompts, 1, 1, width).masked_fill(~valid[:, None, None, :], float("-inf"))
    prompt_cache = random_cache(prompts, width, gen)
    slots = torch.tensor(live)
    gen_cache = random_cache(len(live), col + 3, gen)
    q = torch.randn(len(live), KV * GROUPS, 1, DIM, generator=gen)
    k, v = torch.randn(2, len(live), KV, 1, DIM, generator=gen)
    layer = 1
    fast = SharedPromptAttention(prompt_cache, bias, gen_cache, col, slots, n)(layer, q, k, v)
    keys, values = gen_cache.read(layer, col + 1)  # now holds k, v at column col
    torch.testing.assert_close(keys[:, :, col:col + 1], k)
    ref = shared_prompt_attention_reference(q, prompt_cache.data[layer, 0], prompt_cache.data[layer, 1], valid,
                                            keys, values, slots // n)
    torch.testing.assert_close(fast, ref, atol=1e-5, rtol=1e-5)


def test_block_attention_is_causal_sdpa_over_the_cache():
    gen = torch.Generator().manual_seed(0)
    cache = random_cache(2, 6, gen)
    q = torch.randn(2, KV * GROUPS, 2, DIM, generator=gen)
    k, v = torch.randn(2, 2, KV, 2, DIM, generator=gen)
    mask = (torch.arange(6)[None, :] <= torch.arange(4, 6)[:, None]).expand(2, 1, 2, 6)
    out = BlockAttention(cache, 4, mask)(0, q, k, v)
    keys = cache.data[0, 0].repeat_interleave(GROUPS, dim=1)
    values = cache.data[0, 1].repeat_interleave(GROUPS, dim=1)
    scores = (q @ keys.transpose(-1, -2)) / DIM ** 0.5
    scores = scores.masked_fill(~mask, float("-inf"))
    ref = (scores.softmax(-1) @ values).transpose(1, 2).reshape(2, 2, -1)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
