// Screened lm_head (docs/cpu-head-screen.md): an int8 copy of the fp16 head gives every token an approximate logit
// with a proven error bound; a sample that depends only on its top-k tokens then needs the exact (fp16 head) logits
// of the few tokens whose bounds reach the k-th best lower bound, not of the whole vocabulary.
#pragma once
#include <algorithm>
#include <cstdint>
#include <functional>
#include <vector>

#include "../threadpool.h"
#include "huge_pages.h"

namespace q3 {

// The head's int8 copy, row t: w_t ≈ q_t · scale[t], with what the bound needs about the rounding. q is stored in
// blocks of kScreenBlockRows rows whose 64-byte pieces are interleaved (piece c of rows 0..7, then piece c + 1 ...),
// so the kernel reads one sequential stream per thread instead of 8 row streams that each start cold.
constexpr int kScreenBlockRows = 8;

struct ScreenedHead {
  int rows = 0, cols = 0;
  int stride = 0;                                       // bytes per row of q: cols rounded up to 64 (zero padding)
  std::vector<int8_t, HugePageAllocator<int8_t>> q;     // (rows rounded up to 8) x stride, blocked as above
  // Element k of row t.
  size_t index(int t, int k) const {
    return ((size_t)(t / kScreenBlockRows) * stride + (size_t)(k / 64) * 64) * kScreenBlockRows +
           (size_t)(t % kScreenBlockRows) * 64 + k % 64;
  }
  std::vector<float> scale;                             // max |w_t| / 127
  std::vector<int32_t> row_sum;                         // Σ_k q_t[k] (the kernel feeds x̂ + 128 as unsigned bytes)
  std::vector<float> x_coef;   // ||w_t − q_t·s_t|| + kSlack·||w_t||, rounded up: multiplies ||x||
  std::vector<float> dx_coef;  // ||q_t·s_t||, rounded up: multiplies ||x − x̂||
  int64_t bytes_read() const;  // bytes one approximate pass reads (q, scale, row_sum; the coefficients in selection)
};

// Relative slack of the bound: covers the fp32 accumulation of the exact kernel (a dot product of K terms: at most
// about K/16·2^-24 of ||x||·||w_t|| with 16-lane partial sums) and the float rounding of a, B and the threshold.
constexpr double kScreenSlack = 1e-3;

// Builds the copy of the fp16 (rows, cols) table w; rows split over the pool. Norms are computed in double.
void build_screened_head(const uint16_t* w, int rows, int cols, ScreenedHead& h, ThreadPool& pool);

// Per row of x: ||x|| and ||x − x̂|| (x̂ the int8 activations the approximate pass used), rounded up.
struct ScreenNorms {
  float x_norm = 0, dx_norm = 0;
};

// a (M, h.rows) = approximate logits of the M rows of x (M, h.cols): a[t] = s_t·s_x·(q_t · x̂) with x̂ = x quantised
// per row to int8. |exact[t] − a[t]| <= x_norm·x_coef[t] + dx_norm·dx_coef[t] for the fp16 head's fp32 value.
void screened_head_approx(const ScreenedHead& h, const float* x, int M, float* a, ScreenNorms* norms,
                          ThreadPool& pool);

// What one row's sample needs (sampler.h ScreenNeeds, plus the row's mask and a cap).
struct ScreenQuery {
  int top_k = 1;                   // the top_k largest logits among the allowed tokens (after the margin)
  float margin = 0;                // also every token within `margin` below the top_k-th lower bound
  const uint32_t* allowed = nullptr;  // token mask, or null: all
  const int32_t* exact = nullptr;  // tokens always computed exactly (their logits change with penalties)
  int n_exact = 0;
  int max_candidates = 0;          // more than this: give up (the caller computes the full row)
};

// Row of a screened pass: `logits` holds its approximate logits on entry. On success, every candidate's logit is
// replaced by the fp16 head's exact value (same kernel and summation order as f16_matmul_cpu: same bits) and every
// other token's by -inf, and the number of candidates is returned; -1 (logits unchanged) when more than
// max_candidates would be needed or the row is not finite. `candidates` (optional) receives the candidates,
// ascending (sample_token reads only those), or is emptied.
int screen_row(const ScreenedHead& h, const uint16_t* w, const float* x, const ScreenNorms& norms,
               const ScreenQuery& query, float* logits, std::vector<int32_t>* candidates = nullptr);

// "avx512-vnni" or "scalar": the approximate pass's kernel; force ("auto" or a name) for tests and benchmarks.
const char* screened_head_isa();
bool screened_head_force_isa(const char* name);
// True when the fast (VNNI) kernel is available: the CPU backend screens by default only then.
bool screened_head_fast();

namespace head_screen {
// What screen_row's two passes over the vocabulary read: the approximate logits, the row's norms (the bound of token
// t is B_t = nx·x_coef[t] + ndx·dx_coef[t]), the mask (null: all allowed) and the tokens always computed exactly
// (`always`, a bitset: bit t % 32 of word t / 32).
struct Selection {
  const ScreenedHead* h;
  const float* logits;  // (h->rows)
  float nx, ndx;
  const uint32_t* allowed;
  const uint32_t* always;
  bool is_allowed(int t) const { return !allowed || (allowed[t >> 5] >> (t & 31) & 1u); }
  bool is_always(int t) const { return always[t >> 5] >> (t & 31) & 1u; }
  float bound(int t) const { return nx * h->x_coef[t] + ndx * h->dx_coef[t]; }
};

// The top_k largest of the values offered, kept as a min-heap of at most top_k; offered in token order, it ends with
// the same top() whichever pass offers them, as long as each pass offers every value that could enter.
class TopK {
 public:
  explicit TopK(int k) : k_(k) { heap_.reserve(k); }
  void offer(float v) {
    if ((int)heap_.size() < k_) {
      heap_.push_back(v);
      std::push_heap(heap_.begin(), heap_.end(), std::greater<float>());
    } else if (v > heap_.front()) {
      std::pop_heap(heap_.begin(), heap_.end(), std::greater<float>());
      heap_.back() = v;
      std::push_heap(heap_.begin(), heap_.end(), std::greater<float>());
    }
  }
  bool full() const { return (int)heap_.size() >= k_; }
  float top() const { return heap_.front(); }  // the k-th largest so far (full() only)

 private:
  int k_;
  std::vector<float> heap_;
};

// The passes, per ISA: the same float operations in the same order (the AVX-512 one 16 tokens at a time, skipping
// the tokens that cannot change the result), so the same τ and candidates. lower_bounds offers every allowed token
// outside `always` its lower bound a_t − B_t; candidates appends, in token order, every allowed token that is in
// `always` or has a_t + B_t >= floor, and returns false once there would be more than max.
void lower_bounds_scalar(const Selection& s, TopK& best);
void lower_bounds_avx512(const Selection& s, TopK& best);
bool candidates_scalar(const Selection& s, float floor, int max, std::vector<int32_t>& out);
bool candidates_avx512(const Selection& s, float floor, int max, std::vector<int32_t>& out);

// Per-ISA kernels: rows [n0, n1) of a (n0 a multiple of kScreenBlockRows) for the M rows of xq (unsigned bytes
// x̂ + 128, M × h.stride), as int32 dots
// corrected by the row sums and scaled by scale[t]·sx[m].
void rows_scalar(const ScreenedHead& h, const uint8_t* xq, const float* sx, int M, float* a, int n0, int n1);
void rows_avx512(const ScreenedHead& h, const uint8_t* xq, const float* sx, int M, float* a, int n0, int n1);
}  // namespace head_screen

}  // namespace q3
