// TensorRT back end: deserialises a lapmask engine (built by `lapmask build-engine` from the deploy ONNX) and runs
// it with IExecutionContext::enqueueV3 on its own CUDA stream. I/O tensors by name (contracts.md section 3):
//   inputs  image uint8 [B, 3, H, W], image_size int32 [B, 2]
//   outputs num_dets int32 [B], scores f32 [B, K], labels int32 [B, K], masks f32 [B, K, H/4, W/4],
//           num_candidates int32 [B]   (f16 scores/masks and int64 indices are converted on the host)
// Plugin libraries (the `plugins` flavour) load before deserialisation: dlopen (load-time registration, as
// REGISTER_TENSORRT_PLUGIN), then IPluginRegistry::loadLibrary when the library exports the TensorRT 10 entry
// points (getCreators / getPluginCreators). Plugin libraries stay loaded for the life of the process.
#include <NvInferRuntime.h>
#include <cuda_runtime_api.h>
#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <mutex>
#include <set>
#include <sstream>
#include <vector>

#include "backend.h"

namespace lapmask {
namespace {

using nvinfer1::DataType;

class Logger final : public nvinfer1::ILogger {
 public:
  void log(Severity severity, const char* msg) noexcept override {
    if (severity <= Severity::kERROR) last_error_ = msg;
    if (severity <= Severity::kWARNING) std::cerr << "[TensorRT] " << msg << "\n";
  }
  std::string take_error() {
    std::string s;
    s.swap(last_error_);
    return s;
  }

