// lapmask::Model: load an exported LapMask model (TorchScript `.pt` or TensorRT `.engine`) with its metadata and
// run it on BGR images: pre-processing, the deploy graph, post-processing -- what `lapmask predict` does.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "lapmask/metadata.h"
#include "lapmask/types.h"

namespace lapmask {

struct ModelOptions {
  // Where the graph runs. TorchScript: "cpu" (default), "cuda", "cuda:N". TensorRT: "cuda:N" (default "cuda:0").
  std::string device;
  // Test-time resize; unset = the metadata's "resize" (true unless the model was exported for native size).
  std::optional<bool> resize;
  // TensorRT plugin libraries (the `plugins` flavour); also read from $LAPMASK_TRT_PLUGINS (':'-separated).
  std::vector<std::string> plugin_libraries;
  // Metadata JSON; default: the sidecar next to the model, then (TorchScript) the archive's lapmask_metadata.json.
  std::string metadata_path;
  // libtorch intra-op threads (TorchScript only; 0 = libtorch's default). Process-wide setting.
  int num_threads = 0;
};

// Wall-clock milliseconds of the last infer() call.
struct Timings {
  double preprocess_ms = 0.0;
  double inference_ms = 0.0;   // host -> device copies, graph, device -> host copies
  double postprocess_ms = 0.0;
};

class Model {
 public:
  // Throws lapmask::Error when the file, its metadata or its back end is unusable (the message says why).
  explicit Model(const std::string& path, ModelOptions options = {});
  ~Model();
  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  // Instances of one interleaved BGR uint8 image (height x width, rows `stride_bytes` apart), sorted by
  // descending score, masks at the input size. Not thread-safe: use one Model per thread.
  std::vector<Instance> infer(const uint8_t* bgr, int height, int width, int stride_bytes);
  std::vector<Instance> infer(const uint8_t* bgr, int height, int width) {
    return infer(bgr, height, width, width * 3);
  }

  const Metadata& metadata() const noexcept;
  const std::string& backend() const noexcept;     // "torchscript" | "tensorrt"
  // How many candidates passed the score threshold in the last infer() (before the K_pre cut); more than
  // metadata().k_pre means the static path dropped some (contracts.md section 2).
  int last_num_candidates() const noexcept;
  const Timings& last_timings() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Back ends compiled into this build: a subset of {"torchscript", "tensorrt"}.
std::vector<std::string> available_backends();

}  // namespace lapmask
