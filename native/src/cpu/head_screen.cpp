// Screened lm_head: building the int8 copy with its error norms, the approximate pass (run-time ISA dispatch, thread
// split over vocabulary rows, the scalar kernel), and the per-row candidate selection with the exact fp16 rows.
// The method and why the sampled token is the full head's: docs/cpu-head-screen.md.
#include "head_screen.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <stdexcept>

#include "../half.h"
#include "f16_matmul_cpu.h"
#include "isa_choice.h"

namespace q3 {
namespace {

enum Isa { kScalar = 0, kAvx512Vnni = 1 };
const char* const kIsaNames[] = {"scalar", "avx512-vnni"};

bool cpu_has(int isa) {
  if (isa == kScalar) return true;
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vnni");
}

IsaChoice g_isa(kIsaNames, 2, cpu_has);

// The smallest float >= v (v >= 0): norms enter the bound rounded up, never down.
float round_up(double v) {
  float f = (float)v;
  if ((double)f < v) f = std::nextafter(f, std::numeric_limits<float>::infinity());
  return f;
}

inline int8_t quantise(float v, float inv_scale) {
  const long q = std::lrint(v * inv_scale);
  return (int8_t)std::clamp(q, -127L, 127L);
}

}  // namespace

int64_t ScreenedHead::bytes_read() const {
  return (int64_t)rows * stride + (int64_t)rows * (sizeof(float) * 3 + sizeof(int32_t));
}

void build_screened_head(const uint16_t* w, int rows, int cols, ScreenedHead& h, ThreadPool& pool) {
  if (cols <= 0 || cols > 65536) throw std::runtime_error("screened head: hidden size must be 1..65536");
  h.rows = rows;
  h.cols = cols;
  h.stride = (cols + 63) / 64 * 64;
  const int blocks = (rows + kScreenBlockRows - 1) / kScreenBlockRows;
  h.q.assign((size_t)blocks * kScreenBlockRows * h.stride, 0);
  h.scale.assign(rows, 0);
  h.row_sum.assign(rows, 0);
  h.x_coef.assign(rows, 0);
  h.dx_coef.assign(rows, 0);
  constexpr int kChunk = 256;
  pool.parallel_dynamic((rows + kChunk - 1) / kChunk, [&](int c) {
    std::vector<float> wr(cols);
    for (int t = c * kChunk; t < std::min(rows, (c + 1) * kChunk); t++) {
      const uint16_t* src = w + (size_t)t * cols;
      float max_abs = 0;
      for (int k = 0; k < cols; k++) {
        wr[k] = f16_to_f32(src[k]);
        max_abs = std::max(max_abs, std::fabs(wr[k]));
      }
      if (!std::isfinite(max_abs)) throw std::runtime_error("screened head: lm_head row " + std::to_string(t) +
                                                            " is not finite");
      const float s = max_abs / 127.0f;
      const float inv = s > 0 ? 1.0f / s : 0.0f;
      int32_t sum = 0;
      double e2 = 0, w2 = 0, qs2 = 0;
      for (int k = 0; k < cols; k++) {
        const int8_t q = quantise(wr[k], inv);
        h.q[h.index(t, k)] = q;
        sum += q;
        const double qs = (double)q * (double)s, e = (double)wr[k] - qs;
        e2 += e * e;
        w2 += (double)wr[k] * wr[k];
        qs2 += qs * qs;
      }
      h.scale[t] = s;
      h.row_sum[t] = sum;
      h.x_coef[t] = round_up(std::sqrt(e2) + kScreenSlack * std::sqrt(w2));
      h.dx_coef[t] = round_up(std::sqrt(qs2));
    }
  });
}

namespace head_screen {

void rows_scalar(const ScreenedHead& h, const uint8_t* xq, const float* sx, int M, float* a, int n0, int n1) {
  for (int t = n0; t < n1; t++) {
    for (int m = 0; m < M; m++) {
      const uint8_t* x = xq + (size_t)m * h.stride;
      int32_t dot = 0;
      for (int k = 0; k < h.cols; k++) dot += (int32_t)x[k] * h.q[h.index(t, k)];
      dot -= 128 * h.row_sum[t];
      a[(size_t)m * h.rows + t] = (float)dot * (h.scale[t] * sx[m]);
    }
  }
}

}  // namespace head_screen

void screened_head_approx(const ScreenedHead& h, const float* x, int M, float* a, ScreenNorms* norms,
                          ThreadPool& pool) {
  if (M <= 0) return;
  const int K = h.cols, S = h.stride;
  // x̂ + 128 as unsigned bytes, rows 64-byte aligned (the kernel's loads)
  thread_local std::vector<uint8_t> xq_buf;
  thread_local std::vector<float> sx;
  xq_buf.assign((size_t)M * S + 64, 128);
  uint8_t* xq = xq_buf.data() + (64 - (uintptr_t)xq_buf.data() % 64) % 64;
  sx.assign(M, 0);
  for (int m = 0; m < M; m++) {
    const float* xm = x + (size_t)m * K;
    float max_abs = 0;
    double x2 = 0;
    for (int k = 0; k < K; k++) {
      max_abs = std::max(max_abs, std::fabs(xm[k]));
      x2 += (double)xm[k] * xm[k];
    }
    const float s = max_abs / 127.0f, inv = s > 0 ? 1.0f / s : 0.0f;
    double d2 = 0;
    for (int k = 0; k < K; k++) {
      const int8_t q = quantise(xm[k], inv);
      xq[(size_t)m * S + k] = (uint8_t)(q + 128);
      const double d = (double)xm[k] - (double)q * (double)s;
      d2 += d * d;
    }
    sx[m] = s;
    const bool finite = std::isfinite(max_abs) && std::isfinite(x2);
    norms[m].x_norm = finite ? round_up(std::sqrt(x2)) : std::numeric_limits<float>::infinity();
    norms[m].dx_norm = finite ? round_up(std::sqrt(d2)) : std::numeric_limits<float>::infinity();
  }
  auto kernel = g_isa.current() == kAvx512Vnni ? head_screen::rows_avx512 : head_screen::rows_scalar;
  // Pieces of whole blocks of kScreenBlockRows rows, about 8 per thread, the last quarter tapered down to 16 blocks
  // (512 KiB of the 8B head), so the thread that finishes first waits for at most that.
  const int N = h.rows, B = kScreenBlockRows, blocks = (N + B - 1) / B;
  const std::vector<int> pieces = tapered_pieces(blocks, std::max(1, blocks / (8 * pool.size())), pool.size(), 16);
  const float* scales = sx.data();  // (a thread_local named inside the lambda would be each worker's own)
  pool.parallel_dynamic((int)pieces.size() - 1, [&](int c) {
    kernel(h, xq, scales, M, a, pieces[c] * B, std::min(N, pieces[c + 1] * B));
  });
}

namespace head_screen {

void lower_bounds_scalar(const Selection& s, TopK& best) {
  for (int t = 0; t < s.h->rows; t++)
    if (s.is_allowed(t) && !s.is_always(t)) best.offer(s.logits[t] - s.bound(t));
}

bool candidates_scalar(const Selection& s, float floor, int max, std::vector<int32_t>& out) {
  for (int t = 0; t < s.h->rows; t++) {
    if (!s.is_allowed(t)) continue;
    if (s.is_always(t) || s.logits[t] + s.bound(t) >= floor) {
      if ((int)out.size() >= max) return false;
      out.push_back(t);
    }
  }
  return true;
}

}  // namespace head_screen

int screen_row(const ScreenedHead& h, const uint16_t* w, const float* x, const ScreenNorms& norms,
               const ScreenQuery& query, float* logits, std::vector<int32_t>* candidates) {
  if (candidates) candidates->clear();
  const int V = h.rows;
  const float nx = norms.x_norm, ndx = norms.dx_norm;
  if (!std::isfinite(nx) || !std::isfinite(ndx) || query.top_k < 1) return -1;
  thread_local std::vector<uint32_t> always;
  always.assign((size_t)(V + 31) / 32, 0);
  const head_screen::Selection s{&h, logits, nx, ndx, query.allowed, always.data()};
  for (int i = 0; i < query.n_exact; i++) {
    const int t = query.exact[i];
    if (t >= 0 && t < V && s.is_allowed(t)) always[t >> 5] |= 1u << (t & 31);
  }
  const bool fast = g_isa.current() == kAvx512Vnni;
  // τ: the top_k-th largest lower bound among the allowed tokens outside `always`
  head_screen::TopK best(query.top_k);
  (fast ? head_screen::lower_bounds_avx512 : head_screen::lower_bounds_scalar)(s, best);
  const float floor = best.full() ? best.top() - query.margin : -std::numeric_limits<float>::infinity();
  if (!std::isfinite(floor) && best.full()) return -1;  // NaN logits
  thread_local std::vector<int32_t> cand;
  cand.clear();
  if (!(fast ? head_screen::candidates_avx512 : head_screen::candidates_scalar)(s, floor, query.max_candidates, cand))
    return -1;
  std::fill(logits, logits + V, -std::numeric_limits<float>::infinity());
  f16_matmul_rows_cpu(w, V, h.cols, x, cand.data(), (int)cand.size(), logits);
  if (candidates) candidates->assign(cand.begin(), cand.end());
  return (int)cand.size();
}

const char* screened_head_isa() { return g_isa.name(); }

bool screened_head_force_isa(const char* name) { return g_isa.force(name); }

bool screened_head_fast() { return cpu_has(kAvx512Vnni); }

}  // namespace q3
