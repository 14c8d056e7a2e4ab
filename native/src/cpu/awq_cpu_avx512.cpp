// AVX-512 tile kernels for the int4 AWQ matmul (layout in awq_cpu_kernels.h): unsigned weight bytes times the two
// signed activation bytes (q = 256 hi + lo), accumulated exactly in int32 by vpdpbusd (AVX512-VNNI) or by
// vpmaddubsw + vpmaddwd (AVX512BW).
// GCC 12 reports its own _mm512_undefined_* placeholders as maybe-uninitialized once inlined at -O3: a false positive.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <cfloat>
#include <cstring>

#include "awq_cpu_kernels.h"
#include "row_passes.h"

namespace q3::awq_cpu {
namespace {

// Software prefetch along each tile stream: Bytes ahead of it, into the cache level Hint names (an _MM_HINT_*
// value), once per 64-byte word; Bytes = 0 leaves the stream to the hardware prefetchers. Prefetches past the end of
// the matrix are harmless. RecordHint: where StreamPrefetch asks for a group of tiles' scale/zero records (negative:
// it does not).
template <int Bytes, int Hint, int RecordHint = _MM_HINT_T0>
struct Prefetch {
  static constexpr int kBytes = Bytes;
  static constexpr int kRecordHint = RecordHint;
  static void line(const uint8_t* p) {
    if constexpr (Bytes > 0) _mm_prefetch((const char*)p, (_mm_hint)Hint);
  }
};

// One stream per thread is too little for the hardware prefetcher to keep DRAM busy while the core is also unpacking;
// measured on Sapphire Rapids, prefetching 4-8 KiB ahead into L1 raised single-thread GEMV from ~8 to ~13 GB/s.
using IntelPrefetch = Prefetch<6144, _MM_HINT_T0>;
constexpr int kPrefetchBytes = IntelPrefetch::kBytes;  // the M >= 3 kernels, on every CPU
// On an AMD EPYC Zen 4 the same L1 prefetches measured no better than none; prefetching 2 KiB ahead into L2 (as one of
// the bandwidth probe's loops does) read the five Qwen3-8B int4 matrices 1.13x (M = 1) and 1.17x (M = 2) as fast,
// median of 40 same-round ratios, 1.39x and 1.22x in the rounds where the probe read ~60 rather than ~35 GB/s
// (native/dev/cpu/decode_prefetch.cpp, bench/results/cpu-zen4-stream.md). On Zen 4 a T1 prefetch fills L2 only
// (docs/cpu-prefetch.md#zen-4). The records too go to L2: asked for into L1 (T0), the hundreds of lines a group of
// tiles' records take at its start (a 4096-wide matrix: 24 per tile) cost the M = 1 kernel 6-7% of its stream on one
// core and in the fast memory mode on two (bench/results/cpu-zen4-records.md).
using AmdPrefetch = Prefetch<2048, _MM_HINT_T1, _MM_HINT_T1>;

// acc += four unsigned weight bytes . four signed activation bytes, per 32-bit lane. Without VNNI the byte products
// go through int16 pairs (at most 2 * 15 * 128: no saturation, since these weights are plain nibbles 0..15).
template <bool VNNI>
inline __m512i dot4(__m512i acc, __m512i w, __m512i x) {
  if constexpr (VNNI) {
    return _mm512_dpbusd_epi32(acc, w, x);
  } else {
    return _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(w, x), _mm512_set1_epi16(1)));
  }
}

// dot4<true> as one vpdpbusd the compiler cannot move or merge: with the intrinsic, GCC 12 spills the decode
// kernel's 4 T = 16 accumulators to the stack inside its inner loop (about 70 instructions per 4 weight words, a
// quarter of them stack loads and stores); as an asm statement on register operands they stay in registers (about 45).
// Same instruction, same bits.
inline void dpbusd(__m512i& acc, __m512i w, __m512i x) {
  asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(w), "v"(x));
}

// Four activation bytes (k .. k+3) in every 32-bit lane.
inline __m512i quad(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// y += s * xscale * (acc - z * sum(x_int)): zero point and both scales applied once per block.
inline __m512 fold(__m512 out, __m512i acc, const uint8_t* rec, float xscale, int32_t xsum) {
  const __m512 s = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)rec));
  const __m512i z = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(rec + 32)));
  const __m512i d = _mm512_sub_epi32(acc, _mm512_mullo_epi32(z, _mm512_set1_epi32(xsum)));
  return _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), _mm512_mul_ps(s, _mm512_set1_ps(xscale)), out);
}

