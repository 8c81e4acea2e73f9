"""Tests for j1core/engine/precision.py and the bfloat16 rollout path it chooses: against the float32 engine.

bfloat16 keeps 8 bits of mantissa, so its greedy choice may differ from float32's where the top two logits are
nearly tied; the checks are that it agrees wherever float32's choice is clear, that its log-probs stay close,
and that packed and plain bfloat16 weights compute the same thing.
"""
import pytest
import torch

from j1core.engine import precision
from j1core.engine.attention import BlockAttention
from j1core.engine.decoder import CompactDecoder
from j1core.engine.packed_linear import packing_available
from j1core.engine.rollout import RolloutEngine
from j1core.model import tiny_model

CLEAR_MARGIN = 0.5  # nats between float32's two best logits: a choice bfloat16 must not flip
NATIVE_BF16 = packing_available(torch.device("cpu"), torch.bfloat16)


def test_named_choices_and_model_dtype():
    model = tiny_model("llama", layers=1)[0]
    model16 = tiny_model("llama", layers=1)[0].to(torch.bfloat16)
    assert precision.rollout_dtype("fp32", model16, "cpu")[0] == torch.float32
    assert precision.rollout_dtype("bf16", model, "cpu")[0] == torch.bfloat16
    assert precision.rollout_dtype("model", model, "cpu")[0] == torch.float32
    assert precision.rollout_dtype("auto", model16, "cpu")[0] == torch.bfloat16
    with pytest.raises(ValueError, match="--rollout-dtype: 'fp16'"):
        precision.rollout_dtype("fp16", model, "cpu")


def test_auto_picks_bfloat16_only_where_measured_faster(monkeypatch):
    model = tiny_model("llama", layers=1)[0]
    monkeypatch.setattr(precision, "bf16_matmul_native", lambda device: True)
    monkeypatch.setattr(precision, "bf16_speedup", lambda hidden, intermediate: 2.5)
    dtype, why = precision.rollout_dtype("auto", model, "cpu")
    assert dtype == torch.bfloat16 and "2.5x" in why
    monkeypatch.setattr(precision, "bf16_speedup", lambda hidden, intermediate: 1.05)
    assert precision.rollout_dtype("auto", model, "cpu")[0] == torch.float32
    monkeypatch.setattr(precision, "bf16_matmul_native", lambda device: False)
    monkeypatch.setattr(precision, "bf16_speedup", lambda *a: pytest.fail("measured without bf16 instructions"))
    dtype, why = precision.rollout_dtype("auto", model, "cpu")
    assert dtype == torch.float32 and "no bfloat16" in why
    assert not precision.bf16_matmul_native("meta")


def test_speedup_is_measured_once_per_shape():
    first = precision.bf16_speedup(64, 96, repeats=1)
    assert first > 0
    assert precision.bf16_speedup(64, 96, repeats=1) == first  # cached, not timed again


@pytest.mark.skipif(not NATIVE_BF16, reason="no bfloat16 matrix instructions on this CPU: bfloat16 is not packed")
@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_packed_bfloat16_decoder_matches_plain_bfloat16(arch):
    model, _ = tiny_model(arch, seed=5, initializer_range=0.2)
    state = dict(model.state_dict())
    packed = CompactDecoder(model.config, state, dtype=torch.bfloat16, packed=True)
    plain = CompactDecoder(model.config, state, dtype=torch.bfloat16, packed=False)
    assert packed.weights["0.gate_up"].is_mkldnn and not plain.weights["0.gate_up"].is_mkldnn
    tokens = torch.randint(0, model.config.vocab_size, (3, 9), generator=torch.Generator().manual_seed(0))

    def logits(decoder):
        cache = decoder.new_cache(3, 9)
        assert cache.data.dtype == torch.bfloat16  # the KV is bfloat16 too
        mask = torch.ones(9, 9, dtype=torch.bool).tril().expand(3, 1, 9, 9)
        return decoder.forward(tokens, torch.arange(9).expand(3, 9), BlockAttention(cache, 0, mask),
                               torch.tensor([8, 4, 0]))

    expected = logits(plain)
    assert expected.dtype == torch.float32
    torch.testing.assert_close(logits(packed), expected, atol=0.1, rtol=0.05)


