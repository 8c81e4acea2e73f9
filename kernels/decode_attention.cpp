// One decode step of the rollout engine's shared-prompt attention on CPU, for float32 and bfloat16.
// Built on first use by kernels/decode_attention.py; the plain PyTorch version is
// j1core/engine/attention.SharedPromptAttention.
//
// Row b (a live sample) with query heads h * g .. h * g + g - 1 of key/value head h attends to
//   its prompt's keys pk[prompt_of[b], h, :, :] (plus prompt_bias[prompt_of[b], :], 0 or -inf), and
//   its own generated keys gk[b, h, gen_lo:gen_hi, :],
// with one softmax over both. One task per (row, kv head): the g queries read each key once, in float32,
// so the keys and values are read at memory speed instead of through g-row batched matmuls. In bfloat16 on a
// build with AVX-512 BF16 (head sizes that are multiples of 32), the scores and the weighted values are
// vdpbf16ps dot products of the bfloat16 rows, with no widening of keys and values to float32, and the scores
// come 16 keys at a time (bf16_dot()). Of a prompt's columns only the span from its first to its last
// unmasked one is read: the prompt cache is as wide as the longest prompt of the wave.
#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>
#ifdef __AVX512BF16__
#include <immintrin.h>
#endif
#include <cmath>
#include <limits>
#include <vector>

namespace {

// 16 float32 lanes (one AVX-512 register, two AVX2 ones: GCC/Clang vector extensions, no intrinsics).
typedef float f16v __attribute__((vector_size(64)));
typedef uint32_t u16v __attribute__((vector_size(64)));
typedef uint16_t h16v __attribute__((vector_size(32)));
constexpr int LANES = 16;

inline f16v load16(const float* p) {
  f16v v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}

inline f16v load16(const at::BFloat16* p) {  // bfloat16 is the top half of a float32
  h16v h;
  __builtin_memcpy(&h, p, sizeof h);
  u16v bits = __builtin_convertvector(h, u16v) << 16;
  f16v v;
  __builtin_memcpy(&v, &bits, sizeof v);
  return v;
}

typedef float f8v __attribute__((vector_size(32)));
typedef float f4v __attribute__((vector_size(16)));

inline float sum16(f16v v) {  // halving: 16 -> 8 -> 4 lanes in vector adds, then 4 scalars
  f8v a, b;
  __builtin_memcpy(&a, &v, sizeof a);
  __builtin_memcpy(&b, reinterpret_cast<const char*>(&v) + sizeof a, sizeof b);
  a += b;
  f4v c, d;
  __builtin_memcpy(&c, &a, sizeof c);
  __builtin_memcpy(&d, reinterpret_cast<const char*>(&a) + sizeof c, sizeof d);
  c += d;
  return (c[0] + c[1]) + (c[2] + c[3]);
}

typedef int32_t i16v __attribute__((vector_size(64)));

// exp on 16 lanes for x <= 0 (scores minus their maximum): Cephes' expf polynomial, 2^n from the exponent bits;
// below -87 (and -inf, a masked column) exactly 0. About 1 ulp of std::exp.
inline f16v exp16(f16v x) {
  const f16v shifter = f16v{} + 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  f16v n = (x * 1.44269504088896341f + shifter) - shifter;
  f16v r = x - n * 0.693359375f - n * -2.12194440e-4f;
  f16v p = f16v{} + 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  i16v bits = (__builtin_convertvector(n, i16v) + 127) << 23;
  f16v scale;
  __builtin_memcpy(&scale, &bits, sizeof scale);
  return x < -87.0f ? f16v{} : p * scale;
}

#ifdef __AVX512BF16__
// Where the CPU has AVX-512 BF16 (and the build is for it: -march=native), bfloat16 scores are dot products
// of the raw bfloat16 rows by vdpbf16ps: pairs of products, each exact in float32, added in float32; no
// widening of the key to float32 first (that widening was a third of the kernel's instructions).
constexpr bool BF16_DOT = true;
inline __m512bh load32bh(const at::BFloat16* p) { return (__m512bh)_mm512_loadu_si512(p); }

// The sums of 16 vectors as the 16 lanes of one: lane m = the sum of v[m]'s lanes. A transposed reduction
// (pairs within 128-bit lanes, then 64-bit pairs, then the 128-bit lanes): 45 instructions for 16 sums,
// where a horizontal sum per vector takes about 8 each.
inline __m512 sums16(const __m512* v) {
  __m512 x[8], z[4];
  for (int k = 0; k < 8; ++k)  // per 128-bit lane: v[2k] (0+2), v[2k+1] (0+2), v[2k] (1+3), v[2k+1] (1+3)
    x[k] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * k], v[2 * k + 1]), _mm512_unpackhi_ps(v[2 * k], v[2 * k + 1]));
  for (int k = 0; k < 4; ++k) {  // per 128-bit lane: the 4-lane partial sums of v[4k] .. v[4k + 3]
    const __m512d a = _mm512_castps_pd(x[2 * k]), b = _mm512_castps_pd(x[2 * k + 1]);
    z[k] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)), _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
  }
  const __m512 c0 = _mm512_add_ps(_mm512_shuffle_f32x4(z[0], z[1], 0x88), _mm512_shuffle_f32x4(z[0], z[1], 0xDD));
  const __m512 c1 = _mm512_add_ps(_mm512_shuffle_f32x4(z[2], z[3], 0x88), _mm512_shuffle_f32x4(z[2], z[3], 0xDD));
  return _mm512_add_ps(_mm512_shuffle_f32x4(c0, c1, 0x88), _mm512_shuffle_f32x4(c0, c1, 0xDD));
}

