// Reads the deploy metadata written by export/metadata.py (build_metadata + write_sidecar).
#include "lapmask/metadata.h"

#include <cmath>
#include <fstream>
#include <sstream>
#include <sys/stat.h>

#include "json.h"
#include "lapmask/types.h"

namespace lapmask {
namespace {

bool is_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

[[noreturn]] void bad(const std::string& source, const std::string& key, const std::string& what) {
  throw Error(source + ": metadata key \"" + key + "\" " + what +
              "; re-export the model with `lapmask export` (it writes the sidecar <model>.json)");
}

const json::Value& need(const json::Value& doc, const std::string& key, const std::string& source) {
  const json::Value* v = doc.find(key);
  if (v == nullptr) bad(source, key, "is missing");
  return *v;
}

int as_int(const json::Value& v, const std::string& key, const std::string& source) {
  if (v.type != json::Value::Type::Number || v.number != std::floor(v.number) || std::fabs(v.number) > 2e9) {
    bad(source, key, "must be an integer");
  }
  return static_cast<int>(v.number);
}

double as_number(const json::Value& v, const std::string& key, const std::string& source) {
  if (v.type != json::Value::Type::Number) bad(source, key, "must be a number");
  return v.number;
}

std::string opt_string(const json::Value& doc, const std::string& key) {
  const json::Value* v = doc.find(key);
  return v != nullptr && v->type == json::Value::Type::String ? v->string : std::string();
}

int opt_int(const json::Value& doc, const std::string& key, int fallback, const std::string& source) {
  const json::Value* v = doc.find(key);
  return v == nullptr || v->is_null() ? fallback : as_int(*v, key, source);
}

}  // namespace

Metadata parse_metadata(const std::string& json_text, const std::string& source) {
  const json::Value doc = json::parse(json_text, source);
  if (doc.type != json::Value::Type::Object) throw Error(source + ": metadata must be a JSON object");
  Metadata m;
  m.source = source;
  const json::Value* format = doc.find("format");
  if (format != nullptr && !(format->type == json::Value::Type::String && format->string == "lapmask-deploy")) {
    throw Error(source + ": not lapmask deploy metadata (\"format\" is not \"lapmask-deploy\"); pass the JSON that "
                "`lapmask export` wrote next to the model");
  }
  m.format_version = opt_int(doc, "format_version", 0, source);
  if (m.format_version > kMetadataFormatVersion) {
    throw Error(source + ": metadata format " + std::to_string(m.format_version) + " is newer than this runtime (" +
                std::to_string(kMetadataFormatVersion) + "); rebuild lapmask_runtime from a newer lapmask");
  }
  const json::Value& names = need(doc, "class_names", source);
  if (names.type != json::Value::Type::Array || names.array.empty()) {
    bad(source, "class_names", "must be a non-empty list");
  }
  for (const auto& n : names.array) {
    if (n.type != json::Value::Type::String) bad(source, "class_names", "must hold strings");
    m.class_names.push_back(n.string);
  }
  const json::Value& ids = need(doc, "category_ids", source);
  if (ids.type != json::Value::Type::Array) bad(source, "category_ids", "must be a list");
  for (const auto& i : ids.array) m.category_ids.push_back(as_int(i, "category_ids", source));
  if (m.category_ids.size() != m.class_names.size()) {
    bad(source, "category_ids", "has " + std::to_string(m.category_ids.size()) + " entries but class_names has " +
                                    std::to_string(m.class_names.size()));
  }
  m.min_size_test = as_int(need(doc, "min_size_test", source), "min_size_test", source);
  m.max_size_test = as_int(need(doc, "max_size_test", source), "max_size_test", source);
  if (m.min_size_test <= 0 || m.max_size_test <= 0) bad(source, "min_size_test/max_size_test", "must be positive");
  m.mask_thr = as_number(need(doc, "mask_thr", source), "mask_thr", source);
  m.size_divisibility = opt_int(doc, "size_divisibility", 32, source);
  if (m.size_divisibility <= 0) bad(source, "size_divisibility", "must be positive");
  if (const json::Value* r = doc.find("resize"); r != nullptr && !r->is_null()) {
    if (r->type != json::Value::Type::Bool) bad(source, "resize", "must be true or false");
    m.resize = r->boolean;
  }
  m.input_height = opt_int(doc, "input_height", 0, source);
  m.input_width = opt_int(doc, "input_width", 0, source);
  if ((m.input_height > 0) != (m.input_width > 0)) bad(source, "input_height/input_width", "must both be set or null");
  m.k_pre = opt_int(doc, "k_pre", 0, source);
  m.max_dets = opt_int(doc, "max_dets", 0, source);
  if (const json::Value* s = doc.find("score_thr"); s != nullptr && s->type == json::Value::Type::Number) {
    m.score_thr = s->number;
  }
  m.preset = opt_string(doc, "preset");
  m.precision = opt_string(doc, "precision");
  m.flavour = opt_string(doc, "flavour");
  return m;
}

Metadata read_metadata_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error("cannot open metadata file " + path);
  std::ostringstream ss;
  ss << f.rdbuf();
  return parse_metadata(ss.str(), path);
}

std::string find_sidecar(const std::string& model_path) {
  if (is_file(model_path + ".json")) return model_path + ".json";
  const size_t slash = model_path.find_last_of('/');
  const size_t dot = model_path.find_last_of('.');
  if (dot != std::string::npos && (slash == std::string::npos || dot > slash)) {
    std::string alt = model_path.substr(0, dot) + ".json";
    if (is_file(alt)) return alt;
  }
  return {};
}

}  // namespace lapmask
