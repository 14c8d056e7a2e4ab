// Private to awq_cpu*.cpp: the repacked int4 layout and the per-ISA tile kernels that read it. The layout is
// described once here so the packer (awq_cpu.cpp) and every kernel agree on it.
//
// Columns are grouped into tiles of 16 (the last tile is zero-padded). A tile is one contiguous run of bytes:
//   weights: K/8 words of 64 bytes; word kb holds, for column lane j (0..15), one uint32 v with q(8kb+i, 16t+j) in
//            bits kNibbleShift[i] (even k in the low int16 half, odd k in the high half). Then, with u = v >> 8,
//            v & 0x000F000F, v & 0x00F000F0, u & 0x000F000F, u & 0x00F000F0 are int16 pairs (q0,q1), 16(q2,q3),
//            (q4,q5), 16(q6,q7) that vpdpwssd / vpmaddwd consume directly: one shift and four ANDs per word; the
//            kernels keep the 16x-scaled pairs in their own accumulator and shift it back (exactly) per block.
//   meta:    K/G records of 48 bytes: 16 fp16 scales, then 16 uint8 zero points
//   padding to a multiple of 64 bytes, so every tile (and every weight word) is 64-byte aligned.
// A thread that owns a range of tiles therefore streams one contiguous stretch of memory.
#pragma once
#include <cstddef>
#include <cstdint>

namespace q3::awq_cpu {

constexpr int kTile = 16;          // output columns per tile
constexpr int kWordBytes = 64;     // one weight word: 16 columns x 8 k values x 4 bits
constexpr int kMetaBytes = 48;     // per tile and group: 16 fp16 scales + 16 uint8 zeros
// Most k values per accumulation block: the 16x-scaled accumulator sums block/2 products of at most 240 * 32767,
// which for 256 is 1.0e9 < 2^31, so the int32 sums are exact.
constexpr int kMaxBlock = 256;
constexpr int kNibbleShift[8] = {0, 16, 4, 20, 8, 24, 12, 28};  // bit position of k+i inside a lane

// The repacked matrix, as the kernels see it.
struct PackedView {
  int K, N, group_size;
  int n_tiles;
  size_t tile_bytes;
  const uint8_t* data;  // (n_tiles, tile_bytes)
  const uint8_t* tile(int t) const { return data + (size_t)t * tile_bytes; }
  const uint8_t* meta(int t) const { return tile(t) + (size_t)K / 8 * kWordBytes; }
};

// Activations quantised to int16 per block of `block` k values (block divides group_size and is <= kMaxBlock):
// x[m][k] ~= q[m][k] * scale[m][b], with sum[m][b] = sum of q over the block (for the zero-point fold).
struct QuantizedRows {
  int M, K, block;
  const int16_t* q;      // (M, K)
  const float* scale;    // (M, K/block)
  const int32_t* sum;    // (M, K/block)
};

// Each kernel computes y[m][n] for every row m and for the columns of tiles [t0, t1); y is (M, N), overwritten.
void tiles_scalar(const PackedView& w, const QuantizedRows& x, int t0, int t1, float* y);
void tiles_avx2(const PackedView& w, const QuantizedRows& x, int t0, int t1, float* y);
void tiles_avx512bw(const PackedView& w, const QuantizedRows& x, int t0, int t1, float* y);
void tiles_avx512vnni(const PackedView& w, const QuantizedRows& x, int t0, int t1, float* y);

}  // namespace q3::awq_cpu
