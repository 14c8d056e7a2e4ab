// The paged KV cache: a pool of fixed-size blocks with refcounts, so a prefix cache can share blocks between
// sequences. A block holds K and V of block_size consecutive positions for every layer, as IEEE fp16 (what the CUDA
// backend, transformers in fp16 and vLLM's default store): half the bytes a decode step's attention reads per position
// and twice the positions in the same memory as fp32. The values are rounded to nearest even when written (half.h).
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
  // K and V of one position in every layer, as stored (fp16); a backend sizes its pool with it before it has one.
  static size_t bytes_per_token(int n_layers, int n_kv_heads, int head_dim) {
    return (size_t)n_layers * 2 * n_kv_heads * head_dim * sizeof(uint16_t);
  }
  size_t bytes_per_token() const { return bytes_per_token(n_layers_, n_kv_heads_, head_dim_); }

  // K or V of one block and layer: (n_kv_heads, block_size, head_dim) fp16 values.
  uint16_t* k(int block, int layer) { return data_.get() + slot(block, layer, 0); }
  uint16_t* v(int block, int layer) { return data_.get() + slot(block, layer, 1); }
  const uint16_t* k(int block, int layer) const { return data_.get() + slot(block, layer, 0); }
  const uint16_t* v(int block, int layer) const { return data_.get() + slot(block, layer, 1); }

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
    void operator()(uint16_t* p) const { HugePageAllocator<uint16_t>().deallocate(p, 0); }
  };
  // (n_blocks, n_layers, 2, n_kv_heads, block_size, head_dim), untouched until used. On huge pages: a decode step's
  // attention reads each layer's rows of every block of the sequence (4 KiB pieces at the 8B shapes), which on 4 KiB
  // pages cost a TLB miss each page.
  std::unique_ptr<uint16_t[], FreeHuge> data_;
  std::vector<int32_t> refcount_;
  std::vector<int32_t> free_;
};

}  // namespace q3
