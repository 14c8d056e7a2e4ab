// Experiment: the int4 decode kernels (M = 1: tiles_one_row, M = 2: rows_vnni<2, T>) streaming from DRAM with other
// software prefetch hints and distances, other numbers of tiles streamed at once (T) and other work splits across
// the 2 threads, on the four Qwen3-8B int4 shapes. The prefetch constants in the library were tuned on Sapphire Rapids
// (6 KiB ahead into L1, 4 streams); this asks what an AMD Zen 4 core wants.
// Findings (bench/results/cpu-zen4-stream.md, AMD EPYC Zen 4, 2 vCPUs): T = 4 with a T1/T2 prefetch 1-12 KiB ahead
// is fastest (M = 1 1.26x, M = 2 1.21x the T0 6 KiB mainline over 12 rounds of the full sweep); T0 is no better than
// no prefetch, T = 8 and NTA are slower, the split does not matter. The library takes T1 2 KiB on AMD CPUs
// (tiles_avx512vnni_amd): 1.13x (M = 1) and 1.17x (M = 2) over 40 rounds.
// Added in session 22, for issue 18's bandwidth target: "m<M> read" reads the same bytes with the probe's fastest loop
// in the same calls, and every version is also given ÷ that read of the same round, split by the read's mode (the
// probe's own buffer and the matrices are not always in the same mode); "m1 loads only" is the library's M = 1 walk
// with the loads and prefetches only; "m1 walk u1", "m1 u2", "m1 strided...", "m1 records per block" are the library's
// kernel (same instructions, same bits) on its own and other walks (walk() below).
// Findings (bench/results/cpu-zen4-decode-vs-read.md, 120 rounds, 69 in the fast mode and 51 in the slow): ÷ the read
// of the same bytes, fast / slow, the library's kernel reads 0.82 / 0.93 and its walk with the loads only 0.97 / 1.00
// (three earlier 120-round runs the same hour: kernel 0.80-0.82 fast, loads 0.86-0.94). No other walk (four streams far
// apart, two words of a stream at a time), prefetch (1 or 4 KiB, none, an added T0 512 bytes ahead) or way of fetching
// the scale/zero records (per block: 0.83 fast) reads clearly faster than the library's; walk() on the library's own
// walk ("m1 walk u1") reads as the library does. The timing-only versions (wrong results, not checked) ask what in the
// arithmetic costs the stream, fast mode: the two ANDs alone 0.92; one vpdpbusd or one vpmaddwd per four words, on
// constant operands, 0.86-0.87; half the dot products 0.78; all of them on constant operands instead of the loaded
// words 0.76, as 256-bit vpdpbusd 0.74, as two vpmaddwd per word 0.78. So in the fast mode vector multiplies beside
// the loads cost the stream even when few and independent of the loads; the exact kernel needs its four dot products
// per word (int16 activations as two signed bytes), and reads better than the independent versions.
// Session 23: a threads argument (1: one core, where the same gap shows in either memory mode), timing-only versions
// with one or four vpaddd per word (no multiplies), and the library's new M = 1 kernel ("m1 library amd": merged
// accumulators, 8 tiles, GFNI; "m1 library amd without GFNI"); tiles_one_row with the AMD prefetch, the kernel before
// it, is "m1 t4 d2048 T1". Findings (bench/results/cpu-zen4-one-core.md, cpu-zen4-merged-vs-read.md): on one core the
// old kernel reads 0.74 of the read, one vpaddd per word beside the loads 0.79, four 0.69: work beside the loads, not
// multiplies; the new kernel 0.82 on one core, 0.83 / 0.94 on two in the fast / slow mode (the old one 0.76 / 0.93).
// The session-22 figures above came from a -march=native build, under which the kernels spilled (see Build).
// Session 24: merged_var, the library's merged loop with other bit work per word (VarOps, in place of its NibblesUp).
// Findings (bench/results/cpu-zen4-gfni-high.md), one core: fewer instructions did not read faster (no bit operation
// at all, timing only: 0.72-0.76 of the read against the kernel's 0.81-0.83), two vpord of zero after each operand
// did (0.85-0.87), and the high nibbles by vgf2p8affineqb instead of vpandd read best of the exact forms: 0.86-0.87,
// on two cores 0.87-0.88 in the fast mode. The library took it ("m1 library amd" since; the kernel before is "m1
// merged, high nibbles by AND"). Then the records: the AMD policy asks for the tiles' scale/zero records into L2
// instead of L1, and the kernel reads 0.90 of the read on one core and on two in the fast mode ("m1 merged, records
// into L1 (T0)" 0.84-0.85; bench/results/cpu-zen4-records.md). merged_var's default prefetch is the AMD policy, so the
// versions above timed before that change (cpu-zen4-gfni-high.md) had their records into L1.
// Session 33: the host is now a Zen 5 (family 26); stream counts for the merged kernel ("m1 merged, hi GFNI, t8 / t4 /
// t2 / t1", merged_var's TMax) and more prefetch distances. 4 streams read 1.15x as fast as 8 on one core and
// 1.12-1.22x on two (bench/results/cpu-zen5-streams.md); the library takes 4 on family 26 and later
// (merged_streams()), so "m1 library amd" is the 4-stream kernel on such a CPU. The timing-only versions on the Zen 5
// (16 rounds on 2 threads, 12 on one): four independent vpaddd per word read 0.76 of the read, one 0.85-0.86, the ANDs
// alone 0.89-0.92, the 4 dot products without bit operations 0.78-0.80, the kernel 0.83, its loads alone 0.96: work
// beside the loads costs the stream here too, though the pipes have 3x the room the stream needs. Embedded broadcasts
// ("m1 merged, embedded broadcasts, t4": one instruction fewer per word) read 0-3% more, within the noise: not kept;
// that version, a copy of the library's merged loop, is in commit a883aa3 of this file.
// Session 35: stream counts 3, 5, 6 ("m1 merged, hi GFNI, t3" ...) read 0.75-0.76 of the read against 4's 0.78 (60
// rounds); "m1 int8 activations, t4 / t8" (tiles_one_row_int8: two vpdpbusd per word, as int8 activations would
// need) read as the exact kernel does, 0.82-0.88 against 0.83-0.87 (bench/results/cpu-zen5-int8-activations.md).
// The merged kernel's operands at M = 2 (two_rows_merged, now the library's on Zen 5 with GFNI: "m2 library amd"; the
// kernel before is "m2 rows_vnni ..."): 0.78 of the read against 0.74 (bench/results/cpu-zen5-m2-merged.md).
// What the loads-only walk loses to one more thing per word or per block (walk's Arith 10-18, Rec 3-5): the per-block
// fold 3-12%, of which a fold on a fixed L1 record loses nothing; the fold and one nop, scalar add, vpaddd or L1 load
// per word about as much as the whole kernel (same file, "What the stream loses").
// Session 36: two prefetches per word and stream (TwicePrefetch: the line asked for again 1-6 KiB later, or into L1
// 512 bytes ahead) read 0.71-0.80 of the read against one prefetch's 0.85; four long streams ("m1 strided") 0.81 as
// the same kernel's grouped walk (bench/results/cpu-zen5-stream-limits.md).
// The library's source is compiled into this file (its kernels are file-local templates), so every version is the
// library's own loop with other template arguments; each is first checked against tiles_avx512vnni (the same bits).
// Version names: m<M> t<T> d<distance in bytes, 0 = no software prefetch> <hint T0|T1|T2|NTA> [c<chunks per thread>]
// (default c8: awq_matmul_cpu's split, about 8 chunks of whole tile pairs per thread, taken in turn); "mainline" is
// tiles_avx512vnni (Intel's prefetch), "library amd" tiles_avx512vnni_amd.
// Per round: the read probe (ReadProbe::measure, 3 passes), then each version over every shape (copies rotated over
// 256 MiB per shape, so every call reads DRAM), order rotated per round. Per version: for each shape the mean call
// over the copies, as GB/s of packed weights, ÷ the same round's probe and ÷ the mainline version in the same round;
// then the same for the four shapes together (time of one pass over qkv + o + gate + up + down, as a decode layer
// reads them). Median (min-max) over rounds.
// Build, with the flags CMake gives the library's AVX-512 file (native/CMakeLists.txt), since the kernels' source is
// compiled into this file: under -march=native GCC 12 tunes for the host and spilled the decode kernel's accumulators
// to the stack in its inner loop (on Zen 4: 36 instead of 54 GB/s from L3), so the figures of runs built that way
// (up to session 22) are for other code than the library's:
// g++ -O3 -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mfma -mf16c -mavx2 -I native/src -I native/include \
//   native/dev/cpu/decode_prefetch.cpp native/build/libq3core.a -lpthread -o /tmp/decode_prefetch
// Usage: /tmp/decode_prefetch M rounds [comma-separated versions|all|m1|m2] [results file] [threads, default 2]
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "awq_inputs.h"
#include "cpu/awq_cpu.h"
#include "cpu/awq_cpu_avx512.cpp"
#include "cpu/awq_cpu_kernels.h"
#include "cpu/bandwidth_cpu.h"
#include "results_md.h"
#include "threadpool.h"

