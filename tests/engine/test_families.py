"""Every model family j1 runs, on tiny random models shaped like the real configs (j1core.model.TINY_FAMILIES):
the rollout engine against Hugging Face, one training step, `generate.py judge` from a saved directory, and the
refusals of what is not supported.

    python -m pytest tests/engine/test_families.py -q

Norm weights and biases get noise so that a norm applied to the wrong tensor, a missing (1 + w) or a swapped
q/k norm shows in the outputs; initializer_range=0.2 spreads the logits (see tests/engine/test_rollout.py).
"""
import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from j1core.config import TrainConfig
from j1core.data.builtin import builtin_pairs
from j1core.engine.decoder import CompactDecoder
from j1core.engine.rollout import RolloutEngine
from j1core.model import check_architecture, load_model, tiny_model
from j1core.trainer import Trainer
from tests.engine.reference import teacher_forced_logprobs

FAMILIES = ["llama3.1", "llama3.2", "qwen2", "qwen3", "mistral", "gemma3"]
PROMPTS = [[1, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 100, 101],  # shares 11 tokens with the next prompt
           [1, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 200, 300, 400],
           [4, 3, 2000]]


def make_model(family, seed=0, **config):
    model, tokenizer = tiny_model(family, seed=seed, initializer_range=0.2, **config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(("norm.weight", "bias")):
                param.add_(torch.randn_like(param) * 0.2)
    return model, tokenizer


@pytest.fixture(scope="module", params=FAMILIES)
def tiny(request):
    return make_model(request.param)


def test_tiny_configs_have_the_family_shape(tiny):
    model, _ = tiny
    config = model.config
    assert config.model_type in ("llama", "qwen2", "qwen3", "mistral", "gemma3_text")
    if config.model_type == "qwen3":
        assert config.head_dim * config.num_attention_heads != config.hidden_size
    if config.model_type == "gemma3_text":
        assert set(config.layer_types) == {"sliding_attention", "full_attention"}
        assert config.query_pre_attn_scalar != config.head_dim


def test_rope_frequencies_are_hf_ones(tiny):
    model, _ = tiny
    decoder = CompactDecoder.from_model(model)
    rotary = model.model.rotary_emb
    for kind, (inv_freq, scaling) in decoder.rope.items():
        prefix = f"{kind}_" if kind else ""
        torch.testing.assert_close(inv_freq, getattr(rotary, f"{prefix}inv_freq"), atol=0, rtol=0)
        assert scaling == getattr(rotary, f"{prefix}attention_scaling")


@pytest.mark.parametrize("rope", [{"rope_type": "linear", "factor": 4.0},
                                  {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 512}],
                         ids=["linear", "yarn"])
def test_scaled_rope_types_match_hf(rope):
    """yarn scales cos/sin too (attention_scaling != 1)."""
    model, tokenizer = make_model("qwen3", rope_parameters={**rope, "rope_theta": 1e6})
    decoder = CompactDecoder.from_model(model)
    assert decoder.rope[None][1] == model.model.rotary_emb.attention_scaling
    out = RolloutEngine(model, tokenizer).generate(PROMPTS[1:], n=2, max_new_tokens=5, temperature=1.0, seed=2)
    for prompt, samples in zip(PROMPTS[1:], out):
        for sample in samples:
            torch.testing.assert_close(torch.tensor(sample.logprobs),
                                       teacher_forced_logprobs(model, prompt, sample.token_ids), atol=1e-4, rtol=0)



def test_greedy_matches_hf_generate(tiny):
    model, tokenizer = tiny
    out = RolloutEngine(model, tokenizer).generate(PROMPTS, n=2, max_new_tokens=8, temperature=0)
    for prompt, samples in zip(PROMPTS, out):
        ref = model.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=8,
                             pad_token_id=tokenizer.pad_token_id)[0, len(prompt):].tolist()
        for sample in samples:
            assert sample.token_ids == ref[:len(sample.token_ids)]


