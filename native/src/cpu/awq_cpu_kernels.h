// Private to awq_cpu*.cpp: the repacked int4 layout and the per-ISA tile kernels that read it. The layout is
// described once here so the packer (awq_cpu.cpp) and every kernel agree on it.
//
// Columns are grouped into tiles of 16 (the last tile is zero-padded). A tile is one contiguous run of bytes:
//   weights: K/8 words of 64 bytes; word kb holds, for column lane j (0..15), one uint32 v whose byte b (0..3) has
//            q(8kb+b, 16t+j) in its low nibble and q(8kb+4+b, 16t+j) in its high nibble. So v & 0x0F0F0F0F holds
//            the unsigned bytes (q0, q1, q2, q3) and v & 0xF0F0F0F0 holds 16 (q4, q5, q6, q7): the byte quadruples
//            vpdpbusd (and vpmaddubsw) multiply by four signed activation bytes, one AND each. Shifted right by 4
//            instead, the second quadruple is also row 2kb+1 of an AMX B tile (16 columns x 4 k per row).
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
// Most k values per accumulation block: a block's int32 dot products (at most 256 * 15 * 32767 < 2^27, and less for
// the partial sums of the byte kernels) are exact.
constexpr int kMaxBlock = 256;
constexpr int kNibbleShift[8] = {0, 8, 16, 24, 4, 12, 20, 28};  // bit position of k+i inside a lane

// The repacked matrix, as the kernels see it.
struct PackedView {
  int K, N, group_size;
  int n_tiles;
  size_t tile_bytes;
  const uint8_t* data;  // (n_tiles, tile_bytes)
  const uint8_t* tile(int t) const { return data + (size_t)t * tile_bytes; }
  const uint8_t* meta(int t) const { return tile(t) + (size_t)K / 8 * kWordBytes; }
};

// Largest activation magnitude after quantisation: q = 256 hi + lo with hi and lo both signed bytes needs
// |q| <= 127 * 256 + 127.
constexpr int kActMax = 32639;

// Activations quantised to int16 per block of `block` k values (block divides group_size and is <= kMaxBlock):
// x[m][k] ~= q[m][k] * scale[m][b], with sum[m][b] = sum of q over the block (for the zero-point fold). The same q
// is also given as two signed bytes, q = 256 hi + lo (lo in -128..127), for the 8-bit dot-product instructions.
struct QuantizedRows {
  int M, K, block;
  const int16_t* q;      // (M, K)
  const int8_t* hi;      // (M, K)
  const int8_t* lo;      // (M, K)
  const float* scale;    // (M, K/block)
  const int32_t* sum;    // (M, K/block)
  const int8_t* tiles = nullptr;  // AMX only: lo/hi as tiles, see amx_tile_activations
};

// Quantises x (M, K) into q/hi/lo/scale/sum as QuantizedRows describes (rounding to nearest even, |q| <= kActMax);
// false when an activation is NaN or infinite. The AVX-512 version gives the same bits as the scalar one.
bool quantize_rows_scalar(const float* x, int M, int K, int block, int16_t* q, int8_t* hi, int8_t* lo, float* scale,
                          int32_t* sum);
bool quantize_rows_avx512(const float* x, int M, int K, int block, int16_t* q, int8_t* hi, int8_t* lo, float* scale,
                          int32_t* sum);

// Each kernel computes y[m][n] for every row m and for the columns of tiles [t0, t1); y is (M, N), overwritten.
void tiles_scalar(const PackedView& w, const QuantizedRows& x, int t0, int t1, float* y);
void tiles_avx2(const PackedView& w, const QuantizedRows& x, int t0, int t1, float* y);
void tiles_avx512bw(const PackedView& w, const QuantizedRows& x, int t0, int t1, float* y);
void tiles_avx512vnni(const PackedView& w, const QuantizedRows& x, int t0, int t1, float* y);
// The same products (same bits) with the decode rows' (M = 1, 2) software prefetch tuned for AMD Zen 4 instead of
// Intel, and at M = 1 (blocks of at most 128) a kernel with half the accumulators and 4 or 8 tiles at once
// (merged_streams), which moves the nibbles into place with GFNI where the CPU has it; where it streams 4 tiles and
// has GFNI, M = 2 takes the same operands (two_rows_merged). _no_gfni: the same without GFNI (what CPUs without it
// run; tests).
void tiles_avx512vnni_amd(const PackedView& w, const QuantizedRows& x, int t0, int t1, float* y);
void tiles_avx512vnni_amd_no_gfni(const PackedView& w, const QuantizedRows& x, int t0, int t1, float* y);
// Whether awq_matmul_cpu takes the _amd kernel: on AMD CPUs, unless Q3_AWQ_PREFETCH=intel (or =amd elsewhere) says
// otherwise; decided once.
bool amd_prefetch();
// Tile streams the merged M = 1 AMD kernel reads at once: 4 on Zen 5 and later AMD cores (CPU family 26 and up), 8
// before; Q3_AWQ_STREAMS=4|8 overrides it for A/B runs, force_merged_streams(4 or 8) for tests (0: back to those).
int merged_streams();
void force_merged_streams(int streams);
// AMX (int8 tiles) for M >= 3 (x.tiles set); M = 1 and 2 go to tiles_avx512vnni. The process must have AMX permission
// (amx_request_permission).
void tiles_amx(const PackedView& w, const QuantizedRows& x, int t0, int t1, float* y);
// AMX activation tiles, so that a tile load reads one contiguous stretch (rows K bytes apart would all fall in one
// L1 set) and one block's tiles for every pass are adjacent (streamed once per block): for each k-step of
// amx_kstep(block) values and each pass of r = min(M, 8) rows, one A tile of 2r rows x kstep bytes, the low
// activation bytes of the r rows then their high bytes; rows past M are zero. amx_tiles_bytes gives the size.
int amx_kstep(int block);
size_t amx_tiles_bytes(int M, int K);
void amx_tile_activations(const QuantizedRows& x, int8_t* dst);
// Asks the OS to let this process use the AMX tile registers (Linux); false when it refuses or AMX is absent.
bool amx_request_permission();

}  // namespace q3::awq_cpu
