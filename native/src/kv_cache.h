// The paged KV cache: a pool of fixed-size blocks with refcounts, so a prefix cache can share blocks between
// sequences. A block holds K and V of block_size consecutive positions for every layer.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "cpu/huge_pages.h"

namespace q3 {

class KvPool {
 public:
  KvPool(int n_layers, int n_kv_heads, int head_dim, int block_size, int n_blocks);

  int block_size() const { return block_size_; }
  int n_blocks() const { return n_blocks_; }
  int free_blocks() const { return (int)free_.size(); }
  size_t bytes_per_token() const { return (size_t)n_layers_ * 2 * n_kv_heads_ * head_dim_ * sizeof(float); }

  // K or V of one block and layer: (n_kv_heads, block_size, head_dim).
  float* k(int block, int layer) { return data_.get() + slot(block, layer, 0); }
  float* v(int block, int layer) { return data_.get() + slot(block, layer, 1); }
  const float* k(int block, int layer) const { return data_.get() + slot(block, layer, 0); }
  const float* v(int block, int layer) const { return data_.get() + slot(block, layer, 1); }

  bool alloc(int n, int32_t* out);  // all or nothing
  void retain(const int32_t* ids, int n);
  void release(const int32_t* ids, int n);
  bool is_live(int32_t id) const { return id >= 0 && id < n_blocks_ && refcount_[id] > 0; }

 private:
  size_t slot(int block, int layer, int kv) const {
    return (((size_t)block * n_layers_ + layer) * 2 + kv) * (size_t)n_kv_heads_ * block_size_ * head_dim_;
  }

  int n_layers_, n_kv_heads_, head_dim_, block_size_, n_blocks_;
  struct FreeHuge {
    void operator()(float* p) const { HugePageAllocator<float>().deallocate(p, 0); }
  };
  // (n_blocks, n_layers, 2, n_kv_heads, block_size, head_dim), untouched until used. On huge pages: a decode step's
  // attention reads each layer's rows of every block of the sequence (8 KiB pieces at the 8B shapes), which on 4 KiB
  // pages cost a TLB miss each page.
  std::unique_ptr<float[], FreeHuge> data_;
  std::vector<int32_t> refcount_;
  std::vector<int32_t> free_;
};

}  // namespace q3
