"""Tests for j1core/engine/kv_cache.py: regrow keeps the chosen rows and written columns, zeroes the rest, and
alternates between two arena buffers."""
import torch

from j1core.engine.kv_cache import CacheArena, KVCache


def filled_cache(arena=None, batch=4, max_len=3):
    cache = KVCache(2, batch, 2, max_len, 5, torch.float32, "cpu", arena=arena, name="gen")
    cache.data.copy_(torch.randn(cache.data.shape, generator=torch.Generator().manual_seed(0)))
    return cache


def test_regrow_keeps_rows_and_written_columns_and_zeroes_the_rest():
    cache = filled_cache()
    old = cache.data.clone()
    keep = torch.tensor([3, 1])
    cache.regrow(keep, max_len=7, filled=2)
    assert cache.data.shape == (2, 2, 2, 2, 7, 5)
    torch.testing.assert_close(cache.data[:, :, :, :, :2], old[:, :, keep, :, :2], atol=0, rtol=0)
    assert not cache.data[:, :, :, :, 2:].any()  # column 2 was not written yet: zero, like the new ones
    cache.regrow(None, max_len=9, filled=7)
    torch.testing.assert_close(cache.data[:, :, :, :, :2], old[:, :, keep, :, :2], atol=0, rtol=0)
    assert cache.data.shape[2] == 2 and not cache.data[:, :, :, :, 2:].any()


def test_regrow_from_an_arena_alternates_two_buffers():
    arena = CacheArena()
    cache = filled_cache(arena)
    old = cache.data.clone()
    first = cache.data.data_ptr()
    cache.regrow(None, max_len=4, filled=3)
    second = cache.data.data_ptr()
    assert second != first and set(arena.buffers) == {"gen", "gen'"}
    torch.testing.assert_close(cache.data[:, :, :, :, :3], old, atol=0, rtol=0)
    kept = cache.data[:, :, [0, 2], :, :4].clone()
    cache.regrow(torch.tensor([0, 2]), max_len=4, filled=4)  # back into the first buffer, read from the second
    assert cache.data.data_ptr() == first
    torch.testing.assert_close(cache.data, kept, atol=0, rtol=0)