// Scores of the g queries q_row[i] against 16 keys at once: scores[i * width + t] for t in [0, 16), where
// key(t) gives a key row and add[t] the bias (0, or -inf for a masked column, whose row is not trusted).
template <int DIM, typename Key>
void score_block16_bf16(const at::BFloat16* q_row, int64_t groups, Key key, const float* add, float scale,
                        float* scores, int64_t width) {
  constexpr int C2 = DIM / 32;
  const __m512 bias = _mm512_loadu_ps(add), neg_inf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  const __mmask16 masked = _mm512_cmp_ps_mask(bias, neg_inf, _CMP_EQ_OQ);
  for (int64_t i = 0; i < groups; ++i) {
    __m512bh q[C2];
    for (int c = 0; c < C2; ++c) q[c] = load32bh(q_row + i * DIM + c * 32);
    __m512 s[16];
    for (int t = 0; t < 16; ++t) {
      const at::BFloat16* k = key(t);
      s[t] = _mm512_dpbf16_ps(_mm512_setzero_ps(), q[0], load32bh(k));
      for (int c = 1; c < C2; ++c) s[t] = _mm512_dpbf16_ps(s[t], q[c], load32bh(k + c * 32));
    }
    const __m512 out = _mm512_fmadd_ps(sums16(s), _mm512_set1_ps(scale), bias);
    _mm512_storeu_ps(scores + i * width, _mm512_mask_blend_ps(masked, out, neg_inf));
  }
}

