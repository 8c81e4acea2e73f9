"""Compact decoder over a Hugging Face model's weights, for fast batched rollouts (Llama, Mistral, Qwen2/3, Gemma-3).

    python -m pytest tests/engine/test_rollout.py tests/engine/test_families.py -q

Embed -> per layer (RMSNorm, fused q/k/v projection with optional biases (Qwen2), RoPE, GQA attention over a
preallocated KVCache, o projection, RMSNorm, fused gate/up SwiGLU MLP) -> final norm -> LM head on the
requested positions only. The plain reference it is tested against is the Hugging Face forward itself.
The decoder owns copies of the weights (fused q/k/v and gate/up), refreshed by `load_state_dict`. On CPU in
float32 (and in bfloat16 where the CPU has its matrix instructions) the matrices are kept in oneDNN's packed
layout (j1core/engine/packed_linear.py; `packed=False`: plain).
Attention (j1core/engine/attention.py) is passed in per call: prefill blocks or a decode step over shared prompts.

What differs between the families (j1core.model.check_architecture refuses the rest, here and at load):
- RoPE: inverse frequencies and the cos/sin scale come from transformers' own ROPE_INIT_FUNCTIONS (llama3,
  linear, yarn) or the default formula, so they are HF's numbers; tables are per layer type (Gemma-3's local
  layers use rope_local_base_freq, its global ones rope_theta and any scaling).
- Qwen3 / Gemma-3: RMSNorm per head on q and k before RoPE (head_dim taken from the config, not hidden / heads).
- Gemma-3: embeddings times sqrt(hidden) (rounded to the weights' dtype, as HF does); RMSNorm by (1 + w),
  computed in float32 before rounding ((1 + w) is kept in float32); norms after attention and after the
  MLP as well as before; GeLU-tanh; scores scaled by query_pre_attn_scalar ** -0.5, folded into q because the
  attention kernels scale by head_dim ** -0.5.
- Sliding windows (Mistral with sliding_window set, Gemma-3's local layers, Qwen2/3 with use_sliding_window):
  `layer_window[i]` is the window W of layer i (None: full attention). A query at position p attends to the
  keys at positions p - W + 1 .. p (HF's `kv_idx > q_idx - W`). The caches keep every token; the attention
  masks the older ones (j1core/engine/attention.py), so a windowed layer reads the same cache as a full one.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

from j1core.engine.kv_cache import CacheArena, KVCache
from j1core.engine.packed_linear import add_linear, linear, pack, packing_available
from j1core.model import check_architecture, rope_settings

LM_HEAD_CHUNK = 2048  # vocabulary columns per unpacked LM-head matmul on CPU (see CompactDecoder.lm_head)
MATRICES = ("qkv", "o", "gate_up", "down")  # per-layer weights that only ever serve as matmul weights


def check_decoder_config(config) -> None:
    """Raise a clear one-line error for anything this decoder does not reproduce exactly."""
    check_architecture(config, prefix="rollout engine: ")


def sliding_window(config) -> int | None:
    """The window of the model's sliding-window layers, None without any: Mistral applies a set sliding_window
    to every layer, the other families mark their windowed layers in layer_types."""
    windowed = config.model_type == "mistral" or "sliding_attention" in (getattr(config, "layer_types", None) or [])
    return getattr(config, "sliding_window", None) if windowed else None


def layer_windows(config) -> list[int | None]:
    """Per layer, the sliding window it attends within (None: the whole past)."""
    window = sliding_window(config)
    types = getattr(config, "layer_types", None)
    if window is None:
        return [None] * config.num_hidden_layers
    if config.model_type == "mistral" or not types:
        return [window] * config.num_hidden_layers
    return [window if kind == "sliding_attention" else None for kind in types]


def rope_frequencies(config, layer_type, params: dict, head_dim: int) -> tuple[torch.Tensor, float]:
    """(float32 inverse frequencies [head_dim / 2], cos/sin scale) of one layer type, as HF's rotary embedding
    computes them."""
    rope_type = params.get("rope_type", params.get("type", "default"))
    if rope_type != "default":
        inv_freq, scaling = ROPE_INIT_FUNCTIONS[rope_type](config, None, layer_type=layer_type)
        return inv_freq.float(), float(scaling)
    theta = float(params.get("rope_theta", getattr(config, "rope_theta", 10000.0)))
    return 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float) / head_dim)), 1.0


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
        self.gemma = config.model_type == "gemma3_text"
        self.qk_norm = config.model_type in ("qwen3", "gemma3_text")
        self.window = sliding_window(config)
        self.layer_window = layer_windows(config)
        any_weight = state_dict["model.embed_tokens.weight"]
        self.device = torch.device(device) if device is not None else any_weight.device
        self.dtype = dtype or any_weight.dtype
        available = packing_available(self.device, self.dtype)
        if packed and not available:
            raise ValueError(f"rollout engine: packed weights need float32 (or bfloat16 with its matrix "
                             f"instructions) on a CPU with oneDNN, not {self.dtype} on {self.device}")
        self.packed = available if packed is None else packed
        self.weights = {}
        self.load_state_dict(state_dict)
        self.embed_scale = torch.tensor(config.hidden_size ** 0.5).to(self.dtype) if self.gemma else None
        self.q_scale = (self.head_dim / config.query_pre_attn_scalar) ** 0.5 if self.gemma else 1.0
        # RoPE per layer type: key None for the families with one RoPE, Gemma-3's layer types otherwise.
        settings = rope_settings(config)
        types = getattr(config, "layer_types", None) or [None] * self.layers
        self.layer_rope = [kind if kind in settings else None for kind in types]
        self.rope = {}
        for kind in set(self.layer_rope):
            inv_freq, scaling = rope_frequencies(config, kind, settings[kind], self.head_dim)
            self.rope[kind] = (inv_freq.to(self.device), scaling)
        self.rope_len = 0
        self.tables = {}
        self.norm_kernel = None  # the C++ CPU kernels' module where the engine loaded it (kernels/rms_norm.cpp)

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
            norms = {"attn_norm": "input_layernorm", "mlp_norm": "post_attention_layernorm"}
            if self.gemma:  # a norm before and after each sub-block; the MLP's input norm is pre_feedforward
                norms = {"attn_norm": "input_layernorm", "attn_out_norm": "post_attention_layernorm",
                         "mlp_norm": "pre_feedforward_layernorm", "mlp_out_norm": "post_feedforward_layernorm"}
            if self.qk_norm:
                norms.update(q_norm="self_attn.q_norm", k_norm="self_attn.k_norm")
            for key, name in norms.items():
                out[f"{i}.{key}"] = get(p + name + ".weight")
        if self.gemma:  # Gemma's RMSNorm scales by (1 + w), in float32
            out.update({name: 1.0 + t.float() for name, t in out.items() if self.is_norm(name)})
        return out

    @staticmethod
    def is_norm(name: str) -> bool:
        return name.rsplit(".", 1)[-1].endswith("norm")

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
            dtype = torch.float32 if self.gemma and self.is_norm(name) else self.dtype
            tensor = tensor.detach().to(self.device, dtype)
            if self.packed and self.is_matrix(name):
                self.weights[name] = pack(tensor)
            elif old is None:
                self.weights[name] = tensor.clone()
            else:
                old.copy_(tensor)
        if self.tied and not self.packed:
            self.weights["lm_head"] = self.weights["embed"]

    # ---- forward -------------------------------------------------------------------------------------
    def rope_tables(self, positions: torch.Tensor) -> dict:
        """{layer type: (cos, sin) [B, 1, S, head_dim]} for integer positions [B, S]."""
        need = int(positions.max()) + 1
        if need > self.rope_len:
            self.rope_len = max(need, 2 * self.rope_len, 256)
            t = torch.arange(self.rope_len, device=self.device).float()[:, None]
            self.tables = {}
            for kind, (inv_freq, scaling) in self.rope.items():
                # HF's arithmetic: float32 angles, cat(freqs, freqs), cos/sin times the scale, then the dtype.
                emb = torch.cat((t * inv_freq, t * inv_freq), dim=-1)
                self.tables[kind] = ((emb.cos() * scaling).to(self.dtype), (emb.sin() * scaling).to(self.dtype))
        return {kind: (cos[positions].unsqueeze(1), sin[positions].unsqueeze(1))
                for kind, (cos, sin) in self.tables.items()}

    def rms_norm(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        if self.norm_kernel is not None and not self.gemma and x.dtype == weight.dtype and x.is_contiguous():
            # kernels/rms_norm.cpp: the arithmetic of the fused lines below in one call, where torch runs
            # bfloat16 as half a dozen ops (docs/benchmarks.md: 5% of a bfloat16 rollout).
            return self.norm_kernel.rms_norm(x, weight, self.eps)
        if x.dtype == torch.float32:  # one fused op, the same arithmetic as the float32 lines below
            return F.rms_norm(x, (x.shape[-1],), weight, self.eps)
        if x.device.type == "cpu" and not self.gemma:
            # The CPU's bfloat16 rollout (j1core/engine/precision.py): one fused op in float32, rounded once, where
            # HF rounds before scaling: closer to exact, not HF's rounding, and ~10% of a small decode step.
            return F.rms_norm(x, (x.shape[-1],), weight, self.eps)
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        if self.gemma:  # Gemma scales in float32, then rounds; Llama rounds, then scales
            return (x32 * weight).to(x.dtype)
        return weight * x32.to(x.dtype)

    @staticmethod
    def rotate(x, cos, sin):
        half = x.shape[-1] // 2
        rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
        return x * cos + rotated * sin

    @torch.inference_mode()
    def forward(self, tokens: torch.Tensor, positions: torch.Tensor, attention,
                logits_at: torch.Tensor | None, logits_out: torch.Tensor | None = None) -> torch.Tensor | None:
        """Run tokens [B, S] at RoPE positions [B, S]; `attention(layer, q, k, v)` caches k/v and attends.

        Returns float32 logits [B, V] at sequence index logits_at [B] (None: no LM head, prefill only), written
        into logits_out [B, V] where given (memory reused across decode steps: no fresh pages to fault in).
        """
        w, batch, steps = self.weights, tokens.shape[0], tokens.shape[1]
        q_dim, kv_dim = self.heads * self.head_dim, self.kv_heads * self.head_dim
        tables = self.rope_tables(positions)
        x = F.embedding(tokens, w["embed"])
        if self.embed_scale is not None:
            x = x * self.embed_scale
        for i in range(self.layers):
            cos, sin = tables[self.layer_rope[i]]
            h = self.rms_norm(x, w[f"{i}.attn_norm"])
            qkv = linear(h, w[f"{i}.qkv"], w.get(f"{i}.qkv_bias"))
            # q and k heads side by side get RoPE in one pass (small ops cost their launch here, not their math).
            qk = qkv[..., :q_dim + kv_dim].view(batch, steps, self.heads + self.kv_heads, self.head_dim)
            if self.qk_norm:
                qk = torch.cat((self.rms_norm(qk[:, :, :self.heads], w[f"{i}.q_norm"]),
                                self.rms_norm(qk[:, :, self.heads:], w[f"{i}.k_norm"])), dim=2)
            q, k = self.rotate(qk.transpose(1, 2), cos, sin).split((self.heads, self.kv_heads), dim=1)
            if self.q_scale != 1.0:
                q = q * self.q_scale
            v = qkv[..., q_dim + kv_dim:].view(batch, steps, self.kv_heads, self.head_dim).transpose(1, 2)
            if self.gemma:
                x = x + self.rms_norm(linear(attention(i, q, k, v), w[f"{i}.o"], w.get(f"{i}.o_bias")),
                                      w[f"{i}.attn_out_norm"])
                gate, up = linear(self.rms_norm(x, w[f"{i}.mlp_norm"]), w[f"{i}.gate_up"]).chunk(2, dim=-1)
                x = x + self.rms_norm(linear(F.gelu(gate, approximate="tanh") * up, w[f"{i}.down"]),
                                      w[f"{i}.mlp_out_norm"])
                continue
            x = add_linear(x, attention(i, q, k, v), w[f"{i}.o"], w.get(f"{i}.o_bias"))
            gate, up = linear(self.rms_norm(x, w[f"{i}.mlp_norm"]), w[f"{i}.gate_up"]).chunk(2, dim=-1)
            x = add_linear(x, F.silu(gate) * up, w[f"{i}.down"])
        if logits_at is None:
            return None
        last = x[torch.arange(batch, device=x.device), logits_at]
        return self.lm_head(self.rms_norm(last, w["norm"]), logits_out)

    def lm_head(self, hidden: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """float32 logits [B, V]. Unpacked on CPU, the vocabulary is done in LM_HEAD_CHUNK-column slices, whose
        weights stay in cache (faster than one matmul over the whole vocabulary; docs/benchmarks.md). Each logit
        is the same dot product either way. Packed, one call."""
        weight = self.weights["lm_head"]
        if weight.is_mkldnn or hidden.device.type != "cpu" or weight.shape[0] <= 2 * LM_HEAD_CHUNK:
            logits = linear(hidden, weight)
        else:
            logits = torch.empty(hidden.shape[0], weight.shape[0], dtype=hidden.dtype, device=hidden.device)
            for start in range(0, weight.shape[0], LM_HEAD_CHUNK):
                torch.mm(hidden, weight[start:start + LM_HEAD_CHUNK].t(),
                         out=logits[:, start:start + LM_HEAD_CHUNK])
        return logits.float() if out is None else out.copy_(logits)

    def new_cache(self, batch: int, max_len: int, arena: CacheArena | None = None, name: str = "",
                  zero: bool = True) -> KVCache:
        return KVCache(self.layers, batch, self.kv_heads, max_len, self.head_dim, self.dtype, self.device,
                       arena=arena, name=name, zero=zero)
