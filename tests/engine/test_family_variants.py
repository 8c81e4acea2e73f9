"""Varied tiny configs of every supported family, written as their config.json files are (legacy rope_scaling
keys, head_dim != hidden / heads, one KV head or as many as heads, q/k/v or all attention biases, tied and untied
heads, small or null sliding windows, eos lists, no pad id): each saves, loads through j1core.model.load_model,
decodes greedily like HF generate, samples with HF's teacher-forced log-probs, and trains one step with reasoning.

    python -m pytest tests/engine/test_family_variants.py -q

The shapes follow the real configs named in each key (Llama-3.1/3.2, SmolLM2-135M, Qwen2/2.5, Qwen3, Mistral-7B,
Mistral-Nemo, gemma-3-1b / 4b), with sizes cut down and windows cut to a few tokens so that they are passed.
"""
import json

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from j1core.config import TrainConfig
from j1core.data.builtin import builtin_pairs
from j1core.engine.rollout import RolloutEngine
from j1core.model import SMOLLM2_ALIAS, load_model, load_tokenizer
from j1core.trainer import Trainer
from tests.engine.reference import teacher_forced_logprobs
from tests.engine.test_families import PROMPTS

BASE = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            rms_norm_eps=1e-5, initializer_range=0.2, bos_token_id=1, eos_token_id=2)
LLAMA3_ROPE = dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                   original_max_position_embeddings=8192)
VARIANTS = {
    "llama3.1-untied-kv1-headdim-bias": dict(
        model_type="llama", num_key_value_heads=1, head_dim=32, attention_bias=True, rope_theta=500000.0,
        rope_scaling=LLAMA3_ROPE, max_position_embeddings=64, tie_word_embeddings=False, eos_token_id=[2, 0, 1]),
    "llama3.2-tied-kv=heads": dict(
        model_type="llama", num_key_value_heads=4, rope_theta=500000.0, rope_scaling={**LLAMA3_ROPE, "factor": 32.0},
        max_position_embeddings=131072, tie_word_embeddings=True, pad_token_id=None),
    "llama-linear-legacy-key": dict(
        model_type="llama", rope_theta=10000.0, rope_scaling={"type": "linear", "factor": 2.0},
        max_position_embeddings=128, tie_word_embeddings=False),
    "llama-yarn": dict(
        model_type="llama", rope_theta=10000.0, max_position_embeddings=128,
        rope_scaling={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32, "beta_fast": 32,
                      "beta_slow": 1}),
    "llama-yarn-attention-factor": dict(
        model_type="llama", rope_theta=1e6, max_position_embeddings=128,
        rope_scaling={"rope_type": "yarn", "factor": 2.0, "original_max_position_embeddings": 64,
                      "attention_factor": 0.8}),
    "smollm2-135m": dict(
        model_type="llama", hidden_size=48, num_attention_heads=3, num_key_value_heads=1, rope_theta=100000,
        max_position_embeddings=8192, tie_word_embeddings=True, pad_token_id=2),
    "qwen2-bias-tied": dict(
        model_type="qwen2", use_sliding_window=False, sliding_window=4096, max_window_layers=21, rope_theta=1e6,
        tie_word_embeddings=True, max_position_embeddings=32768, bos_token_id=2),
    "qwen2.5-untied-kv1-yarn-legacy": dict(
        model_type="qwen2", num_key_value_heads=1, use_sliding_window=False, sliding_window=None, rope_theta=1e6,
        tie_word_embeddings=False,
        rope_scaling={"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32}),
    "qwen2-sliding": dict(model_type="qwen2", use_sliding_window=True, sliding_window=6, max_window_layers=1),
    "qwen3-tied-kv1": dict(
        model_type="qwen3", num_key_value_heads=1, head_dim=32, sliding_window=None, use_sliding_window=False,
        max_window_layers=28, rope_theta=1000000, tie_word_embeddings=True, attention_bias=False),
    "qwen3-untied-kv=heads": dict(
        model_type="qwen3", num_key_value_heads=4, head_dim=8, rope_theta=1e6, tie_word_embeddings=False,
        max_position_embeddings=40960, rope_scaling=None),
    "qwen3-attention-bias": dict(model_type="qwen3", head_dim=16, attention_bias=True),
    "mistral-sw-small": dict(model_type="mistral", sliding_window=5, rope_theta=10000.0, tie_word_embeddings=False),
    "mistral-null-sw-headdim": dict(
        model_type="mistral", sliding_window=None, head_dim=32, rope_theta=1e6, num_key_value_heads=1),
    "mistral-nemo-like": dict(
        model_type="mistral", sliding_window=None, head_dim=24, rope_theta=1000000.0, max_position_embeddings=1024000),
    "gemma3-1b-like": dict(
        model_type="gemma3_text", head_dim=32, query_pre_attn_scalar=32, sliding_window=6, num_hidden_layers=3,
        layer_types=["sliding_attention", "sliding_attention", "full_attention"], rope_theta=1000000,
        rope_local_base_freq=10000, num_key_value_heads=1, hidden_activation="gelu_pytorch_tanh",
        final_logit_softcapping=None, attn_logit_softcapping=None, rms_norm_eps=1e-6, pad_token_id=0,
        eos_token_id=[1, 2]),
    "gemma3-4b-like-linear": dict(
        model_type="gemma3_text", head_dim=16, query_pre_attn_scalar=64, sliding_window=1024, sliding_window_pattern=6,
        rope_theta=1e6, rope_local_base_freq=1e4, rope_scaling={"factor": 8.0, "rope_type": "linear"},
        hidden_activation="gelu_pytorch_tanh"),
}

def config_of(name, vocab_size):
    return AutoConfig.for_model(**{**BASE, "vocab_size": vocab_size, **VARIANTS[name]})


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(SMOLLM2_ALIAS)


def saved_and_loaded(name, tokenizer, tmp_path):
    """A random model of the variant saved as a HF directory and loaded back with j1's loader, with noise on
    norms and biases (see tests/engine/test_families.py)."""
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config_of(name, len(tokenizer))).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    model, tokenizer = load_model(str(tmp_path))
    with torch.no_grad():
        for param_name, param in model.named_parameters():
            if param_name.endswith(("norm.weight", "bias")):
                param.add_(torch.randn_like(param) * 0.2)
    return model, tokenizer


@pytest.mark.parametrize("name", list(VARIANTS))
def test_variant_decodes_like_hf(name, tokenizer, tmp_path):
    model, tokenizer = saved_and_loaded(name, tokenizer, tmp_path)
    engine = RolloutEngine(model, tokenizer)
    for prompt, samples in zip(PROMPTS, engine.generate(PROMPTS, n=2, max_new_tokens=10, temperature=0)):
        ref = model.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=10,
                             pad_token_id=tokenizer.pad_token_id)[0, len(prompt):].tolist()
        for sample in samples:
            assert sample.token_ids == ref[:len(sample.token_ids)]
    out = engine.generate(PROMPTS, n=2, max_new_tokens=8, temperature=1.0, seed=1)
    for prompt, samples in zip(PROMPTS, out):
        for sample in samples:
            torch.testing.assert_close(torch.tensor(sample.logprobs),
                                       teacher_forced_logprobs(model, prompt, sample.token_ids), atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", ["llama3.2-tied-kv=heads", "qwen2.5-untied-kv1-yarn-legacy",
                                  "qwen2-sliding", "mistral-sw-small", "gemma3-1b-like"])
