"""Tests for kernels/decode_attention.py: the C++ decode attention against the PyTorch path and the plain
per-row reference, in float32 and bfloat16; the engine with and without it; the fallback when it cannot be
built."""
import pytest
import torch

import kernels.decode_attention as decode_attention
from j1core.engine.attention import SharedPromptAttention
from j1core.engine.kv_cache import KVCache
from j1core.engine.rollout import RolloutEngine
from tests.engine.reference import shared_prompt_attention_reference
from tests.engine.test_rollout import PROMPTS, make_model

KERNEL = decode_attention.load()
needs_kernel = pytest.mark.skipif(KERNEL is None, reason="the C++ decode attention could not be built here "
                                                         "(no compiler or ninja, or J1_CPU_KERNELS=0)")
LAYERS, KV, GROUPS, DIM = 2, 2, 3, 16


def random_cache(batch, length, gen, dtype, dim=DIM):
    cache = KVCache(LAYERS, batch, KV, length, dim, dtype, "cpu")
    cache.data.copy_(torch.randn(cache.data.shape, generator=gen))
    return cache


def step_inputs(live, col, window, dtype, seed=0, dim=DIM):
    gen = torch.Generator().manual_seed(seed)
    prompts, n, width = 3, 3, 9
    lengths = torch.tensor([9, 4, 6])
    valid = torch.arange(width)[None, :] < lengths[:, None]
    bias = torch.zeros(prompts, 1, 1, width, dtype=dtype).masked_fill(~valid[:, None, None, :], float("-inf"))
    prompt_cache = random_cache(prompts, width, gen, dtype, dim)
    gen_cache = random_cache(len(live), col + 5, gen, dtype, dim)  # columns after col hold noise: never seen
    q = torch.randn(len(live), KV * GROUPS, 1, dim, generator=gen).to(dtype)
    k, v = torch.randn(2, len(live), KV, 1, dim, generator=gen).to(dtype)
    windows = [None, window]
    return dict(prompt_cache=prompt_cache, prompt_bias=bias, gen_cache=gen_cache, col=col,
                slots=torch.tensor(live), n=n, windows=windows, prompt_lengths=lengths), (q, k, v), valid


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("live", [list(range(9)), [0, 4, 5, 8], [7]])
@pytest.mark.parametrize("window", [None, 3])
@pytest.mark.parametrize("dim", [DIM, 64])  # 64: bfloat16 dot products by vdpbf16ps where built (DIM % 32 == 0)
@pytest.mark.parametrize("col", [6, 7])  # odd and even numbers of generated columns (pairs of value rows)
def test_kernel_matches_pytorch_path_and_reference(dtype, live, window, dim, col):
    for layer in range(LAYERS):
        args, (q, k, v), valid = step_inputs(live, col, window, dtype, seed=len(live) + layer, dim=dim)
        plain_args, _, _ = step_inputs(live, col, window, dtype, seed=len(live) + layer, dim=dim)
        fast = SharedPromptAttention(**args, kernel=KERNEL)(layer, q, k, v)
        plain = SharedPromptAttention(**plain_args)(layer, q, k, v)
        assert fast.shape == plain.shape and fast.dtype == dtype
        tol = dict(atol=1e-5, rtol=1e-5) if dtype == torch.float32 else dict(atol=2e-2, rtol=2e-2)
        torch.testing.assert_close(fast, plain, **tol)
        if args["windows"][layer] is None:  # the reference knows no windows
            cache = args["prompt_cache"].data[layer]
            keys, values = args["gen_cache"].read(layer, col + 1)
            ref = shared_prompt_attention_reference(q.float(), cache[0].float(), cache[1].float(), valid,
                                                    keys.float(), values.float(), args["slots"] // args["n"])
            torch.testing.assert_close(fast.float(), ref, **tol)


@needs_kernel
def test_kernel_refuses_what_it_cannot_read():
    args, (q, _, _), _ = step_inputs([0, 1], 2, None, torch.float32)
    p_keys, p_values = args["prompt_cache"].read(0, 9)
    g_keys, g_values = args["gen_cache"].data[0]
    bias = args["prompt_bias"].reshape(3, 9).float()
    good = (q.reshape(2, KV * GROUPS, DIM), p_keys, p_values, bias, g_keys, g_values, torch.tensor([0, 0]))
    assert KERNEL.decode_attention(*good, 0, 3, 0.25).shape == (2, KV * GROUPS * DIM)
    with pytest.raises(RuntimeError, match="shapes"):
        KERNEL.decode_attention(*good, 0, 99, 0.25)  # past the generated columns
    with pytest.raises(RuntimeError, match="prompt_of"):
        KERNEL.decode_attention(*good[:-1], torch.tensor([0, 3]), 0, 3, 0.25)  # 3 prompts: 0..2
    with pytest.raises(RuntimeError, match="contiguous"):
        KERNEL.decode_attention(good[0].transpose(0, 1), *good[1:], 0, 3, 0.25)
    with pytest.raises(RuntimeError, match="dtype"):
        KERNEL.decode_attention(good[0].double(), *good[1:], 0, 3, 0.25)


@needs_kernel
@pytest.mark.parametrize("arch", ["llama", "qwen3"])
def test_engine_with_and_without_the_kernel_agree(arch):
    model, tokenizer = make_model(arch)
    runs = [RolloutEngine(model, tokenizer, decode_kernel=use).generate(PROMPTS, n=3, max_new_tokens=9,
                                                                         temperature=1.0, seed=3)
            for use in (True, False)]
    for fast, plain in zip(*runs):
        for x, y in zip(fast, plain):
            assert x.token_ids == y.token_ids
            torch.testing.assert_close(torch.tensor(x.logprobs), torch.tensor(y.logprobs), atol=1e-4, rtol=0)


@needs_kernel
def test_bfloat16_dot_products_are_built_where_the_cpu_has_them():
    flags = decode_attention.cpu_flags().split()
    assert KERNEL.bf16_dot() == ("avx512_bf16" in flags)


def test_disabled_or_failed_build_falls_back(monkeypatch):
    decode_attention.load.cache_clear()
    monkeypatch.setenv("J1_CPU_KERNELS", "0")
    assert decode_attention.load() is None
    monkeypatch.delenv("J1_CPU_KERNELS")
    decode_attention.load.cache_clear()

    def no_compiler(**kwargs):
        raise OSError("no C++ compiler\nmore lines")

    monkeypatch.setattr("torch.utils.cpp_extension.load", no_compiler)
    with pytest.warns(UserWarning, match=r"not built \(no C\+\+ compiler\)"):
        assert decode_attention.load() is None
    model, tokenizer = make_model("llama")
    assert RolloutEngine(model, tokenizer).decode_kernel is None
    with pytest.raises(ValueError, match="decode_kernel=True"):
        RolloutEngine(model, tokenizer, decode_kernel=True)
    decode_attention.load.cache_clear()
