// The interface between lapmask::Model and a graph runner (internal). A back end takes the prepared deploy input
// (contracts.md section 3) and returns the fixed-size outputs on the host.
#pragma once

#include <memory>
#include <string>
#include <utility>

#include "lapmask/model.h"
#include "lapmask/postprocess.h"
#include "lapmask/preprocess.h"

namespace lapmask {

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const std::string& name() const = 0;
  // Outputs of batch element 0 for a batch of one image.
  virtual DeployOutputs run(const PreparedImage& image) = 0;
  // (H, W) the graph requires (fixed-size engines), or (0, 0) when any multiple of the divisibility works.
  virtual std::pair<int, int> fixed_input_hw() const { return {0, 0}; }
  // Metadata JSON embedded in the model file ("" when the format carries none).
  virtual std::string embedded_metadata() const { return {}; }
};

// Factories; each throws lapmask::Error (also when the back end is not compiled into this build).
std::unique_ptr<Backend> make_torchscript_backend(const std::string& path, const ModelOptions& options);
std::unique_ptr<Backend> make_tensorrt_backend(const std::string& path, const ModelOptions& options);

}  // namespace lapmask