// out[i] = sum_j w[i, j] v_j * inv_sum[i] for the g queries of a task, two value rows (j, j + 1) at a time:
// their 16-bit elements interleaved (unpacklo / unpackhi within each 128-bit lane) meet the pair of weights
// (w[i, j], w[i, j + 1]), rounded to bfloat16 as the PyTorch path rounds its probabilities, in one vdpbf16ps.
// Accumulator lane m of a 32-dimension block then holds dimension 8 (m / 4) + m % 4 (unpacklo) or that + 4
// (unpackhi). A masked column's row is read as zeros (its memory may hold anything). wbf: scratch for the
// weights in bfloat16, groups x (width + 32); acc: scratch, groups * DIM / 16 vectors.
template <int DIM, typename Value, typename Masked>
void weigh_values_bf16(const float* w, int64_t width, int64_t groups, Value value, Masked masked,
                       const float* inv_sum, at::BFloat16* out, uint16_t* wbf, __m512* acc) {
  constexpr int C2 = DIM / 32;
  alignas(64) static const at::BFloat16 zeros[DIM] = {};
  const int64_t stride = width + 32;
  for (int64_t i = 0; i < groups; ++i) {  // 32 weights per vcvtne2ps2bf16 (round to nearest even)
    const float* wi = w + i * width;
    uint16_t* bi = wbf + i * stride;
    for (int64_t j = 0; j < width; j += 32) {
      const __mmask16 m0 = j + 16 <= width ? 0xFFFF : (1u << std::max<int64_t>(0, width - j)) - 1;
      const __mmask16 m1 = j + 32 <= width ? 0xFFFF : (j + 16 >= width ? 0 : (1u << (width - j - 16)) - 1);
      const __m512 a = _mm512_maskz_loadu_ps(m0, wi + j), b = _mm512_maskz_loadu_ps(m1, wi + j + 16);
      _mm512_storeu_si512(bi + j, (__m512i)_mm512_cvtne2ps_pbh(b, a));
    }
  }
  for (int64_t k = 0; k < groups * C2 * 2; ++k) acc[k] = _mm512_setzero_ps();
  for (int64_t j = 0; j < width; j += 2) {
    const at::BFloat16* v0 = masked(j) ? zeros : value(j);
    const at::BFloat16* v1 = j + 1 < width && !masked(j + 1) ? value(j + 1) : zeros;
    __m512bh lo[C2], hi[C2];
    for (int c = 0; c < C2; ++c) {
      const __m512i a = _mm512_loadu_si512(v0 + c * 32), b = _mm512_loadu_si512(v1 + c * 32);
      lo[c] = (__m512bh)_mm512_unpacklo_epi16(a, b);
      hi[c] = (__m512bh)_mm512_unpackhi_epi16(a, b);
    }
    for (int64_t i = 0; i < groups; ++i) {
      uint32_t pair_bits;  // (w[i, j], w[i, j + 1]); past the end a zero from the masked load
      __builtin_memcpy(&pair_bits, wbf + i * stride + j, sizeof pair_bits);
      const __m512bh pair = (__m512bh)_mm512_set1_epi32(static_cast<int>(pair_bits));
      __m512* a = acc + i * C2 * 2;
      for (int c = 0; c < C2; ++c) {
        a[2 * c] = _mm512_dpbf16_ps(a[2 * c], lo[c], pair);
        a[2 * c + 1] = _mm512_dpbf16_ps(a[2 * c + 1], hi[c], pair);
      }
    }
  }
  for (int64_t i = 0; i < groups; ++i)
    for (int c = 0; c < C2; ++c)
      for (int half = 0; half < 2; ++half) {
        alignas(64) float lanes[16];
        _mm512_store_ps(lanes, acc[(i * C2 + c) * 2 + half]);
        for (int m = 0; m < 16; ++m)
          out[i * DIM + c * 32 + 8 * (m / 4) + 4 * half + m % 4] = at::BFloat16(lanes[m] * inv_sum[i]);
      }
}
#else
constexpr bool BF16_DOT = false;
#endif

