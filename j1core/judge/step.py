"""Judge prompts of pairs, their rewards, and the batch metrics: the glue between pairs and GRPO groups.

    python -m pytest tests/judge/test_step.py

Every pair becomes two prompts (JudgePrompt, the one type of a judged prompt, for training and evaluation):
- pairwise formats: slot 0 is the order (x, chosen, rejected) with gold A, slot 1 is (x, rejected, chosen) with gold B;
- pointwise: slot 0 judges the chosen response alone, slot 1 the rejected one.
With flip_length (training, --flip-length) slot 1 of a built-in pair shows it with the other response made the
longer (j1core/data/builtin.length_flipped), so a judge that goes by position or by length is right in
exactly one of the two orders and earns no consistency reward.
In training each prompt gets G samples, a GRPO group; the two groups of a pair are rewarded jointly
(consistency, pointwise). judgment_record turns a sample's text into the record the metrics read, so the
step's metrics (step_metrics) and evaluation's reports come from one module, j1core/eval/metrics.py.
"""
from __future__ import annotations

from dataclasses import dataclass

from j1core.data.builtin import length_flipped
from j1core.eval.metrics import step_summary
from j1core.judge.prompts import judge_prompt_ids
from j1core.judge.rewards import format_reward, judged_winner, pair_rewards, parse_judgment, pointwise_pair_rewards


@dataclass
class JudgePrompt:
    """One judge prompt: a pair in one order (pairwise formats) or one of its responses (pointwise)."""
    pair_id: str
    pair_index: int
    slot: int          # 0 or 1, see the module docstring
    fmt: str
    gold: str | None   # "A" / "B" for pairwise formats, None for pointwise
    ids: list[int]
    source: str = ""
    category: str | None = None

    @property
    def order(self) -> int | None:
        """Pairwise formats: 0 shows the chosen response as A, 1 shows it as B. None for pointwise."""
        return None if self.fmt == "pointwise" else self.slot

    @property
    def response(self) -> str | None:
        """Pointwise: the response judged, "chosen" (slot 0) or "rejected" (slot 1). None for pairwise."""
        return ("chosen", "rejected")[self.slot] if self.fmt == "pointwise" else None

    @property
    def key(self) -> str:
        """Unique per pair and slot: "<pair_id>|o0", "<pair_id>|o1", "<pair_id>|chosen", "<pair_id>|rejected"."""
        return f"{self.pair_id}|o{self.slot}" if self.response is None else f"{self.pair_id}|{self.response}"


def pair_format(fmt: str, pair_index: int) -> str:
    """`mixed` trains one multitask judge: even pairs pairwise, odd pairs pointwise."""
    if fmt == "mixed":
        return "pairwise" if pair_index % 2 == 0 else "pointwise"
    return fmt


def build_prompts(pairs, fmt: str, tokenizer, style: str = "compact", flip_length: bool = False) -> list[JudgePrompt]:
    """Two adjacent prompts per pair, slot 0 then slot 1 (see the module docstring)."""
    prompts = []
    for i, pair in enumerate(pairs):
        f = pair_format(fmt, i)
        if f == "pointwise":
            shown = ((None, pair.chosen, None), (None, pair.rejected, None))
        else:
            second = (length_flipped(pair) if flip_length else None) or pair
            shown = (("A", pair.chosen, pair.rejected), ("B", second.rejected, second.chosen))
        for slot, (gold, response_a, response_b) in enumerate(shown):
            ids = judge_prompt_ids(tokenizer, f, pair.prompt, response_a, response_b, style=style)
            prompts.append(JudgePrompt(pair.id, i, slot, f, gold, ids, pair.source, pair.category))
    return prompts


def judgment_record(prompt: JudgePrompt, sample: int, text: str) -> dict:
    """One judgment as a metrics record (j1core/eval/metrics.py): where it comes from, its parse, its winner
    and whether that is the gold one (None for pointwise). Evaluation adds its output fields to it."""
    judgment = parse_judgment(prompt.fmt, text)
    winner = judged_winner(prompt.fmt, judgment)
    return {"key": f"{prompt.key}|{sample}", "pair_id": prompt.pair_id, "source": prompt.source,
            "category": prompt.category, "format": prompt.fmt, "order": prompt.order, "response": prompt.response,
            "sample": sample, "gold": prompt.gold, "parsed": judgment.parsed, "verdict": judgment.verdict,
            "score_a": judgment.score_a, "score_b": judgment.score_b, "score": judgment.score, "winner": winner,
            "correct": None if prompt.gold is None else float(winner == prompt.gold)}


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


def step_metrics(prompts: list[JudgePrompt], texts: list[list[str]]) -> dict:
    """Accuracy per order, consistent accuracy, flip rate and parse/tie rates of one step's samples, sample i
    of each order matched (j1core/eval/metrics.step_summary)."""
    return step_summary([judgment_record(p, i, text) for p, group in zip(prompts, texts)
                         for i, text in enumerate(group)])