// The prefetches (policy P) of T tile streams that start at tile t, together. Each stream's prefetch runs P::kBytes
// ahead of it; near the end of its tile that address would fall in the next tile, which the next stream of this group
// already reads, so from there on it goes to the same offset of the tile T further on, the one this stream reads next:
// the next group's streams start warm. Each tile's scale/zero records sit at its end but are read from its first block
// on: they are fetched at the start (where P::kRecordHint says).
template <int T, class P>
class StreamPrefetch {
 public:
  StreamPrefetch(const PackedView& w, int t)
      : jump_((size_t)(T - 1) * w.tile_bytes), turn_(w.tile(t + 1) - P::kBytes) {
    const size_t meta_bytes = (size_t)(w.K / w.group_size) * kMetaBytes;
    for (int i = 0; i < T; i++)
      for (size_t o = 0; o < meta_bytes; o += 64)
        if constexpr (P::kRecordHint >= 0) _mm_prefetch((const char*)w.meta(t + i) + o, (_mm_hint)P::kRecordHint);
  }
  // Called once per block with stream 0's position: the distance for the block's prefetches.
  size_t ahead(const uint8_t* stream0) const { return P::kBytes + (stream0 >= turn_ ? jump_ : 0); }

 private:
  size_t jump_;
  const uint8_t* turn_;  // past this, stream 0's prefetch would leave its tile
};

inline __mmask16 lane_mask(const PackedView& w, int t) {
  const int lanes = w.N - t * kTile;
  return lanes >= kTile ? (__mmask16)0xFFFF : (__mmask16)((1u << lanes) - 1);
}

// The int16 dot products of one block from the byte sums: lo/hi = activation byte, 0/1 = low nibbles (q0..q3) or
// 16x high nibbles (16 q4..16 q7). Exact: the 16x sums are multiples of 16.
inline __m512i combine(__m512i l0, __m512i l1, __m512i h0, __m512i h1) {
  const __m512i h = _mm512_add_epi32(h0, _mm512_srai_epi32(h1, 4));
  return _mm512_add_epi32(_mm512_slli_epi32(h, 8), _mm512_add_epi32(l0, _mm512_srai_epi32(l1, 4)));
}

// Decode (M = 1) over T adjacent tiles at once. Memory-bound, so the goals are few instructions per weight word and
// enough independent accumulator chains that latency never stalls the stream: per word two ANDs and four dot
// products, each activation broadcast feeds T weight words, and the T tile streams plus a software prefetch keep
// DRAM busy.
template <bool VNNI, int T, class P = IntelPrefetch>
void tiles_one_row(const PackedView& w, const QuantizedRows& x, int t, float* y) {
  const __m512i m0 = _mm512_set1_epi32(0x0F0F0F0F), m1 = _mm512_set1_epi32((int)0xF0F0F0F0);
  const int B = x.block, nb = w.K / B, nv = B / 8;
  const uint8_t* wp[T];
  __m512 out[T];
  for (int i = 0; i < T; i++) wp[i] = w.tile(t + i), out[i] = _mm512_setzero_ps();
  const StreamPrefetch<T, P> prefetch(w, t);
  for (int b = 0; b < nb; b++) {
    const int8_t* xl = x.lo + (size_t)b * B;
    const int8_t* xh = x.hi + (size_t)b * B;
    __m512i l0[T], l1[T], h0[T], h1[T];
    for (int i = 0; i < T; i++) l0[i] = l1[i] = h0[i] = h1[i] = _mm512_setzero_si512();
    const size_t ahead = prefetch.ahead(wp[0]);
    for (int j = 0; j < nv; j++, xl += 8, xh += 8) {
      const __m512i xl0 = quad(xl), xl1 = quad(xl + 4), xh0 = quad(xh), xh1 = quad(xh + 4);
      for (int i = 0; i < T; i++) {
        P::line(wp[i] + ahead);
        const __m512i v = _mm512_loadu_si512(wp[i]);
        wp[i] += kWordBytes;
        if constexpr (VNNI) {
          const __m512i w0 = _mm512_and_si512(v, m0), w1 = _mm512_and_si512(v, m1);
          dpbusd(l0[i], w0, xl0);
          dpbusd(l1[i], w1, xl1);
          dpbusd(h0[i], w0, xh0);
          dpbusd(h1[i], w1, xh1);
        } else {  // maddubs would saturate on 16x nibbles: shift them down instead
          const __m512i w0 = _mm512_and_si512(v, m0), w1 = _mm512_and_si512(_mm512_srli_epi32(v, 4), m0);
          l0[i] = dot4<false>(dot4<false>(l0[i], w0, xl0), w1, xl1);
          h0[i] = dot4<false>(dot4<false>(h0[i], w0, xh0), w1, xh1);
        }
      }
    }
    const size_t g = (size_t)(b * B / w.group_size) * kMetaBytes;
    for (int i = 0; i < T; i++) {
      const __m512i acc = VNNI ? combine(l0[i], l1[i], h0[i], h1[i])
                               : _mm512_add_epi32(_mm512_slli_epi32(h0[i], 8), l0[i]);
      out[i] = fold(out[i], acc, w.meta(t + i) + g, x.scale[b], x.sum[b]);
    }
  }
  for (int i = 0; i < T; i++) _mm512_mask_storeu_ps(y + (size_t)(t + i) * kTile, lane_mask(w, t + i), out[i]);
}