using namespace q3;
using namespace q3::awq_cpu;

namespace {

using Kernel = void (*)(const PackedView&, const QuantizedRows&, int, int, float*);

// A tile range the way tiles<VNNI> walks it at M = 1 and 2: groups of T tiles, then the rest.
template <int T, class P>
void one_row(const PackedView& w, const QuantizedRows& x, int t0, int t1, float* y) {
  int t = t0;
  for (; t + T <= t1; t += T) tiles_one_row<true, T, P>(w, x, t, y);
  for (; t + 2 <= t1; t += 2) tiles_one_row<true, 2, P>(w, x, t, y);
  for (; t < t1; t++) tiles_one_row<true, 1, P>(w, x, t, y);
}

template <int T, class P>
void two_rows(const PackedView& w, const QuantizedRows& x, int t0, int t1, float* y) {
  int t = t0;
  for (; t + T <= t1; t += T) rows_vnni<2, T, P>(w, x, t, 0, y);
  for (; t < t1; t++) rows_vnni<2, 1, P>(w, x, t, 0, y);
}

// The library's M = 1 kernel (tiles_one_row<true, 4, AMD prefetch>: same instructions, same bits) with two changes to
// its walk. Strided: a range of n tiles is walked as 4 streams far apart, as the read does (the g-th step takes tile g
// of each quarter of the range), so that each stream reads one long stretch instead of turning every tile; the
// prefetch runs straight ahead. U: U consecutive words of a stream (U x 64 bytes, as the read's 256) before the next
// stream, instead of one. Loads: the same walk with the loads only. Rec: how the tiles' scale/zero records are brought
// into L1: 1 all at the start of a group of tiles (as the library does), 2 one record per tile and block, two groups
// ahead, 3 / 4 / 5 the same T1 4 groups ahead / T0 4 ahead / T0 1 ahead, 0 not at all (for Loads). Arith: the
// timing-only versions (wrong results), each commented where it branches off; from 10 on (session 35) the loads-only
// walk with its per-block fold (16; on one fixed L1 record: 17; the block's sums stored instead of folded: 18), and
// 10-15 with one thing more per word besides: one or two L1 loads, an L1 load and a vpaddd, a vpaddd, a nop, a
// scalar add.
template <bool Strided, int U, bool Loads = false, int Rec = 1, int Arith = 0>
void walk(const PackedView& w, const QuantizedRows& x, int t0, int t1, float* y) {
  constexpr int T = 4;
  using P = Prefetch<2048, _MM_HINT_T1>;
  const int q = (t1 - t0) / T;
  const __m512i m0 = _mm512_set1_epi32(0x0F0F0F0F), m1 = _mm512_set1_epi32((int)0xF0F0F0F0);
  const int B = x.block, nb = w.K / B, nv = B / 8;
  __m512i sink = _mm512_setzero_si512();
  uint64_t scalar = 0;
  alignas(64) static thread_local __m512i deferred[64][T];  // Arith 18
  alignas(64) static const uint8_t fixed_record[64] = {};  // Arith 17: one scale/zero record in L1
  for (int g = 0; g < q; g++) {
    const int t = t0 + T * g;
    int tt[T];
    const uint8_t* wp[T];
    __m512 out[T];
    for (int i = 0; i < T; i++)
      tt[i] = Strided ? t0 + i * q + g : t + i, wp[i] = w.tile(tt[i]), out[i] = _mm512_setzero_ps();
    // The library's turn (StreamPrefetch): near the end of its tile an adjacent stream's prefetch goes on T tiles on.
    const size_t jump = Strided ? 0 : (size_t)(T - 1) * w.tile_bytes;
    const uint8_t* turn = w.tile(t + 1) - P::kBytes;
    const int groups = w.K / w.group_size;
    auto records = [&](int from, int to) {  // every line that records [from, to) touch
      for (int i = 0; i < T; i++)
        for (size_t l = (size_t)from * kMetaBytes / 64; l <= ((size_t)to * kMetaBytes - 1) / 64; l++)
          if constexpr (Rec == 3) _mm_prefetch((const char*)w.meta(tt[i]) + 64 * l, _MM_HINT_T1);
          else _mm_prefetch((const char*)w.meta(tt[i]) + 64 * l, _MM_HINT_T0);
    };
    // Rec 3 / 4 / 5 (session 35): one record per tile and block, T1 4 groups ahead / T0 4 ahead / T0 1 ahead.
    constexpr int rec_ahead = Rec == 5 ? 1 : Rec >= 3 ? 4 : 2;
    if (Rec == 1) records(0, groups);
    if (Rec >= 2) records(0, std::min(groups, rec_ahead));
    for (int b = 0; b < nb; b++) {
      const int8_t* xl = x.lo + (size_t)b * B;
      const int8_t* xh = x.hi + (size_t)b * B;
      __m512i l0[T], l1[T], h0[T], h1[T];
      for (int i = 0; i < T; i++) l0[i] = l1[i] = h0[i] = h1[i] = _mm512_setzero_si512();
      const size_t ahead = P::kBytes + (wp[0] >= turn ? jump : 0);
      const int group = b * B / w.group_size;
      if (Rec >= 2 && group + rec_ahead < groups) records(group + rec_ahead, group + rec_ahead + 1);
      for (int j = 0; j < nv; j += U, xl += 8 * U, xh += 8 * U) {
        __m512i xq[U][4];
#pragma GCC unroll 8
        for (int u = 0; u < U; u++)
          xq[u][0] = quad(xl + 8 * u), xq[u][1] = quad(xl + 8 * u + 4), xq[u][2] = quad(xh + 8 * u),
          xq[u][3] = quad(xh + 8 * u + 4);
#pragma GCC unroll 8
        for (int i = 0; i < T; i++) {
#pragma GCC unroll 8
          for (int u = 0; u < U; u++) {
            P::line(wp[i] + ahead);
            const __m512i v = _mm512_loadu_si512(wp[i]);
            wp[i] += kWordBytes;
            if (Loads) {
              sink = _mm512_xor_si512(sink, v);
              continue;
            }
            if (Arith == 3) {  // the same arithmetic on the masks instead of the word: independent of the load
              sink = _mm512_xor_si512(sink, v);
              dpbusd(l0[i], m0, xq[u][0]);
              dpbusd(l1[i], m1, xq[u][1]);
              dpbusd(h0[i], m0, xq[u][2]);
              dpbusd(h1[i], m1, xq[u][3]);
              continue;
            }
            if (Arith == 4) {  // as 3 with vpmaddwd (16-bit multiplies, no dot-product unit) instead of vpdpbusd
              sink = _mm512_xor_si512(sink, v);
              l0[i] = _mm512_add_epi32(l0[i], _mm512_madd_epi16(m0, xq[u][0]));
              l1[i] = _mm512_add_epi32(l1[i], _mm512_madd_epi16(m1, xq[u][1]));
              continue;
            }
            if (Arith == 5) {  // as 3 with 256-bit vpdpbusd, four per word
              sink = _mm512_xor_si512(sink, v);
              __m256i a0 = _mm512_castsi512_si256(l0[i]), a1 = _mm512_castsi512_si256(l1[i]);
              const __m256i k0 = _mm512_castsi512_si256(m0), k1 = _mm512_castsi512_si256(m1);
              asm("vpdpbusd %2, %1, %0" : "+x"(a0) : "x"(k0), "x"(_mm512_castsi512_si256(xq[u][0])));
              asm("vpdpbusd %2, %1, %0" : "+x"(a1) : "x"(k1), "x"(_mm512_castsi512_si256(xq[u][1])));
              asm("vpdpbusd %2, %1, %0" : "+x"(a0) : "x"(k1), "x"(_mm512_castsi512_si256(xq[u][2])));
              asm("vpdpbusd %2, %1, %0" : "+x"(a1) : "x"(k0), "x"(_mm512_castsi512_si256(xq[u][3])));
              l0[i] = _mm512_castsi256_si512(a0), l1[i] = _mm512_castsi256_si512(a1);
              continue;
            }
            if (Arith >= 10 && Arith <= 12) {  // session 35: 1 or 2 more L1 loads per word (12: one and a vpaddd)
              sink = _mm512_xor_si512(sink, v);
              __m512i extra;
              const int32_t* a = (const int32_t*)(xl + 4 * (i & 1));
              const int32_t* b = (const int32_t*)(xh + 4 * (i & 1));
              asm volatile("vpbroadcastd %1, %0" : "=v"(extra) : "m"(*a));
              if (Arith == 11) asm volatile("vpbroadcastd %1, %0" : "=v"(extra) : "m"(*b));
              if (Arith == 12) asm("vpaddd %1, %0, %0" : "+v"(l0[i]) : "v"(m1));  // a vpaddd on registers only
              continue;
            }
            if (Arith >= 16 && Arith <= 18) {  // the loads-only walk with the per-block fold (its record reads) kept
              sink = _mm512_xor_si512(sink, v);
              continue;
            }
            if (Arith == 14 || Arith == 15) {  // one nop / one scalar add per word beside the loads-only walk
              sink = _mm512_xor_si512(sink, v);
              if (Arith == 14) asm volatile("nop");
              if (Arith == 15) asm volatile("add $1, %0" : "+r"(scalar));
              continue;
            }
            if (Arith == 13) {  // one vpaddd per word on registers only (no broadcast load, unlike Arith 8)
              sink = _mm512_xor_si512(sink, v);
              asm("vpaddd %1, %0, %0" : "+v"(l0[i]) : "v"(m1));
              continue;
            }
            if (Arith == 8 || Arith == 9) {  // one or four vpaddd per word, independent of the loads: no multiplies
              sink = _mm512_xor_si512(sink, v);
              asm("vpaddd %1, %0, %0" : "+v"(l0[i]) : "v"(xq[u][0]));
              if (Arith == 9) {
                asm("vpaddd %1, %0, %0" : "+v"(l1[i]) : "v"(xq[u][1]));
                asm("vpaddd %1, %0, %0" : "+v"(h0[i]) : "v"(xq[u][2]));
                asm("vpaddd %1, %0, %0" : "+v"(h1[i]) : "v"(xq[u][3]));
              }
              continue;
            }
            if (Arith == 6 || Arith == 7) {  // one multiply per step of T words, independent of the loads
              sink = _mm512_xor_si512(sink, v);
              if (i == 0) {
                if (Arith == 6) dpbusd(l0[0], m0, xq[u][0]);
                else l0[0] = _mm512_madd_epi16(l0[0], xq[u][0]);
              }
              continue;
            }
            const __m512i w0 = _mm512_and_si512(v, m0), w1 = _mm512_and_si512(v, m1);
            if (Arith == 2) {  // the two ANDs only
              sink = _mm512_xor_si512(sink, _mm512_xor_si512(w0, w1));
              continue;
            }
            dpbusd(l0[i], w0, xq[u][0]);
            dpbusd(l1[i], w1, xq[u][1]);
            if (Arith == 1) continue;  // half the dot products
            dpbusd(h0[i], w0, xq[u][2]);
            dpbusd(h1[i], w1, xq[u][3]);
          }
        }
      }
      if (Loads) continue;
      const size_t gm = (size_t)(b * B / w.group_size) * kMetaBytes;
      if (Arith == 18) {  // the block's sums stored for a later fold instead of folded here
        for (int i = 0; i < T; i++) _mm512_store_si512(&deferred[b & 63][i], combine(l0[i], l1[i], h0[i], h1[i]));
        continue;
      }
      for (int i = 0; i < T; i++)
        out[i] = fold(out[i], combine(l0[i], l1[i], h0[i], h1[i]), Arith == 17 ? fixed_record : w.meta(tt[i]) + gm,
                      x.scale[b], x.sum[b]);
    }
    if (Arith == 18) out[0] = _mm512_add_ps(out[0], _mm512_castsi512_ps(deferred[nb & 63][0]));
    for (int i = 0; i < T; i++)
      _mm512_mask_storeu_ps(y + (size_t)tt[i] * kTile, lane_mask(w, tt[i]),
                            Loads || Arith ? _mm512_add_ps(_mm512_castsi512_ps(sink), out[i]) : out[i]);
  }
  one_row<4, P>(w, x, t0 + T * q, t1, y);  // the rest of the range
}

// Variants of the merged kernel (session 24): the library's tiles_one_row_merged loop with other bit work per word,
// as an operand maker in place of its NibblesUp. Lo, the op that makes the low-nibble operand from the loaded word: 0
// none (the word itself), 1 vgf2p8affineqb (the library), 2 a vpaddd of zero, 3 shift and AND. Hi, the op for the
// high-nibble operand: 0 none, 1 AND (the library before session 24), 2 a vpaddd of zero, 3 vgf2p8affineqb (the
// library since). Lo or Hi 0 or 2 gives wrong results: those versions are "timing only", not checked. Extra /
// ExtraHi: that many more vpord of zero on the low / high operand after its op, Pre: on the loaded word before both
// (same bits).
template <int Lo, int Hi, int Extra, int Pre, int ExtraHi>
struct VarOps {
  const __m512i high = _mm512_set1_epi32((int)0xF0F0F0F0), up = _mm512_set1_epi64(0x0000000001020408ll),
                zero = _mm512_setzero_si512(), keep = _mm512_set1_epi64(0x0000000010204080ll);
  static void gfni(__m512i v, __m512i matrix, __m512i& r) {
    asm("vgf2p8affineqb $0, %2, %1, %0" : "=v"(r) : "v"(v), "v"(matrix));
  }
  void operator()(__m512i v, __m512i& w0, __m512i& w1) const {
    for (int e = 0; e < Pre; e++) asm("vpord %2, %1, %0" : "=v"(v) : "v"(v), "v"(zero));
    w0 = v, w1 = v;
    if constexpr (Lo == 1) gfni(v, up, w0);
    if constexpr (Lo == 2) asm("vpaddd %2, %1, %0" : "=v"(w0) : "v"(v), "v"(zero));
    if constexpr (Lo == 3) w0 = _mm512_and_si512(_mm512_slli_epi16(v, 4), high);
    if constexpr (Hi == 1) w1 = _mm512_and_si512(v, high);
    if constexpr (Hi == 2) asm("vpaddd %2, %1, %0" : "=v"(w1) : "v"(v), "v"(zero));
    if constexpr (Hi == 3) gfni(v, keep, w1);
    for (int e = 0; e < Extra; e++) asm("vpord %2, %1, %0" : "=v"(w0) : "v"(w0), "v"(zero));
    for (int e = 0; e < ExtraHi; e++) asm("vpord %2, %1, %0" : "=v"(w1) : "v"(w1), "v"(zero));
  }
};

// Two prefetches per word and stream: Hint Far bytes ahead (StreamPrefetch's distance) and NearHint Near bytes ahead,
// so that a line asked for once is asked for again (Far - Near) bytes later in the stream; the records where
// RecordHint says.
template <int Far, int Hint, int Near, int NearHint, int RecordHint = _MM_HINT_T1>
struct TwicePrefetch {
  static constexpr int kBytes = Far;
  static constexpr int kRecordHint = RecordHint;
  static void line(const uint8_t* p) {
    _mm_prefetch((const char*)p, (_mm_hint)Hint);
    _mm_prefetch((const char*)p - (Far - Near), (_mm_hint)NearHint);
  }
};

// A tile range in groups of TMax tiles, then 8, 4, 2, 1 (those up to TMax), as tiles_merged walks it.
template <int Lo, int Hi, int Extra, int Pre = 0, int ExtraHi = Extra, class P = AmdPrefetch, int TMax = 8>
void merged_var(const PackedView& w, const QuantizedRows& x, int t0, int t1, float* y) {
  using Ops = VarOps<Lo, Hi, Extra, Pre, ExtraHi>;
  int t = t0;
  if constexpr (TMax == 3 || TMax == 5 || TMax == 6)
    for (; t + TMax <= t1; t += TMax) tiles_one_row_merged<TMax, P, Ops>(w, x, t, y);
  if constexpr (TMax >= 8)
    for (; t + 8 <= t1; t += 8) tiles_one_row_merged<8, P, Ops>(w, x, t, y);
  if constexpr (TMax >= 4)
    for (; t + 4 <= t1; t += 4) tiles_one_row_merged<4, P, Ops>(w, x, t, y);
  if constexpr (TMax >= 2)
    for (; t + 2 <= t1; t += 2) tiles_one_row_merged<2, P, Ops>(w, x, t, y);
  for (; t < t1; t++) tiles_one_row_merged<1, P, Ops>(w, x, t, y);
}

// What int8 activations (llama.cpp's Q8 way) would cost this loop (session 35): the library's merged loop with the
// products of the activations' high bytes only, 2 vpdpbusd per word into one accumulator per tile instead of 4 into
// two. Its instruction stream is that of an int8-activation kernel; its results are not the library's (timing only).
template <int T, class P>
void tiles_one_row_int8(const PackedView& w, const QuantizedRows& x, int t, float* y) {
  const NibblesUp<true> ops;
  const int B = x.block, nb = w.K / B, nv = B / 8;
  const uint8_t* wp[T];
  __m512 out[T];
  for (int i = 0; i < T; i++) wp[i] = w.tile(t + i), out[i] = _mm512_setzero_ps();
  const StreamPrefetch<T, P> prefetch(w, t);
  for (int b = 0; b < nb; b++) {
    const int8_t* xh = x.hi + (size_t)b * B;
    __m512i acc[T];
    for (int i = 0; i < T; i++) acc[i] = _mm512_setzero_si512();
    const size_t ahead = prefetch.ahead(wp[0]);
    for (int j = 0; j < nv; j++, xh += 8) {
      const __m512i xh0 = quad(xh), xh1 = quad(xh + 4);
      for (int i = 0; i < T; i++) {
        P::line(wp[i] + ahead);
        __m512i v;
        asm("vmovdqu64 %1, %0" : "=v"(v) : "m"(*(const __m512i*)wp[i]));
        wp[i] += kWordBytes;
        __m512i w0, w1;
        ops(v, w0, w1);
        dpbusd(acc[i], w0, xh0);
        dpbusd(acc[i], w1, xh1);
      }
    }
    const size_t g = (size_t)(b * B / w.group_size) * kMetaBytes;
    for (int i = 0; i < T; i++) out[i] = fold(out[i], acc[i], w.meta(t + i) + g, x.scale[b] * 16.f, x.sum[b] / 16);
  }
  for (int i = 0; i < T; i++) _mm512_mask_storeu_ps(y + (size_t)(t + i) * kTile, lane_mask(w, t + i), out[i]);
}

template <int TMax>
void int8_var(const PackedView& w, const QuantizedRows& x, int t0, int t1, float* y) {
  int t = t0;
  for (; t + TMax <= t1; t += TMax) tiles_one_row_int8<TMax, AmdPrefetch>(w, x, t, y);
  for (; t < t1; t++) tiles_one_row_int8<1, AmdPrefetch>(w, x, t, y);
}

// Two prefetches per word: T1 2 KiB ahead (the AMD policy) and T0 512 bytes ahead (1536 behind it).
using PrefetchT1T0 = TwicePrefetch<2048, _MM_HINT_T1, 512, _MM_HINT_T0, _MM_HINT_T0>;

struct Version {
  std::string name;
  int M;
  Kernel fn;
  int chunks;  // per thread
};

const char* hint_name(int h) {
  return h == _MM_HINT_T0 ? "T0" : h == _MM_HINT_T1 ? "T1" : h == _MM_HINT_T2 ? "T2" : "NTA";
}

template <int T, int D, int H>
void add(std::vector<Version>& vs, int chunks = 8) {
  using P = Prefetch<D, H>;
  const std::string tail = "t" + std::to_string(T) + " d" + std::to_string(D) +
                           (D ? std::string(" ") + hint_name(H) : "") + (chunks != 8 ? " c" + std::to_string(chunks) : "");
  vs.push_back({"m1 " + tail, 1, one_row<T, P>, chunks});
  if constexpr (T <= 4) vs.push_back({"m2 " + tail, 2, two_rows<T, P>, chunks});
}

template <int T, int H>
void add_distances(std::vector<Version>& vs) {
  add<T, 1024, H>(vs), add<T, 2048, H>(vs), add<T, 4096, H>(vs), add<T, 6144, H>(vs), add<T, 12288, H>(vs),
      add<T, 24576, H>(vs);
}

template <int T>
void add_all(std::vector<Version>& vs) {
  add<T, 0, 0>(vs);
  add_distances<T, _MM_HINT_T0>(vs), add_distances<T, _MM_HINT_T1>(vs), add_distances<T, _MM_HINT_T2>(vs),
      add_distances<T, _MM_HINT_NTA>(vs);
}

std::vector<Version> versions() {
  std::vector<Version> vs;
  vs.push_back({"m1 mainline", 1, tiles_avx512vnni, 8});
  vs.push_back({"m2 mainline", 2, tiles_avx512vnni, 8});
  vs.push_back({"m1 library amd", 1, tiles_avx512vnni_amd, 8});
  vs.push_back({"m2 library amd", 2, tiles_avx512vnni_amd, 8});
  vs.push_back({"m1 read", 1, dev::read_tiles, 8});
  vs.push_back({"m1 loads only", 1, walk<false, 1, true>, 8});
  vs.push_back({"m1 strided", 1, walk<true, 1>, 8});
  vs.push_back({"m1 strided loads only", 1, walk<true, 1, true>, 8});
  vs.push_back({"m1 u2", 1, walk<false, 2>, 8});
  vs.push_back({"m1 u2 loads only", 1, walk<false, 2, true>, 8});
  vs.push_back({"m1 strided u2", 1, walk<true, 2>, 8});
  vs.push_back({"m1 strided u4 loads only", 1, walk<true, 4, true>, 8});
  vs.push_back({"m1 walk u1", 1, walk<false, 1>, 8});
  vs.push_back({"m1 records per block", 1, walk<false, 1, false, 2>, 8});
  vs.push_back({"m1 loads only, records per block", 1, walk<false, 1, true, 2>, 8});
  vs.push_back({"m1 loads only, no records", 1, walk<false, 1, true, 0>, 8});
  vs.push_back({"m1 half the dot products (timing only)", 1, walk<false, 1, false, 1, 1>, 8});
  vs.push_back({"m1 the ANDs only (timing only)", 1, walk<false, 1, false, 1, 2>, 8});
  vs.push_back({"m1 dot products not on the loads (timing only)", 1, walk<false, 1, false, 1, 3>, 8});
  vs.push_back({"m1 vpmaddwd not on the loads (timing only)", 1, walk<false, 1, false, 1, 4>, 8});
  vs.push_back({"m1 256-bit dot products not on the loads (timing only)", 1, walk<false, 1, false, 1, 5>, 8});
  vs.push_back({"m1 one vpdpbusd per 4 words (timing only)", 1, walk<false, 1, false, 1, 6>, 8});
  vs.push_back({"m1 one vpmaddwd per 4 words (timing only)", 1, walk<false, 1, false, 1, 7>, 8});
  vs.push_back({"m1 one vpaddd per word (timing only)", 1, walk<false, 1, false, 1, 8>, 8});
  vs.push_back({"m1 four vpaddd per word (timing only)", 1, walk<false, 1, false, 1, 9>, 8});
  vs.push_back({"m1 one more L1 load per word (timing only)", 1, walk<false, 1, false, 1, 10>, 8});
  vs.push_back({"m1 two more L1 loads per word (timing only)", 1, walk<false, 1, false, 1, 11>, 8});
  vs.push_back({"m1 one more L1 load and one vpaddd per word (timing only)", 1, walk<false, 1, false, 1, 12>, 8});
  vs.push_back({"m1 one vpaddd per word, no broadcast (timing only)", 1, walk<false, 1, false, 1, 13>, 8});
  vs.push_back({"m1 one nop per word (timing only)", 1, walk<false, 1, false, 1, 14>, 8});
  vs.push_back({"m1 loads only, with the fold (timing only)", 1, walk<false, 1, false, 1, 16>, 8});
  vs.push_back({"m1 loads only, with the fold on a record in L1 (timing only)", 1, walk<false, 1, false, 1, 17>, 8});
  vs.push_back({"m1 loads only, sums stored per block (timing only)", 1, walk<false, 1, false, 1, 18>, 8});
  vs.push_back({"m1 loads only, with the fold, records per block (timing only)", 1, walk<false, 1, false, 2, 16>, 8});
  vs.push_back({"m1 loads only, with the fold, records T1 4 ahead (timing only)", 1, walk<false, 1, false, 3, 16>, 8});
  vs.push_back({"m1 loads only, with the fold, records T0 4 ahead (timing only)", 1, walk<false, 1, false, 4, 16>, 8});
  vs.push_back({"m1 loads only, with the fold, records T0 1 ahead (timing only)", 1, walk<false, 1, false, 5, 16>, 8});
  vs.push_back({"m1 one scalar add per word (timing only)", 1, walk<false, 1, false, 1, 15>, 8});
  vs.push_back({"m1 library amd without GFNI", 1, tiles_avx512vnni_amd_no_gfni, 8});
  vs.push_back({"m1 t4 d2048 T1 + T0 512", 1, one_row<4, PrefetchT1T0>, 8});
  // Session 24 (merged_var: Lo, Hi, Extra, Pre, ExtraHi, prefetch, largest T)
  vs.push_back({"m1 merged, high nibbles by AND (the kernel before session 24)", 1,
                merged_var<1, 1, 0, 0, 0, Prefetch<2048, _MM_HINT_T1>>, 8});
  vs.push_back({"m1 merged, records into L1 (T0)", 1, merged_var<1, 3, 0, 0, 0, Prefetch<2048, _MM_HINT_T1>>, 8});
  vs.push_back({"m1 merged, no record prefetch", 1, merged_var<1, 3, 0, 0, 0, Prefetch<2048, _MM_HINT_T1, -1>>, 8});
  vs.push_back({"m1 merged, low by shift and AND, high by GFNI", 1, merged_var<3, 3, 0>, 8});
  // Session 26: with the records into L2 (the AMD policy), the high nibbles by AND again (the multiply pipes, which
  // vgf2p8affineqb shares with vpdpbusd on Zen 4, then carry 5 ops per word instead of 6)
  vs.push_back({"m1 merged, high by AND, records into L2", 1, merged_var<1, 1, 0>, 8});
  vs.push_back({"m1 merged, lo none, hi AND (timing only)", 1, merged_var<0, 1, 0>, 8});
  vs.push_back({"m1 merged, lo none, hi none (timing only)", 1, merged_var<0, 0, 0>, 8});
  vs.push_back({"m1 merged, lo vpaddd, hi AND (timing only)", 1, merged_var<2, 1, 0>, 8});
  vs.push_back({"m1 merged, lo vpaddd, hi vpaddd (timing only)", 1, merged_var<2, 2, 0>, 8});
  vs.push_back({"m1 merged, hi AND, +1 vpord each", 1, merged_var<1, 1, 1>, 8});
  vs.push_back({"m1 merged, hi AND, +2 vpord each", 1, merged_var<1, 1, 2>, 8});
  vs.push_back({"m1 merged, hi AND, +3 vpord each", 1, merged_var<1, 1, 3>, 8});
  vs.push_back({"m1 merged, hi AND, +4 vpord each", 1, merged_var<1, 1, 4>, 8});
  vs.push_back({"m1 merged, hi AND, +2 vpord lo", 1, merged_var<1, 1, 2, 0, 0>, 8});
  vs.push_back({"m1 merged, hi AND, +2 vpord hi", 1, merged_var<1, 1, 0, 0, 2>, 8});
  vs.push_back({"m1 merged, hi AND, +1 vpord before", 1, merged_var<1, 1, 0, 1>, 8});
  vs.push_back({"m1 merged, hi AND, +2 vpord before", 1, merged_var<1, 1, 0, 2>, 8});
  vs.push_back({"m1 merged, hi AND, +4 vpord before", 1, merged_var<1, 1, 0, 4>, 8});
  vs.push_back({"m1 merged, hi GFNI, +1 vpord each", 1, merged_var<1, 3, 1>, 8});
  vs.push_back({"m1 merged, hi GFNI, +2 vpord each", 1, merged_var<1, 3, 2>, 8});
  vs.push_back({"m1 merged, hi GFNI, +1 vpord before", 1, merged_var<1, 3, 0, 1>, 8});
  vs.push_back({"m1 merged, hi GFNI, t4", 1, merged_var<1, 3, 0, 0, 0, AmdPrefetch, 4>, 8});
  vs.push_back({"m1 merged, hi GFNI, T1 1K", 1, merged_var<1, 3, 0, 0, 0, Prefetch<1024, _MM_HINT_T1>>, 8});
  vs.push_back({"m1 merged, hi GFNI, T1 3K", 1, merged_var<1, 3, 0, 0, 0, Prefetch<3072, _MM_HINT_T1>>, 8});
  vs.push_back({"m1 merged, hi GFNI, T1 4K", 1, merged_var<1, 3, 0, 0, 0, Prefetch<4096, _MM_HINT_T1>>, 8});
  vs.push_back({"m1 merged, hi GFNI, T0 2K", 1, merged_var<1, 3, 0, 0, 0, Prefetch<2048, _MM_HINT_T0>>, 8});
  vs.push_back({"m1 merged, hi GFNI, NTA 2K", 1, merged_var<1, 3, 0, 0, 0, Prefetch<2048, _MM_HINT_NTA>>, 8});
  vs.push_back({"m1 merged, hi GFNI, no prefetch", 1, merged_var<1, 3, 0, 0, 0, Prefetch<0, 0>>, 8});
  vs.push_back({"m1 merged, hi GFNI, t4, T0 6K", 1,
                 merged_var<1, 3, 0, 0, 0, Prefetch<6144, _MM_HINT_T0, _MM_HINT_T1>, 4>, 8});
  vs.push_back({"m1 merged, hi GFNI, t4, T1 4K", 1,
                 merged_var<1, 3, 0, 0, 0, Prefetch<4096, _MM_HINT_T1, _MM_HINT_T1>, 4>, 8});
  vs.push_back({"m1 merged, hi GFNI, t4, T1 1K", 1,
                 merged_var<1, 3, 0, 0, 0, Prefetch<1024, _MM_HINT_T1, _MM_HINT_T1>, 4>, 8});
  vs.push_back({"m1 merged, hi GFNI, t4, no prefetch", 1,
                 merged_var<1, 3, 0, 0, 0, Prefetch<0, 0, _MM_HINT_T1>, 4>, 8});
  vs.push_back({"m1 merged, hi GFNI, t4, T1 2K + T1 1K", 1,
                 merged_var<1, 3, 0, 0, 0, TwicePrefetch<2048, _MM_HINT_T1, 1024, _MM_HINT_T1>, 4>, 8});
  vs.push_back({"m1 merged, hi GFNI, t4, T1 2K + T0 512", 1,
                 merged_var<1, 3, 0, 0, 0, TwicePrefetch<2048, _MM_HINT_T1, 512, _MM_HINT_T0>, 4>, 8});
  vs.push_back({"m1 merged, hi GFNI, t4, T1 4K + T1 2K", 1,
                 merged_var<1, 3, 0, 0, 0, TwicePrefetch<4096, _MM_HINT_T1, 2048, _MM_HINT_T1>, 4>, 8});
  vs.push_back({"m1 merged, hi GFNI, t4, T2 8K + T1 2K", 1,
                 merged_var<1, 3, 0, 0, 0, TwicePrefetch<8192, _MM_HINT_T2, 2048, _MM_HINT_T1>, 4>, 8});
  vs.push_back({"m1 merged, hi AND, t4", 1, merged_var<1, 1, 0, 0, 0, AmdPrefetch, 4>, 8});
  vs.push_back({"m1 merged, hi GFNI, T0 6K", 1,
                 merged_var<1, 3, 0, 0, 0, Prefetch<6144, _MM_HINT_T0, _MM_HINT_T1>>, 8});
  vs.push_back({"m1 merged, hi GFNI, t8 (the library before session 33)", 1,
                 merged_var<1, 3, 0, 0, 0, AmdPrefetch, 8>, 8});
  vs.push_back({"m1 merged, hi GFNI, t2", 1, merged_var<1, 3, 0, 0, 0, AmdPrefetch, 2>, 8});
  vs.push_back({"m1 merged, hi GFNI, t1", 1, merged_var<1, 3, 0, 0, 0, AmdPrefetch, 1>, 8});
  vs.push_back({"m1 merged, hi GFNI, t3", 1, merged_var<1, 3, 0, 0, 0, AmdPrefetch, 3>, 8});
  vs.push_back({"m1 merged, hi GFNI, t5", 1, merged_var<1, 3, 0, 0, 0, AmdPrefetch, 5>, 8});
  vs.push_back({"m1 merged, hi GFNI, t6", 1, merged_var<1, 3, 0, 0, 0, AmdPrefetch, 6>, 8});
  vs.push_back({"m1 merged, hi GFNI, t3, T1 1K", 1,
                 merged_var<1, 3, 0, 0, 0, Prefetch<1024, _MM_HINT_T1, _MM_HINT_T1>, 3>, 8});
  vs.push_back({"m1 merged, hi GFNI, t3, T1 3K", 1,
                 merged_var<1, 3, 0, 0, 0, Prefetch<3072, _MM_HINT_T1, _MM_HINT_T1>, 3>, 8});
  vs.push_back({"m1 merged, hi AND, t3", 1, merged_var<1, 1, 0, 0, 0, AmdPrefetch, 3>, 8});
  vs.push_back({"m1 int8 activations, t4 (timing only)", 1, int8_var<4>, 8});
  vs.push_back({"m1 int8 activations, t8 (timing only)", 1, int8_var<8>, 8});
  vs.push_back({"m1 merged, hi GFNI, t2, T1 4K", 1,
                 merged_var<1, 3, 0, 0, 0, Prefetch<4096, _MM_HINT_T1, _MM_HINT_T1>, 2>, 8});
  vs.push_back({"m1 merged, no GFNI, t4", 1, merged_var<3, 1, 0, 0, 0, AmdPrefetch, 4>, 8});
  vs.push_back({"m1 merged, hi GFNI, t4, no record prefetch", 1,
                 merged_var<1, 3, 0, 0, 0, Prefetch<2048, _MM_HINT_T1, -1>, 4>, 8});
  vs.push_back({"m1 merged, lo none, hi none, t4 (timing only)", 1, merged_var<0, 0, 0, 0, 0, AmdPrefetch, 4>, 8});
  vs.push_back({"m1 merged, hi GFNI, T1 8K", 1,
                 merged_var<1, 3, 0, 0, 0, Prefetch<8192, _MM_HINT_T1, _MM_HINT_T1>>, 8});
  vs.push_back({"m1 merged, hi GFNI, T1 16K", 1,
                 merged_var<1, 3, 0, 0, 0, Prefetch<16384, _MM_HINT_T1, _MM_HINT_T1>>, 8});
  vs.push_back({"m1 merged, hi GFNI, T2 2K", 1,
                 merged_var<1, 3, 0, 0, 0, Prefetch<2048, _MM_HINT_T2, _MM_HINT_T1>>, 8});
  vs.push_back({"m1 merged, hi GFNI, T1 2K + T0 512", 1, merged_var<1, 3, 0, 0, 0, PrefetchT1T0>, 8});
  vs.push_back({"m2 read", 2, dev::read_tiles, 8});
  vs.push_back({"m2 rows_vnni (the library before session 35)", 2, two_rows<4, AmdPrefetch>, 8});
  add_all<2>(vs), add_all<4>(vs), add_all<8>(vs);
  for (int c : {1, 2, 4, 32}) add<4, 6144, _MM_HINT_T0>(vs, c), add<4, 2048, _MM_HINT_T1>(vs, c), add<4, 0, 0>(vs, c);
  return vs;
}

struct Shape {
  const char* name;
  int K, N;
};
const Shape kShapes[] = {{"qkv", 4096, 6144}, {"o", 4096, 4096}, {"gate", 4096, 12288}, {"up", 4096, 12288},
                         {"down", 12288, 4096}};

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

void check(const Version& v, const PackedView& w, const QuantizedRows& x) {
  std::vector<float> ref((size_t)x.M * w.N), y(ref.size(), NAN);
  tiles_avx512vnni(w, x, 0, w.n_tiles, ref.data());
  const int cut = w.n_tiles / 3 * 2 + 1;  // odd ranges as a split can give them
  v.fn(w, x, 0, cut, y.data()), v.fn(w, x, cut, w.n_tiles, y.data());
  if (std::memcmp(y.data(), ref.data(), y.size() * sizeof(float)) != 0) {
    std::fprintf(stderr, "%s: output differs from tiles_avx512vnni\n", v.name.c_str());
    std::exit(1);
  }
}

std::string mm(const std::vector<double>& v, const char* f) {
  return dev::fmt(f, dev::median(v)) + " (" + dev::fmt(f, *std::min_element(v.begin(), v.end())) + "-" +
         dev::fmt(f, *std::max_element(v.begin(), v.end())) + ")";
}

}  // namespace

