"""A j1 judge as the reward of another trainer: TRL's reward_funcs signature, prompts + completions -> floats.

    python -m pytest tests/judge/test_trl_reward.py -q

    from j1core import Judge
    from j1core.judge.trl_reward import JudgeReward
    reward = JudgeReward(Judge.load("runs/j1/checkpoint"))                      # pairwise, vs column "reference"
    reward = JudgeReward(Judge.load("runs/j1/checkpoint", format="pointwise"), scale=0.1)   # 0-10 -> 0-1
    GRPOTrainer(model=..., reward_funcs=reward, train_dataset=dataset, args=GRPOConfig(...))

TRL calls reward_func(prompts=..., completions=..., completion_ids=..., **columns), where columns are the
dataset's other columns (one value per completion) plus trainer_state and logging hooks; it names the
reward's metrics after __name__ ("j1_judge" unless given).
- pointwise judge: each completion's score, the mean of the parsed 0-10 scores over the judge's samples,
  times `scale`; `unscored` (default 0.0) when no sample parsed.
- pairwise judge: each completion against the reference completion of its row (the column named by
  `reference`, default "reference"), judged in both orders: the reward is P(completion better), the mean of
  the two orders' probabilities for a forced verdict (Comparison.win_a), else the share of samples
  preferring it (a tie or an unparsed sample counts one half); times `scale`.
All of a batch's judgments go to the judge's rollout engine in one call (Judge.compare_many / score_many).
Conversational data: a prompt that is a list of messages is judged as a multi-turn prompt (its transcript),
and a completion or reference that is a list of messages as the text of its assistant messages.
"""
from __future__ import annotations


def message_text(value, what: str) -> str:
    """A completion as text: a string as is; a list of chat messages as its assistant contents, joined."""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(m, dict) and "content" in m for m in value):
        return "\n".join(str(m["content"]) for m in value if m.get("role", "assistant") == "assistant")
    raise ValueError(f"{what}: expected a string or a list of chat messages, got {type(value).__name__}")


class JudgeReward:
    """Callable reward for TRL's GRPOTrainer backed by a j1core Judge (see the module docstring)."""

    def __init__(self, judge, reference: str = "reference", scale: float = 1.0, unscored: float = 0.0,
                 name: str = "j1_judge"):
        self.judge, self.reference, self.scale, self.unscored = judge, reference, scale, unscored
        self.__name__ = name

    def __call__(self, prompts, completions, **kwargs) -> list[float]:
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
        texts = [message_text(c, f"completions[{i}]") for i, c in enumerate(completions)]
        if self.judge.format == "pointwise":
            scores = self.judge.score_many(list(zip(prompts, texts)))
            return [self.unscored if s.score is None else s.score * self.scale for s in scores]
        if self.reference not in kwargs:
            raise ValueError(f"a pairwise judge compares each completion with a reference: the dataset needs a "
                             f"column {self.reference!r} (or JudgeReward(reference=COLUMN)); columns given: "
                             f"{sorted(k for k in kwargs if k not in ('trainer_state', 'log_extra', 'log_metric'))}")
        references = kwargs[self.reference]
        if len(references) != len(texts):
            raise ValueError(f"column {self.reference!r} has {len(references)} values for {len(texts)} completions")
        refs = [message_text(r, f"{self.reference}[{i}]") for i, r in enumerate(references)]
        comparisons = self.judge.compare_many(list(zip(prompts, texts, refs)))
        return [c.win_a * self.scale for c in comparisons]