// Several rows (M > 1, no AMX): each weight word is loaded and unpacked once and used for R rows.
template <bool VNNI, int R>
void tile_rows(const PackedView& w, const QuantizedRows& x, int t, int m0, float* y) {
  const int K = w.K, B = x.block, nb = K / B, nv = B / 8;
  const __m512i mask = _mm512_set1_epi32(0x0F0F0F0F);
  const uint8_t* wp = w.tile(t);
  const uint8_t* meta = w.meta(t);
  __m512 out[R];
  for (int r = 0; r < R; r++) out[r] = _mm512_setzero_ps();
  for (int b = 0; b < nb; b++) {
    __m512i lo[R], hi[R];
    for (int r = 0; r < R; r++) lo[r] = hi[r] = _mm512_setzero_si512();
    for (int j = 0; j < nv; j++, wp += kWordBytes) {
      _mm_prefetch((const char*)wp + kPrefetchBytes, _MM_HINT_T0);
      const __m512i v = _mm512_loadu_si512(wp);
      const __m512i w0 = _mm512_and_si512(v, mask), w1 = _mm512_and_si512(_mm512_srli_epi32(v, 4), mask);
      const size_t k = (size_t)b * B + (size_t)j * 8;
      for (int r = 0; r < R; r++) {
        const size_t at = (size_t)(m0 + r) * K + k;
        lo[r] = dot4<VNNI>(dot4<VNNI>(lo[r], w0, quad(x.lo + at)), w1, quad(x.lo + at + 4));
        hi[r] = dot4<VNNI>(dot4<VNNI>(hi[r], w0, quad(x.hi + at)), w1, quad(x.hi + at + 4));
      }
    }
    const uint8_t* rec = meta + (size_t)(b * B / w.group_size) * kMetaBytes;
    for (int r = 0; r < R; r++) {
      const size_t i = (size_t)(m0 + r) * nb + b;
      out[r] = fold(out[r], _mm512_add_epi32(_mm512_slli_epi32(hi[r], 8), lo[r]), rec, x.scale[i], x.sum[i]);
    }
  }
  const __mmask16 mask16 = lane_mask(w, t);
  for (int r = 0; r < R; r++) _mm512_mask_storeu_ps(y + (size_t)(m0 + r) * w.N + (size_t)t * kTile, mask16, out[r]);
}

