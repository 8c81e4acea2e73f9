"""Preallocated key/value cache of the rollout engine: one tensor [layers, 2, batch, kv_heads, max_len, head_dim].

    python -m pytest tests/engine/test_rollout.py -q

Rows are sequences, columns are cache slots. The decoder writes a block of new keys/values at a column and
reads the prefix up to the end of that block; rows that finished are dropped by `compact` (one copy), so they
stop costing compute. No per-step allocation: every write is a slice assignment into the one tensor.

`CacheArena` keeps the caches' memory between generate calls (the trainer calls generate every step): a
fresh cache of hundreds of MB would be page-faulted in again on every call; reused memory does not fault.
"""
from __future__ import annotations

import math

import torch


class CacheArena:
    """Named flat buffers, grown on demand and reused; a cache taken from one is valid until the next take
    of the same name."""

    def __init__(self):
        self.buffers: dict[str, torch.Tensor] = {}

    def take(self, name: str, numel: int, dtype: torch.dtype, device) -> torch.Tensor:
        buf = self.buffers.get(name)
        if buf is None or buf.numel() < numel or buf.dtype != dtype or buf.device != torch.device(device):
            self.buffers.pop(name, None)  # free the old buffer before allocating the larger one
            buf = self.buffers[name] = torch.empty(numel, dtype=dtype, device=device)
        return buf[:numel]

    def nbytes(self) -> int:
        return sum(b.numel() * b.element_size() for b in self.buffers.values())


class KVCache:
    """zero=False leaves the memory as it was: for caches whose unwritten columns are never read (a
    generation cache is read only up to the column last written). From an arena, under `name`."""

    def __init__(self, layers: int, batch: int, kv_heads: int, max_len: int, head_dim: int,
                 dtype: torch.dtype, device, arena: CacheArena | None = None, name: str = "", zero: bool = True):
        self.arena, self.names = arena, (name, name + "'")  # `regrow` alternates between two arena buffers
        self.data = self.allocate((layers, 2, batch, kv_heads, max_len, head_dim), dtype, device)
        if zero:
            self.data.zero_()

    def allocate(self, shape: tuple, dtype: torch.dtype, device) -> torch.Tensor:
        if self.arena is None:
            return torch.empty(shape, dtype=dtype, device=device)
        return self.arena.take(self.names[0], math.prod(shape), dtype, device).view(shape)

    @property
    def batch(self) -> int:
        return self.data.shape[2]

    @property
    def max_len(self) -> int:
        return self.data.shape[4]

    def write(self, layer: int, keys: torch.Tensor, values: torch.Tensor, col: int) -> None:
        """Store keys/values [batch, kv_heads, S, head_dim] at columns [col, col + S)."""
        end = col + keys.shape[2]
        self.data[layer, 0, :, :, col:end] = keys
        self.data[layer, 1, :, :, col:end] = values

    def read(self, layer: int, end: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of columns [0, end): views, no copy."""
        return self.data[layer, 0, :, :, :end], self.data[layer, 1, :, :, :end]

    def regrow(self, keep_rows: torch.Tensor | None, max_len: int, filled: int) -> None:
        """Move into a cache of max_len columns holding rows keep_rows (None: all) and their columns
        [0, filled); the columns after them are zero. From an arena, into the other of this cache's two
        buffers (the one it is in now is read while the new one is written)."""
        layers, _, batch, kv_heads, _, head_dim = self.data.shape
        rows = batch if keep_rows is None else keep_rows.numel()
        self.names = self.names[::-1]
        data = self.allocate((layers, 2, rows, kv_heads, max_len, head_dim), self.data.dtype, self.data.device)
        old = self.data[:, :, :, :, :filled]
        data[:, :, :, :, :filled] = old if keep_rows is None else old.index_select(2, keep_rows)
        data[:, :, :, :, filled:] = 0
        self.data = data
