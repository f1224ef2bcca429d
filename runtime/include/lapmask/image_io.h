// Image files for lapmask_infer and tests (library lapmask_image_io): PNG (libpng), JPEG (libjpeg) and binary
// PPM/PGM, decoded like lapmask.preprocess.load_image_bgr (RGB conversion, alpha dropped, EXIF orientation).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lapmask {

struct ImageBGR {
  int height = 0;
  int width = 0;
  std::vector<uint8_t> data;  // interleaved BGR, rows width * 3 bytes apart
};

// Decode an image file to BGR uint8. Throws lapmask::Error (unknown format, format not compiled in, bad file).
ImageBGR read_image_bgr(const std::string& path);

// Write interleaved BGR uint8 as an 8-bit RGB PNG (needs libpng) or, for a `.ppm` path, binary PPM.
void write_image_bgr(const std::string& path, const uint8_t* bgr, int height, int width);

// Formats this build reads: a subset of {"png", "jpeg", "ppm"}.
std::vector<std::string> image_formats();

}  // namespace lapmask
