// A small JSON reader and writer for config.json, generation_config.json, safetensors headers and the index file.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace q3 {

class Json {
 public:
  enum class Type { Null, Bool, Number, String, Array, Object };

  Type type = Type::Null;
  bool boolean = false;
  double number = 0;
  std::string string;
  std::vector<Json> array;
  std::map<std::string, Json> object;

  // Throws std::runtime_error("<what> at offset N") on malformed input.
  static Json parse(const std::string& text);

  bool is_null() const { return type == Type::Null; }
  bool is_number() const { return type == Type::Number; }
  bool is_string() const { return type == Type::String; }
  bool is_object() const { return type == Type::Object; }
  bool is_array() const { return type == Type::Array; }
  bool is_bool() const { return type == Type::Bool; }
  // Member lookup on an object; nullptr when absent or when this is not an object.
  const Json* get(const std::string& key) const;
};

// Quote a string as a JSON literal.
std::string json_quote(const std::string& s);

}  // namespace q3
