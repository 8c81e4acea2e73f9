"""Tests of j1core/logprobs.py: trainer log-probs equal a full-logits forward, values and parameter gradients;
the grouped path (one prompt pass per GRPO group) equals the plain path.

    python -m pytest tests/test_logprobs.py -q
"""
from __future__ import annotations

import pytest
import torch

from j1core.logprobs import MIN_SHARED_PREFIX, common_prefix_length, enable_gradient_checkpointing, token_logprobs
from j1core.model import tiny_model


def right_padded_batch(vocab, seed=0):
    """Two rows: prompt + completion + pad, with different lengths; loss_mask marks completion tokens."""
    gen = torch.Generator().manual_seed(seed)
    lengths, prompts, width = [11, 7], [4, 3], 13
    input_ids = torch.zeros(2, width, dtype=torch.long)
    attention_mask = torch.zeros_like(input_ids)
    loss_mask = torch.zeros_like(input_ids)
    for row, (length, prompt) in enumerate(zip(lengths, prompts, strict=True)):
        input_ids[row, :length] = torch.randint(0, vocab, (length,), generator=gen)
        attention_mask[row, :length] = 1
        loss_mask[row, prompt:length] = 1
    return input_ids, attention_mask, loss_mask


def full_logits_logprobs(model, input_ids, attention_mask, loss_mask, temperature):
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits.float() / temperature
    logprobs = torch.log_softmax(logits[:, :-1], dim=-1)
    logp = logprobs.gather(2, input_ids[:, 1:, None]).squeeze(2)
    entropy = -(logprobs.exp() * logprobs).sum(-1)
    pad = logp.new_zeros(logp.shape[0], 1)
    mask = loss_mask.float()
    return torch.cat([pad, logp], 1) * mask, torch.cat([pad, entropy], 1) * mask


def grads_of(model, values, seed=1):
    gen = torch.Generator().manual_seed(seed)
    loss = sum((v * torch.randn(v.shape, generator=gen)).sum() for v in values)
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.autograd.grad(loss, params, allow_unused=True)


@pytest.fixture(scope="module", params=[("llama", True), ("qwen2", False)], ids=["llama-tied", "qwen2-untied"])
def model_and_tokenizer(request):
    arch, tie = request.param
    return tiny_model(arch, seed=0, tie=tie)


def test_token_logprobs_match_full_forward(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    model.train()  # dropout is 0 in these configs; train mode checks nothing depends on eval
    batch = right_padded_batch(len(tokenizer))
    expected = full_logits_logprobs(model, *batch, temperature=0.7)
    got = token_logprobs(model, *batch, temperature=0.7, return_entropy=True, impl="auto")
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e, atol=1e-5, rtol=1e-5)
    assert (got[0][batch[2] == 0] == 0).all()
    for g, e in zip(grads_of(model, got), grads_of(model, expected), strict=True):
        if e is None:
            assert g is None or not g.any()
        else:
            # float32 sums of many terms: 1e-5 relative to the gradient's scale
            torch.testing.assert_close(g, e, atol=1e-5 * max(1.0, e.abs().max().item()), rtol=1e-5)


def test_lm_head_bias_is_used():
    model, tokenizer = tiny_model("qwen2", seed=0, tie=False)
    head = model.get_output_embeddings()
    head.bias = torch.nn.Parameter(torch.randn(head.weight.shape[0]))
    batch = right_padded_batch(len(tokenizer), seed=3)
    got = token_logprobs(model, *batch, impl="chunked")
    expected, _ = full_logits_logprobs(model, *batch, temperature=1.0)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    (g_bias,) = torch.autograd.grad(got.sum(), head.bias)
    (e_bias,) = torch.autograd.grad(expected.sum(), head.bias)
    torch.testing.assert_close(g_bias, e_bias, atol=1e-5, rtol=0)


