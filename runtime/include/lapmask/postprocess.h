// Post-processing exactly as lapmask/postprocess.py::postprocess_static (float32 arithmetic step for step):
// stride-4 probabilities -> upsample by ceil(h / (H/4)) (bilinear, align_corners=False) -> crop to the resized
// image -> bilinear resize to the original size -> threshold at mask_thr -> boxes from masks.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "lapmask/types.h"

namespace lapmask {

// One image's fixed-size deploy outputs (contracts.md section 3), on the host.
struct DeployOutputs {
  int num_dets = 0;
  int num_candidates = 0;
  int k = 0;                    // max_dets
  int mask_h = 0;               // H / 4
  int mask_w = 0;               // W / 4
  std::vector<float> scores;    // [k]
  std::vector<int32_t> labels;  // [k]
  std::vector<float> masks;     // [k, mask_h, mask_w] probabilities
};

// torch F.interpolate(mode="bilinear", align_corners=False) with an explicit output size, as the numpy twin in
// lapmask/postprocess.py computes it: float32 source indices and weights, the vertical pass first (rows), then
// the horizontal pass. src [n, h, w] -> dst [n, out_h, out_w], dense float32.
void resize_bilinear_f32(const float* src, int n, int h, int w, float* dst, int out_h, int out_w);

// paste_masks_np: probs [n, fh, fw] -> n binary masks [ori_h, ori_w].
std::vector<Mask> paste_masks(const float* probs, int n, int fh, int fw, int image_h, int image_w, int ori_h,
                              int ori_w, double mask_thr);

// [x_min, y_min, x_max, y_max] of the set pixels (inclusive); zeros for an empty mask.
std::array<float, 4> box_from_mask(const Mask& mask);

// postprocess_static + labels -> names/ids. Instances keep the model's order (descending score).
// Throws lapmask::Error when a label has no class name (model and metadata do not match).
std::vector<Instance> postprocess_static(const DeployOutputs& out, int image_h, int image_w, int ori_h, int ori_w,
                                         double mask_thr, const std::vector<std::string>& class_names,
                                         const std::vector<int>& category_ids);

}  // namespace lapmask
