// contracts.md section 4, as lapmask/postprocess.py::prediction_json writes it.
#include "lapmask/prediction_json.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <numeric>

#include "lapmask/postprocess.h"
#include "lapmask/rle.h"

namespace lapmask {

std::string json_escape(const std::string& s) {
  std::string out;
  out.reserve(s.size() + 2);
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);  // UTF-8 passes through
        }
    }
  }
  return out;
}

namespace {

// Shortest text that reads back as the same double (what Python's repr / json.dumps writes for float(score)).
std::string number(double v) {
  if (!std::isfinite(v)) return std::isnan(v) ? "NaN" : (v > 0 ? "Infinity" : "-Infinity");
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, res.ptr);
}

}  // namespace

std::string prediction_json(const std::string& file_name, int height, int width,
                            const std::vector<Instance>& instances, double score_thr) {
  std::vector<size_t> order(instances.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return instances[a].score > instances[b].score; });
  std::string out = "{\"image\": \"" + json_escape(file_name) + "\", \"height\": " + std::to_string(height) +
                    ", \"width\": " + std::to_string(width) + ", \"instances\": [";
  bool first = true;
  for (size_t i : order) {
    const Instance& inst = instances[i];
    const double s = static_cast<double>(inst.score);
    if (s < score_thr) continue;
    if (inst.mask.height != height || inst.mask.width != width) {
      throw Error("prediction_json: instance mask is " + std::to_string(inst.mask.height) + "x" +
                  std::to_string(inst.mask.width) + " but the image is " + std::to_string(height) + "x" +
                  std::to_string(width));
    }
    const std::array<float, 4> b = box_from_mask(inst.mask);
    const bool any = b[2] >= b[0] && inst.mask.area() > 0;
    const long x0 = std::lround(b[0]), y0 = std::lround(b[1]), x1 = std::lround(b[2]), y1 = std::lround(b[3]);
    if (!first) out += ", ";
    first = false;
    out += "{\"label\": " + std::to_string(inst.label) + ", \"category_id\": " + std::to_string(inst.category_id) +
           ", \"category\": \"" + json_escape(inst.category) + "\", \"score\": " + number(s) + ", \"bbox\": [";
    if (any) {
      out += std::to_string(x0) + ", " + std::to_string(y0) + ", " + std::to_string(x1 - x0 + 1) + ", " +
             std::to_string(y1 - y0 + 1);
    } else {
      out += "0, 0, 0, 0";
    }
    out += "], \"segmentation\": {\"size\": [" + std::to_string(height) + ", " +
           std::to_string(width) + "], \"counts\": \"" + json_escape(rle_encode(inst.mask)) + "\"}}";
  }
  out += "]}";
  return out;
}

}  // namespace lapmask