def test_first_position_cannot_be_scored(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    input_ids, attention_mask, loss_mask = right_padded_batch(len(tokenizer))
    loss_mask[0, 0] = 1
    with pytest.raises(ValueError, match="loss_mask"):
        token_logprobs(model, input_ids, attention_mask, loss_mask)


def grouped_batch(vocab, prompt_lengths=(5, 9, 2), group_size=3, seed=0, shared_prefix=0, max_completion=6):
    """Prompts of different lengths (after a prefix of shared_prefix tokens common to all), each repeated
    group_size times with completions of 1..max_completion tokens, as right-padded rows (prompt, completion,
    pad) plus prompt_lengths [B]; loss_mask on every completion token."""
    gen = torch.Generator().manual_seed(seed)
    prefix = torch.randint(0, vocab, (shared_prefix,), generator=gen)
    rows = []
    for length in prompt_lengths:
        prompt = torch.cat([prefix, torch.randint(0, vocab, (length,), generator=gen)])
        for sample in range(group_size):
            n = 1 if sample == 0 else int(torch.randint(1, max_completion + 1, (1,), generator=gen))
            rows.append((prompt, torch.randint(0, vocab, (n,), generator=gen)))
    width = max(len(p) + len(c) for p, c in rows) + 1  # one all-pad column too
    input_ids = torch.zeros(len(rows), width, dtype=torch.long)
    attention_mask, loss_mask = torch.zeros_like(input_ids), torch.zeros_like(input_ids)
    for row, (prompt, completion) in enumerate(rows):
        n, m = len(prompt), len(completion)
        input_ids[row, :n + m] = torch.cat([prompt, completion])
        attention_mask[row, :n + m] = 1
        loss_mask[row, n:n + m] = 1
    lengths = torch.tensor([len(p) for p, _ in rows])
    return input_ids, attention_mask, loss_mask, lengths


def assert_same_values_and_grads(model, got, expected):
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e, atol=1e-5, rtol=1e-5)
    for g, e in zip(grads_of(model, got), grads_of(model, expected), strict=True):
        if e is None:
            assert g is None or not g.any()
        else:
            torch.testing.assert_close(g, e, atol=1e-5 * max(1.0, e.abs().max().item()), rtol=1e-5)


@pytest.mark.parametrize("mask_some", [False, True], ids=["all-completion", "some-masked"])
def test_grouped_path_matches_plain_path(model_and_tokenizer, mask_some):
    model, tokenizer = model_and_tokenizer
    model.train()
    input_ids, attention_mask, loss_mask, lengths = grouped_batch(len(tokenizer), seed=int(mask_some))
    if mask_some:  # forced tokens: drop a random third of the scored positions
        gen = torch.Generator().manual_seed(5)
        loss_mask = loss_mask * (torch.rand(loss_mask.shape, generator=gen) > 0.33)
    plain = token_logprobs(model, input_ids, attention_mask, loss_mask, temperature=0.7, return_entropy=True)
    grouped = token_logprobs(model, input_ids, attention_mask, loss_mask, temperature=0.7, return_entropy=True,
                             prompt_lengths=lengths, group_size=3)
    assert (grouped[0][loss_mask == 0] == 0).all() and (grouped[1][loss_mask == 0] == 0).all()
    assert_same_values_and_grads(model, grouped, plain)


@pytest.mark.parametrize("max_completion", [1, 5], ids=["one-token", "longer"])
def test_shared_prompt_prefix_runs_once_with_the_same_results(model_and_tokenizer, max_completion):
    """Prompts with a common template prefix (the prefix pass) and one-token completions (no completion pass)."""
    model, tokenizer = model_and_tokenizer
    model.train()
    input_ids, attention_mask, loss_mask, lengths = grouped_batch(
        len(tokenizer), (3, 1, 6), group_size=4, seed=7, shared_prefix=MIN_SHARED_PREFIX + 3,
        max_completion=max_completion)
    assert common_prefix_length(input_ids[::4] * (torch.arange(input_ids.shape[1]) < lengths[::4, None]),
                                lengths[::4]) == MIN_SHARED_PREFIX + 3
    plain = token_logprobs(model, input_ids, attention_mask, loss_mask, temperature=0.7, return_entropy=True)
    grouped = token_logprobs(model, input_ids, attention_mask, loss_mask, temperature=0.7, return_entropy=True,
                             prompt_lengths=lengths, group_size=4)
    assert_same_values_and_grads(model, grouped, plain)


def test_common_prefix_leaves_each_prompt_a_token():
    ids = torch.tensor([[5, 6, 7, 8], [5, 6, 7, 0], [5, 6, 9, 9]])
    assert common_prefix_length(ids, torch.tensor([4, 3, 4])) == 2
    assert common_prefix_length(ids[:2], torch.tensor([4, 3])) == 2  # capped: prompt 1 keeps its last token
    assert common_prefix_length(ids[:1], torch.tensor([4])) == 3
    assert common_prefix_length(torch.tensor([[1, 2], [3, 2]]), torch.tensor([2, 2])) == 0


