"""j1 log-prob kernels: per-token log-probs from hidden states and the LM head without N x V logits.

    from kernels import fused_linear_logprob ; python -m pytest tests/test_kernels*.py -q

(kernels/decode_attention.py, the rollout engine's C++ decode attention on CPU, is imported on its own.)

Implementations behind one call: "reference" (full logits, kernels/reference.py), "chunked" (PyTorch, token
chunks, recompute in backward, kernels/chunked.py) and "triton" (CUDA, kernels/triton_logprob.py); "auto" picks
triton for CUDA tensors when Triton imports, chunked otherwise.

About the name: transformers probes for Hugging Face's `kernels` package (is_kernels_available) and, only when
it reports a version in [0.18.2, 0.19), imports hub helpers from it. The probe reads this package's version from
the distribution that ships it (j1, version below) or, when j1 is not installed, imports this module and reads
`__version__`; both give j1's version, outside that range, so the probe answers False
(tests/test_kernels_name.py checks it). Keep this module light: transformers may import it while it starts.
"""
from __future__ import annotations

from kernels.chunked import chunked_logprob
from kernels.reference import reference_logprob

__version__ = "0.1.0"  # j1's version (pyproject.toml); not Hugging Face kernels (>= 0.18.2)
IMPLS = ("auto", "chunked", "triton", "reference")


def triton_available() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def fused_linear_logprob(hidden, weight, targets, temperature=1.0, bias=None, chunk_size=None,
                         return_entropy=False, impl="auto"):
    """log softmax((hidden @ weight.T + bias) / T)[targets] per token: logp[N] float32, or (logp, entropy).

    Differentiable w.r.t. hidden, weight and bias on every path; the entropy carries its gradient too.
    chunk_size: tokens per chunk (chunked path); ignored by the others.
    """
    check_inputs(hidden, weight, targets, bias, temperature, impl)
    if impl == "auto":
        impl = "triton" if hidden.is_cuda and triton_available() else "chunked"
    if impl == "reference":
        return reference_logprob(hidden, weight, targets, temperature, bias, return_entropy)
    if impl == "chunked":
        return chunked_logprob(hidden, weight, targets, temperature, bias, chunk_size, return_entropy)
    from kernels.triton_logprob import triton_logprob

    return triton_logprob(hidden, weight, targets, temperature, bias, return_entropy)


def check_inputs(hidden, weight, targets, bias, temperature, impl):
    if impl not in IMPLS:
        raise ValueError(f"fused_linear_logprob: impl={impl!r}, choose one of {IMPLS}")
    if hidden.dim() != 2 or weight.dim() != 2 or hidden.shape[1] != weight.shape[1]:
        raise ValueError(f"fused_linear_logprob: hidden {tuple(hidden.shape)} must be [N, H] and weight "
                         f"{tuple(weight.shape)} [V, H] with the same H")
    if targets.shape != hidden.shape[:1] or targets.dtype.is_floating_point:
        raise ValueError(f"fused_linear_logprob: targets {tuple(targets.shape)} {targets.dtype} must be integer [N]"
                         f" with N={hidden.shape[0]}")
    if bias is not None and bias.shape != weight.shape[:1]:
        raise ValueError(f"fused_linear_logprob: bias {tuple(bias.shape)} must be [V]={weight.shape[0]}")
    if not temperature > 0:
        raise ValueError(f"fused_linear_logprob: temperature={temperature} must be > 0")
    if targets.numel() and not (0 <= int(targets.min()) and int(targets.max()) < weight.shape[0]):
        raise ValueError(f"fused_linear_logprob: targets must lie in [0, {weight.shape[0]})")
