"""Tests for j1core/judge/trl_reward.py: the reward on scripted and tiny random judges, and one TRL GRPO step.

    python -m pytest tests/judge/test_trl_reward.py -q
"""
import pytest
import torch

from j1core.judge.api import Comparison, Judge, Score
from j1core.judge.trl_reward import JudgeReward, message_text
from j1core.model import tiny_model

PROMPTS = ["What is 2 + 2?",
           [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."}]]
COMPLETIONS = ["4", [{"role": "assistant", "content": "Blue."}]]
REFERENCES = ["5", "Seven."]


class ScriptedJudge:
    """Records what it is asked; scores a response by its length, prefers the longer response with P = 0.8."""

    def __init__(self, fmt):
        self.format, self.calls = fmt, []

    def score_many(self, items):
        self.calls.append(items)
        return [Score(None if r == "" else float(len(r)), [], []) for _, r in items]

    def compare_many(self, items):
        self.calls.append(items)
        return [Comparison(["a", "a"], True, "a", 0.8 if len(a) > len(b) else 0.2, None, [[], []])
                for _, a, b in items]


def test_message_text_reads_strings_and_assistant_messages():
    assert message_text("plain", "x") == "plain"
    assert message_text([{"role": "assistant", "content": "one"}, {"role": "tool", "content": "no"},
                         {"role": "assistant", "content": "two"}], "x") == "one\ntwo"
    with pytest.raises(ValueError, match=r"completions\[3\]: expected a string or a list of chat messages"):
        message_text(5, "completions[3]")


def test_pointwise_reward_scales_scores_and_fills_unscored():
    judge = ScriptedJudge("pointwise")
    reward = JudgeReward(judge, scale=0.5, unscored=-1.0)
    assert reward(PROMPTS + ["q"], COMPLETIONS + [""]) == [0.5, 2.5, -1.0]
    assert judge.calls == [[(PROMPTS[0], "4"), (PROMPTS[1], "Blue."), ("q", "")]]  # one batched call


def test_pairwise_reward_compares_with_the_reference_column():
    judge = ScriptedJudge("pairwise")
    reward = JudgeReward(judge, reference="gold_answer")
    assert reward(PROMPTS, COMPLETIONS, gold_answer=REFERENCES, trainer_state=None) == [0.2, 0.2]
    assert judge.calls == [[(PROMPTS[0], "4", "5"), (PROMPTS[1], "Blue.", "Seven.")]]
    with pytest.raises(ValueError, match="needs a column 'gold_answer'.*columns given: \\['other'\\]"):
        reward(PROMPTS, COMPLETIONS, other=REFERENCES, trainer_state=None)
    with pytest.raises(ValueError, match="has 1 values for 2 completions"):
        reward(PROMPTS, COMPLETIONS, gold_answer=REFERENCES[:1])
    assert reward.__name__ == "j1_judge"


@pytest.fixture(scope="module")
def judge():
    model, tokenizer = tiny_model(seed=1, hidden=32, layers=1, heads=2, kv_heads=1)
    return Judge(model, tokenizer, format="pairwise", forced_verdict=True)


def test_pairwise_reward_of_a_real_judge_is_the_mean_of_both_orders(judge):
    rewards = JudgeReward(judge)(PROMPTS, COMPLETIONS, reference=REFERENCES)
    for r, prompt, completion, ref in zip(rewards, PROMPTS, ["4", "Blue."], REFERENCES):
        c = judge.compare(prompt, completion, ref)
        assert r == pytest.approx((c.p_a[0] + c.p_a[1]) / 2) and 0.0 < r < 1.0


def test_pointwise_reward_of_a_real_judge_matches_score():
    model, tokenizer = tiny_model(seed=2, hidden=32, layers=1, heads=2, kv_heads=1)
    judge = Judge(model, tokenizer, format="pointwise", max_new_tokens=6, temperature=1.0, samples=2)
    rewards = JudgeReward(judge, scale=0.1, unscored=0.25)(PROMPTS, COMPLETIONS)
    expected = [judge.score(p, c) for p, c in zip(PROMPTS, ["4", "Blue."])]
    assert rewards == [0.25 if s.score is None else 0.1 * s.score for s in expected]


def test_one_trl_grpo_step_with_the_judge_reward(judge, tmp_path):
    """TRL 1.16's GRPOTrainer trains a tiny random policy one step on CPU, rewarded by a tiny random j1 judge
    comparing each completion with the dataset's reference column (conversational prompts)."""
    pytest.importorskip("trl", reason="trl is not installed")
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    policy, tokenizer = tiny_model(seed=3, hidden=32, layers=1, heads=2, kv_heads=1)
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    reward = JudgeReward(judge)
    seen = []

    def recorded(prompts, completions, **kwargs):
        out = reward(prompts, completions, **kwargs)
        seen.append((prompts, completions, kwargs["reference"], out))
        return out
    recorded.__name__ = "j1_judge"

    dataset = Dataset.from_dict({"prompt": [[{"role": "user", "content": "What is 2 + 2?"}],
                                            [{"role": "user", "content": "Name a colour."}]],
                                 "reference": ["4", "Blue."]})
    config = GRPOConfig(output_dir=str(tmp_path), report_to="none", use_cpu=True, bf16=False, max_steps=1,
                        per_device_train_batch_size=4, num_generations=2, max_completion_length=4,
                        learning_rate=1e-2, beta=0.0, logging_steps=1, save_strategy="no", disable_tqdm=True,
                        dataloader_num_workers=0, seed=0)
    trainer = GRPOTrainer(model=policy, processing_class=tokenizer, reward_funcs=recorded, args=config,
                          train_dataset=dataset)
    trainer.train()

    assert trainer.state.global_step == 1 and len(seen) == 1
    prompts, completions, references, rewards = seen[0]
    assert len(rewards) == 4 and all(0.0 < r < 1.0 for r in rewards)
    assert all(isinstance(c, list) and c[0]["role"] == "assistant" for c in completions)  # conversational
    logged = next(entry for entry in trainer.state.log_history if "reward" in entry)
    assert logged["reward"] == pytest.approx(sum(rewards) / len(rewards), abs=1e-6)
    # The same batch judged again gives the same rewards (seeds per item, greedy verdicts).
    assert reward(prompts, completions, reference=references) == rewards
    changed = [k for k, v in trainer.model.state_dict().items() if not torch.equal(v.cpu(), before[k])]
    assert changed, "one GRPO step with non-constant rewards must move the policy"
