"""Compact Llama / Qwen2 decoder over a Hugging Face model's weights, for fast batched rollouts.

    python -m pytest tests/engine/test_rollout.py -q

Embed -> per layer (RMSNorm, fused q/k/v projection with optional biases (Qwen2), RoPE, GQA attention over a
preallocated KVCache, o projection, RMSNorm, fused gate/up SwiGLU MLP) -> final norm -> LM head on the
requested positions only. The plain reference it is tested against is the Hugging Face forward itself.
The decoder owns copies of the weights (fused q/k/v and gate/up), refreshed by `load_state_dict`. On CPU in
float32 the matrices are kept in oneDNN's packed layout (j1core/engine/packed_linear.py; `packed=False`: plain).
Attention (j1core/engine/attention.py) is passed in per call: prefill blocks or a decode step over shared prompts.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from j1core.engine.kv_cache import CacheArena, KVCache
from j1core.engine.packed_linear import add_linear, linear, pack, packing_available
from j1core.model import SUPPORTED_ARCHS

LM_HEAD_CHUNK = 2048  # vocabulary columns per unpacked LM-head matmul on CPU (see CompactDecoder.lm_head)
MATRICES = ("qkv", "o", "gate_up", "down")  # per-layer weights that only ever serve as matmul weights


def check_decoder_config(config) -> None:
    """Raise a clear error for anything this decoder does not reproduce exactly."""
    arch = config.model_type
    if arch not in SUPPORTED_ARCHS:
        raise ValueError(f"rollout engine: model_type {arch!r} is not supported; it runs {SUPPORTED_ARCHS}")
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type != "default":
        raise ValueError(f"rollout engine: rope type {rope_type!r} is not supported (only 'default')")
    if "sliding_attention" in (getattr(config, "layer_types", None) or []):
        raise ValueError("rollout engine: sliding-window attention layers are not supported")
    if getattr(config, "hidden_act", "silu") != "silu":
        raise ValueError(f"rollout engine: hidden_act {config.hidden_act!r} is not supported (only 'silu')")


def rope_theta(config) -> float:
    rope = getattr(config, "rope_parameters", None) or {}
    return float(rope.get("rope_theta", getattr(config, "rope_theta", 10000.0)))


class CompactDecoder:
    def __init__(self, config, state_dict: dict, device=None, dtype=None, packed: bool | None = None):
        check_decoder_config(config)
        self.config = config
        self.layers = config.num_hidden_layers
        self.heads = config.num_attention_heads
        self.kv_heads = config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self.eps = config.rms_norm_eps
        self.tied = bool(getattr(config, "tie_word_embeddings", False))
        any_weight = state_dict["model.embed_tokens.weight"]
        self.device = torch.device(device) if device is not None else any_weight.device
        self.dtype = dtype or any_weight.dtype
        available = packing_available(self.device, self.dtype)
        if packed and not available:
            raise ValueError(f"rollout engine: packed weights need float32 on a CPU with oneDNN, not "
                             f"{self.dtype} on {self.device}")
        self.packed = available if packed is None else packed
        self.weights = {}
        self.load_state_dict(state_dict)
        half = self.head_dim // 2
        # Same arithmetic as the HF default rotary embedding: float32 inverse frequencies, cat(freqs, freqs).
        self.inv_freq = 1.0 / (rope_theta(config) ** (torch.arange(0, 2 * half, 2, dtype=torch.float)
                                                        / self.head_dim)).to(self.device)
        self.rope_len = 0
        self.cos = self.sin = None

    @classmethod
    def from_model(cls, model, device=None) -> CompactDecoder:
        return cls(model.config, dict(model.state_dict()), device=device)

    # ---- weights -------------------------------------------------------------------------------------
    def fused_weights(self, sd: dict) -> dict:
        """Engine tensors from Hugging Face parameter names; raises on a missing or misshapen key."""
        def get(name, required=True):
            if name not in sd:
                if required:
                    raise KeyError(f"rollout engine: state dict has no {name!r}")
                return None
            return sd[name]

        out = {"embed": get("model.embed_tokens.weight"), "norm": get("model.norm.weight")}
        if not self.tied:
            out["lm_head"] = get("lm_head.weight")
        for i in range(self.layers):
            p = f"model.layers.{i}."
            qkv = [get(p + f"self_attn.{x}_proj.weight") for x in "qkv"]
            out[f"{i}.qkv"] = torch.cat(qkv, 0)
            biases = [get(p + f"self_attn.{x}_proj.bias", required=False) for x in "qkv"]
            if any(b is not None for b in biases):
                out[f"{i}.qkv_bias"] = torch.cat([b if b is not None else w.new_zeros(w.shape[0])
                                                  for b, w in zip(biases, qkv)])
            out[f"{i}.o"] = get(p + "self_attn.o_proj.weight")
            o_bias = get(p + "self_attn.o_proj.bias", required=False)
            if o_bias is not None:
                out[f"{i}.o_bias"] = o_bias
            out[f"{i}.gate_up"] = torch.cat([get(p + "mlp.gate_proj.weight"), get(p + "mlp.up_proj.weight")])
            out[f"{i}.down"] = get(p + "mlp.down_proj.weight")
            for name in ("gate", "up", "down"):
                if get(p + f"mlp.{name}_proj.bias", required=False) is not None:
                    raise ValueError("rollout engine: MLP biases (mlp_bias=True) are not supported")
            out[f"{i}.attn_norm"] = get(p + "input_layernorm.weight")
            out[f"{i}.mlp_norm"] = get(p + "post_attention_layernorm.weight")
        return out

    def is_matrix(self, name: str) -> bool:
        return name == "lm_head" or name.rsplit(".", 1)[-1] in MATRICES

    @torch.no_grad()
    def load_state_dict(self, state_dict: dict) -> None:
        """Take new weights (HF names). Plain tensors are copied in place; packed ones are packed anew."""
        fused = self.fused_weights(state_dict)
        if self.tied and self.packed:
            fused["lm_head"] = fused["embed"]  # a packed copy beside the plain embedding table
        for name, tensor in fused.items():
            old = self.weights.get(name)
            if old is not None and old.shape != tensor.shape:
                raise ValueError(f"rollout engine: weight {name} has shape {tuple(tensor.shape)}, "
                                 f"expected {tuple(old.shape)}")
            tensor = tensor.detach().to(self.device, self.dtype)
            if self.packed and self.is_matrix(name):
                self.weights[name] = pack(tensor)
            elif old is None:
                self.weights[name] = tensor.clone()
            else:
                old.copy_(tensor)
        if self.tied and not self.packed:
            self.weights["lm_head"] = self.weights["embed"]

    # ---- forward -------------------------------------------------------------------------------------
    def rope_tables(self, positions: torch.Tensor):
        """cos/sin [B, 1, S, head_dim] for integer positions [B, S]."""
        need = int(positions.max()) + 1
        if need > self.rope_len:
            self.rope_len = max(need, 2 * self.rope_len, 256)
            freqs = torch.arange(self.rope_len, device=self.device).float()[:, None] * self.inv_freq
            emb = torch.cat((freqs, freqs), dim=-1)
            self.cos, self.sin = emb.cos().to(self.dtype), emb.sin().to(self.dtype)
        return self.cos[positions].unsqueeze(1), self.sin[positions].unsqueeze(1)

    def rms_norm(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.float32:  # one fused op, the same arithmetic as the float32 lines below
            return F.rms_norm(x, (x.shape[-1],), weight, self.eps)
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return weight * x32.to(x.dtype)

    @staticmethod
    def rotate(x, cos, sin):
        half = x.shape[-1] // 2
        rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
        return x * cos + rotated * sin

    @torch.inference_mode()
    def forward(self, tokens: torch.Tensor, positions: torch.Tensor, attention,
                logits_at: torch.Tensor | None) -> torch.Tensor | None:
        """Run tokens [B, S] at RoPE positions [B, S]; `attention(layer, q, k, v)` caches k/v and attends.

        Returns float32 logits [B, V] at sequence index logits_at [B] (None: no LM head, prefill only).
        """
        w, batch, steps = self.weights, tokens.shape[0], tokens.shape[1]
        q_dim, kv_dim = self.heads * self.head_dim, self.kv_heads * self.head_dim
        cos, sin = self.rope_tables(positions)
        x = F.embedding(tokens, w["embed"])
        for i in range(self.layers):
            h = self.rms_norm(x, w[f"{i}.attn_norm"])
            qkv = linear(h, w[f"{i}.qkv"], w.get(f"{i}.qkv_bias"))
            # q and k heads side by side get RoPE in one pass (small ops cost their launch here, not their math).
            qk = qkv[..., :q_dim + kv_dim].view(batch, steps, self.heads + self.kv_heads, self.head_dim)
            q, k = self.rotate(qk.transpose(1, 2), cos, sin).split((self.heads, self.kv_heads), dim=1)
            v = qkv[..., q_dim + kv_dim:].view(batch, steps, self.kv_heads, self.head_dim).transpose(1, 2)
            x = add_linear(x, attention(i, q, k, v), w[f"{i}.o"], w.get(f"{i}.o_bias"))
            gate, up = linear(self.rms_norm(x, w[f"{i}.mlp_norm"]), w[f"{i}.gate_up"]).chunk(2, dim=-1)
            x = add_linear(x, F.silu(gate) * up, w[f"{i}.down"])
        if logits_at is None:
            return None
        last = x[torch.arange(batch, device=x.device), logits_at]
        return self.lm_head(self.rms_norm(last, w["norm"]))

    def lm_head(self, hidden: torch.Tensor) -> torch.Tensor:
        """float32 logits [B, V]. Unpacked on CPU, the vocabulary is done in LM_HEAD_CHUNK-column slices, whose
        weights stay in cache (faster than one matmul over the whole vocabulary; docs/benchmarks.md). Each logit
        is the same dot product either way. Packed, one call."""
        weight = self.weights["lm_head"]
        if weight.is_mkldnn or hidden.device.type != "cpu" or weight.shape[0] <= 2 * LM_HEAD_CHUNK:
            return linear(hidden, weight).float()
        out = torch.empty(hidden.shape[0], weight.shape[0], dtype=hidden.dtype, device=hidden.device)
        for start in range(0, weight.shape[0], LM_HEAD_CHUNK):
            torch.mm(hidden, weight[start:start + LM_HEAD_CHUNK].t(), out=out[:, start:start + LM_HEAD_CHUNK])
        return out.float()

    def new_cache(self, batch: int, max_len: int, arena: CacheArena | None = None, name: str = "",
                  zero: bool = True) -> KVCache:
        return KVCache(self.layers, batch, self.kv_heads, max_len, self.head_dim, self.dtype, self.device,
                       arena=arena, name=name, zero=zero)