// Rows m0 .. m0+R-1 over T adjacent tiles with VNNI: each weight word is loaded and unpacked once for the R rows, each
// activation quad is broadcast once for the T tiles, and the R x T x 2 int32 sums stay in registers (the float
// outputs, touched once per block, live in memory). At two rows (decode batches of 2) this does 8 vpdpbusd per word,
// which the two vector ports sustain faster than the tile unit's expand/store/tile-load round trip
// (native/dev/cpu/awq_rows.cpp).
template <int R, int T, class P = IntelPrefetch>
void rows_vnni(const PackedView& w, const QuantizedRows& x, int t, int m0, float* y) {
  const __m512i mask = _mm512_set1_epi32(0x0F0F0F0F);
  const int K = w.K, B = x.block, nb = K / B, nv = B / 8;
  const uint8_t* wp[T];
  alignas(64) float out[R][T][kTile];
#pragma GCC unroll 8
  for (int i = 0; i < T; i++) wp[i] = w.tile(t + i);
#pragma GCC unroll 8
  for (int r = 0; r < R; r++)
#pragma GCC unroll 8
    for (int i = 0; i < T; i++) _mm512_store_ps(out[r][i], _mm512_setzero_ps());
  const StreamPrefetch<T, P> prefetch(w, t);
  for (int b = 0; b < nb; b++) {
    __m512i lo[R][T], hi[R][T];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
      for (int i = 0; i < T; i++) lo[r][i] = hi[r][i] = _mm512_setzero_si512();
    const size_t ahead = prefetch.ahead(wp[0]);
    for (int j = 0; j < nv; j++) {
      __m512i w0[T], w1[T];
#pragma GCC unroll 8
      for (int i = 0; i < T; i++) {
        P::line(wp[i] + ahead);
        const __m512i v = _mm512_loadu_si512(wp[i]);
        wp[i] += kWordBytes;
        w0[i] = _mm512_and_si512(v, mask);
        w1[i] = _mm512_and_si512(_mm512_srli_epi32(v, 4), mask);
      }
      const size_t k = (size_t)b * B + (size_t)j * 8;
#pragma GCC unroll 8
      for (int r = 0; r < R; r++) {
        const size_t at = (size_t)(m0 + r) * K + k;
        const __m512i xl0 = quad(x.lo + at), xl1 = quad(x.lo + at + 4), xh0 = quad(x.hi + at), xh1 = quad(x.hi + at + 4);
#pragma GCC unroll 8
        for (int i = 0; i < T; i++) {
          lo[r][i] = dot4<true>(dot4<true>(lo[r][i], w0[i], xl0), w1[i], xl1);
          hi[r][i] = dot4<true>(dot4<true>(hi[r][i], w0[i], xh0), w1[i], xh1);
        }
      }
    }
    const size_t g = (size_t)(b * B / w.group_size) * kMetaBytes;
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
      const size_t xb = (size_t)(m0 + r) * nb + b;
#pragma GCC unroll 8
      for (int i = 0; i < T; i++)
        _mm512_store_ps(out[r][i], fold(_mm512_load_ps(out[r][i]), _mm512_add_epi32(_mm512_slli_epi32(hi[r][i], 8), lo[r][i]),
                                        w.meta(t + i) + g, x.scale[xb], x.sum[xb]));
    }
  }
  for (int r = 0; r < R; r++)
    for (int i = 0; i < T; i++)
      _mm512_mask_storeu_ps(y + (size_t)(m0 + r) * w.N + (size_t)(t + i) * kTile, lane_mask(w, t + i),
                            _mm512_load_ps(out[r][i]));
}

// Every row (M >= 3) over T adjacent tiles with VNNI: passes of R rows (the last one shorter), R x T x 2 sums; the
// kernel takes R = 4, T = 2 (kPassRows, kPassTiles). Against one tile with passes of 8 rows (tile_rows_passes, as the
// AVX512BW path still does), two tiles in passes of 4 rows read 1.1-1.2x as fast at M = 3, 1.05x at M = 4 and 1.3-1.5x
// at M = 8 in most rounds (bench_gemv_cpu, same-round best calls), and 1.05-1.34x at M = 5..7, 1.9x at M = 16 in
// native/dev/cpu/int4_streams.cpp, from DRAM on 2 threads of an AMD EPYC (Zen 4, no AMX;
// bench/results/cpu-int4-streams.md): two weight streams per thread instead of one, and 8 activation streams (the
// rows' low and high bytes, K bytes apart, which share an L1 set) instead of 16. Passes of up to 5 rows, as even as
// they divide, measured no better (M = 5, 6).
template <int R, int T>
void rows_vnni_passes(const PackedView& w, const QuantizedRows& x, int t, float* y) {
  row_passes<R>(x.M, [&](auto rows, int m) { rows_vnni<decltype(rows)::value, T>(w, x, t, m, y); });
}

// The decode kernel AMD CPUs run (tiles_avx512vnni_amd at M = 1): tiles_one_row's products with half its accumulators.
// Both nibbles of each weight byte enter the dot products as 16x their value (the high one masked in place, the low
// one moved up), so one accumulator per tile and activation byte sums both nibbles' products: 2 accumulators per
// tile instead of 4, and the fold needs one shift and one add instead of tiles_one_row's combine(). That leaves room
// for T = 8 tiles at once (16 accumulators), so each activation broadcast can feed 8 weight words (tiles_merged says
// how many a core streams at once), and each word is loaded once. Less work per weight word is what counts: on one
// core of an AMD EPYC (Zen 4) streaming from DRAM, work beside the loads costs stream rate (independent vpaddd as
// much as multiplies), and this kernel read 0.82 of a plain read of the same bytes against tiles_one_row's 0.74
// (bench/results/cpu-zen4-one-core.md; docs/cpu-prefetch.md, "Instructions beside the loads"), 0.86 since its high
// nibbles too go through GFNI (NibblesUp).
// Same bits as tiles_one_row: every int32 is 16x tiles_one_row's (exact while 16 * 2 * 15 * kActMax * block < 2^31,
// so for blocks of at most kMergedMaxBlock), and the fold takes xscale / 16 and 16 xsum, both exact, so that the
// float products are the same numbers.
constexpr int kMergedMaxBlock = 128;

