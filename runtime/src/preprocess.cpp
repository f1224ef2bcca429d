// Pre-processing, step for step as lapmask/preprocess.py (which uses PIL and detectron2's size rule).
#include "lapmask/preprocess.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "lapmask/types.h"

namespace lapmask {

std::pair<int, int> resized_hw(int h, int w, int short_edge, int max_size) {
  // Double precision and int(x + 0.5) truncation, as detectron2 ResizeShortestEdge.get_output_shape.
  const double scale = short_edge * 1.0 / std::min(h, w);
  double newh, neww;
  if (h < w) {
    newh = short_edge * 1.0;
    neww = scale * w;
  } else {
    newh = scale * h;
    neww = short_edge * 1.0;
  }
  if (std::max(newh, neww) > max_size) {
    const double s = max_size * 1.0 / std::max(newh, neww);
    newh = newh * s;
    neww = neww * s;
  }
  return {static_cast<int>(newh + 0.5), static_cast<int>(neww + 0.5)};
}

namespace {

// Fixed-point precision of PIL's 8-bit resampling: 32 bits minus 8 for the value minus 2 of headroom.
constexpr int kPrecisionBits = 32 - 8 - 2;

// Per-output-pixel filter taps of one axis: first source index, tap count, and ksize fixed-point weights.
struct AxisTaps {
  int ksize = 0;
  std::vector<int> first;
  std::vector<int> count;
  std::vector<int32_t> weights;  // [out_size, ksize]
};

// PIL's BILINEAR filter is a triangle of support 1, widened by the downscale factor (antialiasing).
double triangle(double x) {
  x = std::fabs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

AxisTaps axis_taps(int in_size, int out_size) {
  AxisTaps t;
  // PIL computes the scale from a float box (0, in_size) in double; the weights are double until quantised.
  const double scale = static_cast<double>(static_cast<float>(in_size)) / out_size;
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = 1.0 * filterscale;
  const double inv_filterscale = 1.0 / filterscale;
  t.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  t.first.resize(out_size);
  t.count.resize(out_size);
  t.weights.assign(static_cast<size_t>(out_size) * t.ksize, 0);
  std::vector<double> w(t.ksize);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = (xx + 0.5) * scale;
    int xmin = static_cast<int>(center - support + 0.5);  // C truncation towards zero, then clamp (as PIL)
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    const int n = xmax - xmin;
    double sum = 0.0;
    for (int x = 0; x < n; ++x) {
      w[x] = triangle((x + xmin - center + 0.5) * inv_filterscale);
      sum += w[x];
    }
    for (int x = 0; x < n; ++x) {
      const double v = sum != 0.0 ? w[x] / sum : w[x];
      // Round half away from zero into 22-bit fixed point.
      t.weights[static_cast<size_t>(xx) * t.ksize + x] =
          static_cast<int32_t>(v < 0 ? -0.5 + v * (1 << kPrecisionBits) : 0.5 + v * (1 << kPrecisionBits));
    }
    t.first[xx] = xmin;
    t.count[xx] = n;
  }
  return t;
}

inline uint8_t clip8(int32_t acc) {
  const int32_t v = acc >> kPrecisionBits;
  return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

// Horizontal pass over rows [row0, row0 + rows) of src; dst rows are dense.
void horizontal(const uint8_t* src, int src_stride, int row0, int rows, int channels, const AxisTaps& t, int out_w,
                uint8_t* dst) {
  for (int y = 0; y < rows; ++y) {
    const uint8_t* in = src + static_cast<size_t>(row0 + y) * src_stride;
    uint8_t* out = dst + static_cast<size_t>(y) * out_w * channels;
    for (int xx = 0; xx < out_w; ++xx) {
      const int32_t* k = &t.weights[static_cast<size_t>(xx) * t.ksize];
      const uint8_t* p = in + static_cast<size_t>(t.first[xx]) * channels;
      for (int c = 0; c < channels; ++c) {
        int32_t acc = 1 << (kPrecisionBits - 1);
        for (int x = 0; x < t.count[xx]; ++x) acc += p[x * channels + c] * k[x];
        out[xx * channels + c] = clip8(acc);
      }
    }
  }
}

// Vertical pass: dst row yy mixes src rows first[yy] - row_offset ...
void vertical(const uint8_t* src, int src_stride, int row_offset, int width, int channels, const AxisTaps& t,
              int out_h, uint8_t* dst) {
  const int row_len = width * channels;
  for (int yy = 0; yy < out_h; ++yy) {
    const int32_t* k = &t.weights[static_cast<size_t>(yy) * t.ksize];
    const uint8_t* base = src + static_cast<size_t>(t.first[yy] - row_offset) * src_stride;
    uint8_t* out = dst + static_cast<size_t>(yy) * row_len;
    for (int i = 0; i < row_len; ++i) {
      int32_t acc = 1 << (kPrecisionBits - 1);
      for (int y = 0; y < t.count[yy]; ++y) acc += base[static_cast<size_t>(y) * src_stride + i] * k[y];
      out[i] = clip8(acc);
    }
  }
}

}  // namespace

void resize_bilinear_pil(const uint8_t* src, int h, int w, int src_stride, int channels, uint8_t* dst, int out_h,
                         int out_w) {
  if (h <= 0 || w <= 0 || out_h <= 0 || out_w <= 0 || channels < 1 || channels > 4) {
    throw Error("resize_bilinear_pil: bad sizes " + std::to_string(h) + "x" + std::to_string(w) + " -> " +
                std::to_string(out_h) + "x" + std::to_string(out_w) + " with " + std::to_string(channels) +
                " channels");
  }
  const bool need_h = out_w != w;
  const bool need_v = out_h != h;
  const size_t out_row = static_cast<size_t>(out_w) * channels;
  if (!need_h && !need_v) {
    for (int y = 0; y < h; ++y) std::memcpy(dst + y * out_row, src + static_cast<size_t>(y) * src_stride, out_row);
    return;
  }
  // PIL runs the vertical pass first only when the height shrinks more than twice as much as the width; the
  // order matters because the intermediate image is rounded to uint8.
  const bool horizontal_first = !((h - out_h) > 0 && (h - out_h) > (w - out_w) * 2);
  if (horizontal_first) {
    if (!need_v) {
      horizontal(src, src_stride, 0, h, channels, axis_taps(w, out_w), out_w, dst);
      return;
    }
    const AxisTaps tv = axis_taps(h, out_h);
    if (!need_h) {
      vertical(src, src_stride, 0, w, channels, tv, out_h, dst);
      return;
    }
    // Only the source rows the vertical pass reads go through the horizontal pass.
    const int row0 = tv.first[0];
    const int row1 = tv.first[out_h - 1] + tv.count[out_h - 1];
    std::vector<uint8_t> tmp(static_cast<size_t>(row1 - row0) * out_row);
    horizontal(src, src_stride, row0, row1 - row0, channels, axis_taps(w, out_w), out_w, tmp.data());
    vertical(tmp.data(), static_cast<int>(out_row), row0, out_w, channels, tv, out_h, dst);
  } else {
    const AxisTaps tv = axis_taps(h, out_h);
    if (!need_h) {
      vertical(src, src_stride, 0, w, channels, tv, out_h, dst);
      return;
    }
    std::vector<uint8_t> tmp(static_cast<size_t>(out_h) * w * channels);
    vertical(src, src_stride, 0, w, channels, tv, out_h, tmp.data());
    horizontal(tmp.data(), w * channels, 0, out_h, channels, axis_taps(w, out_w), out_w, dst);
  }
}

PreparedImage prepare_image(const uint8_t* bgr, int height, int width, int stride_bytes, const PrepareOptions& opts) {
  if (bgr == nullptr) throw Error("prepare_image: null image pointer");
  if (height <= 0 || width <= 0) {
    throw Error("empty image of size " + std::to_string(height) + "x" + std::to_string(width));
  }
  if (stride_bytes < width * 3) {
    throw Error("stride_bytes " + std::to_string(stride_bytes) + " < width * 3 = " + std::to_string(width * 3) +
                ": the runtime takes interleaved 3-channel BGR uint8 images (convert gray/BGRA first)");
  }
  if (opts.divisibility <= 0) throw Error("prepare_image: divisibility must be positive");
  const uint8_t* img = bgr;
  int h = height, w = width, stride = stride_bytes;
  std::vector<uint8_t> resized;
  if (opts.resize) {
    const auto hw = resized_hw(height, width, opts.min_size, opts.max_size);
    if (hw.first <= 0 || hw.second <= 0) {
      throw Error("image " + std::to_string(height) + "x" + std::to_string(width) +
                  " resizes to an empty image; is it extremely elongated?");
    }
    if (hw.first != height || hw.second != width) {
      resized.resize(static_cast<size_t>(hw.first) * hw.second * 3);
      resize_bilinear_pil(bgr, height, width, stride_bytes, 3, resized.data(), hw.first, hw.second);
      img = resized.data();
      h = hw.first;
      w = hw.second;
      stride = w * 3;
    }
  }
  PreparedImage out;
  out.h = h;
  out.w = w;
  if (opts.fixed_height > 0 && opts.fixed_width > 0) {
    if (h > opts.fixed_height || w > opts.fixed_width) {
      throw Error("the model was exported for a fixed input of " + std::to_string(opts.fixed_height) + "x" +
                  std::to_string(opts.fixed_width) + " but the (resized) image is " + std::to_string(h) + "x" +
                  std::to_string(w) + "; export with dynamic shapes or resize the image first");
    }
    out.padded_h = opts.fixed_height;
    out.padded_w = opts.fixed_width;
  } else {
    const int d = opts.divisibility;
    out.padded_h = (h + d - 1) / d * d;
    out.padded_w = (w + d - 1) / d * d;
  }
  const size_t plane = static_cast<size_t>(out.padded_h) * out.padded_w;
  out.chw.assign(3 * plane, 0);
  for (int y = 0; y < h; ++y) {
    const uint8_t* row = img + static_cast<size_t>(y) * stride;
    uint8_t* b = out.chw.data() + static_cast<size_t>(y) * out.padded_w;
    uint8_t* g = b + plane;
    uint8_t* r = g + plane;
    for (int x = 0; x < w; ++x) {
      b[x] = row[3 * x];
      g[x] = row[3 * x + 1];
      r[x] = row[3 * x + 2];
    }
  }
  return out;
}

}  // namespace lapmask
