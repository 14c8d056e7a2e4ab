// Philox4x32-10 counter-based generator (Salmon et al., Random123), identical on host and device: the sampler's
// per-request stream (key = seed, counter = step offset) and its CPU reference draw the same numbers.
#pragma once
#include <cstdint>

#ifdef __CUDACC__
#define Q3_HD __host__ __device__
#else
#define Q3_HD
#endif

namespace q3::cuda {

Q3_HD inline void philox4x32_10(uint32_t c[4], uint32_t k0, uint32_t k1) {
  for (int r = 0; r < 10; r++) {
    uint64_t p0 = (uint64_t)0xD2511F53u * c[0], p1 = (uint64_t)0xCD9E8D57u * c[2];
    uint32_t n0 = (uint32_t)(p1 >> 32) ^ c[1] ^ k0, n1 = (uint32_t)p1;
    uint32_t n2 = (uint32_t)(p0 >> 32) ^ c[3] ^ k1, n3 = (uint32_t)p0;
    c[0] = n0; c[1] = n1; c[2] = n2; c[3] = n3;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
}

// Uniform in [0, 1) with 24 random bits.
Q3_HD inline float philox_uniform(uint64_t seed, uint64_t offset) {
  uint32_t c[4] = {(uint32_t)offset, (uint32_t)(offset >> 32), 0u, 0u};
  philox4x32_10(c, (uint32_t)seed, (uint32_t)(seed >> 32));
  return (float)(c[0] >> 8) * (1.0f / 16777216.0f);
}

}  // namespace q3::cuda
