// What the int4 kernel experiments share (awq_rows.cpp, awq_gemv_dram.cpp, amx_parts.cpp, amx_pair_layout.cpp,
// int4_streams.cpp, decode_prefetch.cpp, gemv_bound.cpp's read, ggml_vs_read.cpp, and step_inputs.h's view): random
// published tensors and the matrix awq_pack_cpu makes of them (group size 128), copies of it on huge pages rotating
// over more memory than the L3 holds, a packed matrix's tiles as the kernels take them, M random activation rows
// quantised as awq_matmul_cpu would (AMX tiles included), the AMX tile configuration's layout, the harnesses' filter
// of versions by name, and a plain read of a byte or tile range (the probe's loop).
#pragma once
#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cpu/awq_cpu.h"
#include "cpu/awq_cpu_kernels.h"
#include "cpu/huge_pages.h"
#include "half.h"

namespace q3::dev {

// Random tensors as published: int4 weights and zero points, fp16 scales in [0.002, 0.03), group size 128.
struct RandomAwq {
  std::vector<int32_t> qw, qz;
  std::vector<uint16_t> sc;
  AwqSource src;
  RandomAwq(int K, int N, std::mt19937& rng) : qw((size_t)K * N / 8), qz((size_t)K / 128 * N / 8), sc((size_t)K / 128 * N) {
    for (auto& v : qw) v = (int32_t)rng();
    for (auto& v : qz) v = (int32_t)rng();
    std::uniform_real_distribution<float> s(0.002f, 0.03f);
    for (auto& v : sc) v = f32_to_f16(s(rng));
    src = AwqSource{qw.data(), qz.data(), sc.data(), N};
  }
};

// RandomAwq packed by awq_pack_cpu.
inline AwqMatrixCpu random_packed(int K, int N, std::mt19937& rng) {
  const RandomAwq a(K, N, rng);
  return awq_pack_cpu(K, 128, {a.src});
}

// `first` and copies of it on huge pages, at least total_bytes in all.
inline std::vector<AwqMatrixCpu> rotated_copies(AwqMatrixCpu first, size_t total_bytes) {
  std::vector<AwqMatrixCpu> copies;
  copies.push_back(std::move(first));
  while (copies.size() * copies[0].bytes_read() < total_bytes) {
    const AwqMatrixCpu& f = copies[0];  // taken anew each time: push_back may move the elements
    AwqMatrixCpu c;
    c.K = f.K, c.N = f.N, c.group_size = f.group_size;
    c.storage.reserve(f.storage.size());
    advise_huge_pages(c.storage.data(), f.storage.size());
    c.storage.assign(f.storage.begin(), f.storage.end());
    copies.push_back(std::move(c));
  }
  return copies;
}

// The tiles of a matrix packed by awq_pack_cpu, as the kernels take them.
inline awq_cpu::PackedView view_of(const AwqMatrixCpu& m) {
  using namespace awq_cpu;
  uint64_t off;
  std::memcpy(&off, m.storage.data(), 8);
  const size_t tb = ((size_t)m.K / 8 * kWordBytes + (size_t)m.K / m.group_size * kMetaBytes + 63) / 64 * 64;
  return PackedView{m.K, m.N, m.group_size, (m.N + kTile - 1) / kTile, tb, m.storage.data() + off};
}

// Whether `name` is in `list`, a comma-separated list of the versions to run (every name when list is null).
inline bool listed(const char* list, const char* name) {
  if (!list) return true;
  const std::string l = std::string(",") + list + ",";
  return l.find(std::string(",") + name + ",") != std::string::npos;
}

// An AMX tile configuration (palette 1): rows and bytes per row of each tile register. Kept thread_local by its users:
// the compiler does not see _tile_loadconfig read it and may drop stores to a local (see awq_cpu_amx.cpp).
struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// M rows of normal random activations quantised in blocks of 128, with the AMX tiles.
struct RandomRows {
  std::vector<int16_t> q;
  std::vector<int8_t> hi, lo, tiles;
  std::vector<float> scale;
  std::vector<int32_t> sum;
  awq_cpu::QuantizedRows x;
  RandomRows(int M, int K, std::mt19937& rng)
      : q((size_t)M * K), hi(q.size()), lo(q.size()), tiles(awq_cpu::amx_tiles_bytes(M, K)),
        scale((size_t)M * K / 128), sum(scale.size()) {
    std::normal_distribution<float> d(0.f, 1.f);
    std::vector<float> xf((size_t)M * K);
    for (auto& v : xf) v = d(rng);
    awq_cpu::quantize_rows_scalar(xf.data(), M, K, 128, q.data(), hi.data(), lo.data(), scale.data(), sum.data());
    x = awq_cpu::QuantizedRows{M, K, 128, q.data(), hi.data(), lo.data(), scale.data(), sum.data()};
    awq_cpu::amx_tile_activations(x, tiles.data());
    x.tiles = tiles.data();
  }
};

// A plain read of `bytes` from p (64-byte aligned) with the bandwidth probe's fastest loop (bandwidth_cpu.cpp: 4
// streams, 256 bytes of each at a time, L2 prefetch 2 KiB ahead), over the largest multiple of 4 x 256 bytes; the
// streams' sums go to sums[4] so that the loads are not optimised away. AVX-512.
inline void read_range(const uint8_t* p, size_t bytes, __m512i* sums) {
  constexpr int S = 4;
  const size_t sub = bytes / S / 256 * 256;
  __m512i a[S][2];
  for (int s = 0; s < S; s++) a[s][0] = a[s][1] = _mm512_setzero_si512();
  for (size_t i = 0; i < sub; i += 256)
    for (int s = 0; s < S; s++) {
      const uint8_t* q = p + s * sub + i;
      for (int l = 0; l < 4; l++) _mm_prefetch((const char*)q + 2048 + 64 * l, _MM_HINT_T1);
      a[s][0] = _mm512_add_epi64(a[s][0], _mm512_add_epi64(_mm512_load_si512(q), _mm512_load_si512(q + 64)));
      a[s][1] = _mm512_add_epi64(a[s][1], _mm512_add_epi64(_mm512_load_si512(q + 128), _mm512_load_si512(q + 192)));
    }
  for (int s = 0; s < S; s++) sums[s] = _mm512_add_epi64(a[s][0], a[s][1]);
}

// read_range over the bytes of tiles [t0, t1), a kernel's signature so that harnesses time it beside the kernels over
// the same calls; the sums are stored to y.
inline void read_tiles(const awq_cpu::PackedView& w, const awq_cpu::QuantizedRows&, int t0, int t1, float* y) {
  __m512i sums[4];
  read_range(w.tile(t0), (size_t)(t1 - t0) * w.tile_bytes, sums);
  for (int s = 0; s < 4; s++) _mm512_storeu_si512(y + (size_t)t0 * awq_cpu::kTile + 16 * s, sums[s]);
}

}  // namespace q3::dev