// DIM: the head dimension, known at compile time (HEAD_DIMS in kernels/decode_attention.py).
template <typename T, int DIM>
void attend(const torch::Tensor& q, const torch::Tensor& pk, const torch::Tensor& pv,
            const torch::Tensor& prompt_bias, const torch::Tensor& gk, const torch::Tensor& gv,
            const torch::Tensor& prompt_of, int64_t gen_lo, int64_t gen_hi, double scale, torch::Tensor& out) {
  constexpr int C = DIM / LANES;  // vectors per row
  const int64_t rows = q.size(0), heads = q.size(1);
  const int64_t kv_heads = pk.size(1), prompt_len = pk.size(2), gen_len = gk.size(2);
  const int64_t groups = heads / kv_heads, max_width = prompt_len + gen_hi - gen_lo;
  const T* q_ptr = q.data_ptr<T>();
  const T* pk_ptr = pk.data_ptr<T>();
  const T* pv_ptr = pv.data_ptr<T>();
  const T* gk_ptr = gk.data_ptr<T>();
  const T* gv_ptr = gv.data_ptr<T>();
  const float* bias_ptr = prompt_bias.data_ptr<float>();
  const int64_t* prompt_ptr = prompt_of.data_ptr<int64_t>();
  T* out_ptr = out.data_ptr<T>();
  const float neg_inf = -std::numeric_limits<float>::infinity();
  // Per prompt, the span of its columns from the first to the last one not masked: padding after a short
  // prompt (the cache is as wide as the longest) and columns before a sliding window are never read.
  std::vector<int64_t> span_lo(pk.size(0)), span_hi(pk.size(0));
  for (int64_t p = 0; p < pk.size(0); ++p) {
    const float* bias = bias_ptr + p * prompt_len;
    int64_t lo = 0, hi = prompt_len;
    while (lo < hi && bias[lo] == neg_inf) ++lo;
    while (hi > lo && bias[hi - 1] == neg_inf) --hi;
    span_lo[p] = lo, span_hi[p] = hi;
  }

  at::parallel_for(0, rows * kv_heads, 1, [&](int64_t begin, int64_t end) {
    std::vector<f16v> qv(groups * C), acc(groups * C);
    std::vector<float> scores(groups * max_width), inv_sum(groups);
    std::vector<uint16_t> wbf(groups * (max_width + 32));  // bfloat16 weights (weigh_values_bf16)
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / kv_heads, h = task % kv_heads, p = prompt_ptr[b];
      const T* q_row = q_ptr + (b * heads + h * groups) * DIM;
      for (int64_t i = 0; i < groups * C; ++i) qv[i] = load16(q_row + i * LANES) * static_cast<float>(scale);
      // The prompt's span of columns: its keys, values and biases from span_lo on, span columns wide.
      const int64_t lo = span_lo[p], span = span_hi[p] - lo, width = span + gen_hi - gen_lo;
      const float* bias = bias_ptr + p * prompt_len + lo;
      const T* p_keys = pk_ptr + ((p * kv_heads + h) * prompt_len + lo) * DIM;
      const T* p_values = pv_ptr + ((p * kv_heads + h) * prompt_len + lo) * DIM;
      const T* g_keys = gk_ptr + ((b * kv_heads + h) * gen_len + gen_lo) * DIM;
      const T* g_values = gv_ptr + ((b * kv_heads + h) * gen_len + gen_lo) * DIM;
      // Column j of the concatenation [the prompt's span, generated columns gen_lo .. gen_hi - 1].
      auto key = [&](int64_t j) { return j < span ? p_keys + j * DIM : g_keys + (j - span) * DIM; };
      auto value = [&](int64_t j) { return j < span ? p_values + j * DIM : g_values + (j - span) * DIM; };
      auto masked = [&](int64_t j) { return j < span && bias[j] == neg_inf; };

      int64_t first = 0;  // columns before it are scored in blocks of 16; the rest (< 16) one by one below
#ifdef __AVX512BF16__
      if constexpr (std::is_same_v<T, at::BFloat16> && DIM % 32 == 0) {
        for (; first + 16 <= width; first += 16) {
          alignas(64) float add[16];
          for (int t = 0; t < 16; ++t) add[t] = first + t < span ? bias[first + t] : 0.0f;
          score_block16_bf16<DIM>(q_row, groups, [&](int t) { return key(first + t); }, add,
                                  static_cast<float>(scale), scores.data() + first, width);
        }
      }
#endif
      for (int64_t j = first; j < width; ++j) {
        if (masked(j)) {
          for (int64_t i = 0; i < groups; ++i) scores[i * width + j] = neg_inf;
          continue;
        }
        f16v k[C];
        const T* k_row = key(j);
        for (int c = 0; c < C; ++c) k[c] = load16(k_row + c * LANES);
        const float add = j < span ? bias[j] : 0.0f;
        for (int64_t i = 0; i < groups; ++i) {
          f16v s = qv[i * C] * k[0];
          for (int c = 1; c < C; ++c) s += qv[i * C + c] * k[c];
          scores[i * width + j] = sum16(s) + add;
        }
      }
      for (int64_t i = 0; i < groups; ++i) {  // softmax numerators in place, 1 / denominator aside
        float* s = scores.data() + i * width;
        const float top = *std::max_element(s, s + width);
        f16v total{};
        int64_t j = 0;
        for (; j + LANES <= width; j += LANES) {
          f16v e = exp16(load16(s + j) - top);
          __builtin_memcpy(s + j, &e, sizeof e);
          total += e;
        }
        float sum = sum16(total);
        for (; j < width; ++j) {
          s[j] = std::exp(s[j] - top);
          sum += s[j];
        }
        inv_sum[i] = 1.0f / sum;
      }
#ifdef __AVX512BF16__
      if constexpr (std::is_same_v<T, at::BFloat16> && DIM % 32 == 0) {
        weigh_values_bf16<DIM>(scores.data(), width, groups, value, masked, inv_sum.data(),
                               out_ptr + (b * heads + h * groups) * DIM, wbf.data(),
                               reinterpret_cast<__m512*>(acc.data()));
        continue;
      }
#endif
      for (auto& a : acc) a = f16v{};
      for (int64_t j = 0; j < width; ++j) {
        if (masked(j)) continue;
        f16v v[C];
        const T* v_row = value(j);
        for (int c = 0; c < C; ++c) v[c] = load16(v_row + c * LANES);
        for (int64_t i = 0; i < groups; ++i) {
          const float w = scores[i * width + j];
          for (int c = 0; c < C; ++c) acc[i * C + c] += w * v[c];
        }
      }
      T* o = out_ptr + (b * heads + h * groups) * DIM;
      for (int64_t i = 0; i < groups; ++i)
        for (int c = 0; c < C; ++c)
          for (int l = 0; l < LANES; ++l) o[i * DIM + c * LANES + l] = static_cast<T>(acc[i * C + c][l] * inv_sum[i]);
    }
  });
}

