// safetensors layout: u64 little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets}},
// then the data region; offsets are relative to the start of the data region.
#include "safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "json.h"

namespace q3 {

const char* dtype_name(DType t) {
  switch (t) {
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::F32: return "F32";
    case DType::F64: return "F64";
    case DType::I32: return "I32";
    case DType::I64: return "I64";
    case DType::I16: return "I16";
    case DType::I8: return "I8";
    case DType::U8: return "U8";
    case DType::BOOL: return "BOOL";
  }
  return "?";
}

size_t dtype_size(DType t) {
  switch (t) {
    case DType::F16: case DType::BF16: case DType::I16: return 2;
    case DType::F32: case DType::I32: return 4;
    case DType::F64: case DType::I64: return 8;
    case DType::I8: case DType::U8: case DType::BOOL: return 1;
  }
  return 0;
}

static bool parse_dtype(const std::string& s, DType* out) {
  static const std::pair<const char*, DType> table[] = {
      {"F16", DType::F16}, {"BF16", DType::BF16}, {"F32", DType::F32}, {"F64", DType::F64}, {"I32", DType::I32},
      {"I64", DType::I64}, {"I16", DType::I16},   {"I8", DType::I8},   {"U8", DType::U8},   {"BOOL", DType::BOOL}};
  for (auto& [name, t] : table)
    if (s == name) {
      *out = t;
      return true;
    }
  return false;
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string TensorView::shape_str() const {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); i++) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

MappedFile::MappedFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw std::runtime_error(path + ": cannot open (" + std::strerror(errno) + ")");
  struct stat st;
  if (fstat(fd, &st) != 0) {
    ::close(fd);
    throw std::runtime_error(path + ": cannot stat");
  }
  size_ = (size_t)st.st_size;
  if (size_ > 0) {
    void* p = mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      ::close(fd);
      throw std::runtime_error(path + ": mmap failed (" + std::strerror(errno) + ")");
    }
    data_ = (const uint8_t*)p;
  }
  ::close(fd);
}

MappedFile::~MappedFile() {
  if (data_) munmap((void*)data_, size_);
}

static std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error(path + ": cannot open");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

static bool file_exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

Checkpoint::Checkpoint(const std::string& dir) {
  std::string index_path = dir + "/model.safetensors.index.json";
  std::string single = dir + "/model.safetensors";
  if (file_exists(index_path)) {
    source_ = "model.safetensors.index.json";
    Json index;
    try {
      index = Json::parse(read_text(index_path));
    } catch (const std::exception& e) {
      throw std::runtime_error(index_path + ": " + e.what());
    }
    const Json* map = index.get("weight_map");
    if (!map || !map->is_object()) throw std::runtime_error(index_path + ": no \"weight_map\" object");
    std::map<std::string, bool> shard_files;
    for (auto& [tensor, file] : map->object) {
      if (!file.is_string() || file.string.empty() || file.string.find('/') != std::string::npos)
        throw std::runtime_error(index_path + ": bad shard file name for tensor '" + tensor + "'");
      index_[tensor] = file.string;
      shard_files[file.string] = true;
    }
    for (auto& [file, _] : shard_files) open_file(dir, file);
    for (auto& [tensor, file] : index_) {
      auto it = tensors_.find(tensor);
      if (it == tensors_.end())
        throw std::runtime_error(file + ": missing tensor '" + tensor + "' (listed in model.safetensors.index.json)");
      if (it->second.file != file)
        throw std::runtime_error(index_path + ": tensor '" + tensor + "' is listed in " + file + " but stored in " +
                                 it->second.file);
    }
  } else if (file_exists(single)) {
    source_ = "model.safetensors";
    open_file(dir, "model.safetensors");
  } else {
    throw std::runtime_error(dir + ": no model.safetensors or model.safetensors.index.json");
  }
}

void Checkpoint::open_file(const std::string& dir, const std::string& file) {
  std::string path = dir + "/" + file;
  files_.push_back(std::make_unique<MappedFile>(path));
  const MappedFile& mf = *files_.back();
  if (mf.size() < 8) throw std::runtime_error(file + ": truncated (" + std::to_string(mf.size()) + " bytes, no header)");
  uint64_t header_len = 0;
  std::memcpy(&header_len, mf.data(), 8);
  if (header_len < 2 || header_len > mf.size() - 8)
    throw std::runtime_error(file + ": header length " + std::to_string(header_len) + " exceeds the file size " +
                             std::to_string(mf.size()) + " (truncated or not safetensors)");
  Json header;
  try {
    header = Json::parse(std::string((const char*)mf.data() + 8, header_len));
  } catch (const std::exception& e) {
    throw std::runtime_error(file + ": bad header: " + e.what());
  }
  if (!header.is_object()) throw std::runtime_error(file + ": header is not a JSON object");
  const uint8_t* base = mf.data() + 8 + header_len;
  size_t data_size = mf.size() - 8 - header_len;
  for (auto& [name, info] : header.object) {
    if (name == "__metadata__") continue;
    auto bad = [&](const std::string& why) { return std::runtime_error(file + ": tensor '" + name + "': " + why); };
    const Json* dt = info.get("dtype");
    const Json* shape = info.get("shape");
    const Json* offs = info.get("data_offsets");
    if (!dt || !dt->is_string() || !shape || !shape->is_array() || !offs || !offs->is_array() || offs->array.size() != 2)
      throw bad("malformed header entry");
    TensorView t;
    t.name = name;
    t.file = file;
    if (!parse_dtype(dt->string, &t.dtype)) throw bad("unsupported dtype " + dt->string);
    for (const Json& d : shape->array) {
      if (!d.is_number() || d.number < 0 || d.number != (double)(int64_t)d.number) throw bad("bad shape");
      t.shape.push_back((int64_t)d.number);
    }
    for (const Json& o : offs->array)
      if (!o.is_number() || o.number < 0) throw bad("bad data_offsets");
    double begin = offs->array[0].number, end = offs->array[1].number;
    if (end < begin) throw bad("data_offsets end before begin");
    if (end > (double)data_size)
      throw bad("data_offsets [" + std::to_string((uint64_t)begin) + ", " + std::to_string((uint64_t)end) +
                ") run past the end of the file (data region is " + std::to_string(data_size) +
                " bytes; truncated file?)");
    t.nbytes = (size_t)(end - begin);
    if ((double)t.nbytes != (double)t.numel() * (double)dtype_size(t.dtype))
      throw bad("size " + std::to_string(t.nbytes) + " bytes does not match shape " + t.shape_str() + " of " +
                dtype_name(t.dtype));
    t.data = base + (size_t)begin;
    if (tensors_.count(name)) throw bad("stored twice (also in " + tensors_[name].file + ")");
    tensors_[name] = t;
  }
}

const TensorView& Checkpoint::get(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) {
    auto ix = index_.find(name);
    std::string where = ix != index_.end() ? ix->second : source_;
    throw std::runtime_error(where + ": missing tensor '" + name + "'");
  }
  return it->second;
}

}  // namespace q3