// The merged kernel's two operands from a weight word v, per byte: w0 = (v << 4) & 0xF0 (the low nibble moved up),
// w1 = v & 0xF0 (the high nibble in place). With GFNI each is one vgf2p8affineqb (bit matrices that move bits 0-3 to
// 4-7 and keep bits 4-7), written as asm so that this file needs no -mgfni (with it, GCC may use GFNI for other byte
// shifts, on CPUs without it); without, a shift and an AND, and an AND. The high one by GFNI although a vpandd would
// do: on one core of an AMD EPYC (Zen 4) streaming from DRAM the kernel reads 0.86 of a plain read of the same bytes
// this way against 0.81-0.82 with the AND, and on two cores in the fast memory mode 0.87-0.88 against 0.83-0.84
// (bench/results/cpu-zen4-gfni-high.md; docs/cpu-prefetch.md, "The high nibbles by GFNI too").
template <bool GFNI>
struct NibblesUp {
  const __m512i high = _mm512_set1_epi32((int)0xF0F0F0F0), up = _mm512_set1_epi64(0x0000000001020408ll),
                keep = _mm512_set1_epi64(0x0000000010204080ll);
  void operator()(__m512i v, __m512i& w0, __m512i& w1) const {
    if constexpr (GFNI) {
      asm("vgf2p8affineqb $0, %2, %1, %0" : "=v"(w0) : "v"(v), "v"(up));
      asm("vgf2p8affineqb $0, %2, %1, %0" : "=v"(w1) : "v"(v), "v"(keep));
    } else {
      w0 = _mm512_and_si512(_mm512_slli_epi16(v, 4), high);
      w1 = _mm512_and_si512(v, high);
    }
  }
};

// Ops: the operands' maker (NibblesUp; native/dev/cpu/decode_prefetch.cpp times others in this loop).
template <int T, class P, class Ops>
void tiles_one_row_merged(const PackedView& w, const QuantizedRows& x, int t, float* y) {
  const Ops ops;
  const int B = x.block, nb = w.K / B, nv = B / 8;
  const uint8_t* wp[T];
  __m512 out[T];
  for (int i = 0; i < T; i++) wp[i] = w.tile(t + i), out[i] = _mm512_setzero_ps();
  const StreamPrefetch<T, P> prefetch(w, t);
  for (int b = 0; b < nb; b++) {
    const int8_t* xl = x.lo + (size_t)b * B;
    const int8_t* xh = x.hi + (size_t)b * B;
    __m512i lo[T], hi[T];  // 16x the products with the activations' low / high bytes
    for (int i = 0; i < T; i++) lo[i] = hi[i] = _mm512_setzero_si512();
    const size_t ahead = prefetch.ahead(wp[0]);
    for (int j = 0; j < nv; j++, xl += 8, xh += 8) {
      const __m512i xl0 = quad(xl), xl1 = quad(xl + 4), xh0 = quad(xh), xh1 = quad(xh + 4);
      for (int i = 0; i < T; i++) {
        P::line(wp[i] + ahead);
        __m512i v;  // loaded once (as an operand of both ops, GCC may load it twice)
        asm("vmovdqu64 %1, %0" : "=v"(v) : "m"(*(const __m512i*)wp[i]));
        wp[i] += kWordBytes;
        __m512i w0, w1;
        ops(v, w0, w1);
        dpbusd(lo[i], w0, xl0);
        dpbusd(hi[i], w0, xh0);
        dpbusd(lo[i], w1, xl1);
        dpbusd(hi[i], w1, xh1);
      }
    }
    const size_t g = (size_t)(b * B / w.group_size) * kMetaBytes;
    const float xscale = x.scale[b] * 0.0625f;
    const int32_t xsum = x.sum[b] * 16;
    for (int i = 0; i < T; i++)
      out[i] = fold(out[i], _mm512_add_epi32(lo[i], _mm512_slli_epi32(hi[i], 8)), w.meta(t + i) + g, xscale, xsum);
  }
  for (int i = 0; i < T; i++) _mm512_mask_storeu_ps(y + (size_t)(t + i) * kTile, lane_mask(w, t + i), out[i]);
}

