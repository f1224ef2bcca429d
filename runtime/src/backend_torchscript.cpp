// TorchScript back end (libtorch): runs the traced DeployLapMask module
//   forward(image uint8 [1, 3, H, W], image_size int32 [1, 2])
//     -> (num_dets [1] i32, scores [1, K] f32, labels [1, K] i32, masks [1, K, H/4, W/4] f32, num_candidates [1] i32)
#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <torch/script.h>

#include <cstring>

#include "backend.h"

namespace lapmask {
namespace {

// export/metadata.py TORCHSCRIPT_EXTRA_FILE
constexpr const char* kExtraFile = "lapmask_metadata.json";

class TorchScriptBackend final : public Backend {
 public:
  TorchScriptBackend(const std::string& path, const ModelOptions& options)
      : device_(parse_device(options.device.empty() ? "cpu" : options.device)) {
    if (options.num_threads > 0) at::set_num_threads(options.num_threads);
    if (device_.is_cuda() && !at::hasCUDA()) {
      throw Error("device " + options.device + " asked for, but this libtorch sees no CUDA device; use \"cpu\"");
    }
    torch::jit::ExtraFilesMap extra{{kExtraFile, ""}};
    try {
      module_ = torch::jit::load(path, device_, extra);
    } catch (const c10::Error& e) {
      throw Error(path + " is not a loadable TorchScript file (" + first_line(e.what()) +
                  "); export it with `lapmask export --format torchscript`");
    }
    module_.eval();
    metadata_ = extra[kExtraFile];
  }

  const std::string& name() const override { return name_; }
  std::string embedded_metadata() const override { return metadata_; }

  DeployOutputs run(const PreparedImage& img) override {
    c10::InferenceMode guard;
    // from_blob does not copy; the image outlives the call.
    torch::Tensor image = torch::from_blob(const_cast<uint8_t*>(img.chw.data()), {1, 3, img.padded_h, img.padded_w},
                                           torch::kUInt8)
                              .to(device_);
    torch::Tensor size = torch::tensor({img.h, img.w}, torch::kInt32).view({1, 2}).to(device_);
    c10::IValue result;
    try {
      result = module_.forward({image, size});
    } catch (const std::exception& e) {
      throw Error("TorchScript forward failed: " + first_line(e.what()));
    }
    if (!result.isTuple() || result.toTupleRef().elements().size() != 5) {
      throw Error("the TorchScript module must return (num_dets, scores, labels, masks, num_candidates); is this a "
                  "lapmask deploy export?");
    }
    const auto& el = result.toTupleRef().elements();
    auto host = [](const c10::IValue& v, torch::ScalarType t) { return v.toTensor().to(torch::kCPU, t).contiguous(); };
    const torch::Tensor num = host(el[0], torch::kInt32), scores = host(el[1], torch::kFloat32),
                        labels = host(el[2], torch::kInt32), masks = host(el[3], torch::kFloat32),
                        ncand = host(el[4], torch::kInt32);
    if (scores.dim() != 2 || labels.dim() != 2 || masks.dim() != 4 || masks.size(1) != scores.size(1)) {
      throw Error("unexpected output shapes from the TorchScript module (scores " + shape(scores) + ", masks " +
                  shape(masks) + "); expected [B, K] and [B, K, H/4, W/4]");
    }
    DeployOutputs out;
    out.num_dets = num.data_ptr<int32_t>()[0];
    out.num_candidates = ncand.data_ptr<int32_t>()[0];
    out.k = static_cast<int>(scores.size(1));
    out.mask_h = static_cast<int>(masks.size(2));
    out.mask_w = static_cast<int>(masks.size(3));
    const size_t k = static_cast<size_t>(out.k), plane = static_cast<size_t>(out.mask_h) * out.mask_w;
    out.scores.assign(scores.data_ptr<float>(), scores.data_ptr<float>() + k);
    out.labels.assign(labels.data_ptr<int32_t>(), labels.data_ptr<int32_t>() + k);
    out.masks.assign(masks.data_ptr<float>(), masks.data_ptr<float>() + k * plane);
    return out;
  }

 private:
  static torch::Device parse_device(const std::string& s) {
    try {
      return torch::Device(s);
    } catch (const c10::Error&) {
      throw Error("bad device '" + s + "'; use cpu, cuda or cuda:N");
    }
  }
  static std::string first_line(const char* what) {
    std::string s(what);
    return s.substr(0, s.find('\n'));
  }
  static std::string shape(const torch::Tensor& t) {
    std::string s = "[";
    for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
    return s + "]";
  }

  const std::string name_ = "torchscript";
  torch::Device device_;
  torch::jit::Module module_;
  std::string metadata_;
};

}  // namespace

std::unique_ptr<Backend> make_torchscript_backend(const std::string& path, const ModelOptions& options) {
  return std::make_unique<TorchScriptBackend>(path, options);
}

}  // namespace lapmask
