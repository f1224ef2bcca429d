// lapmask::Model: metadata + pre-processing + back end + post-processing.
#include "lapmask/model.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <sys/stat.h>

#include "backend.h"
#include "lapmask/postprocess.h"
#include "lapmask/preprocess.h"

namespace lapmask {

std::vector<std::string> available_backends() {
  std::vector<std::string> names;
#ifdef LAPMASK_WITH_TORCH
  names.emplace_back("torchscript");
#endif
#ifdef LAPMASK_WITH_TENSORRT
  names.emplace_back("tensorrt");
#endif
  return names;
}

#ifndef LAPMASK_WITH_TORCH
std::unique_ptr<Backend> make_torchscript_backend(const std::string& path, const ModelOptions&) {
  throw Error(path + " is a TorchScript model but this lapmask_runtime was built without libtorch; reconfigure "
              "with -DLAPMASK_RUNTIME_TORCH=ON -DTorch_DIR=$(python -c 'import torch; "
              "print(torch.utils.cmake_prefix_path)')/Torch");
}
#endif

#ifndef LAPMASK_WITH_TENSORRT
std::unique_ptr<Backend> make_tensorrt_backend(const std::string& path, const ModelOptions&) {
  throw Error(path + " is a TensorRT engine but this lapmask_runtime was built without TensorRT; reconfigure with "
              "-DLAPMASK_RUNTIME_TENSORRT=ON -DTensorRT_ROOT=/path/to/TensorRT (needs libnvinfer and CUDA)");
}
#endif

namespace {

std::string extension(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  const size_t dot = path.find_last_of('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return {};
  std::string ext = path.substr(dot + 1);
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext;
}

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

struct Model::Impl {
  std::unique_ptr<Backend> backend;
  Metadata metadata;
  PrepareOptions prepare;
  int last_num_candidates = 0;
  Timings timings;
};

Model::Model(const std::string& path, ModelOptions options) : impl_(std::make_unique<Impl>()) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) throw Error("model file not found: " + path);
  // Metadata: explicit file, then the sidecar (read before the back end, so its errors come first), then what the
  // model file itself carries (TorchScript's lapmask_metadata.json).
  const std::string meta_path = options.metadata_path.empty() ? find_sidecar(path) : options.metadata_path;
  bool have_metadata = false;
  if (!meta_path.empty()) {
    impl_->metadata = read_metadata_file(meta_path);
    have_metadata = true;
  }
  const std::string ext = extension(path);
  if (ext == "pt" || ext == "ts" || ext == "torchscript") {
    impl_->backend = make_torchscript_backend(path, options);
  } else if (ext == "engine" || ext == "plan" || ext == "trt") {
    const char* env_plugins = std::getenv("LAPMASK_TRT_PLUGINS");
    if (have_metadata && impl_->metadata.flavour == "plugins" && options.plugin_libraries.empty() &&
        (env_plugins == nullptr || *env_plugins == '\0')) {
      throw Error(path + " is a `plugins` flavour engine: load the lapmask TensorRT plugin library with "
                  "ModelOptions::plugin_libraries / lapmask_infer --plugin liblapmask_trt_plugins.so, or set "
                  "LAPMASK_TRT_PLUGINS");
    }
    impl_->backend = make_tensorrt_backend(path, options);
  } else if (ext == "onnx") {
    throw Error(path + ": the C++ runtime runs TensorRT engines and TorchScript files, not ONNX; build an engine "
                "with `lapmask build-engine` (or export TorchScript with `lapmask export --format torchscript`)");
  } else {
    throw Error(path + ": unknown model type '." + ext + "'; expected .engine/.plan (TensorRT) or .pt (TorchScript)");
  }
  if (!have_metadata) {
    const std::string embedded = impl_->backend->embedded_metadata();
    if (embedded.empty()) {
      throw Error(path + " has no metadata: expected the sidecar " + path + ".json written by `lapmask export` "
                  "(class names, test sizes, mask threshold); pass ModelOptions::metadata_path if it lives elsewhere");
    }
    impl_->metadata = parse_metadata(embedded, path + ":lapmask_metadata.json");
  }
  const Metadata& m = impl_->metadata;
  PrepareOptions& p = impl_->prepare;
  p.resize = options.resize.value_or(m.resize);
  p.min_size = m.min_size_test;
  p.max_size = m.max_size_test;
  p.divisibility = m.size_divisibility;
  const auto fixed = impl_->backend->fixed_input_hw();
  p.fixed_height = fixed.first > 0 ? fixed.first : m.input_height;
  p.fixed_width = fixed.second > 0 ? fixed.second : m.input_width;
}

Model::~Model() = default;
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;

std::vector<Instance> Model::infer(const uint8_t* bgr, int height, int width, int stride_bytes) {
  if (!impl_) throw Error("lapmask::Model used after it was moved from");
  auto t0 = std::chrono::steady_clock::now();
  const PreparedImage image = prepare_image(bgr, height, width, stride_bytes, impl_->prepare);
  impl_->timings.preprocess_ms = ms_since(t0);
  t0 = std::chrono::steady_clock::now();
  const DeployOutputs out = impl_->backend->run(image);
  impl_->timings.inference_ms = ms_since(t0);
  impl_->last_num_candidates = out.num_candidates;
  if (out.mask_h * 4 != image.padded_h || out.mask_w * 4 != image.padded_w) {
    throw Error("the model returned masks of " + std::to_string(out.mask_h) + "x" + std::to_string(out.mask_w) +
                " for an input of " + std::to_string(image.padded_h) + "x" + std::to_string(image.padded_w) +
                " (expected a quarter of the input): is this a lapmask deploy model?");
  }
  t0 = std::chrono::steady_clock::now();
  const Metadata& m = impl_->metadata;
  std::vector<Instance> result =
      postprocess_static(out, image.h, image.w, height, width, m.mask_thr, m.class_names, m.category_ids);
  impl_->timings.postprocess_ms = ms_since(t0);
  return result;
}

const Metadata& Model::metadata() const noexcept { return impl_->metadata; }
const std::string& Model::backend() const noexcept { return impl_->backend->name(); }
int Model::last_num_candidates() const noexcept { return impl_->last_num_candidates; }
const Timings& Model::last_timings() const noexcept { return impl_->timings; }

}  // namespace lapmask