def test_sampling_logprobs_match_teacher_forced_forward(tiny):
    model, tokenizer = tiny
    out = RolloutEngine(model, tokenizer).generate(PROMPTS, n=3, max_new_tokens=6, temperature=1.3, seed=1)
    for prompt, samples in zip(PROMPTS, out):
        for sample in samples:
            ref = teacher_forced_logprobs(model, prompt, sample.token_ids, 1.3)
            torch.testing.assert_close(torch.tensor(sample.logprobs), ref, atol=1e-4, rtol=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_one_training_step_with_reasoning(tmp_path, family):
    cfg = TrainConfig(max_steps=1, pairs_per_step=2, group_size=2, max_new_tokens=6, max_think_tokens=4,
                      forced_verdict=True, output=str(tmp_path / "run"), progress=False, beta=0.01, lr=1e-3,
                      micro_batch_size=3, dtype="fp32")
    policy, tokenizer = tiny_model(family, seed=0, layers=1)
    reference = tiny_model(family, seed=0, layers=1)[0]
    checkpoint = Trainer(cfg, policy=policy, tokenizer=tokenizer, reference=reference,
                         pairs=builtin_pairs("train")[:8]).train()
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == 1 and metrics[0]["skipped"] == 0
    assert torch.isfinite(torch.tensor(metrics[0]["loss"])) and metrics[0]["kl"] >= 0
    assert AutoModelForCausalLM.from_pretrained(checkpoint).config.model_type == policy.config.model_type


@pytest.mark.parametrize("family", FAMILIES)
def test_generate_judge_on_a_saved_model(tmp_path, family):
    import generate

    model, tokenizer = tiny_model(family, seed=0, layers=1)
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    generate.main(["judge", "--model", str(tmp_path / "model"), "--benchmark", "builtin", "--limit", "2",
                   "--forced-verdict", "--max-think-tokens", "2", "--out", str(tmp_path / "out"), "--device", "cpu",
                   "--bootstrap", "10", "--no-progress"])
    assert json.loads((tmp_path / "out" / "report.json").read_text())


def test_unsupported_families_and_settings_get_one_line_errors(tmp_path):
    from transformers import Gemma2Config, Phi3Config

    phi3 = AutoModelForCausalLM.from_config(Phi3Config(vocab_size=64, hidden_size=16, intermediate_size=32,
                                                       num_hidden_layers=1, num_attention_heads=2,
                                                       num_key_value_heads=1, pad_token_id=0))
    phi3.save_pretrained(tmp_path / "phi3")
    with pytest.raises(ValueError, match=r"^model_type 'phi3' is not supported; j1 runs llama, mistral, qwen2, "
                                         r"qwen3, gemma3_text$"):
        load_model(str(tmp_path / "phi3"))
    with pytest.raises(ValueError, match="^rollout engine: model_type 'phi3' is not supported; j1 runs llama"):
        RolloutEngine(phi3)
    gemma2 = AutoModelForCausalLM.from_config(Gemma2Config(vocab_size=64, hidden_size=16, intermediate_size=32,
                                                           num_hidden_layers=1, num_attention_heads=2,
                                                           num_key_value_heads=1, head_dim=8))
    with pytest.raises(ValueError, match="model_type 'gemma2' is not supported"):
        RolloutEngine(gemma2)
    from j1core.logprobs import token_logprobs

    ids = torch.tensor([[1, 2, 3]])
    with pytest.raises(ValueError, match="final_logit_softcapping=30.0"):
        token_logprobs(gemma2, ids, torch.ones_like(ids), torch.tensor([[0, 1, 1]]))
    settings = [("llama3.1", dict(rope_parameters={"rope_type": "dynamic", "factor": 2.0, "rope_theta": 1e4}),
                 "llama with rope type 'dynamic' is not supported"),
                ("llama", dict(mlp_bias=True), r"llama with MLP biases \(mlp_bias=True\) is not supported"),
                ("mistral", dict(hidden_act="gelu"), "mistral with hidden_act 'gelu' is not supported"),
                ("gemma3", dict(final_logit_softcapping=30.0),
                 "gemma3_text with final_logit_softcapping=30.0 is not supported")]
    for family, config, message in settings:
        model, _ = tiny_model(family, layers=1, **config)
        for prefix in ("", "rollout engine: "):
            with pytest.raises(ValueError, match=f"^{prefix}{message}.*; j1 runs llama, mistral"):
                RolloutEngine(model) if prefix else check_architecture(model.config)
