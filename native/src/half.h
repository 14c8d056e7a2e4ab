// IEEE fp16 and bfloat16 <-> fp32 conversions used by the loader, the checkpoint writer and the CPU kernels.
#pragma once
#include <cstdint>
#include <cstring>

namespace q3 {

// Exact, without branches (the compiler vectorises loops of it, e.g. the attention's widening of fp16 K/V rows):
// normal numbers rebias the exponent (15 -> 127), subnormals are their 10-bit integer times 2^-24 (exact in fp32),
// and exponent 31 (inf, NaN) maps to 255 with the payload kept.
inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
  const uint32_t normal = ((exp + (127 - 15)) << 23) | (man << 13);
  const uint32_t special = 0x7f800000u | (man << 13);
  const float tiny = (float)man * 5.9604644775390625e-8f;  // man * 2^-24
  uint32_t tiny_bits;
  std::memcpy(&tiny_bits, &tiny, 4);
  const uint32_t bits = sign | (exp == 0 ? tiny_bits : exp == 31 ? special : normal);
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Round to nearest even, with overflow to inf and gradual underflow.
inline uint16_t f32_to_f16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000;
  uint32_t absx = x & 0x7fffffff;
  if (absx >= 0x7f800000u) return (uint16_t)(sign | 0x7c00 | (absx > 0x7f800000u ? 0x200 : 0));
  if (absx >= 0x477ff000u) return (uint16_t)(sign | 0x7c00);  // rounds to >= 65520 -> inf
  if (absx < 0x38800000u) {                                    // result is subnormal or zero
    if (absx < 0x33000000u) return (uint16_t)sign;
    uint32_t e = absx >> 23;
    uint32_t man = (absx & 0x7fffff) | 0x800000;
    uint32_t shift = 126 - e;  // 14 + (113 - e)
    uint32_t r = man >> shift;
    uint32_t rem = man & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1))) r++;
    return (uint16_t)(sign | r);
  }
  uint32_t r = absx - 0x38000000u;  // rebias exponent 127 -> 15
  uint32_t out = r >> 13;
  uint32_t rem = r & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (out & 1))) out++;
  return (uint16_t)(sign | out);
}

inline float bf16_to_f32(uint16_t h) {
  uint32_t bits = (uint32_t)h << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline uint16_t f32_to_bf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffff) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40);
  uint32_t lsb = (x >> 16) & 1;
  return (uint16_t)((x + 0x7fff + lsb) >> 16);
}

}  // namespace q3
