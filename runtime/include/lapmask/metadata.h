// Deploy metadata (contracts.md section 5) as the runtime reads it: the sidecar JSON next to the model
// (`model.pt.json` / `model.engine.json`, written by export/metadata.py::write_sidecar) or, for TorchScript,
// the extra file `lapmask_metadata.json` inside the archive.
#pragma once

#include <string>
#include <vector>

namespace lapmask {

struct Metadata {
  // Required keys.
  std::vector<std::string> class_names;  // class_names[label]
  std::vector<int> category_ids;         // category_ids[label]: the dataset's original ids
  int min_size_test = 0;                 // resize-shortest-edge target (detectron2 ResizeShortestEdge)
  int max_size_test = 0;                 // long-edge cap
  double mask_thr = 0.5;                 // probability threshold of the pasted masks
  // Optional keys (defaults in brackets).
  int size_divisibility = 32;            // padding multiple [32]
  bool resize = true;                    // "resize": false = native-size model (pad only) [true]
  int input_height = 0;                  // fixed-size export: padded input H (0 = dynamic) [null]
  int input_width = 0;                   // fixed-size export: padded input W (0 = dynamic) [null]
  int k_pre = 0;                         // static path candidate budget (0 = unknown) [unknown]
  int max_dets = 0;                      // K of the outputs (0 = unknown) [unknown]
  double score_thr = 0.0;                // model's own score threshold (informational)
  std::string preset;                    // e.g. "R50_3x"
  std::string precision;                 // "fp32" | "fp16"
  std::string flavour;                   // "standard" | "plugins"
  int format_version = 0;
  std::string source;                    // where it was read from (for error messages)
};

// The newest metadata format this runtime reads (export/metadata.py METADATA_FORMAT_VERSION).
constexpr int kMetadataFormatVersion = 1;

// Parse metadata JSON text; `source` names it in error messages. Throws lapmask::Error.
Metadata parse_metadata(const std::string& json_text, const std::string& source);

// Read and parse a metadata JSON file. Throws lapmask::Error.
Metadata read_metadata_file(const std::string& path);

// The sidecar JSON of a model file: `<model>.json` (export/metadata.py convention, e.g. model.pt.json) or,
// failing that, the model path with its extension replaced by `.json` (model.json). "" when there is none.
std::string find_sidecar(const std::string& model_path);

}  // namespace lapmask