 private:
  std::string last_error_;
};

void check_cuda(cudaError_t err, const char* what) {
  if (err != cudaSuccess) throw Error(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(err));
}

// Device buffer that only grows.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(o.ptr_), bytes_(o.bytes_) {
    o.ptr_ = nullptr;
    o.bytes_ = 0;
  }
  DeviceBuffer& operator=(DeviceBuffer&&) = delete;
  ~DeviceBuffer() {
    if (ptr_ != nullptr) cudaFree(ptr_);
  }
  void* reserve(size_t bytes) {
    if (bytes > bytes_) {
      if (ptr_ != nullptr) check_cuda(cudaFree(ptr_), "cudaFree");
      ptr_ = nullptr;
      bytes_ = 0;
      check_cuda(cudaMalloc(&ptr_, bytes), "cudaMalloc");
      bytes_ = bytes;
    }
    return ptr_;
  }
  void* get() const { return ptr_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

size_t element_size(DataType t) {
  switch (t) {
    case DataType::kFLOAT: case DataType::kINT32: return 4;
    case DataType::kHALF: case DataType::kBF16: return 2;
    case DataType::kINT64: return 8;
    case DataType::kUINT8: case DataType::kINT8: case DataType::kBOOL: return 1;
    default: return 0;
  }
}

float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      exp = 127 - 15 + 1;
      while ((man & 0x400) == 0) {
        man <<= 1;
        --exp;
      }
      bits = sign | (exp << 23) | ((man & 0x3ff) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (man << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

std::vector<float> to_float(const std::vector<uint8_t>& raw, DataType t, const std::string& name) {
  const size_t n = raw.size() / element_size(t);
  std::vector<float> out(n);
  if (t == DataType::kFLOAT) {
    std::memcpy(out.data(), raw.data(), n * 4);
  } else if (t == DataType::kHALF || t == DataType::kBF16) {
    for (size_t i = 0; i < n; ++i) {
      uint16_t v;
      std::memcpy(&v, raw.data() + 2 * i, 2);
      if (t == DataType::kHALF) {
        out[i] = half_to_float(v);
      } else {
        const uint32_t bits = static_cast<uint32_t>(v) << 16;
        std::memcpy(&out[i], &bits, 4);
      }
    }
  } else {
    throw Error("engine output " + name + " must be float32/float16, got TensorRT DataType " +
                std::to_string(static_cast<int>(t)));
  }
  return out;
}

std::vector<int32_t> to_int32(const std::vector<uint8_t>& raw, DataType t, const std::string& name) {
  std::vector<int32_t> out;
  if (t == DataType::kINT32) {
    out.resize(raw.size() / 4);
    std::memcpy(out.data(), raw.data(), out.size() * 4);
  } else if (t == DataType::kINT64) {
    out.resize(raw.size() / 8);
    for (size_t i = 0; i < out.size(); ++i) {
      int64_t v;
      std::memcpy(&v, raw.data() + 8 * i, 8);
      out[i] = static_cast<int32_t>(v);
    }
  } else {
    throw Error("engine output " + name + " must be int32/int64, got TensorRT DataType " +
                std::to_string(static_cast<int>(t)));
  }
  return out;
}

std::string dims_str(const nvinfer1::Dims& d) {
  std::string s = "[";
  for (int i = 0; i < d.nbDims; ++i) s += (i ? ", " : "") + std::to_string(d.d[i]);
  return s + "]";
}

nvinfer1::Dims make_dims(std::initializer_list<int64_t> v) {
  nvinfer1::Dims d{};
  d.nbDims = static_cast<int32_t>(v.size());
  int i = 0;
  for (int64_t x : v) d.d[i++] = x;
  return d;
}

int parse_gpu(const std::string& device) {
  if (device.empty() || device == "cuda" || device == "gpu") return 0;
  if (device.rfind("cuda:", 0) == 0) {
    char* end = nullptr;
    const long n = std::strtol(device.c_str() + 5, &end, 10);
    if (end != device.c_str() + 5 && *end == '\0' && n >= 0) return static_cast<int>(n);
  }
  throw Error("TensorRT engines run on a GPU: device must be cuda or cuda:N, got '" + device + "'");
}

// Process-wide: each plugin library is registered once, however many engines use it.
void load_plugin_library(nvinfer1::IRuntime& runtime, const std::string& path) {
  static std::mutex mutex;
  static std::set<std::string> loaded;
  std::lock_guard<std::mutex> lock(mutex);
  if (loaded.count(path)) return;
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL);
  if (handle == nullptr) {
    const char* err = dlerror();
    throw Error("cannot load TensorRT plugin library " + path + ": " + (err ? err : "dlopen failed"));
  }
  // dlopen ran the library's load-time registrars (REGISTER_TENSORRT_PLUGIN style; the lapmask plugin library
  // registers itself this way when libnvinfer is loaded). Libraries with TensorRT 10 entry points also go through
  // loadLibrary for creators not registered on load; a null handle there means nothing was left to register
  // (loadLibrary refuses duplicates), not an error -- a missing plugin shows up when the engine deserialises.
  const bool v10_entry = dlsym(handle, "getCreators") != nullptr || dlsym(handle, "getPluginCreators") != nullptr;
  if (v10_entry) (void)runtime.getPluginRegistry().loadLibrary(path.c_str());
  loaded.insert(path);  // the dlopen handle is kept on purpose: creators must outlive every engine
}

std::vector<std::string> plugin_paths(const ModelOptions& options) {
  std::vector<std::string> paths = options.plugin_libraries;
  if (const char* env = std::getenv("LAPMASK_TRT_PLUGINS")) {
    std::stringstream ss(env);
    std::string p;
    while (std::getline(ss, p, ':')) {
      if (!p.empty()) paths.push_back(p);
    }
  }
  return paths;
}

struct IoTensor {
  std::string name;
  DataType type = DataType::kFLOAT;
  DeviceBuffer buffer;
  std::vector<uint8_t> host;
};

class TensorRTBackend final : public Backend {
 public:
  TensorRTBackend(const std::string& path, const ModelOptions& options) {
    gpu_ = parse_gpu(options.device);
    check_cuda(cudaSetDevice(gpu_), "cudaSetDevice");
    runtime_.reset(nvinfer1::createInferRuntime(logger_));
    if (!runtime_) throw Error("createInferRuntime failed: " + logger_.take_error());
    for (const std::string& lib : plugin_paths(options)) load_plugin_library(*runtime_, lib);
    std::ifstream f(path, std::ios::binary);
    if (!f) throw Error("cannot open engine " + path);
    const std::vector<char> blob((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    engine_.reset(runtime_->deserializeCudaEngine(blob.data(), blob.size()));
    if (!engine_) {
      throw Error(path + ": TensorRT could not deserialise the engine (" + logger_.take_error() + "). Engines are "
                  "tied to the TensorRT version and GPU they were built with: rebuild it here with `lapmask "
                  "build-engine`; a `plugins` flavour engine also needs the plugin library (--plugin or "
                  "$LAPMASK_TRT_PLUGINS)");
    }
    context_.reset(engine_->createExecutionContext());
    if (!context_) throw Error("createExecutionContext failed: " + logger_.take_error());
    check_cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    for (const char* n : {"image", "image_size", "num_dets", "scores", "labels", "masks", "num_candidates"}) {
      bool found = false;
      for (int i = 0; i < engine_->getNbIOTensors(); ++i) {
        found = found || std::strcmp(engine_->getIOTensorName(i), n) == 0;
      }
      if (!found) {
        throw Error(path + " lacks the I/O tensor '" + n + "' of the lapmask deploy graph (contracts.md section 3); "
                    "build the engine from a `lapmask export` ONNX file");
      }
      IoTensor t;
      t.name = n;
      t.type = engine_->getTensorDataType(n);
      io_.push_back(std::move(t));
    }
    if (io_[0].type != DataType::kUINT8) throw Error(path + ": input 'image' must be uint8");
    if (io_[1].type != DataType::kINT32) throw Error(path + ": input 'image_size' must be int32");
    const nvinfer1::Dims in = engine_->getTensorShape("image");
    if (in.nbDims != 4) throw Error(path + ": input 'image' has shape " + dims_str(in) + ", expected [B, 3, H, W]");
    if (in.d[0] > 1) {
      throw Error(path + " was built for a fixed batch of " + std::to_string(in.d[0]) + "; the runtime runs one "
                  "image at a time: rebuild with batch 1 or a dynamic batch");
    }
    if (in.d[2] > 0 && in.d[3] > 0) fixed_hw_ = {static_cast<int>(in.d[2]), static_cast<int>(in.d[3])};
  }

  ~TensorRTBackend() override {
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }

  const std::string& name() const override { return name_; }
  std::pair<int, int> fixed_input_hw() const override { return fixed_hw_; }

  DeployOutputs run(const PreparedImage& img) override {
    check_cuda(cudaSetDevice(gpu_), "cudaSetDevice");
    if (!context_->setInputShape("image", make_dims({1, 3, img.padded_h, img.padded_w})) ||
        !context_->setInputShape("image_size", make_dims({1, 2}))) {
      const int p = context_->getOptimizationProfile();
      throw Error("input " + std::to_string(img.padded_h) + "x" + std::to_string(img.padded_w) + " is outside the "
                  "engine's optimisation profile (min " +
                  dims_str(engine_->getProfileShape("image", p, nvinfer1::OptProfileSelector::kMIN)) + ", max " +
                  dims_str(engine_->getProfileShape("image", p, nvinfer1::OptProfileSelector::kMAX)) + "): " +
                  logger_.take_error() + "; rebuild the engine with a profile covering this size");
    }
    const int32_t size[2] = {img.h, img.w};
    // Inputs.
    void* d_image = io_[0].buffer.reserve(img.chw.size());
    void* d_size = io_[1].buffer.reserve(sizeof size);
    check_cuda(cudaMemcpyAsync(d_image, img.chw.data(), img.chw.size(), cudaMemcpyHostToDevice, stream_), "copy image");
    check_cuda(cudaMemcpyAsync(d_size, size, sizeof size, cudaMemcpyHostToDevice, stream_), "copy image_size");
    context_->setTensorAddress("image", d_image);
    context_->setTensorAddress("image_size", d_size);
    // Outputs, sized from the shapes TensorRT infers for this input.
    std::vector<nvinfer1::Dims> shapes(io_.size());
    for (size_t i = 2; i < io_.size(); ++i) {
      IoTensor& t = io_[i];
      shapes[i] = context_->getTensorShape(t.name.c_str());
      size_t n = 1;
      for (int d = 0; d < shapes[i].nbDims; ++d) {
        if (shapes[i].d[d] < 0) {
          throw Error("engine output " + t.name + " has an unresolved shape " + dims_str(shapes[i]));
        }
        n *= static_cast<size_t>(shapes[i].d[d]);
      }
      const size_t bytes = n * element_size(t.type);
      t.host.resize(bytes);
      context_->setTensorAddress(t.name.c_str(), t.buffer.reserve(std::max<size_t>(bytes, 1)));
    }
    if (!context_->enqueueV3(stream_)) throw Error("TensorRT enqueueV3 failed: " + logger_.take_error());
    for (size_t i = 2; i < io_.size(); ++i) {
      IoTensor& t = io_[i];
      check_cuda(cudaMemcpyAsync(t.host.data(), t.buffer.get(), t.host.size(), cudaMemcpyDeviceToHost, stream_),
                 "copy outputs");
    }
    check_cuda(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
    const nvinfer1::Dims& ms = shapes[5];
    if (ms.nbDims != 4 || shapes[3].nbDims != 2) {
      throw Error("unexpected engine output shapes: scores " + dims_str(shapes[3]) + ", masks " + dims_str(ms));
    }
    DeployOutputs out;
    out.num_dets = to_int32(io_[2].host, io_[2].type, "num_dets").at(0);
    out.scores = to_float(io_[3].host, io_[3].type, "scores");
    out.labels = to_int32(io_[4].host, io_[4].type, "labels");
    out.masks = to_float(io_[5].host, io_[5].type, "masks");
    out.num_candidates = to_int32(io_[6].host, io_[6].type, "num_candidates").at(0);
    out.k = static_cast<int>(shapes[3].d[1]);
    out.mask_h = static_cast<int>(ms.d[2]);
    out.mask_w = static_cast<int>(ms.d[3]);
    return out;
  }

 private:
  const std::string name_ = "tensorrt";
  int gpu_ = 0;
  Logger logger_;  // declared first: TensorRT objects log while they are destroyed
  std::unique_ptr<nvinfer1::IRuntime> runtime_;
  std::unique_ptr<nvinfer1::ICudaEngine> engine_;
  std::unique_ptr<nvinfer1::IExecutionContext> context_;
  cudaStream_t stream_ = nullptr;
  std::vector<IoTensor> io_;  // image, image_size, num_dets, scores, labels, masks, num_candidates
  std::pair<int, int> fixed_hw_{0, 0};
};

}  // namespace

std::unique_ptr<Backend> make_tensorrt_backend(const std::string& path, const ModelOptions& options) {
  return std::make_unique<TensorRTBackend>(path, options);
}

}  // namespace lapmask
