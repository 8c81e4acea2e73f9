"""Tests for j1core/engine/rollout.py (+ decoder.py, kv_cache.py): the engine against Hugging Face on tiny models.

Tiny models use initializer_range=0.2 so logits are spread out: with the default 0.02 the 49k-way greedy
choice of a random model has near-ties that float rounding (engine vs HF kernels) could flip.
"""
import pytest
import torch

from j1core.engine.attention import BlockAttention
from j1core.engine.decoder import CompactDecoder
from j1core.engine.packed_linear import packing_available
from j1core.engine.rollout import RolloutEngine
from j1core.engine.schedule import plan_waves
from j1core.model import tiny_model
from tests.engine.reference import teacher_forced_logprobs

PROMPTS = [[1, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 100, 101],  # shares 11 tokens with the next prompt
           [1, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 200, 300, 400],
           [4, 3, 2000]]


def make_model(arch, seed=0):
    model, tokenizer = tiny_model(arch, seed=seed, initializer_range=0.2)
    with torch.no_grad():  # Qwen2 q/k/v biases start at zero: make them matter
        for name, param in model.named_parameters():
            if name.endswith("bias"):
                param.normal_(0, 0.2)
    return model, tokenizer


@pytest.fixture(scope="module", params=["llama", "qwen2"])
def tiny(request):
    """Both architectures: for the tests that compare with Hugging Face."""
    return make_model(request.param)


@pytest.fixture(scope="module")
def llama():
    """One architecture: for the tests of the engine's own scheduling, which does not depend on it."""
    return make_model("llama")



def test_greedy_matches_hf_generate(tiny):
    model, tokenizer = tiny
    out = RolloutEngine(model, tokenizer).generate(PROMPTS, n=2, max_new_tokens=8, temperature=0)
    for prompt, samples in zip(PROMPTS, out):
        ref = model.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=8,
                             pad_token_id=tokenizer.pad_token_id)[0, len(prompt):].tolist()
        for sample in samples:
            assert sample.token_ids == ref[:len(sample.token_ids)]
            assert (sample.finish_reason == "eos") == (len(sample.token_ids) < 8)


@pytest.mark.parametrize("temperature", [0.0, 1.3])
def test_logprobs_match_teacher_forced_forward(tiny, temperature):
    model, tokenizer = tiny
    out = RolloutEngine(model, tokenizer).generate(PROMPTS, n=3, max_new_tokens=6, temperature=temperature,
                                                   seed=1)
    for prompt, samples in zip(PROMPTS, out):
        for sample in samples:
            ref = teacher_forced_logprobs(model, prompt, sample.token_ids, temperature or 1.0)
            torch.testing.assert_close(torch.tensor(sample.logprobs), ref, atol=1e-4, rtol=0)


def test_generation_cache_growing_past_its_blocks_matches_hf(tiny, monkeypatch):
    """Decode reads the generation cache's whole width, masking the columns not yet written: with 3-column
    blocks the cache grows (and is compacted as rows stop) several times in 10 tokens, and greedy tokens and
    sampled log-probs still equal Hugging Face's."""
    monkeypatch.setattr("j1core.engine.rollout.GEN_BLOCK", 3)
    model, tokenizer = tiny
    engine = RolloutEngine(model, tokenizer)
    greedy = engine.generate(PROMPTS, n=2, max_new_tokens=10, temperature=0)
    for prompt, samples in zip(PROMPTS, greedy):
        ref = model.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=10,
                             pad_token_id=tokenizer.pad_token_id)[0, len(prompt):].tolist()
        assert [s.token_ids for s in samples] == [ref[:len(samples[0].token_ids)]] * 2
    stop = [greedy[1][0].token_ids[4]]  # some rows stop early: compaction between growths
    sampled = engine.generate(PROMPTS, n=3, max_new_tokens=10, temperature=1.3, seed=2, stop_token_ids=stop)
    for prompt, samples in zip(PROMPTS, sampled):
        for sample in samples:
            ref = teacher_forced_logprobs(model, prompt, sample.token_ids, 1.3)
            torch.testing.assert_close(torch.tensor(sample.logprobs), ref, atol=1e-4, rtol=0)


def test_batched_prompts_of_different_lengths_equal_each_alone(llama):
    model, tokenizer = llama
    engine = RolloutEngine(model, tokenizer)
    batched = engine.generate(PROMPTS, n=1, max_new_tokens=8, temperature=0)
    for prompt, samples in zip(PROMPTS, batched):
        alone = engine.generate([prompt], n=1, max_new_tokens=8, temperature=0)[0][0]
        assert samples[0].token_ids == alone.token_ids
        torch.testing.assert_close(torch.tensor(samples[0].logprobs), torch.tensor(alone.logprobs),
                                   atol=1e-5, rtol=0)


