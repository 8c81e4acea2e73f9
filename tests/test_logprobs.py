"""Tests of j1core/logprobs.py: trainer log-probs equal a full-logits forward, values and parameter gradients.

    python -m pytest tests/test_logprobs.py -q
"""
from __future__ import annotations

import pytest
import torch

from j1core.logprobs import token_logprobs
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
