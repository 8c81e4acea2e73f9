"""Tests for j1core/engine/schedule.py: waves, prefix groups and prefill blocks (the engine's use of them:
tests/engine/test_rollout.py)."""
import itertools
import random

import pytest

from j1core.engine.schedule import padding_chunks, plan_waves, prefix_groups, wave_prefix

PROMPTS = [[1, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 100, 101],  # shares 11 tokens with the next prompt
           [1, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 200, 300, 400],
           [4, 3, 2000]]


def test_prefix_groups_find_shared_prefix():
    assert prefix_groups(PROMPTS) == [([0, 1], 11), ([2], 0)]
    same = [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]] * 2
    assert prefix_groups(same) == [([0, 1], 9)]  # one token left for the first-token logits
    assert prefix_groups(PROMPTS, min_shared=12) == [([0], 0), ([1], 0), ([2], 0)]
    # judge prompts: every prompt shares the template's opening (10 tokens here), a pair's two orders the
    # question too; a group is not stretched over the next pair at the cost of its shared prefix
    template, q1, q2 = list(range(100, 110)), list(range(200, 220)), list(range(300, 340))
    pairs = [template + q1 + [1, 2], template + q1 + [2, 1], template + q2 + [3, 4, 5], template + q2 + [4, 3, 5]]
    assert prefix_groups(pairs) == [([0, 1], 30), ([2, 3], 50)]
    assert prefix_groups(pairs + [pairs[3]]) == [([0, 1], 30), ([2, 3, 4], 50)]  # the same prefix: it joins


def test_prompt_that_cannot_fit_raises():
    with pytest.raises(ValueError, match="prompt 1 .* max_batch_tokens=29"):
        plan_waves([3, 20], n=2, max_new_tokens=5, max_batch_tokens=29)


def block_cost(lengths, blocks, cost):
    return sum(len(b) * max(lengths[i] for i in b) + cost for b in blocks)


def every_partition_cost(lengths, cost):
    """The plain reference: the best cost over every way to cut the sorted lengths into consecutive blocks."""
    ordered = sorted(lengths)
    best = float("inf")
    for cuts in itertools.product([False, True], repeat=len(ordered) - 1):
        total, start = 0, 0
        for end in [k + 1 for k, cut in enumerate(cuts) if cut] + [len(ordered)]:
            total += (end - start) * ordered[end - 1] + cost
            start = end
        best = min(best, total)
    return best


@pytest.mark.parametrize("seed", range(6))
def test_padding_chunks_is_the_cheapest_partition(seed):
    rng = random.Random(seed)
    lengths = [rng.randint(1, 200) for _ in range(rng.randint(1, 9))]
    cost = rng.choice([0, 8, 32, 500])
    blocks = padding_chunks(lengths, cost)
    assert sorted(i for b in blocks for i in b) == list(range(len(lengths)))  # every prompt once
    flat = [lengths[i] for b in blocks for i in b]
    assert flat == sorted(flat)  # ascending within and across blocks
    assert block_cost(lengths, blocks, cost) == every_partition_cost(lengths, cost)


def test_padding_chunks_cuts_only_where_padding_outweighs_a_block():
    assert padding_chunks([200, 201]) == [[0, 1]]  # a judged pair's two orders: one block
    assert padding_chunks([10, 10, 10], cost=0) == [[0, 1, 2]]
    assert padding_chunks([5]) == [[0]] and padding_chunks([]) == []
    assert padding_chunks([173, 38, 40], cost=32) == [[1, 2], [0]]  # 3 x 173 = 519 padded against 80 + 173 + 64
    assert padding_chunks([173, 38, 40], cost=10**6) == [[1, 2, 0]]


def test_wave_prefix_is_what_every_prompt_begins_with():
    template = list(range(100, 110))
    prompts = [template + [1, 2, 3], template + [1, 2, 4, 5], template + [7]]
    assert wave_prefix(prompts) == 10
    assert wave_prefix(prompts[:2]) == 12  # the first two share more
    assert wave_prefix([template + [1], template + [1]]) == 10  # one token left for the first-token logits
    assert wave_prefix(prompts, min_shared=11) == 0
    assert wave_prefix(prompts[:1]) == 0 and wave_prefix([[1, 2], [3, 4]]) == 0
    # never longer than a group's prefix: every group's shared prefix is at least the wave's
    assert all(shared == 0 or shared >= wave_prefix(prompts) for _, shared in prefix_groups(prompts))
