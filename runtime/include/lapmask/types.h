// Plain result types of the lapmask C++ runtime (contracts.md sections 3 and 4).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace lapmask {

// Every failure of the runtime (bad model file, missing metadata, bad image, back end error) is a lapmask::Error
// whose message says what went wrong and what to do.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Binary mask at the original image size: row-major, one byte per pixel, values 0 or 1.
struct Mask {
  int height = 0;
  int width = 0;
  std::vector<uint8_t> data;

  Mask() = default;
  Mask(int h, int w) : height(h), width(w), data(static_cast<size_t>(h) * static_cast<size_t>(w), 0) {}
  uint8_t at(int y, int x) const { return data[static_cast<size_t>(y) * static_cast<size_t>(width) + x]; }
  uint8_t* row(int y) { return data.data() + static_cast<size_t>(y) * static_cast<size_t>(width); }
  const uint8_t* row(int y) const { return data.data() + static_cast<size_t>(y) * static_cast<size_t>(width); }
  size_t area() const;  // number of set pixels
};

// One detected instance at the original image size.
struct Instance {
  int label = -1;                 // 0-based contiguous class index
  int category_id = -1;           // the dataset's original category id (metadata category_ids[label])
  std::string category;           // metadata class_names[label]
  float score = 0.0f;             // after Matrix NMS decay
  std::array<float, 4> box{};     // x0, y0, x1, y1 of the set pixels, inclusive; all 0 for an empty mask
  Mask mask;                      // height x width of the input image
};

}  // namespace lapmask
