"""Sampled judgments and the packed batch: the forced verdict with its suffix prefilled, shared prefixes."""
import pytest
import torch

from j1core.config import TrainConfig
from j1core.data.builtin import builtin_pairs
from j1core.engine.rollout import RolloutEngine
from j1core.judge.prompts import forced_suffix
from j1core.judge.rollout import JudgeSample, generate_judgments, pack_batch, shared_untrained_prefix
from j1core.judge.step import build_prompts
from j1core.logprobs import token_logprobs
from j1core.model import tiny_model


@pytest.fixture(scope="module")
def setup():
    model, tokenizer = tiny_model("llama", seed=3, layers=2)
    prompts = build_prompts(builtin_pairs("train")[:3], "pairwise", tokenizer)
    return model, tokenizer, prompts


def sample(tokens, mask):
    return JudgeSample(tokens, [0.0] * len(tokens), mask, "")


def test_shared_untrained_prefix_stops_at_a_difference_a_trained_token_or_the_last_token():
    assert shared_untrained_prefix([sample([1, 2, 3, 7], [0, 0, 0, 1]), sample([1, 2, 3, 8], [0, 0, 0, 1])]) == 3
    assert shared_untrained_prefix([sample([1, 2, 3], [0, 0, 1]), sample([1, 5, 3], [0, 0, 1])]) == 1
    assert shared_untrained_prefix([sample([1, 2, 3], [0, 1, 1]), sample([1, 2, 4], [0, 1, 1])]) == 1
    assert shared_untrained_prefix([sample([1, 2], [0, 0]), sample([1, 2], [0, 0])]) == 1  # keeps one token
    assert shared_untrained_prefix([sample([4], [1]), sample([5], [1])]) == 0


@pytest.mark.parametrize("think", [0, 3])
def test_forced_samples_carry_the_whole_suffix_and_train_only_the_letter(setup, think):
    model, tokenizer, prompts = setup
    cfg = TrainConfig(group_size=4, max_think_tokens=think, forced_verdict=True)
    engine = RolloutEngine(model, tokenizer)
    groups = generate_judgments(engine, tokenizer, prompts, cfg, step=0)
    suffix = tokenizer(forced_suffix("pairwise"), add_special_tokens=False)["input_ids"]
    letters = {tokenizer.convert_tokens_to_ids(x) for x in "AB"}
    for group in groups:
        assert len(group) == 4
        for s in group:
            assert s.token_ids[-1] in letters and s.token_ids[-1 - len(suffix):-1] == suffix
            assert s.loss_mask[-1] == 1 and s.loss_mask[-1 - len(suffix):-1] == [0] * len(suffix)
            assert s.text.endswith(("[[A]]</answer>", "[[B]]</answer>"))
            if think == 0:
                assert len(s.token_ids) == len(suffix) + 1 and s.loss_mask == [0] * len(suffix) + [1]


def test_prefilled_suffix_gives_the_letter_distribution_of_the_decoded_one(setup):
    """The verdict's log-prob after the suffix is the same whether the engine prefills the suffix with the
    prompt (max_think_tokens 0) or feeds it token by token as a forced tail."""
    model, tokenizer, prompts = setup
    suffix = tokenizer(forced_suffix("pairwise"), add_special_tokens=False)["input_ids"]
    letters = [tokenizer.convert_tokens_to_ids(x) for x in "AB"]
    engine = RolloutEngine(model, tokenizer)
    cfg = TrainConfig(group_size=2, max_think_tokens=0, forced_verdict=True)
    cfg.temperature = 0.0  # greedy: fine for sampling, refused by the trainer's flags (log-probs divide by it)
    prefilled = generate_judgments(engine, tokenizer, prompts, cfg, step=0)
    decoded = engine.generate([p.ids for p in prompts], n=2, max_new_tokens=0, temperature=0.0,
                              forced_suffix=suffix, choice_ids=letters)
    for group_a, group_b in zip(prefilled, decoded):
        for a, b in zip(group_a, group_b):
            assert a.token_ids == b.token_ids
            assert a.logprobs[-1] == pytest.approx(b.logprobs[-1], abs=1e-5)


def test_packed_forced_batch_logprobs_equal_the_plain_pass(setup):
    model, tokenizer, prompts = setup
    cfg = TrainConfig(group_size=3, max_think_tokens=0, forced_verdict=True)
    groups = generate_judgments(RolloutEngine(model, tokenizer), tokenizer, prompts, cfg, step=1)
    batch = pack_batch(prompts, groups, tokenizer.pad_token_id)
    suffix = tokenizer(forced_suffix("pairwise"), add_special_tokens=False)["input_ids"]
    expected = torch.tensor([len(p.ids) + len(suffix) for p in prompts]).repeat_interleave(3)
    assert torch.equal(batch["prompt_lengths"], expected)  # the forced suffix runs once per group
    args = (model, batch["input_ids"], batch["attention_mask"], batch["loss_mask"])
    grouped = token_logprobs(*args, prompt_lengths=batch["prompt_lengths"], group_size=3)
    plain = token_logprobs(*args)
    mask = batch["loss_mask"].bool()
    torch.testing.assert_close(grouped[mask], plain[mask], atol=1e-5, rtol=0)
    torch.testing.assert_close(plain[mask], batch["rollout_logp"][mask], atol=1e-4, rtol=0)
