// Pre-processing exactly as lapmask/preprocess.py: detectron2 resize-shortest-edge size rule, PIL's BILINEAR
// resize of a uint8 image (bit-exact), zero padding bottom/right to a multiple of 32, HWC BGR -> [1, 3, H, W].
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

namespace lapmask {

// detectron2 ResizeShortestEdge.get_output_shape: shortest edge to `short_edge`, long edge capped at `max_size`,
// rounded with int(x + 0.5). Returns (new_h, new_w).
std::pair<int, int> resized_hw(int h, int w, int short_edge, int max_size);

// PIL Image.resize(..., BILINEAR) of an interleaved uint8 image with `channels` channels (1..4): a separable
// triangle-filter convolution whose support widens with the downscale factor (antialiased when shrinking),
// 22-bit fixed-point weights and a uint8 intermediate image, horizontal pass first unless the height shrinks
// more than twice as much as the width. Bit-exact with Pillow for 8-bit images.
// `src_stride` is the distance in bytes between rows of `src`; `dst` is dense (out_w * channels per row).
void resize_bilinear_pil(const uint8_t* src, int h, int w, int src_stride, int channels, uint8_t* dst, int out_h,
                         int out_w);

struct PrepareOptions {
  bool resize = true;        // false: native size (padding only)
  int min_size = 800;        // Metadata::min_size_test
  int max_size = 1333;       // Metadata::max_size_test
  int divisibility = 32;     // pad to multiples of this
  int fixed_height = 0;      // > 0: pad to exactly this size (fixed-size exports) instead of the next multiple
  int fixed_width = 0;
};

// The deploy graph's input (contracts.md section 3) for one image.
struct PreparedImage {
  std::vector<uint8_t> chw;  // [1, 3, padded_h, padded_w] BGR, zero padding bottom/right
  int padded_h = 0;
  int padded_w = 0;
  int h = 0;                 // resized size before padding (the graph's image_size input)
  int w = 0;
};

// Validate, resize (unless opts.resize is false) and pad an interleaved BGR uint8 image. Throws lapmask::Error.
PreparedImage prepare_image(const uint8_t* bgr, int height, int width, int stride_bytes, const PrepareOptions& opts);

}  // namespace lapmask
