// RMSNorm of the rollout engine's rows on CPU in one call, for float32 and bfloat16: y = x / sqrt(mean(x^2) + eps)
// * w, in float32 arithmetic, rounded once to x's dtype. Built with kernels/decode_attention.cpp into one
// extension (kernels/decode_attention.py); the plain version is j1core/engine/decoder.CompactDecoder.rms_norm's
// PyTorch path. Why: in bfloat16 torch's fused RMSNorm runs as half a dozen ops (widen, square, mean, rsqrt,
// scale, round), each a dispatch, and a decode step calls it twice per layer.
#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace {

inline float widen(float x) { return x; }
inline float widen(at::BFloat16 x) { return static_cast<float>(x); }

template <typename T>
void normalize(const T* x, const T* w, T* out, int64_t rows, int64_t hidden, double eps) {
  const int64_t grain = std::max<int64_t>(1, 32768 / hidden);  // small inputs stay on one thread
  at::parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const T* xr = x + r * hidden;
      float squares = 0.0f;
      for (int64_t i = 0; i < hidden; ++i) squares += widen(xr[i]) * widen(xr[i]);
      const float inv = 1.0f / std::sqrt(squares / hidden + static_cast<float>(eps));
      T* o = out + r * hidden;
      for (int64_t i = 0; i < hidden; ++i) o[i] = static_cast<T>(widen(xr[i]) * inv * widen(w[i]));
    }
  });
}

}  // namespace

// x [..., H] contiguous, weight [H] of x's dtype (float32 or bfloat16), on CPU. Returns x's shape and dtype.
torch::Tensor rms_norm(torch::Tensor x, torch::Tensor weight, double eps) {
  TORCH_CHECK(x.device().is_cpu() && weight.device().is_cpu() && x.is_contiguous() && weight.is_contiguous(),
              "rms_norm: CPU, contiguous tensors only");
  TORCH_CHECK(x.dim() >= 1 && weight.dim() == 1 && weight.size(0) == x.size(-1), "rms_norm: weight must be [H]");
  TORCH_CHECK(weight.scalar_type() == x.scalar_type(), "rms_norm: x and weight must share a dtype");
  auto out = torch::empty_like(x);
  const int64_t hidden = x.size(-1), rows = hidden ? x.numel() / hidden : 0;
  if (x.scalar_type() == at::kFloat) {
    normalize<float>(x.data_ptr<float>(), weight.data_ptr<float>(), out.data_ptr<float>(), rows, hidden, eps);
  } else {
    TORCH_CHECK(x.scalar_type() == at::kBFloat16, "rms_norm: float32 or bfloat16 only");
    normalize<at::BFloat16>(x.data_ptr<at::BFloat16>(), weight.data_ptr<at::BFloat16>(),
                            out.data_ptr<at::BFloat16>(), rows, hidden, eps);
  }
  return out;
}
