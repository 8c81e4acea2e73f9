"""Sliding-window attention past the window: the rollout engine (j1core/engine/attention.py) and the trainer's
log-prob pass (j1core/logprobs.py) against Hugging Face, with a window of 8 and sequences of up to 26 tokens.

    python -m pytest tests/engine/test_sliding_window.py -q

Families: Mistral (every layer windowed), Gemma-3 (local layers windowed, global ones not, each with its own
RoPE), Qwen2 and Qwen3 with use_sliding_window (layers from max_window_layers on windowed).
"""
import pytest
import torch

from j1core.engine.decoder import layer_windows
from j1core.engine.rollout import RolloutEngine
from j1core.logprobs import enable_gradient_checkpointing, token_logprobs, window_reached
from tests.engine.reference import teacher_forced_logprobs
from tests.engine.test_families import make_model

WINDOW = 8
WINDOWED = {"mistral": dict(sliding_window=WINDOW),
            "gemma3": dict(sliding_window=WINDOW),
            "qwen2": dict(use_sliding_window=True, sliding_window=WINDOW, max_window_layers=1),
            "qwen3": dict(use_sliding_window=True, sliding_window=WINDOW, max_window_layers=1)}
PROMPTS = [[1, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 100, 101],  # a shared prefix longer than the window
           [1, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 200, 300, 400],
           [4, 3, 2000]]  # shorter than the window, then past it while decoding


@pytest.fixture(scope="module", params=list(WINDOWED))
def windowed(request):
    return make_model(request.param, **WINDOWED[request.param])


def test_layer_windows_follow_the_config(windowed):
    model, _ = windowed
    windows = layer_windows(model.config)
    if model.config.model_type == "mistral":
        assert windows == [WINDOW, WINDOW]
    else:  # one full layer, one windowed (Gemma-3: pattern 2; Qwen: layers >= max_window_layers)
        assert sorted(windows, key=str) == [8, None]
        assert windows == [WINDOW if t == "sliding_attention" else None for t in model.config.layer_types]


def test_the_window_changes_the_outputs(windowed):
    """Guard against a test that passes because the window never mattered: the same weights without it
    decode differently past the window."""
    model, tokenizer = windowed
    family = model.config.model_type.removesuffix("_text")
    full, _ = make_model(family, **{**WINDOWED[family], "sliding_window": 4096})
    full.load_state_dict(model.state_dict())
    ids = torch.tensor([PROMPTS[1] + list(range(20, 32))])
    with torch.no_grad():
        assert not torch.allclose(model(ids).logits[0, -1], full(ids).logits[0, -1], atol=1e-3)


def test_greedy_past_the_window_matches_hf_generate(windowed):
    model, tokenizer = windowed
    out = RolloutEngine(model, tokenizer).generate(PROMPTS, n=2, max_new_tokens=12, temperature=0)
    for prompt, samples in zip(PROMPTS, out):
        ref = model.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=12,
                             pad_token_id=tokenizer.pad_token_id)[0, len(prompt):].tolist()
        assert len(prompt) + len(ref) > WINDOW
        for sample in samples:
            assert sample.token_ids == ref[:len(sample.token_ids)]


def test_sampled_logprobs_past_the_window_match_teacher_forced_hf(windowed):
    model, tokenizer = windowed
    out = RolloutEngine(model, tokenizer).generate(PROMPTS, n=3, max_new_tokens=10, temperature=1.0, seed=3)
    for prompt, samples in zip(PROMPTS, out):
        for sample in samples:
            ref = teacher_forced_logprobs(model, prompt, sample.token_ids)
            torch.testing.assert_close(torch.tensor(sample.logprobs), ref, atol=1e-4, rtol=0)


def rows_of(prompts, completions):
    """Right-padded (input_ids, attention_mask, loss_mask, prompt_lengths) of prompt + completion rows."""
    width = max(len(p) + len(c) for p, c in zip(prompts, completions))
    ids = torch.zeros(len(prompts), width, dtype=torch.long)
    attention, loss = torch.zeros_like(ids), torch.zeros_like(ids)
    for row, (p, c) in enumerate(zip(prompts, completions)):
        ids[row, :len(p) + len(c)] = torch.tensor(p + c)
        attention[row, :len(p) + len(c)] = 1
        loss[row, len(p):len(p) + len(c)] = 1
    return ids, attention, loss, torch.tensor([len(p) for p in prompts])


@pytest.mark.parametrize("checkpointing", [False, True], ids=["plain", "checkpointed"])
def test_trainer_logprobs_past_the_window_match_teacher_forced_hf(windowed, checkpointing):
    """Groups of 2 completions per prompt, the grouped layout the trainer passes (it falls back to the plain
    path where the window is reached), with and without gradient checkpointing; and short rows inside the
    window, where the grouped path itself runs."""
    model, _ = windowed
    model.train()
    if checkpointing:
        enable_gradient_checkpointing(model)
    try:
        for completion_length in (12, 2):  # past the window / inside it with the short prompt
            prompts = [PROMPTS[1]] * 2 + [PROMPTS[2]] * 2 if completion_length > 2 else [PROMPTS[2]] * 2
            gen = torch.Generator().manual_seed(completion_length)
            completions = [torch.randint(0, 2000, (completion_length - i % 2,), generator=gen).tolist()
                           for i in range(len(prompts))]
            ids, attention, loss, lengths = rows_of(prompts, completions)
            assert window_reached(model.config, attention, lengths) == (completion_length > 2)
            got = token_logprobs(model, ids, attention, loss, prompt_lengths=lengths, group_size=2)
            got.sum().backward()  # the backward runs (recomputing the layers when checkpointed)
            for row, (p, c) in enumerate(zip(prompts, completions)):
                ref = teacher_forced_logprobs(model, p, c)
                torch.testing.assert_close(got[row, len(p):len(p) + len(c)].detach(), ref, atol=1e-4, rtol=0)
    finally:
        model.eval()
        if checkpointing:
            model.gradient_checkpointing_disable()