def prefix_logits(engine, sequences: list[list[int]], starts: list[int]) -> torch.Tensor:
    """float32 logits after every prefix seq[:t], t = start .. len - 1, of each sequence: one batched forward."""
    rests = [seq[:t] for seq, start in zip(sequences, starts) for t in range(start, len(seq))]
    cache = engine.decoder.new_cache(len(rests), max(len(r) for r in rests))
    return engine.run_block(rests, cache, 0, logits=True)


@pytest.mark.slow
def test_smollm2_bfloat16_rollout_agrees_with_float32_where_the_choice_is_clear():
    from j1core.judge.prompts import judge_prompt_ids
    from j1core.model import load_model

    model, tokenizer = load_model("smollm2-135m-instruct")
    pairs = [("What is 2 + 2?", "4", "5"), ("Name a colour of the sky.", "Blue.", "The sky is green."),
             ("Capital of France?", "Paris", "Lyon")]
    prompts = [judge_prompt_ids(tokenizer, "pairwise", *pair) for pair in pairs]
    fp32, bf16 = RolloutEngine(model, tokenizer), RolloutEngine(model, tokenizer, dtype=torch.bfloat16)
    assert bf16.decoder.dtype == torch.bfloat16 and bf16.decoder.packed == NATIVE_BF16
    greedy32 = [group[0] for group in fp32.generate(prompts, max_new_tokens=24, temperature=0)]
    greedy16 = [group[0] for group in bf16.generate(prompts, max_new_tokens=24, temperature=0)]
    sequences = [p + c.token_ids for p, c in zip(prompts, greedy32)]
    ref = prefix_logits(fp32, sequences, [len(p) for p in prompts])
    low = prefix_logits(bf16, sequences, [len(p) for p in prompts])
    top2 = ref.topk(2, dim=-1).values
    clear = (top2[:, 0] - top2[:, 1]) > CLEAR_MARGIN
    assert clear.float().mean() > 0.5  # the check below covers most positions
    assert torch.equal(low.argmax(-1)[clear], ref.argmax(-1)[clear])
    # log-probs of float32's greedy tokens under both
    chosen = torch.tensor([t for c in greedy32 for t in c.token_ids])
    gap = (low.log_softmax(-1) - ref.log_softmax(-1)).gather(1, chosen[:, None]).abs()
    assert gap.mean() < 0.05 and gap.max() < 0.3
    # the engine's own greedy decode follows float32's until a near-tie
    row = 0
    for c32, c16 in zip(greedy32, greedy16):
        for k, (a, b) in enumerate(zip(c32.token_ids, c16.token_ids)):
            if a != b:
                assert not clear[row + k], f"bfloat16 left float32's greedy path at a clear choice (token {k})"
                break
        row += len(c32.token_ids)
    # the forced verdict's letter distribution, what evaluation records
    choices = [tokenizer.encode(letter, add_special_tokens=False)[0] for letter in "AB"]
    verdicts = [engine.generate(prompts, max_new_tokens=0, temperature=0, forced_suffix=[], choice_ids=choices)
                for engine in (fp32, bf16)]
    for a, b in zip(*verdicts):
        assert abs(a[0].choice_logprobs[0] - b[0].choice_logprobs[0]) < 0.05


def test_cpu_bfloat16_rms_norm_is_the_float32_norm_rounded_once():
    model, _ = tiny_model("llama", seed=2, layers=1)
    decoder = CompactDecoder(model.config, dict(model.state_dict()), dtype=torch.bfloat16)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, model.config.hidden_size, generator=gen).bfloat16()
    weight = (torch.rand(model.config.hidden_size, generator=gen) + 0.5).bfloat16()
    x32 = x.float()
    exact = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + decoder.eps) * weight.float()
    got = decoder.rms_norm(x, weight)
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), exact, atol=0, rtol=2 ** -8)  # within one bfloat16 rounding


def test_train_dtype_auto_is_bf16_only_with_bfloat16_matrix_instructions(monkeypatch):
    assert precision.train_dtype("fp32", "cpu") == ("fp32", "asked for")
    assert precision.train_dtype("bf16", "cpu") == ("bf16", "asked for")
    monkeypatch.setattr(precision, "bf16_matmul_native", lambda device: True)
    dtype, why = precision.train_dtype("auto", "cpu")
    assert dtype == "bf16" and "bfloat16 matrix instructions" in why
    monkeypatch.setattr(precision, "bf16_matmul_native", lambda device: False)
    assert precision.train_dtype("auto", "cpu")[0] == "fp32"
