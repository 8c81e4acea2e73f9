"""How the rollout engine schedules its prompts: waves under a KV budget, groups sharing a prefix, and blocks of
similar lengths for the prefill.

    python -m pytest tests/engine/test_schedule.py -q

- `plan_waves`: consecutive prompts per wave, each wave's KV tokens (prompts x longest prompt + prompts x n x
  max_new_tokens) under the engine's max_batch_tokens.
- `wave_prefix` and `prefix_groups`: the tokens all prompts of a wave begin with (a judge or chat template's
  opening) are prefilled once per wave; adjacent prompts with a longer common prefix (the two orders of a
  judged pair share the question too) form a group whose prefix is prefilled once, on top of the wave's.
- `padding_chunks`: a group's remainders are right-padded to the longest of their block, and every padding
  token costs as much as a real one. Chat prompts of different lengths, which share only the template's
  opening, would all pay for the longest in one block; sorted by length and cut where a cut saves more
  padding than it costs (PAD_CHUNK_COST), the blocks hold few padding tokens. Judge pairs, whose two orders
  are about as long as each other, stay one block.
"""
from __future__ import annotations

MIN_SHARED_PREFIX = 8  # tokens: a shorter common prefix is not worth its own prefill (or log-prob pass)
PAD_CHUNK_COST = 32  # tokens: what one more prefill block costs (its calls, smaller matrix products)


def common_prefix_len(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def prefix_groups(prompts: list[list[int]], min_shared: int | None = None) -> list[tuple[list[int], int]]:
    """Split prompt indices into runs of adjacent prompts and the token prefix each run shares (at least
    min_shared tokens, default MIN_SHARED_PREFIX, read at call time).

    The shared length stops one token short of the shortest prompt, so every prompt keeps a remainder whose
    last position yields its first-token logits. A group of two or more takes a further prompt only if its
    shared prefix does not shrink: judge prompts all share the template's opening, and one group of a whole wave
    would share just that, its remainders padded to the longest prompt of the wave; a pair's two orders share
    the question as well and are about as long as each other.
    """
    min_shared = MIN_SHARED_PREFIX if min_shared is None else min_shared
    groups: list[tuple[list[int], int]] = []
    for i, prompt in enumerate(prompts):
        if groups:
            members, shared = groups[-1]
            first = prompts[members[0]]
            candidate = min(shared, common_prefix_len(first, prompt), len(prompt) - 1)
            if candidate >= min_shared and (len(members) == 1 or candidate >= min(shared, len(prompt) - 1)):
                groups[-1] = (members + [i], candidate)
                continue
        groups.append(([i], len(prompt) - 1))
    return [(members, shared if len(members) > 1 else 0) for members, shared in groups]


def wave_prefix(prompts: list[list[int]], min_shared: int | None = None) -> int:
    """Tokens every prompt of the wave starts with (the judge template's or the chat template's opening), one
    short of the shortest prompt; 0 below min_shared (default MIN_SHARED_PREFIX) or for a single prompt. The
    engine prefills them once per wave, beneath every group's own prefix."""
    min_shared = MIN_SHARED_PREFIX if min_shared is None else min_shared
    if len(prompts) < 2:
        return 0
    shared = min(len(p) for p in prompts) - 1
    for prompt in prompts[1:]:
        shared = min(shared, common_prefix_len(prompts[0], prompt))
    return shared if shared >= min_shared else 0


def wave_kv_tokens(lengths: list[int], n: int, max_new_tokens: int) -> int:
    """KV tokens a wave holds: its prompt cache (prompts x longest prompt) and its samples' generations."""
    return len(lengths) * (max(lengths) + n * max_new_tokens)


def plan_waves(lengths: list[int], n: int, max_new_tokens: int, max_batch_tokens: int) -> list[list[int]]:
    """Consecutive prompt indices per wave, each wave's `wave_kv_tokens` <= max_batch_tokens."""
    waves: list[list[int]] = []
    current: list[int] = []
    for i, length in enumerate(lengths):
        alone = wave_kv_tokens([length], n, max_new_tokens)
        if alone > max_batch_tokens:
            raise ValueError(f"rollout: prompt {i} ({length} tokens) with n={n} samples of up to {max_new_tokens} "
                             f"new tokens needs {alone} KV tokens, more than max_batch_tokens={max_batch_tokens}; "
                             "raise max_batch_tokens or lower n / max_new_tokens")
        if current and wave_kv_tokens([lengths[j] for j in current] + [length], n,
                                      max_new_tokens) > max_batch_tokens:
            waves.append(current)
            current = []
        current.append(i)
    if current:
        waves.append(current)
    return waves


def padding_chunks(lengths: list[int], cost: int | None = None) -> list[list[int]]:
    """Indices of `lengths` in blocks (ascending length within and across blocks) that minimise the padded
    tokens, sum(block rows x its longest), plus `cost` (default PAD_CHUNK_COST, read at call time) per block:
    an exact partition of the sorted lengths by dynamic programming, O(len(lengths)^2)."""
    cost = PAD_CHUNK_COST if cost is None else cost
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    sorted_lengths = [lengths[i] for i in order]
    # best[j]: least cost of the first j sorted rows; cut[j]: where the last block of that solution starts.
    best, cut = [0.0] + [float("inf")] * len(order), [0] * (len(order) + 1)
    for j in range(1, len(order) + 1):
        for i in range(j):
            total = best[i] + (j - i) * sorted_lengths[j - 1] + cost
            if total < best[j]:
                best[j], cut[j] = total, i
    blocks, j = [], len(order)
    while j:
        blocks.append(order[cut[j]:j])
        j = cut[j]
    return blocks[::-1]
