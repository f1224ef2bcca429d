// Minimal JSON reader (internal): enough for metadata files -- objects, arrays, strings (with \u escapes),
// numbers, true/false/null. Not a general-purpose library.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace lapmask {
namespace json {

struct Value {
  enum class Type { Null, Bool, Number, String, Array, Object };
  Type type = Type::Null;
  bool boolean = false;
  double number = 0.0;
  std::string string;
  std::vector<Value> array;
  std::map<std::string, Value> object;

  bool is_null() const { return type == Type::Null; }
  const Value* find(const std::string& key) const;  // nullptr when absent or not an object
};

// Parse a complete JSON document; throws lapmask::Error naming `source` and the byte offset on bad input.
Value parse(const std::string& text, const std::string& source);

}  // namespace json
}  // namespace lapmask