def test_variant_trains_one_step_with_reasoning(name, tokenizer, tmp_path):
    """Judge prompts are hundreds of tokens: the windowed variants pass their windows in training too."""
    cfg = TrainConfig(max_steps=1, pairs_per_step=2, group_size=2, max_new_tokens=6, max_think_tokens=4,
                      forced_verdict=True, output=str(tmp_path / "run"), progress=False, beta=0.01, lr=1e-3,
                      micro_batch_size=4, gradient_checkpointing=True, dtype="fp32")
    policy, tokenizer = saved_and_loaded(name, tokenizer, tmp_path / "model")
    reference, _ = load_model(str(tmp_path / "model"))
    Trainer(cfg, policy=policy, tokenizer=tokenizer, reference=reference, pairs=builtin_pairs("train")[:8]).train()
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == 1 and metrics[0]["skipped"] == 0
    assert torch.isfinite(torch.tensor(metrics[0]["loss"])) and metrics[0]["kl"] >= 0


def test_a_context_too_short_for_the_judge_prompts_is_refused_before_training(tokenizer, tmp_path):
    """llama3.1-untied-kv1-headdim-bias has 64 positions: hundreds of prompt tokens cannot be judged in it."""
    from j1core.errors import UserError

    cfg = TrainConfig(max_steps=1, pairs_per_step=2, group_size=2, max_new_tokens=6, max_think_tokens=4,
                      forced_verdict=True, output=str(tmp_path / "run"), progress=False)
    policy, tokenizer = saved_and_loaded("llama3.1-untied-kv1-headdim-bias", tokenizer, tmp_path / "model")
    with pytest.raises(UserError, match="context \\(64 tokens\\)"):
        Trainer(cfg, policy=policy, tokenizer=tokenizer, pairs=builtin_pairs("train")[:8])
    assert not (tmp_path / "run" / "metrics.jsonl").exists()