// Two rows (decode batches of 2) over T adjacent tiles with the merged kernel's operands: both nibbles of each weight
// byte as 16x their value (NibblesUp), so each row needs one accumulator per tile and activation byte, as in
// rows_vnni<2, T>, but the operands take two operations per word (with GFNI) instead of a shift and two ANDs, beside
// the same 8 vpdpbusd. Same bits as rows_vnni (every int32 16x, the fold takes xscale / 16 and 16 xsum). The float
// outputs live in memory, as in rows_vnni, so the 16 accumulators, 8 activation quads and 2 operands fit the
// registers. On a Zen 5 EPYC it streams 1.03-1.06x as fast as rows_vnni on two threads and 1.01-1.03x on one
// (native/dev/cpu/decode_prefetch.cpp, bench/results/cpu-zen5-m2-merged.md); on Zen 4, whose 512-bit pipes are half
// as wide, the same GFNI operands made M = 2 slower (0.65-0.69 of a read against 0.70-0.72 on one core,
// docs/cpu-prefetch.md), so tiles_amd takes it only where it streams 4 tiles (family 26 and later). A loop of its own
// rather than rows_vnni with an operand maker: rows_vnni<2, 4> given these operands (its order, every tile's word
// unpacked before the rows' products, and the intrinsic vpdpbusd) streamed 0.97-0.98x as fast as it does with its own,
// where this loop (each word's products right after its operands, asm vpdpbusd) gains.
template <int T, class P, class Ops>
void two_rows_merged(const PackedView& w, const QuantizedRows& x, int t, float* y) {
  const Ops ops;
  const int K = w.K, B = x.block, nb = K / B, nv = B / 8;
  const uint8_t* wp[T];
  alignas(64) float out[2][T][kTile];
  for (int i = 0; i < T; i++) wp[i] = w.tile(t + i);
  for (int r = 0; r < 2; r++)
    for (int i = 0; i < T; i++) _mm512_store_ps(out[r][i], _mm512_setzero_ps());
  const StreamPrefetch<T, P> prefetch(w, t);
  for (int b = 0; b < nb; b++) {
    __m512i lo[2][T], hi[2][T];  // 16x the products with each row's activation low / high bytes
    for (int r = 0; r < 2; r++)
      for (int i = 0; i < T; i++) lo[r][i] = hi[r][i] = _mm512_setzero_si512();
    const size_t ahead = prefetch.ahead(wp[0]);
    for (int j = 0; j < nv; j++) {
      const size_t k = (size_t)b * B + (size_t)j * 8;
      __m512i xq[2][4];  // per row: low bytes k..k+3, k+4..k+7, high bytes k..k+3, k+4..k+7
      for (int r = 0; r < 2; r++) {
        const size_t at = (size_t)r * K + k;
        xq[r][0] = quad(x.lo + at), xq[r][1] = quad(x.lo + at + 4);
        xq[r][2] = quad(x.hi + at), xq[r][3] = quad(x.hi + at + 4);
      }
      for (int i = 0; i < T; i++) {
        P::line(wp[i] + ahead);
        __m512i v;  // loaded once, as in tiles_one_row_merged
        asm("vmovdqu64 %1, %0" : "=v"(v) : "m"(*(const __m512i*)wp[i]));
        wp[i] += kWordBytes;
        __m512i w0, w1;
        ops(v, w0, w1);
        for (int r = 0; r < 2; r++) {
          dpbusd(lo[r][i], w0, xq[r][0]);
          dpbusd(hi[r][i], w0, xq[r][2]);
          dpbusd(lo[r][i], w1, xq[r][1]);
          dpbusd(hi[r][i], w1, xq[r][3]);
        }
      }
    }
    const size_t g = (size_t)(b * B / w.group_size) * kMetaBytes;
    for (int r = 0; r < 2; r++) {
      const size_t xb = (size_t)r * nb + b;
      for (int i = 0; i < T; i++) {
        const __m512i acc = _mm512_add_epi32(lo[r][i], _mm512_slli_epi32(hi[r][i], 8));
        _mm512_store_ps(out[r][i], fold(_mm512_load_ps(out[r][i]), acc, w.meta(t + i) + g, x.scale[xb] * 0.0625f,
                                        x.sum[xb] * 16));
      }
    }
  }
  for (int r = 0; r < 2; r++)
    for (int i = 0; i < T; i++)
      _mm512_mask_storeu_ps(y + (size_t)r * w.N + (size_t)(t + i) * kTile, lane_mask(w, t + i),
                            _mm512_load_ps(out[r][i]));
}

