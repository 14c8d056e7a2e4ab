// Memory-mapped safetensors checkpoints: one model.safetensors, or shards listed by model.safetensors.index.json.
// Every header is validated (length, JSON, dtype, shape, offsets inside the file) before any tensor is used.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace q3 {

enum class DType { F16, BF16, F32, F64, I32, I64, I16, I8, U8, BOOL };

const char* dtype_name(DType t);
size_t dtype_size(DType t);

struct TensorView {
  std::string name;
  std::string file;  // file name inside the model directory
  DType dtype;
  std::vector<int64_t> shape;
  const uint8_t* data;
  size_t nbytes;

  int64_t numel() const;
  std::string shape_str() const;  // "[4096, 512]"
};

class MappedFile {
 public:
  explicit MappedFile(const std::string& path);  // throws with the path on failure
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

class Checkpoint {
 public:
  // Opens dir/model.safetensors or the shards named by dir/model.safetensors.index.json; throws on any problem,
  // naming the file (and tensor).
  explicit Checkpoint(const std::string& dir);

  // Throws "<file>: missing tensor '<name>'" when absent.
  const TensorView& get(const std::string& name) const;
  bool has(const std::string& name) const { return tensors_.count(name) != 0; }
  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  // Where a missing tensor was expected (the index or the single file), for messages.
  const std::string& source_name() const { return source_; }

 private:
  void open_file(const std::string& dir, const std::string& file);

  std::vector<std::unique_ptr<MappedFile>> files_;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> index_;  // tensor -> shard file (sharded checkpoints)
  std::string source_;
};

}  // namespace q3