def assert_same_samples(one, other):
    """Two generate() results: the same tokens, log-probs within float32 rounding."""
    for a_group, b_group in zip(one, other):
        for a, b in zip(a_group, b_group):
            assert a.token_ids == b.token_ids
            torch.testing.assert_close(torch.tensor(a.logprobs), torch.tensor(b.logprobs), atol=1e-5, rtol=0)


def test_shared_prefix_prefill_equals_independent_prefill(llama, monkeypatch):
    model, tokenizer = llama
    engine = RolloutEngine(model, tokenizer)
    shared = engine.generate(PROMPTS, n=2, max_new_tokens=6, temperature=0.8, seed=3)
    monkeypatch.setattr("j1core.engine.schedule.MIN_SHARED_PREFIX", 10**9)  # no grouping
    independent = engine.generate(PROMPTS, n=2, max_new_tokens=6, temperature=0.8, seed=3)
    assert_same_samples(shared, independent)


def test_prefill_in_length_blocks_equals_one_padded_block(llama, monkeypatch):
    model, tokenizer = llama
    engine = RolloutEngine(model, tokenizer)
    # one shared opening, remainders of 1 to 30 tokens: cut into several blocks at cost 0, one block at 10**9
    opening = list(range(50, 62))
    prompts = [opening + [(7 * i + k) % 900 + 3 for k in range(r)] for i, r in enumerate([30, 1, 17, 2, 29, 9])]
    results = {}
    for cost in (0, 10**9):
        monkeypatch.setattr("j1core.engine.schedule.PAD_CHUNK_COST", cost)
        results[cost] = engine.generate(prompts, n=2, max_new_tokens=5, temperature=0.8, seed=1)
    assert_same_samples(results[0], results[10**9])


def test_wave_prefix_prefill_equals_group_prefill(llama, monkeypatch):
    model, tokenizer = llama
    engine = RolloutEngine(model, tokenizer)
    # a wave-wide opening of 12 tokens; prompts 0-1 share 5 more (a pair), 2 and 3 only the opening
    opening = list(range(50, 62))
    prompts = [opening + [7, 8, 9, 10, 11, 300], opening + [7, 8, 9, 10, 11, 400, 401], opening + [900, 5],
               opening + [800, 6, 7, 8]]
    with_wave = engine.generate(prompts, n=2, max_new_tokens=5, temperature=0.8, seed=2)
    monkeypatch.setattr("j1core.engine.rollout.wave_prefix", lambda prompts: 0)
    without = engine.generate(prompts, n=2, max_new_tokens=5, temperature=0.8, seed=2)
    assert_same_samples(with_wave, without)


def test_seeded_sampling_is_reproducible_and_seed_dependent(llama):
    model, tokenizer = llama
    engine = RolloutEngine(model, tokenizer)

    def run(seed):
        return [[c.token_ids for c in group] for group in engine.generate(PROMPTS, n=2, max_new_tokens=6,
                                                                           seed=seed)]
    assert run(7) == run(7)
    assert run(7) != run(8)


def test_stop_tokens_and_min_new_tokens(llama):
    model, tokenizer = llama
    engine = RolloutEngine(model, tokenizer)
    prompt = PROMPTS[2]
    greedy = engine.generate([prompt], max_new_tokens=8, temperature=0)[0][0].token_ids
    first = next(i for i in range(1, 8) if greedy[i] not in greedy[:i])  # greedy may repeat a token
    stop = greedy[first]
    stopped = engine.generate([prompt], max_new_tokens=8, temperature=0, stop_token_ids=[stop])[0][0]
    assert stopped.token_ids == greedy[:first + 1] and stopped.finish_reason == "eos"
    held = engine.generate([prompt], max_new_tokens=8, temperature=0, stop_token_ids=[stop],
                           min_new_tokens=first + 2)[0][0]
    assert stop not in held.token_ids[:first + 2] and len(held.token_ids) >= first + 2
    full = engine.generate([prompt], n=4, max_new_tokens=6, temperature=1.5, min_new_tokens=6,
                           stop_token_ids=greedy[:4])[0]
    for c in full:
        assert len(c.token_ids) == 6 and c.finish_reason == "length"
        assert not set(c.token_ids) & set(greedy[:4] + [tokenizer.eos_token_id])