// Tiles [t0, t1) at M = 1 with tiles_one_row_merged: groups of 8 when Streams is 8, then of 4, 2, 1. How many streams
// at once suits a core is measured, not derived (merged_streams() in awq_cpu.cpp chooses): on the Zen 4 EPYC these
// kernels were tuned on, 4 read 0.95x as fast as 8 on two cores in the fast memory mode (session 26,
// docs/cpu-prefetch.md); on a Zen 5 EPYC 4 read 1.15x as fast on one core and 1.12-1.22x on two
// (bench/results/cpu-zen5-streams.md).
template <class P, bool GFNI, int Streams>
void tiles_merged(const PackedView& w, const QuantizedRows& x, int t0, int t1, float* y) {
  int t = t0;
  if constexpr (Streams == 8)
    for (; t + 8 <= t1; t += 8) tiles_one_row_merged<8, P, NibblesUp<GFNI>>(w, x, t, y);
  for (; t + 4 <= t1; t += 4) tiles_one_row_merged<4, P, NibblesUp<GFNI>>(w, x, t, y);
  if (t + 2 <= t1) tiles_one_row_merged<2, P, NibblesUp<GFNI>>(w, x, t, y), t += 2;
  if (t < t1) tiles_one_row_merged<1, P, NibblesUp<GFNI>>(w, x, t, y);
}

// Tiles one decode thread streams at once (one memory stream each): in native/dev/cpu/awq_gemv_dram.cpp, 5 runs of
// 7-31 rounds on the shared 2-core machine, 4 streams read 0-6% more GB/s than 2 (median ratio to the same-round probe
// 0.5-4 points higher in every run), and the bandwidth probe's fastest loop also reads 4 streams per thread; the
// 4 x 4 accumulators still fit the registers.
constexpr int kStreams = 4;

constexpr int kRows = 8;  // AVX512BW rows per pass: 2 x 8 accumulators + 8 outputs + unpacked words fit the 32 registers
constexpr int kPassRows = 4, kPassTiles = 2;  // VNNI at M >= 3 (but 5): see rows_vnni_passes

// Every row over one tile (AVX512BW, and VNNI at M = 5): the tile (K/8 x 64 bytes) stays in L2 while every row block
// passes over it.
template <bool VNNI>
void tile_rows_passes(const PackedView& w, const QuantizedRows& x, int t, float* y) {
  row_passes<kRows>(x.M, [&](auto rows, int m) { tile_rows<VNNI, decltype(rows)::value>(w, x, t, m, y); });
}

// P: the decode kernels' (M = 1, 2) prefetch, chosen per CPU (awq_cpu.cpp).
template <bool VNNI, class P>
void tiles(const PackedView& w, const QuantizedRows& x, int t0, int t1, float* y) {
  for (int t = t0; t < t1; t++) {
    if (x.M == 1) {
      if (t + kStreams <= t1) {
        tiles_one_row<VNNI, kStreams, P>(w, x, t, y);
        t += kStreams - 1;
      } else if (t + 2 <= t1) {
        tiles_one_row<VNNI, 2, P>(w, x, t, y);
        t++;
      } else {
        tiles_one_row<VNNI, 1, P>(w, x, t, y);
      }
      continue;
    }
    if constexpr (VNNI) {
      if (x.M == 2) {
        if (t + kStreams <= t1) {
          rows_vnni<2, kStreams, P>(w, x, t, 0, y);
          t += kStreams - 1;
        } else {
          rows_vnni<2, 1, P>(w, x, t, 0, y);
        }
        continue;
      }
      if (x.M != 5) {  // at M = 5 the passes of 4 + 1 rows were 0.94-0.97x one tile in one pass (bench_gemv_cpu)
        if (t + kPassTiles <= t1) {
          rows_vnni_passes<kPassRows, kPassTiles>(w, x, t, y);
          t += kPassTiles - 1;
        } else {
          rows_vnni_passes<kPassRows, 1>(w, x, t, y);
        }
        continue;
      }
    }
    tile_rows_passes<VNNI>(w, x, t, y);
  }
}

}  // namespace

