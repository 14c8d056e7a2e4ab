// Block allocator of the paged KV cache. Freed blocks go to the back of the free list and are handed out from the
// back too, so recently used (cache-warm) blocks are reused first.
#include "kv_cache.h"

#include <stdexcept>

namespace q3 {

KvPool::KvPool(int n_layers, int n_kv_heads, int head_dim, int block_size, int n_blocks)
    : n_layers_(n_layers), n_kv_heads_(n_kv_heads), head_dim_(head_dim), block_size_(block_size), n_blocks_(n_blocks) {
  if (n_blocks <= 0 || block_size <= 0) throw std::runtime_error("KV cache: need at least one block of one token");
  data_.reset(HugePageAllocator<uint16_t>().allocate(slot(n_blocks, 0, 0)));
  refcount_.assign(n_blocks, 0);
  free_.reserve(n_blocks);
  for (int b = n_blocks - 1; b >= 0; b--) free_.push_back(b);
}

bool KvPool::alloc(int n, int32_t* out) {
  if (n < 0 || n > (int)free_.size()) return false;
  for (int i = 0; i < n; i++) {
    out[i] = free_.back();
    free_.pop_back();
    refcount_[out[i]] = 1;
  }
  return true;
}

void KvPool::retain(const int32_t* ids, int n) {
  for (int i = 0; i < n; i++)
    if (is_live(ids[i])) refcount_[ids[i]]++;
}

void KvPool::release(const int32_t* ids, int n) {
  for (int i = 0; i < n; i++) {
    if (!is_live(ids[i])) continue;
    if (--refcount_[ids[i]] == 0) free_.push_back(ids[i]);
  }
}

}  // namespace q3