def test_finished_rows_are_compacted_without_changing_the_rest(llama):
    model, tokenizer = llama
    engine = RolloutEngine(model, tokenizer)
    first = engine.generate([PROMPTS[0]], max_new_tokens=8, temperature=0)[0][0].token_ids
    stop = [first[1]]  # prompt 0 stops at step 2 (or 1), the others go on in a smaller batch
    batched = engine.generate(PROMPTS, max_new_tokens=8, temperature=0, stop_token_ids=stop)
    assert batched[0][0].token_ids == first[:first.index(stop[0]) + 1]
    for prompt, samples in zip(PROMPTS, batched):
        alone = engine.generate([prompt], max_new_tokens=8, temperature=0, stop_token_ids=stop)[0][0]
        assert samples[0].token_ids == alone.token_ids and samples[0].finish_reason == alone.finish_reason


def test_waves_under_token_budget_give_the_same_results(llama):
    model, tokenizer = llama
    one_wave = RolloutEngine(model, tokenizer).generate(PROMPTS, n=2, max_new_tokens=5, temperature=0)
    tight = RolloutEngine(model, tokenizer, max_batch_tokens=2 * (14 + 5))
    assert len(plan_waves([len(p) for p in PROMPTS], 2, 5, tight.max_batch_tokens)) == 3
    waves = tight.generate(PROMPTS, n=2, max_new_tokens=5, temperature=0)
    assert [[c.token_ids for c in g] for g in waves] == [[c.token_ids for c in g] for g in one_wave]


def test_unsupported_architectures_are_refused():
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50))
    with pytest.raises(ValueError, match="model_type 'gpt2' is not supported"):
        RolloutEngine(gpt2)
    scaled, _ = tiny_model("llama", rope_parameters={"rope_type": "dynamic", "factor": 2.0, "rope_theta": 1e4})
    with pytest.raises(ValueError, match="rope type 'dynamic'"):
        RolloutEngine(scaled)


def test_load_weights_switches_to_the_new_model(tiny):
    model, tokenizer = tiny
    other, _ = make_model(model.config.model_type, seed=1)
    expected = RolloutEngine(other, tokenizer).generate(PROMPTS, max_new_tokens=6, temperature=0)
    engine = RolloutEngine(model, tokenizer)
    before = engine.generate(PROMPTS, max_new_tokens=6, temperature=0)
    engine.load_weights(other)
    assert engine.generate(PROMPTS, max_new_tokens=6, temperature=0) == expected != before
    engine.load_weights(model.state_dict())
    assert engine.generate(PROMPTS, max_new_tokens=6, temperature=0) == before
    handed_over = RolloutEngine(model, tokenizer, state_dict=other.state_dict())  # e.g. gathered under ZeRO-3
    assert handed_over.generate(PROMPTS, max_new_tokens=6, temperature=0) == expected


@pytest.mark.slow
def test_smollm2_greedy_matches_hf_generate():
    from j1core.model import load_model

    model, tokenizer = load_model("smollm2-135m-instruct")
    prompts = [tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True)
               for text in ("What is 2 + 2?", "Name a colour of the sky.")]
    prompts = [p if isinstance(p, list) else p["input_ids"] for p in prompts]
    out = RolloutEngine(model, tokenizer).generate(prompts, max_new_tokens=8, temperature=0)
    for prompt, samples in zip(prompts, out):
        ref = model.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=8,
                             pad_token_id=tokenizer.pad_token_id)[0, len(prompt):].tolist()
        assert samples[0].token_ids == ref[:len(samples[0].token_ids)]


def test_per_prompt_seeds_make_samples_independent_of_the_batch(llama):
    model, tok = llama
    engine = RolloutEngine(model, tok)
    prompts = [tok.encode("first prompt here"), tok.encode("second, longer prompt here"), tok.encode("third")]
    together = engine.generate(prompts, n=3, max_new_tokens=6, temperature=1.0, seed=[11, 22, 33])
    alone = engine.generate(prompts[1:2], n=3, max_new_tokens=6, temperature=1.0, seed=[22])
    assert [c.token_ids for c in together[1]] == [c.token_ids for c in alone[0]]
    other = engine.generate(prompts[1:2], n=3, max_new_tokens=6, temperature=1.0, seed=[23])
    assert [c.token_ids for c in other[0]] != [c.token_ids for c in alone[0]]