template <typename T>
void dispatch(int64_t dim, const torch::Tensor& q, const torch::Tensor& pk, const torch::Tensor& pv,
              const torch::Tensor& bias, const torch::Tensor& gk, const torch::Tensor& gv, const torch::Tensor& po,
              int64_t lo, int64_t hi, double scale, torch::Tensor& out) {
  switch (dim) {
    case 16: return attend<T, 16>(q, pk, pv, bias, gk, gv, po, lo, hi, scale, out);
    case 32: return attend<T, 32>(q, pk, pv, bias, gk, gv, po, lo, hi, scale, out);
    case 64: return attend<T, 64>(q, pk, pv, bias, gk, gv, po, lo, hi, scale, out);
    case 128: return attend<T, 128>(q, pk, pv, bias, gk, gv, po, lo, hi, scale, out);
    case 256: return attend<T, 256>(q, pk, pv, bias, gk, gv, po, lo, hi, scale, out);
    default: TORCH_CHECK(false, "decode_attention: head dimension 16, 32, 64, 128 or 256 only, not ", dim);
  }
}

}  // namespace

// q [B, H, D]; pk, pv [P, KV, Lp, D]; prompt_bias [P, Lp] float32; gk, gv [B, KV, G, D]; prompt_of [B] int64.
// Returns [B, H * D] in q's dtype.
torch::Tensor decode_attention(torch::Tensor q, torch::Tensor pk, torch::Tensor pv, torch::Tensor prompt_bias,
                               torch::Tensor gk, torch::Tensor gv, torch::Tensor prompt_of, int64_t gen_lo,
                               int64_t gen_hi, double scale) {
  for (const auto* t : {&q, &pk, &pv, &gk, &gv, &prompt_bias, &prompt_of})
    TORCH_CHECK(t->device().is_cpu() && t->is_contiguous(), "decode_attention: CPU, contiguous tensors only");
  TORCH_CHECK(pk.scalar_type() == q.scalar_type() && gk.scalar_type() == q.scalar_type() &&
                  pv.scalar_type() == q.scalar_type() && gv.scalar_type() == q.scalar_type(),
              "decode_attention: q, keys and values must share a dtype");
  TORCH_CHECK(prompt_bias.scalar_type() == at::kFloat && prompt_of.scalar_type() == at::kLong,
              "decode_attention: prompt_bias float32, prompt_of int64");
  TORCH_CHECK(q.dim() == 3 && pk.dim() == 4 && gk.dim() == 4 && q.size(1) % pk.size(1) == 0 &&
                  q.size(2) == pk.size(3) && gk.size(3) == q.size(2) && gk.size(0) == q.size(0) &&
                  0 <= gen_lo && gen_lo < gen_hi && gen_hi <= gk.size(2),
              "decode_attention: shapes do not match");
  TORCH_CHECK(prompt_of.numel() == q.size(0), "decode_attention: prompt_of must give each row a prompt of pk");
  const int64_t* prompt_ptr = prompt_of.data_ptr<int64_t>();
  for (int64_t b = 0; b < q.size(0); ++b)  // a plain pass: called for every layer of every decode step
    TORCH_CHECK(0 <= prompt_ptr[b] && prompt_ptr[b] < pk.size(0),
                "decode_attention: prompt_of must give each row a prompt of pk");
  auto out = torch::empty({q.size(0), q.size(1) * q.size(2)}, q.options());
  if (q.scalar_type() == at::kFloat) {
    dispatch<float>(q.size(2), q, pk, pv, prompt_bias, gk, gv, prompt_of, gen_lo, gen_hi, scale, out);
  } else {
    TORCH_CHECK(q.scalar_type() == at::kBFloat16, "decode_attention: float32 or bfloat16 only");
    dispatch<at::BFloat16>(q.size(2), q, pk, pv, prompt_bias, gk, gv, prompt_of, gen_lo, gen_hi, scale, out);
  }
  return out;
}

torch::Tensor rms_norm(torch::Tensor x, torch::Tensor weight, double eps);  // kernels/rms_norm.cpp

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("decode_attention", &decode_attention);
  m.def("rms_norm", &rms_norm);
  m.def("bf16_dot", [] { return BF16_DOT; }, "whether bfloat16 scores use vdpbf16ps (AVX-512 BF16 builds)");
}