def test_grouped_path_without_entropy_and_group_of_one(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    input_ids, attention_mask, loss_mask, lengths = grouped_batch(len(tokenizer), (4, 7), group_size=2, seed=2)
    plain = token_logprobs(model, input_ids, attention_mask, loss_mask)
    grouped = token_logprobs(model, input_ids, attention_mask, loss_mask, prompt_lengths=lengths, group_size=2)
    assert_same_values_and_grads(model, (grouped,), (plain,))
    single = token_logprobs(model, input_ids, attention_mask, loss_mask, prompt_lengths=lengths, group_size=1)
    torch.testing.assert_close(single, plain, atol=0, rtol=0)


def test_grouped_path_rejects_bad_groups(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    input_ids, attention_mask, loss_mask, lengths = grouped_batch(len(tokenizer), (4, 7), group_size=2, seed=3)

    def call(ids=input_ids, mask=loss_mask, prompt_lengths=lengths, group_size=2):
        token_logprobs(model, ids, attention_mask, mask, prompt_lengths=prompt_lengths, group_size=group_size)

    with pytest.raises(ValueError, match="whole number of groups"):
        call(group_size=3)
    with pytest.raises(ValueError, match="prompt_lengths .* must be integer"):
        call(prompt_lengths=lengths[:-1])
    with pytest.raises(ValueError, match="prompt_lengths\\[0\\]=0"):
        call(prompt_lengths=torch.cat([torch.zeros(1, dtype=torch.long), lengths[1:]]))
    changed = input_ids.clone()
    changed[3, 0] = (changed[3, 0] + 1) % len(tokenizer)
    with pytest.raises(ValueError, match="group 1"):
        call(ids=changed)
    unequal = lengths.clone()
    unequal[1] -= 1
    with pytest.raises(ValueError, match="group 0"):
        call(prompt_lengths=unequal, mask=loss_mask * (torch.arange(loss_mask.shape[1]) >= 4))
    in_prompt = loss_mask.clone()
    in_prompt[2, 1] = 1
    with pytest.raises(ValueError, match="loss_mask row 2"):
        call(mask=in_prompt)


def counting_layer_calls(monkeypatch, model):
    """A list that grows by one at every decoder-layer forward, the recomputes in backward included."""
    calls, layer_class = [], type(model.model.layers[0])
    original = layer_class.forward

    def forward(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(layer_class, "forward", forward)
    return calls


@pytest.mark.parametrize("layout", ["plain", "grouped", "grouped-shared-prefix"])
def test_gradient_checkpointing_gives_the_same_values_and_gradients(monkeypatch, layout):
    """With enable_gradient_checkpointing every decoder layer runs again in backward, on the plain path and on
    the grouped path too (its prompt KV cache written once in the forward; the recompute replays it, and the
    prompt layers get the completions' gradients through it): log-probs, entropies and every parameter's
    gradient equal the pass without checkpointing. (This replaces a test that the grouped path refused
    gradient checkpointing.)"""
    model, tokenizer = tiny_model("llama", seed=0, layers=2)
    checkpointed, _ = tiny_model("llama", seed=0, layers=2)
    enable_gradient_checkpointing(checkpointed)
    model.train(), checkpointed.train()
    if layout == "plain":
        batch, grouping = right_padded_batch(len(tokenizer), seed=4), {}
    else:
        *batch, lengths = grouped_batch(len(tokenizer), seed=4, shared_prefix=MIN_SHARED_PREFIX + 2 if
                                        layout == "grouped-shared-prefix" else 0)
        grouping = {"prompt_lengths": lengths, "group_size": 3}
    calls = counting_layer_calls(monkeypatch, model)
    expected = token_logprobs(model, *batch, temperature=0.7, return_entropy=True, **grouping)
    expected_grads = grads_of(model, expected)
    plain_calls, calls[:] = len(calls), []
    got = token_logprobs(checkpointed, *batch, temperature=0.7, return_entropy=True, **grouping)
    forward_calls = len(calls)
    got_grads = grads_of(checkpointed, got)
    assert forward_calls == plain_calls and len(calls) == 2 * plain_calls  # each layer recomputed once
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e, atol=1e-6, rtol=1e-6)
    for g, e in zip(got_grads, expected_grads, strict=True):
        torch.testing.assert_close(g, e, atol=1e-6 * max(1.0, e.abs().max().item()), rtol=1e-6)
    assert all("forward" not in vars(layer) for layer in checkpointed.model.layers)  # the layers as they were
    calls[:] = []
    with torch.no_grad():  # reference / old log-probs: nothing to recompute, the same values
        again = token_logprobs(checkpointed, *batch, temperature=0.7, **grouping)
    assert len(calls) == plain_calls
    torch.testing.assert_close(again, expected[0].detach(), atol=1e-6, rtol=1e-6)
