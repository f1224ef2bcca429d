// The prediction JSON of contracts.md section 4 (what `lapmask predict` writes).
#pragma once

#include <string>
#include <vector>

#include "lapmask/types.h"

namespace lapmask {

// {"image", "height", "width", "instances": [{"label", "category_id", "category", "score", "bbox": [x, y, w, h],
//  "segmentation": {"size": [H, W], "counts": RLE}}]}, sorted by descending score (stable), instances with
// score < score_thr left out (final outputs only).
std::string prediction_json(const std::string& file_name, int height, int width,
                            const std::vector<Instance>& instances, double score_thr = 0.0);

// Escape a string for a JSON string literal (without the quotes).
std::string json_escape(const std::string& s);

}  // namespace lapmask