@pytest.mark.parametrize("cap", [0, 1, 5])
def test_forced_tail_feeds_the_suffix_then_chooses_a_letter(llama, cap):
    model, tok = llama
    engine = RolloutEngine(model, tok)
    suffix, choices = tok.encode("</think>\n<answer>[["), [tok.convert_tokens_to_ids("A"),
                                                           tok.convert_tokens_to_ids("B")]
    prompt = tok.encode("Which is better, A or B?")
    groups = engine.generate([prompt], n=6, max_new_tokens=cap, temperature=1.0, seed=3,
                             forced_suffix=suffix, choice_ids=choices)
    for c in groups[0]:
        free = len(c.token_ids) - len(suffix) - 1
        assert 0 <= free <= cap
        assert c.token_ids[free:-1] == suffix and c.token_ids[-1] in choices
        assert c.forced == [False] * free + [True] * len(suffix) + [False]
        assert all(t not in engine.eos_ids for t in c.token_ids)
        assert all(lp == 0.0 for lp, f in zip(c.logprobs, c.forced) if f)
        expected = teacher_forced_logprobs(model, prompt, c.token_ids)
        sampled = [i for i, f in enumerate(c.forced) if not f]
        assert torch.allclose(torch.tensor([c.logprobs[i] for i in sampled]), expected[sampled], atol=1e-4)


@pytest.mark.parametrize("cap", [0, 3])
def test_choice_logprobs_are_the_letter_distribution_of_a_plain_forward(tiny, cap):
    """choice_logprobs: log-softmax over the choices' logits at T = 1 after prompt + free tokens + suffix,
    whatever the sampling temperature; free completions carry None."""
    model, tok = tiny
    suffix, choices = tok.encode("</think>\n<answer>[["), [tok.convert_tokens_to_ids("A"),
                                                           tok.convert_tokens_to_ids("B")]
    engine = RolloutEngine(model, tok)
    groups = engine.generate(PROMPTS, n=3, max_new_tokens=cap, temperature=1.7, seed=5, forced_suffix=suffix,
                             choice_ids=choices)
    for prompt, group in zip(PROMPTS, groups):
        for c in group:
            with torch.no_grad():
                logits = model(torch.tensor([prompt + c.token_ids[:-1]])).logits[0, -1, choices].float()
            torch.testing.assert_close(torch.tensor(c.choice_logprobs), torch.log_softmax(logits, -1),
                                       atol=1e-4, rtol=0)
    assert all(c.choice_logprobs is None for c in engine.generate(PROMPTS, n=1, max_new_tokens=2)[0])


def test_greedy_choice_is_the_argmax_letter(llama):
    model, tok = llama
    choices = [tok.convert_tokens_to_ids("A"), tok.convert_tokens_to_ids("B")]
    engine = RolloutEngine(model, tok)
    for prompt in PROMPTS:
        c = engine.generate([prompt], max_new_tokens=0, temperature=0.0, forced_suffix=[], choice_ids=choices)[0][0]
        with torch.no_grad():
            logits = model(torch.tensor([prompt])).logits[0, -1, choices]
        assert c.token_ids == [choices[int(logits.argmax())]]
        assert c.choice_logprobs[0] == pytest.approx(float(torch.log_softmax(logits, -1)[0]), abs=1e-4)


def test_forced_tail_replaces_a_sampled_stop_token(llama):
    model, tok = llama
    engine = RolloutEngine(model, tok)
    suffix, choices = [5, 6], [7, 8]
    prompt = tok.encode("stop early")
    free_run = engine.generate([prompt], n=1, max_new_tokens=1, temperature=0.0)[0][0]
    stop = [free_run.token_ids[0]]  # make the greedy first token a stop token
    c = engine.generate([prompt], n=1, max_new_tokens=4, temperature=0.0, stop_token_ids=stop,
                        forced_suffix=suffix, choice_ids=choices)[0][0]
    assert c.token_ids[:2] == suffix and c.token_ids[2] in choices and c.finish_reason == "eos"


def test_sliced_lm_head_equals_one_matmul():
    """The unpacked CPU LM head runs the vocabulary in slices; every logit must equal the single-matmul one."""
    model, _ = tiny_model("llama", seed=4, layers=1)
    decoder = CompactDecoder(model.config, dict(model.state_dict()), packed=False)
    hidden = torch.randn(5, model.config.hidden_size, generator=torch.Generator().manual_seed(0))
    expected = torch.nn.functional.linear(hidden, model.get_output_embeddings().weight)
    assert decoder.weights["lm_head"].shape[0] > 2 * 2048  # the sliced path is the one taken
    torch.testing.assert_close(decoder.lm_head(hidden), expected, atol=1e-6, rtol=1e-6)


