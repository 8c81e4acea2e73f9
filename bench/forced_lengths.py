"""Per-sample completion lengths for the reasoning-shaped rollout bench, imposed identically on every generator.

    python bench/rollout.py --quick        (the reasoning shape uses these; not meant to be run alone)

A reasoning judge's samples end at different lengths, which is what makes batching hard (rows finish early
and must stop costing compute). To compare generators on exactly the same work, the lengths are drawn once
from a seeded distribution (`draw_lengths`: log-normal around a median, clipped to [min, max]) and then every
generator produces exactly those counts:
- vLLM: one request per sample with max_tokens = min_tokens = its length, ignore_eos (bench/vllm_runner.py);
- HF generate: `ForceLengths`, a logits processor that bans the eos token before a row's length and forces it
  at the length (HF then pads the finished row; its real cost of carrying finished rows stays in);
- the j1 engine: `force_engine_lengths`, the same ban / force applied to the logits the engine samples from.
  The engine drops finished rows from its batch, so a row is recognised by its sampling uniforms: row (i, j)
  draws from its own seeded stream (j1core.engine.rollout.sample_uniforms), so the uniform a row receives at
  step t names the row. The eos then ends the sample exactly as a sampled eos would.
Each generator's output lengths are checked against the drawn ones after every call. Where all samples have
one length (the judge shape), bench/rollout.py uses each generator's own min_new_tokens instead.
"""
from __future__ import annotations

import contextlib
import math
import random

import torch


def draw_lengths(prompts: int, n: int, max_len: int, median: int, min_len: int = 16, seed: int = 0,
                 sigma: float = 0.7) -> list[list[int]]:
    """[prompts][n] lengths: log-normal(median, sigma) rounded, clipped to [min_len, max_len] (the cap is hit
    by the tail: samples that run out of budget)."""
    rng = random.Random(f"j1-bench-lengths:{seed}")
    return [[max(min_len, min(max_len, round(median * math.exp(sigma * rng.gauss(0.0, 1.0))))) for _ in range(n)]
            for _ in range(prompts)]


def force_row_lengths(scores: torch.Tensor, step: int, lengths: torch.Tensor, eos_ids: torch.Tensor,
                      force_id: int) -> torch.Tensor:
    """In place on scores [rows, V]: rows with step < length - 1 may not emit eos; rows at length - 1 must emit
    force_id (every other logit -inf). `lengths` [rows] belongs to the rows of scores."""
    early = step < lengths - 1
    if bool(early.any()):
        scores[early.nonzero().squeeze(1)[:, None], eos_ids[None, :]] = float("-inf")
    at = (lengths - 1 == step).nonzero().squeeze(1)
    if at.numel():
        scores[at] = float("-inf")
        scores[at, force_id] = 0.0
    return scores


class ForceLengths:
    """HF LogitsProcessor: row r of the generate batch (prompt-major, num_return_sequences adjacent) ends with
    an eos at exactly lengths[r] new tokens."""

    def __init__(self, lengths: list[list[int]], prompt_width: int, eos_ids: list[int], force_id: int):
        self.lengths = torch.tensor([length for row in lengths for length in row])
        self.prompt_width, self.eos_ids, self.force_id = prompt_width, torch.tensor(eos_ids), force_id

    def __call__(self, input_ids, scores):
        step = input_ids.shape[1] - self.prompt_width
        return force_row_lengths(scores, step, self.lengths.to(scores.device), self.eos_ids.to(scores.device),
                                 self.force_id)


@contextlib.contextmanager
def force_engine_lengths(lengths: list[list[int]], seed: int, eos_ids: list[int], force_id: int):
    """While active, RolloutEngine.generate(prompts, n, seed=seed, ...) ends sample (i, j) with an eos at exactly
    lengths[i][j] tokens (the call must use the same seed, n = len(lengths[0]) and one wave)."""
    import j1core.engine.rollout as rollout

    n = len(lengths[0])
    steps = max(max(row) for row in lengths)
    full = rollout.sample_uniforms([rollout.mix_seed(seed, i) for i in range(len(lengths))], n, steps)
    flat = torch.tensor([length for row in lengths for length in row])
    order = full.argsort(dim=0)  # per step: rows sorted by their uniform, to look a received uniform up
    sorted_cols = full.gather(0, order)
    eos = torch.tensor(eos_ids)
    original = rollout.choose_tokens
    step = {"t": 0, "rows": None}

    def choose(logits, *args, uniforms=None, **kwargs):
        if kwargs.get("allowed_ids") is None and uniforms is not None:
            u = uniforms.to("cpu", torch.float64)
            # The same call's step: the first call of a generate is step 0; a batch with fewer rows than
            # before has been compacted, not restarted.
            t = step["t"]
            if t >= steps:
                raise RuntimeError("force_engine_lengths: more decode steps than the longest drawn length")
            pos = torch.searchsorted(sorted_cols[:, t].contiguous(), u).clamp(max=full.shape[0] - 1)
            rows = order[pos, t]
            if not torch.equal(full[rows, t], u):
                raise RuntimeError("force_engine_lengths: the engine's uniforms are not the expected streams "
                                   "(different seed, n or waves?)")
            with torch.inference_mode():  # the engine's logits are inference tensors
                force_row_lengths(logits, t, flat[rows].to(logits.device), eos.to(logits.device), force_id)
            step["t"] = t + 1
        return original(logits, *args, uniforms=uniforms, **kwargs)

    rollout.choose_tokens = choose
    try:
        yield
    finally:
        rollout.choose_tokens = original
