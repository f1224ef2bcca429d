// Post-processing, step for step as lapmask/postprocess.py (numpy, float32). Compiled with -ffp-contract=off so
// that a * b + c * d rounds each product as numpy does (no fused multiply-add).
#include "lapmask/postprocess.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace lapmask {

size_t Mask::area() const {
  size_t n = 0;
  for (uint8_t v : data) n += v != 0;
  return n;
}

namespace {

// Source indices and weights of one axis (postprocess.py::_axis_weights): all float32 arithmetic.
struct AxisWeights {
  std::vector<int> i0, i1;
  std::vector<float> w0, w1;
};

AxisWeights axis_weights(int in_size, int out_size) {
  AxisWeights a;
  a.i0.resize(out_size);
  a.i1.resize(out_size);
  a.w0.resize(out_size);
  a.w1.resize(out_size);
  const float scale = static_cast<float>(static_cast<double>(in_size) / out_size);
  for (int i = 0; i < out_size; ++i) {
    float src = (static_cast<float>(i) + 0.5f) * scale - 0.5f;
    src = std::max(src, 0.0f);
    const int i0 = std::min(static_cast<int>(std::floor(src)), in_size - 1);
    const float l1 = std::min(std::max(src - static_cast<float>(i0), 0.0f), 1.0f);
    a.i0[i] = i0;
    a.i1[i] = std::min(i0 + 1, in_size - 1);
    a.w0[i] = 1.0f - l1;
    a.w1[i] = l1;
  }
  return a;
}

// One plane: rows first (vertical weights), then columns, over output rows [0, rows) and columns [0, cols) of
// the full out_h x out_w resize (cropping does not change the kept values). `tmp` holds rows x w.
void resize_plane(const float* src, int w, const AxisWeights& ay, const AxisWeights& ax, int rows, int cols,
                  std::vector<float>& tmp, float* dst, int dst_stride) {
  tmp.resize(static_cast<size_t>(rows) * w);
  for (int y = 0; y < rows; ++y) {
    const float* r0 = src + static_cast<size_t>(ay.i0[y]) * w;
    const float* r1 = src + static_cast<size_t>(ay.i1[y]) * w;
    const float wy0 = ay.w0[y], wy1 = ay.w1[y];
    float* t = &tmp[static_cast<size_t>(y) * w];
    for (int x = 0; x < w; ++x) {
      const float p = r0[x] * wy0;
      const float q = r1[x] * wy1;
      t[x] = p + q;
    }
  }
  for (int y = 0; y < rows; ++y) {
    const float* t = &tmp[static_cast<size_t>(y) * w];
    float* out = dst + static_cast<size_t>(y) * dst_stride;
    for (int x = 0; x < cols; ++x) {
      const float p = t[ax.i0[x]] * ax.w0[x];
      const float q = t[ax.i1[x]] * ax.w1[x];
      out[x] = p + q;
    }
  }
}

}  // namespace

void resize_bilinear_f32(const float* src, int n, int h, int w, float* dst, int out_h, int out_w) {
  if (n < 0 || h <= 0 || w <= 0 || out_h <= 0 || out_w <= 0) {
    throw Error("resize_bilinear_f32: bad sizes");
  }
  const AxisWeights ay = axis_weights(h, out_h), ax = axis_weights(w, out_w);
  std::vector<float> tmp;
  for (int i = 0; i < n; ++i) {
    resize_plane(src + static_cast<size_t>(i) * h * w, w, ay, ax, out_h, out_w, tmp,
                 dst + static_cast<size_t>(i) * out_h * out_w, out_w);
  }
}