@pytest.mark.skipif(not packing_available(torch.device("cpu"), torch.float32), reason="no oneDNN packing")
@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_packed_decoder_matches_plain_decoder(arch):
    """Packed weights (the CPU default) against the plain layout: same logits on random tokens, before and
    after new weights are loaded (the tied LM head is a packed copy of the embedding and must follow it)."""
    model, _ = make_model(arch, seed=5)
    other, _ = make_model(arch, seed=6)
    state = dict(model.state_dict())
    packed, plain = CompactDecoder(model.config, state, packed=True), CompactDecoder(model.config, state, packed=False)
    assert packed.weights["0.gate_up"].is_mkldnn and not plain.weights["0.gate_up"].is_mkldnn
    tokens = torch.randint(0, model.config.vocab_size, (3, 9), generator=torch.Generator().manual_seed(0))
    positions = torch.arange(9).expand(3, 9)

    def logits(decoder):
        cache = decoder.new_cache(3, 9)
        mask = torch.ones(9, 9, dtype=torch.bool).tril().expand(3, 1, 9, 9)
        return decoder.forward(tokens, positions, BlockAttention(cache, 0, mask), torch.tensor([8, 4, 0]))

    before = logits(plain)
    torch.testing.assert_close(logits(packed), before, atol=1e-4, rtol=1e-4)
    for decoder in (packed, plain):
        decoder.load_state_dict(dict(other.state_dict()))
    after = logits(plain)
    assert (after - before).abs().max() > 1e-2
    torch.testing.assert_close(logits(packed), after, atol=1e-4, rtol=1e-4)


def test_arena_memory_left_dirty_does_not_change_results(llama):
    """The engine reuses its KV memory between calls and zeroes only prompt padding: a second call over
    memory filled with NaN (the worst leftover) must give what a fresh engine gives, samples and log-probs."""
    model, tokenizer = llama
    args = dict(n=3, max_new_tokens=6, temperature=1.0, seed=7)
    fresh = RolloutEngine(model, tokenizer).generate(PROMPTS, **args)
    engine = RolloutEngine(model, tokenizer)
    engine.generate([[9] * 40, [3] * 25], n=4, max_new_tokens=10, temperature=1.0)  # larger buffers first
    for buf in engine.arena.buffers.values():
        buf.fill_(float("nan"))
    reused = engine.generate(PROMPTS, **args)
    assert engine.arena.nbytes() > 0  # CPU: kept for the next call
    engine.release()
    assert engine.arena.nbytes() == 0
    for a, b in zip(fresh, reused):
        for x, y in zip(a, b):
            assert x.token_ids == y.token_ids
            torch.testing.assert_close(torch.tensor(x.logprobs), torch.tensor(y.logprobs))


def test_cache_arena_reuses_and_grows():
    from j1core.engine.kv_cache import CacheArena

    arena = CacheArena()
    first = arena.take("gen", 100, torch.float32, "cpu")
    assert arena.take("gen", 60, torch.float32, "cpu").data_ptr() == first.data_ptr()  # fits: same memory
    grown = arena.take("gen", 500, torch.float32, "cpu")
    assert grown.numel() == 500 and arena.nbytes() == 500 * 4
    assert arena.take("other", 10, torch.float32, "cpu").data_ptr() != grown.data_ptr()



def test_empty_forced_suffix_chooses_from_the_prefill(llama):
    """A prompt that already ends with the suffix: the letter comes from the prefill's logits, with the same
    distribution as when the engine feeds the suffix's last token itself."""
    model, tok = llama
    engine = RolloutEngine(model, tok)
    suffix, choices = tok.encode("</think>\n<answer>[["), [tok.convert_tokens_to_ids("A"),
                                                           tok.convert_tokens_to_ids("B")]
    prompt = tok.encode("Which is better, A or B?")
    prefilled = engine.generate([prompt + suffix], n=4, max_new_tokens=0, temperature=0.0, forced_suffix=[],
                                choice_ids=choices)[0]
    fed = engine.generate([prompt + suffix[:-1]], n=4, max_new_tokens=0, temperature=0.0,
                          forced_suffix=suffix[-1:], choice_ids=choices)[0]
    for a, b in zip(prefilled, fed):
        assert a.forced == [False] and a.token_ids == b.token_ids[-1:]
        assert a.logprobs[0] == pytest.approx(b.logprobs[-1], abs=1e-5)
    with pytest.raises(ValueError, match="empty forced_suffix"):
        engine.generate([prompt], n=1, max_new_tokens=2, forced_suffix=[], choice_ids=choices)
