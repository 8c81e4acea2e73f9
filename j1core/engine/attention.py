"""Attention of the rollout engine over its KV caches: prefill blocks, and decode with a shared prompt cache.

    python -m pytest tests/engine/test_attention.py -q

Prefill (`BlockAttention`): a block of S new tokens per row is written into a KVCache at one column and
attends, with an explicit boolean mask, to everything cached before it (SDPA, GQA without repeating K/V;
flash-attn's causal kernel instead on CUDA in fp16/bf16 when it is installed).

Decode (`SharedPromptAttention`): the n samples of a prompt never copy its KV. Keys/values live in two
caches: the prompt cache (one row per prompt) and the generation cache (one row per sample). Each sample's
query scores both; one softmax over the concatenated scores makes the result exactly that of attending to
[prompt KV, own generated KV] (tests/engine/reference.py holds that plain version). Reading the
prompt KV once per prompt instead of once per sample cuts decode memory traffic n-fold for the prompt part.
Samples are addressed by a slot (prompt * n + sample), so finished rows can leave the batch.
On CPU the engine hands it kernels/decode_attention.cpp, which does the same in one call per layer; these
PyTorch ops are then its reference (tests/test_decode_attention.py) and the path everywhere else.

Sliding windows: `windows[layer]` is a layer's window W or None. A windowed layer's query at position p sees
the keys at positions > p - W only: prefill takes a second mask (`window_mask`) or flash-attn's window_size;
decode masks the prompt columns before the window (a bias per prompt) and the generated columns before it.
The caches hold every token either way.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from j1core.engine.kv_cache import KVCache
from j1core.model import attn_implementation


def flash_attention_usable(device, dtype) -> bool:
    """flash-attn for prefill: CUDA, fp16/bf16, installed (j1core.model.attn_implementation decides)."""
    return (attn_implementation(device) == "flash_attention_2"
            and dtype in (torch.float16, torch.bfloat16))


class BlockAttention:
    """New tokens [B, S] at cache columns [col, col + S), mask [B, 1, S, col + S] (True = attend).

    With use_flash the mask must be the causal one of right-padded rows (what the engine's prefill builds):
    flash-attn's causal mode aligns the S queries with the last S keys, which is the same thing.
    """

    def __init__(self, cache: KVCache, col: int, mask: torch.Tensor, use_flash: bool = False,
                 windows: list[int | None] | None = None, window_mask: torch.Tensor | None = None):
        self.cache, self.col, self.mask, self.use_flash = cache, col, mask, use_flash
        self.windows, self.window_mask = windows, window_mask

    def __call__(self, layer: int, q, k, v) -> torch.Tensor:
        """q [B, H, S, D], k/v [B, KV, S, D] -> [B, S, H * D]."""
        self.cache.write(layer, k, v, self.col)
        keys, values = self.cache.read(layer, self.col + q.shape[2])
        batch, heads, steps, dim = q.shape
        window = self.windows[layer] if self.windows else None
        if self.use_flash:  # not exercised by the CPU tests
            from flash_attn import flash_attn_func

            out = flash_attn_func(q.transpose(1, 2), keys.transpose(1, 2), values.transpose(1, 2), causal=True,
                                  window_size=(window - 1, 0) if window else (-1, -1))
            return out.reshape(batch, steps, heads * dim)
        mask = self.window_mask if window else self.mask
        out = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask,
                                             enable_gqa=heads != keys.shape[1])
        return out.transpose(1, 2).reshape(batch, steps, heads * dim)


class SharedPromptAttention:
    """One decode step: q [B, H, 1, D] of live samples against their prompt's KV and their own generated KV.

    prompt_cache: rows = prompts, prompt_bias [P, 1, 1, W] (0 where a prompt token sits, -inf on padding).
    gen_cache: rows = live samples, the step's token written at column `col`; every column is read, those
    after `col` must hold finite values (zeros: their weight is 0, but 0 * NaN is not).
    slots [B]: prompt * n + sample of each live row.
    windows: per layer, a sliding window W or None; prompt_lengths [P] are then needed: the step's query sits at
    position prompt_length + col, so it sees prompt columns > prompt_length + col - W and generated
    columns > col - W.
    kernel: the C++ decode attention (kernels/decode_attention.load()) or None: the PyTorch ops below, which
    are its reference. The kernel reads only the generated columns the step sees.
    """

    def __init__(self, prompt_cache: KVCache, prompt_bias: torch.Tensor, gen_cache: KVCache, col: int,
                 slots: torch.Tensor, n: int, windows: list[int | None] | None = None,
                 prompt_lengths: torch.Tensor | None = None, kernel=None):
        self.prompt_cache, self.prompt_bias, self.gen_cache = prompt_cache, prompt_bias, gen_cache
        self.col, self.slots, self.n, self.kernel = col, slots, n, kernel
        self.windows = windows or [None] * prompt_cache.data.shape[0]
        self.biases = {None: prompt_bias}  # per window: the prompt bias with the columns before it masked
        for window in set(self.windows) - {None}:
            cols = torch.arange(prompt_bias.shape[-1], device=prompt_bias.device)
            before = cols[None, :] <= (prompt_lengths + col - window)[:, None]
            self.biases[window] = prompt_bias.masked_fill(before[:, None, None, :], float("-inf"))
        if kernel is not None:  # its arguments: float32 biases [P, W], each row's prompt
            self.kernel_biases = {w: b.reshape(b.shape[0], -1).float().contiguous() for w, b in self.biases.items()}
            self.prompt_of = torch.div(slots, n, rounding_mode="floor").contiguous()
            return
        # The generation cache is read whole (a dense matrix per row: a column slice of it makes CPU bf16
        # matmuls copy the keys every step); its columns after `col`, zero, are masked out here.
        gen_cols = torch.arange(gen_cache.max_len, device=prompt_bias.device)
        visible = gen_cols <= col
        self.gen_biases = {}
        for window in set(self.windows):
            seen = visible if window is None else visible & (gen_cols > col - window)
            self.gen_biases[window] = torch.zeros(gen_cols.numel(), dtype=prompt_bias.dtype,
                                                  device=prompt_bias.device).masked_fill(~seen, float("-inf"))

    def __call__(self, layer: int, q, k, v) -> torch.Tensor:
        self.gen_cache.write(layer, k, v, self.col)
        batch, heads, _, dim = q.shape
        kv_heads = k.shape[1]
        window = self.windows[layer]
        if self.kernel is not None:
            first = 0 if window is None else max(0, self.col + 1 - window)
            out = self.kernel.decode_attention(
                q.reshape(batch, heads, dim).contiguous(), *self.prompt_cache.read(layer, self.prompt_cache.max_len),
                self.kernel_biases[window], self.gen_cache.data[layer, 0], self.gen_cache.data[layer, 1],
                self.prompt_of, first, self.col + 1, dim ** -0.5)
            return out.view(batch, 1, heads * dim)
        q = q.reshape(batch, kv_heads, heads // kv_heads, dim) * dim ** -0.5
        p_keys, p_values = self.prompt_cache.read(layer, self.prompt_cache.max_len)
        g_keys, g_values = self.gen_cache.read(layer, self.gen_cache.max_len)
        # Queries of all samples of one prompt side by side: [P, KV, n * g, D].
        s_prompt = torch.matmul(self.prompt_major(q), p_keys.transpose(-1, -2)) + self.biases[window]
        s_prompt = self.row_major(s_prompt)
        s_gen = torch.matmul(q, g_keys.transpose(-1, -2)) + self.gen_biases[window]
        width = s_prompt.shape[-1]
        # Below float32 the softmax runs in float32, as SDPA's kernels do (its sum over hundreds of keys).
        probs = torch.cat((s_prompt, s_gen), dim=-1).softmax(dim=-1, dtype=torch.float32).to(q.dtype)
        p_prompt, p_gen = probs.split((width, s_gen.shape[-1]), dim=-1)
        out = torch.matmul(p_gen, g_values) + self.row_major(torch.matmul(self.prompt_major(p_prompt), p_values))
        return out.reshape(batch, 1, heads * dim)

    def prompt_major(self, rows: torch.Tensor) -> torch.Tensor:
        """[B live rows, KV, g, X] -> [P, KV, n * g, X]; dead slots are zero (they only cost a little compute)."""
        _, kv_heads, groups, width = rows.shape
        prompts, n = self.prompt_cache.batch, self.n
        if self.slots.numel() < prompts * n:
            rows = rows.new_zeros(prompts * n, kv_heads, groups, width).index_copy_(0, self.slots, rows)
        return rows.view(prompts, n, kv_heads, groups, width).transpose(1, 2).reshape(
            prompts, kv_heads, n * groups, width)

    def row_major(self, per_prompt: torch.Tensor) -> torch.Tensor:
        """Inverse of prompt_major: [P, KV, n * g, X] -> [B live rows, KV, g, X]."""
        prompts, kv_heads, _, width = per_prompt.shape
        rows = per_prompt.view(prompts, kv_heads, self.n, -1, width).transpose(1, 2).reshape(
            prompts * self.n, kv_heads, -1, width)
        return rows if self.slots.numel() == prompts * self.n else rows.index_select(0, self.slots)