std::vector<Mask> paste_masks(const float* probs, int n, int fh, int fw, int image_h, int image_w, int ori_h,
                              int ori_w, double mask_thr) {
  std::vector<Mask> masks;
  if (n <= 0) return masks;
  if (fh <= 0 || fw <= 0 || image_h <= 0 || image_w <= 0 || ori_h <= 0 || ori_w <= 0) {
    throw Error("paste_masks: bad sizes (mask " + std::to_string(fh) + "x" + std::to_string(fw) + ", image " +
                std::to_string(image_h) + "x" + std::to_string(image_w) + ", original " + std::to_string(ori_h) +
                "x" + std::to_string(ori_w) + ")");
  }
  // Official upsampling ratio ceil(h / (H/4)), applied to both axes (4 except for degenerate tiny inputs).
  const int ratio = static_cast<int>(std::ceil(static_cast<double>(image_h) / fh));
  const int up_h = fh * ratio, up_w = fw * ratio;
  // up[:, :h, :w] -- slicing past the end keeps what exists, as numpy and torch do.
  const int crop_h = std::min(image_h, up_h), crop_w = std::min(image_w, up_w);
  const AxisWeights ay1 = axis_weights(fh, up_h), ax1 = axis_weights(fw, up_w);
  const AxisWeights ay2 = axis_weights(crop_h, ori_h), ax2 = axis_weights(crop_w, ori_w);
  // numpy compares float32 with a Python float as float32 (NEP 50); torch does the same.
  const float thr = static_cast<float>(mask_thr);
  std::vector<float> tmp, crop(static_cast<size_t>(crop_h) * crop_w), full(static_cast<size_t>(ori_h) * ori_w);
  masks.reserve(n);
  for (int i = 0; i < n; ++i) {
    resize_plane(probs + static_cast<size_t>(i) * fh * fw, fw, ay1, ax1, crop_h, crop_w, tmp, crop.data(), crop_w);
    resize_plane(crop.data(), crop_w, ay2, ax2, ori_h, ori_w, tmp, full.data(), ori_w);
    Mask m(ori_h, ori_w);
    for (size_t j = 0; j < full.size(); ++j) m.data[j] = full[j] > thr ? 1 : 0;
    masks.push_back(std::move(m));
  }
  return masks;
}

std::array<float, 4> box_from_mask(const Mask& mask) {
  int x0 = mask.width, y0 = mask.height, x1 = -1, y1 = -1;
  for (int y = 0; y < mask.height; ++y) {
    const uint8_t* r = mask.row(y);
    int first = -1, last = -1;
    for (int x = 0; x < mask.width; ++x) {
      if (r[x]) {
        if (first < 0) first = x;
        last = x;
      }
    }
    if (first < 0) continue;
    if (y0 == mask.height) y0 = y;
    y1 = y;
    x0 = std::min(x0, first);
    x1 = std::max(x1, last);
  }
  if (y1 < 0) return {0.0f, 0.0f, 0.0f, 0.0f};
  return {static_cast<float>(x0), static_cast<float>(y0), static_cast<float>(x1), static_cast<float>(y1)};
}

std::vector<Instance> postprocess_static(const DeployOutputs& out, int image_h, int image_w, int ori_h, int ori_w,
                                         double mask_thr, const std::vector<std::string>& class_names,
                                         const std::vector<int>& category_ids) {
  if (out.num_dets < 0 || out.num_dets > out.k) {
    throw Error("deploy output num_dets = " + std::to_string(out.num_dets) + " outside [0, " +
                std::to_string(out.k) + "]: is this a lapmask deploy model?");
  }
  const size_t plane = static_cast<size_t>(out.mask_h) * out.mask_w;
  if (out.scores.size() < static_cast<size_t>(out.k) || out.labels.size() < static_cast<size_t>(out.k) ||
      out.masks.size() < static_cast<size_t>(out.k) * plane) {
    throw Error("deploy outputs are smaller than K = " + std::to_string(out.k));
  }
  const int n = out.num_dets;
  std::vector<Mask> masks = paste_masks(out.masks.data(), n, out.mask_h, out.mask_w, image_h, image_w, ori_h, ori_w,
                                        mask_thr);
  std::vector<Instance> instances(n);
  for (int i = 0; i < n; ++i) {
    Instance& inst = instances[i];
    inst.label = out.labels[i];
    if (inst.label < 0 || static_cast<size_t>(inst.label) >= class_names.size() ||
        static_cast<size_t>(inst.label) >= category_ids.size()) {
      throw Error("label " + std::to_string(inst.label) + " of detection " + std::to_string(i) + " has no class (" +
                  std::to_string(class_names.size()) + " class names in the metadata): model and metadata do not "
                  "match; use the JSON written next to this model by `lapmask export`");
    }
    inst.category_id = category_ids[inst.label];
    inst.category = class_names[inst.label];
    inst.score = out.scores[i];
    inst.mask = std::move(masks[i]);
    inst.box = box_from_mask(inst.mask);
  }
  return instances;
}

}  // namespace lapmask
