"""One step's judge prompts, their rewards, and the batch metrics: the glue between pairs and GRPO groups.

    python -m pytest tests/judge/test_step.py

Every pair becomes two prompts that are scored together:
- pairwise formats: slot 0 is the order (x, chosen, rejected) with gold A, slot 1 is (x, rejected, chosen) with gold B;
- pointwise: slot 0 judges the chosen response alone, slot 1 the rejected one.
Each prompt gets G samples, a GRPO group; the two groups of a pair are rewarded jointly (consistency, pointwise).
"""
from __future__ import annotations

from dataclasses import dataclass

from j1core.eval.metrics import preference
from j1core.judge.prompts import judge_prompt_ids
from j1core.judge.rewards import (
    correctness,
    format_reward,
    judged_winner,
    pair_rewards,
    parse_judgment,
    pointwise_pair_rewards,
)


@dataclass
class JudgePrompt:
    pair_id: str
    pair_index: int
    slot: int          # 0 or 1, see the module docstring
    fmt: str
    gold: str | None   # "A" / "B" for pairwise formats, None for pointwise
    ids: list[int]


def pair_format(fmt: str, pair_index: int) -> str:
    """`mixed` trains one multitask judge: even pairs pairwise, odd pairs pointwise."""
    if fmt == "mixed":
        return "pairwise" if pair_index % 2 == 0 else "pointwise"
    return fmt


def build_prompts(pairs, fmt: str, tokenizer) -> list[JudgePrompt]:
    prompts = []
    for i, pair in enumerate(pairs):
        f = pair_format(fmt, i)
        if f == "pointwise":
            prompts.append(JudgePrompt(pair.id, i, 0, f, None,
                                       judge_prompt_ids(tokenizer, f, pair.prompt, pair.chosen)))
            prompts.append(JudgePrompt(pair.id, i, 1, f, None,
                                       judge_prompt_ids(tokenizer, f, pair.prompt, pair.rejected)))
        else:
            prompts.append(JudgePrompt(pair.id, i, 0, f, "A",
                                       judge_prompt_ids(tokenizer, f, pair.prompt, pair.chosen, pair.rejected)))
            prompts.append(JudgePrompt(pair.id, i, 1, f, "B",
                                       judge_prompt_ids(tokenizer, f, pair.prompt, pair.rejected, pair.chosen)))
    return prompts


def score_pair(first: JudgePrompt, second: JudgePrompt, texts0, texts1, reward: str, pairing: str,
               format_weight: float):
    """Rewards of the two groups of one pair (lists of G floats each)."""
    if first.fmt == "pointwise":
        r0, r1 = pointwise_pair_rewards(texts0, texts1, pairing=pairing)
    else:
        r0, r1 = pair_rewards(first.fmt, texts0, texts1, first.gold, second.gold, kind=reward, pairing=pairing)
    if format_weight:
        r0 = [r + format_weight * format_reward(first.fmt, t) for r, t in zip(r0, texts0)]
        r1 = [r + format_weight * format_reward(second.fmt, t) for r, t in zip(r1, texts1)]
    return list(r0), list(r1)


def score_step(prompts: list[JudgePrompt], texts: list[list[str]], reward="consistent", pairing="expected",
               format_weight=0.0) -> list[list[float]]:
    """Rewards for every prompt's samples, computed pair by pair (prompts come in adjacent slot 0/1 pairs)."""
    rewards = []
    for k in range(0, len(prompts), 2):
        r0, r1 = score_pair(prompts[k], prompts[k + 1], texts[k], texts[k + 1], reward, pairing, format_weight)
        rewards += [r0, r1]
    return rewards


def preferred_response(fmt: str, slot: int, text: str) -> str | None:
    """Which response ("chosen" / "rejected") a pairwise judgment prefers; None if unparsed or a tie."""
    preferred = preference(judged_winner(fmt, parse_judgment(fmt, text)), slot)
    return None if preferred == "tie" else preferred


def step_metrics(prompts: list[JudgePrompt], texts: list[list[str]]) -> dict:
    """Accuracy per order, consistent accuracy, flip rate and parse/tie rates, sample i of each order matched."""
    right = {0: [], 1: []}
    both_right, flips, unparsed, ties, total = [], [], 0, 0, 0
    for k in range(0, len(prompts), 2):
        first, second = prompts[k], prompts[k + 1]
        for t0, t1 in zip(texts[k], texts[k + 1]):
            j0, j1 = parse_judgment(first.fmt, t0), parse_judgment(second.fmt, t1)
            unparsed += (not j0.parsed) + (not j1.parsed)
            total += 2
            if first.fmt == "pointwise":
                ok = j0.parsed and j1.parsed and j0.score > j1.score
                ties += bool(j0.parsed and j1.parsed and j0.score == j1.score)
                right[0].append(ok)
                right[1].append(ok)
                both_right.append(ok)
                continue
            ties += sum(judged_winner(first.fmt, j) == "tie" for j in (j0, j1))
            c0, c1 = correctness(first.fmt, t0, first.gold), correctness(second.fmt, t1, second.gold)
            right[0].append(c0 == 1.0)
            right[1].append(c1 == 1.0)
            both_right.append(c0 == 1.0 and c1 == 1.0)
            p0, p1 = preferred_response(first.fmt, 0, t0), preferred_response(second.fmt, 1, t1)
            if p0 is not None and p1 is not None:
                flips.append(p0 != p1)

    def mean(xs):
        return sum(xs) / len(xs) if xs else None

    return {"accuracy_order0": mean(right[0]), "accuracy_order1": mean(right[1]),
            "accuracy": mean(right[0] + right[1]), "consistent_accuracy": mean(both_right),
            "flip_rate": mean(flips), "unparseable_rate": unparsed / max(total, 1), "tie_rate": ties / max(total, 1)}