int main(int argc, char** argv) {
  const int M = argc > 1 ? atoi(argv[1]) : 1;
  const int rounds = argc > 2 ? atoi(argv[2]) : 5;
  const std::string only = argc > 3 ? argv[3] : "all";
  const int threads = argc > 5 ? atoi(argv[5]) : 2;
  if (!awq_cpu_force_isa("avx512-vnni")) return std::printf("no AVX512-VNNI\n"), 1;
  std::vector<Version> vs;
  for (Version& v : versions())
    if (v.M == M &&
        (only == "all" || v.name.find("mainline") != std::string::npos || dev::listed(only.c_str(), v.name.c_str())))
      vs.push_back(v);
  std::mt19937 rng(3);
  const size_t ns = sizeof kShapes / sizeof kShapes[0];
  std::vector<std::vector<AwqMatrixCpu>> copies;
  for (const Shape& s : kShapes) copies.push_back(dev::rotated_copies(dev::random_packed(s.K, s.N, rng), 256u << 20));
  std::vector<dev::RandomRows> rows;
  for (const Shape& s : kShapes) rows.emplace_back(M, s.K, rng);
  for (const Version& v : vs)
    if (v.name.find("loads only") == std::string::npos && v.name.find("timing only") == std::string::npos &&
        v.fn != dev::read_tiles)
      for (size_t s = 0; s < ns; s++) check(v, dev::view_of(copies[s][0]), rows[s].x);
  std::printf("%zu versions checked (same bits as tiles_avx512vnni; the read has no output)\n", vs.size());
  size_t read = vs.size();  // the read of the same bytes, when listed
  for (size_t i = 0; i < vs.size(); i++)
    if (vs[i].fn == dev::read_tiles) read = i;
  ThreadPool pool(threads);
  ReadProbe probe(pool, 1u << 30);
  std::vector<float> y((size_t)M * 12288);
  const size_t nv = vs.size();
  // [version][shape or ns = all shapes] per round
  std::vector<std::vector<std::vector<double>>> by_probe(nv, std::vector<std::vector<double>>(ns + 1)),
      by_main(nv, std::vector<std::vector<double>>(ns + 1)), gbs(nv, std::vector<std::vector<double>>(ns + 1)),
      by_read(nv, std::vector<std::vector<double>>(ns + 1));
  std::vector<double> probes, reads;
  for (int r = 0; r < rounds; r++) {
    const double pr = probe.measure(3).best_gbs;
    probes.push_back(pr);
    std::vector<std::vector<double>> g(nv, std::vector<double>(ns + 1));
    for (size_t i0 = 0; i0 < nv; i0++) {
      const size_t i = (i0 + (size_t)r * 7) % nv;
      double bytes_all = 0, sec_all = 0;
      for (size_t s = 0; s < ns; s++) {
        double total = 0;
        for (const AwqMatrixCpu& c : copies[s]) {
          const PackedView w = dev::view_of(c);
          const int pairs = (w.n_tiles + 1) / 2, chunk = std::max(1, pairs / (vs[i].chunks * pool.size())),
                    n_chunks = (pairs + chunk - 1) / chunk;
          const double t0 = now();
          pool.parallel_dynamic(n_chunks, [&](int ci) {
            vs[i].fn(w, rows[s].x, 2 * ci * chunk, std::min(w.n_tiles, 2 * (ci + 1) * chunk), y.data());
          });
          total += now() - t0;
        }
        const double bytes = (double)copies[s][0].bytes_read() * copies[s].size();
        g[i][s] = bytes / total / 1e9;
        bytes_all += bytes / copies[s].size(), sec_all += total / copies[s].size();
      }
      g[i][ns] = bytes_all / sec_all / 1e9;
    }
    std::printf("round %d probe %.1f:", r, pr);
    for (size_t i = 0; i < nv; i++) {
      for (size_t s = 0; s <= ns; s++)
        gbs[i][s].push_back(g[i][s]), by_probe[i][s].push_back(g[i][s] / pr),
            by_main[i][s].push_back(g[i][s] / g[0][s]), by_read[i][s].push_back(read < nv ? g[i][s] / g[read][s] : NAN);
      std::printf(" [%s] %.1f", vs[i].name.c_str(), g[i][ns]);
    }
    std::printf("\n");
    std::fflush(stdout);
    reads.push_back(read < nv ? g[read][ns] : NAN);
  }
  std::vector<size_t> order(nv);
  for (size_t i = 0; i < nv; i++) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return dev::median(by_main[a][ns]) > dev::median(by_main[b][ns]); });
  // This host's memory is bimodal (about 35 or 60 GB/s): the ratio to mainline is also given over the rounds of each
  // mode. The probe's own buffer and the matrices can be in different modes in one round, so with the read listed the
  // modes are those of its reads of the same bytes (>= 45 GB/s: fast), and each version is also given ÷ that read.
  auto fast_round = [&](size_t r) { return read < nv ? reads[r] >= 45 : probes[r] >= 45; };
  auto in_mode = [&](const std::vector<double>& v, bool fast) {
    std::vector<double> out;
    for (size_t r = 0; r < v.size(); r++)
      if (fast_round(r) == fast) out.push_back(v[r]);
    return out.empty() ? std::string("-") : mm(out, "%.3f") + " [" + std::to_string(out.size()) + "]";
  };
  const std::string by = read < nv ? "the read of the same bytes" : "the probe";
  std::string table = "| version | all shapes GB/s | ÷ probe | ÷ mainline (same round) | ÷ mainline, " + by +
                      " < 45 GB/s [rounds] | ÷ mainline, " + by + " >= 45 GB/s [rounds] |";
  if (read < nv)
    table += " ÷ read of the same bytes (same round), < 45 GB/s [rounds] | ÷ read, >= 45 GB/s [rounds] |";
  for (const Shape& s : kShapes) table += std::string(" ") + s.name + " ÷ mainline |";
  table += "\n|---|---:|---:|---:|---:|---:|";
  if (read < nv) table += "---:|---:|";
  for (size_t s = 0; s < ns; s++) table += "---:|";
  table += "\n";
  for (size_t i : order) {
    table += "| " + vs[i].name + " | " + dev::fmt("%.1f", dev::median(gbs[i][ns])) + " | " + mm(by_probe[i][ns], "%.2f") +
             " | " + mm(by_main[i][ns], "%.3f") + " | " + in_mode(by_main[i][ns], false) + " | " +
             in_mode(by_main[i][ns], true) + " |";
    if (read < nv) table += " " + in_mode(by_read[i][ns], false) + " | " + in_mode(by_read[i][ns], true) + " |";
    for (size_t s = 0; s < ns; s++) table += " " + dev::fmt("%.3f", dev::median(by_main[i][s])) + " |";
    table += "\n";
  }
  const std::string md = "# int4 decode kernels: prefetch hint, distance, streams, split (native/dev/cpu/decode_prefetch.cpp)\n\n"
                         "- command: `/tmp/decode_prefetch " + std::to_string(M) + " " + std::to_string(rounds) + " " +
                         only + (argc > 4 ? std::string(" ") + argv[4] : std::string()) + (argc > 5 ? std::string(" ") + argv[5] : std::string()) +
                         "` (build line in the source)\n- cpu: " + cpu_model_name() + ", " + std::to_string(threads) +
                         (threads == 1 ? " thread" : " threads") + "\n" +
                         dev::date_and_load_line() + "- probe per round (GB/s): " + mm(probes, "%.1f") + "\n" +
                         (read < nv ? "- read of the same bytes (all shapes) per round (GB/s): " + mm(reads, "%.1f") +
                                          "; the modes (< 45 or >= 45 GB/s) are this read's\n"
                                    : std::string()) +
                         "\n" + table;
  std::fputs(md.c_str(), stdout);
  if (argc > 4)
    if (FILE* f = std::fopen(argv[4], "w")) std::fputs(md.c_str(), f), std::fclose(f);
  return 0;
}
