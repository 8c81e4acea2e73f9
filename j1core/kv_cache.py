"""Preallocated key/value cache of the rollout engine: one tensor [layers, 2, batch, kv_heads, max_len, head_dim].

    python -m pytest tests/test_rollout.py -q

Rows are sequences, columns are cache slots. The decoder writes a block of new keys/values at a column and
reads the prefix up to the end of that block; rows that finished are dropped by `compact` (one copy), so they
stop costing compute. No per-step allocation: every write is a slice assignment into the one tensor.
"""
from __future__ import annotations

import torch


class KVCache:
    def __init__(self, layers: int, batch: int, kv_heads: int, max_len: int, head_dim: int,
                 dtype: torch.dtype, device):
        self.data = torch.zeros(layers, 2, batch, kv_heads, max_len, head_dim, dtype=dtype, device=device)

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

    def compact(self, keep_rows: torch.Tensor) -> None:
        self.data = self.data.index_select(2, keep_rows)
