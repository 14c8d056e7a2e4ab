// Scalar reference implementations; the compiler vectorises the simple loops well enough since the matmuls dominate.
#include "ops_cpu.h"

#include <cmath>
#include <vector>

#include "../half.h"

namespace q3 {

void rmsnorm_cpu(const float* x, const float* w, int n, float eps, float* out) {
  double ss = 0;
  for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
  float r = (float)(1.0 / std::sqrt(ss / n + eps));
  for (int i = 0; i < n; i++) out[i] = w[i] * (x[i] * r);
}

void rope_cos_sin_cpu(int pos, const RopeTable& rope, int head_dim, float* cos, float* sin) {
  for (int j = 0; j < head_dim / 2; j++) {
    double angle = (double)pos * rope.inv_freq[j];
    cos[j] = (float)std::cos(angle) * rope.attention_factor;
    sin[j] = (float)std::sin(angle) * rope.attention_factor;
  }
}

void rope_rotate_cpu(float* vec, int head_dim, const float* cos, const float* sin) {
  const int half = head_dim / 2;
  for (int j = 0; j < half; j++) {
    float a = vec[j], b = vec[j + half];
    vec[j] = a * cos[j] - b * sin[j];
    vec[j + half] = b * cos[j] + a * sin[j];
  }
}

void rope_cpu(float* vec, int head_dim, int pos, const RopeTable& rope) {
  std::vector<float> c(head_dim / 2), s(head_dim / 2);
  rope_cos_sin_cpu(pos, rope, head_dim, c.data(), s.data());
  rope_rotate_cpu(vec, head_dim, c.data(), s.data());
}

void silu_mul_cpu(const float* gate, const float* up, int n, float* out) {
  for (int i = 0; i < n; i++) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void embed_row_cpu(const uint16_t* table, int hidden, int token, float* out) {
  const uint16_t* row = table + (size_t)token * hidden;
  for (int i = 0; i < hidden; i++) out[i] = f16_to_f32(row[i]);
}

void attention_head_cpu(const float* q, const KvPool& kv, int layer, int kv_head, const int32_t* block_table, int pos,
                        int head_dim, float scale, float* scores, float* out) {
  const int bs = kv.block_size();
  float max_score = -INFINITY;
  for (int j = 0; j <= pos; j++) {
    const float* k = kv.k(block_table[j / bs], layer) + ((size_t)kv_head * bs + j % bs) * head_dim;
    float dot = 0;
    for (int d = 0; d < head_dim; d++) dot += q[d] * k[d];
    scores[j] = dot * scale;
    if (scores[j] > max_score) max_score = scores[j];
  }
  double sum = 0;
  for (int j = 0; j <= pos; j++) {
    scores[j] = std::exp(scores[j] - max_score);
    sum += scores[j];
  }
  const float inv = (float)(1.0 / sum);
  for (int d = 0; d < head_dim; d++) out[d] = 0;
  for (int j = 0; j <= pos; j++) {
    const float* v = kv.v(block_table[j / bs], layer) + ((size_t)kv_head * bs + j % bs) * head_dim;
    const float p = scores[j] * inv;
    for (int d = 0; d < head_dim; d++) out[d] += p * v[d];
  }
}

}  // namespace q3
