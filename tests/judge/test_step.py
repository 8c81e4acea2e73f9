"""Step glue: prompts in both orders, pair rewards, and the batch metrics on scripted judgments."""
import pytest

from j1core.data.pairs import Pair
from j1core.judge.step import build_prompts, pair_format, score_step, step_metrics
from j1core.model import load_tokenizer

PAIRS = [Pair(id=f"p{i}", prompt=f"What is {i}+1?", chosen=str(i + 1), rejected=str(i + 2), source="t")
         for i in range(3)]
THINK = "ok</think>\n"


def verdict(letter):
    return f"{THINK}<answer>[[{letter}]]</answer>"


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("smollm2-135m-instruct")


def test_prompts_come_in_adjacent_orders(tokenizer):
    prompts = build_prompts(PAIRS, "pairwise", tokenizer)
    assert [(p.pair_index, p.slot, p.gold) for p in prompts[:4]] == [(0, 0, "A"), (0, 1, "B"), (1, 0, "A"),
                                                                     (1, 1, "B")]
    text0, text1 = (tokenizer.decode(p.ids) for p in prompts[:2])
    assert text0.index("[Response A]\n1") < text0.index("[Response B]\n2")
    assert text1.index("[Response A]\n2") < text1.index("[Response B]\n1")


def test_mixed_alternates_pairwise_and_pointwise(tokenizer):
    prompts = build_prompts(PAIRS, "mixed", tokenizer)
    assert [p.fmt for p in prompts] == ["pairwise"] * 2 + ["pointwise"] * 2 + ["pairwise"] * 2
    assert [pair_format("mixed", i) for i in range(2)] == ["pairwise", "pointwise"]


def test_always_a_judge_is_never_consistent(tokenizer):
    prompts = build_prompts(PAIRS, "pairwise", tokenizer)
    texts = [[verdict("A")] * 2 for _ in prompts]
    m = step_metrics(prompts, texts)
    assert m["accuracy_order0"] == 1.0 and m["accuracy_order1"] == 0.0
    assert m["consistent_accuracy"] == 0.0 and m["flip_rate"] == 1.0
    rewards = score_step(prompts, texts, reward="consistent")
    assert all(r == 0.0 for group in rewards for r in group)
    correct = score_step(prompts, texts, reward="correct")
    assert correct[0] == [1.0, 1.0] and correct[1] == [0.0, 0.0]


def test_always_right_judge(tokenizer):
    prompts = build_prompts(PAIRS, "pairwise", tokenizer)
    texts = [[verdict(p.gold)] * 2 for p in prompts]
    m = step_metrics(prompts, texts)
    assert m["consistent_accuracy"] == 1.0 and m["flip_rate"] == 0.0 and m["unparseable_rate"] == 0.0
    assert all(r == 1.0 for group in score_step(prompts, texts) for r in group)


def test_pointwise_pair_reward_and_format_bonus(tokenizer):
    prompts = build_prompts(PAIRS[:1], "pointwise", tokenizer)
    texts = [[f"{THINK}<score>8</score>", "garbage"], [f"{THINK}<score>3</score>", f"{THINK}<score>9</score>"]]
    r = score_step(prompts, texts, pairing="index")
    assert r == [[1.0, 0.0], [1.0, 0.0]]
    r = score_step(prompts, texts, pairing="index", format_weight=0.5)
    assert r == [[1.5, 0.0], [1.5, 0.5]]
    m = step_metrics(prompts, texts)
    assert m["accuracy"] == 0.5 and m["unparseable_rate"] == 0.25


def test_flip_length_shows_the_second_order_with_the_other_response_longer(tokenizer):
    from j1core.data.builtin import builtin_pairs, length_flipped

    pairs = [p for p in builtin_pairs("train") if length_flipped(p) is not None][:6] + PAIRS[:1]
    prompts = build_prompts(pairs, "pairwise", tokenizer, flip_length=True)
    plain = build_prompts(pairs, "pairwise", tokenizer)
    assert [p.ids for p in prompts[::2]] == [p.ids for p in plain[::2]]  # first orders as they were
    assert prompts[-1].ids == plain[-1].ids  # a pair from elsewhere is never flipped
    for pair, second in zip(pairs[:6], prompts[1::2]):
        flipped = length_flipped(pair)
        assert second.ids == build_prompts([flipped], "pairwise", tokenizer)[1].ids and second.gold == "B"
    # neither a position judge nor a length judge earns the consistency reward; a right one does
    shown = [(q.chosen, q.rejected) for pair in pairs[:6] for q in (pair, length_flipped(pair))]
    longer_judge = [[verdict("A" if (len(c) > len(r)) == (p.gold == "A") else "B")] for p, (c, r)
                    in zip(prompts, shown)]
    for texts in (longer_judge, [[verdict("A")]] * 12):
        assert all(r == 0.0 for group in score_step(prompts[:12], texts) for r in group)
    assert all(r == 1.0 for group in score_step(prompts[:12], [[verdict(p.gold)] for p in prompts[:12]])
               for r in group)
