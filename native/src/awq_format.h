// The AutoAWQ "gemm" int4 format, defined once: 4-bit weights packed 8 per int32 along the output dimension N,
// zero points packed the same way, fp16 scales, groups of `group_size` rows along the input dimension K.
//
//   qweight (K, N/8) int32   qzeros (K/G, N/8) int32   scales (K/G, N) fp16
//   W[k][n] = (q(k, n) - z(k/G, n)) * s(k/G, n)        y[n] = sum_k x[k] * W[k][n]
//
// Nibble order (docs/model.md#awq-nibble-order): logical column 8c+j lives in nibble REV[j] of int32 column c, where
// REV = [0,4,1,5,2,6,3,7]; packing puts column 8c+ORDER[i] into nibble i with ORDER = [0,2,4,6,1,3,5,7].
// Zeros are plain unsigned 0..15 (no ExLlama "zeros - 1" convention).
#pragma once
#include <cstdint>

namespace q3::awq {

constexpr int kBits = 4;
constexpr int kPackFactor = 8;  // values per int32
constexpr int kOrder[8] = {0, 2, 4, 6, 1, 3, 5, 7};
constexpr int kReverseOrder[8] = {0, 4, 1, 5, 2, 6, 3, 7};

// Value of logical column n (0..N-1) from a packed row of N/8 int32.
inline int unpack(const int32_t* packed_row, int n) {
  uint32_t word = (uint32_t)packed_row[n / kPackFactor];
  return (int)((word >> (4 * kReverseOrder[n % kPackFactor])) & 0xF);
}

// Pack N values (each 0..15) of one row into N/8 int32.
inline void pack_row(const uint8_t* values, int N, int32_t* packed_row) {
  for (int c = 0; c < N / kPackFactor; c++) {
    uint32_t word = 0;
    for (int i = 0; i < kPackFactor; i++) word |= (uint32_t)(values[c * kPackFactor + kOrder[i]] & 0xF) << (4 * i);
    packed_row[c] = (int32_t)word;
  }
}

}  // namespace q3::awq