// Same arithmetic as quantize_rows_scalar, 16 values at a time: the product x * inv is rounded once, and vcvtps2dq
// rounds to nearest even as lrintf does in the default rounding mode.
bool quantize_rows_avx512(const float* x, int M, int K, int block, int16_t* q, int8_t* hi, int8_t* lo, float* scale,
                          int32_t* sum) {
  const int nb = K / block;
  const __m512 fmax = _mm512_set1_ps(FLT_MAX);
  const __m512i vmax = _mm512_set1_epi32(kActMax), vmin = _mm512_set1_epi32(-kActMax);
  const __m512i b128 = _mm512_set1_epi32(128), b255 = _mm512_set1_epi32(255);
  for (int m = 0; m < M; m++) {
    for (int b = 0; b < nb; b++) {
      const size_t at = (size_t)m * K + (size_t)b * block;
      const float* xs = x + at;
      __m512 amax = _mm512_setzero_ps();
      __mmask16 finite = 0xFFFF;
      for (int i = 0; i < block; i += 16) {
        const __mmask16 k = block - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (block - i)) - 1);
        const __m512 a = _mm512_abs_ps(_mm512_maskz_loadu_ps(k, xs + i));
        finite &= _mm512_cmp_ps_mask(a, fmax, _CMP_LE_OQ) | (__mmask16)~k;  // false for NaN and infinities
        amax = _mm512_max_ps(amax, a);
      }
      if (finite != 0xFFFF) return false;
      const float am = _mm512_reduce_max_ps(amax);
      const __m512 inv = _mm512_set1_ps(am == 0.f ? 0.f : (float)kActMax / am);
      __m512i s = _mm512_setzero_si512();
      for (int i = 0; i < block; i += 16) {
        const __mmask16 k = block - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (block - i)) - 1);
        __m512i v = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(k, xs + i), inv));
        v = _mm512_min_epi32(vmax, _mm512_max_epi32(vmin, v));
        const __m512i l = _mm512_sub_epi32(_mm512_and_si512(_mm512_add_epi32(v, b128), b255), b128);
        const __m512i h = _mm512_srai_epi32(_mm512_sub_epi32(v, l), 8);
        _mm256_mask_storeu_epi16(q + at + i, k, _mm512_cvtepi32_epi16(v));
        _mm_mask_storeu_epi8(lo + at + i, k, _mm512_cvtepi32_epi8(l));
        _mm_mask_storeu_epi8(hi + at + i, k, _mm512_cvtepi32_epi8(h));
        s = _mm512_add_epi32(s, v);  // masked-off lanes loaded as 0
      }
      scale[(size_t)m * nb + b] = am / (float)kActMax;
      sum[(size_t)m * nb + b] = _mm512_reduce_add_epi32(s);
    }
  }
  return true;
}

void tiles_avx512vnni(const PackedView& w, const QuantizedRows& x, int t0, int t1, float* y) {
  tiles<true, IntelPrefetch>(w, x, t0, t1, y);
}

// The AMD kernels: the merged M = 1 kernel where its integers stay exact, on Zen 5 (4 streams) with GFNI the merged
// M = 2 one too, tiles<> (AMD prefetch) otherwise.
template <bool GFNI, int Streams>
void tiles_amd(const PackedView& w, const QuantizedRows& x, int t0, int t1, float* y) {
  if (x.M == 1 && x.block <= kMergedMaxBlock) return tiles_merged<AmdPrefetch, GFNI, Streams>(w, x, t0, t1, y);
  if constexpr (GFNI && Streams == 4)
    if (x.M == 2 && x.block <= kMergedMaxBlock) {
      int t = t0;
      for (; t + 4 <= t1; t += 4) two_rows_merged<4, AmdPrefetch, NibblesUp<true>>(w, x, t, y);
      for (; t < t1; t++) two_rows_merged<1, AmdPrefetch, NibblesUp<true>>(w, x, t, y);
      return;
    }
  tiles<true, AmdPrefetch>(w, x, t0, t1, y);
}

template <bool GFNI>
void tiles_amd_streams(const PackedView& w, const QuantizedRows& x, int t0, int t1, float* y) {
  merged_streams() == 4 ? tiles_amd<GFNI, 4>(w, x, t0, t1, y) : tiles_amd<GFNI, 8>(w, x, t0, t1, y);
}

void tiles_avx512vnni_amd(const PackedView& w, const QuantizedRows& x, int t0, int t1, float* y) {
  static const bool gfni = __builtin_cpu_supports("gfni");
  gfni ? tiles_amd_streams<true>(w, x, t0, t1, y) : tiles_amd_streams<false>(w, x, t0, t1, y);
}

void tiles_avx512vnni_amd_no_gfni(const PackedView& w, const QuantizedRows& x, int t0, int t1, float* y) {
  tiles_amd_streams<false>(w, x, t0, t1, y);
}

void tiles_avx512bw(const PackedView& w, const QuantizedRows& x, int t0, int t1, float* y) {
  tiles<false, IntelPrefetch>(w, x, t0, t1, y);
}

}  // namespace q3::awq_cpu
