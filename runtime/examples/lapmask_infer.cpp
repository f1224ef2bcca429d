// lapmask_infer MODEL IMAGE [--out overlay.png] [--json prediction.json] [options]
//
// Runs an exported LapMask model (TensorRT .engine or TorchScript .pt + its sidecar JSON) on one image and writes
// the prediction JSON of contracts.md section 4 and a mask overlay, like `lapmask predict`.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "lapmask/image_io.h"
#include "lapmask/runtime.h"

namespace {

const char* kUsage =
    "usage: lapmask_infer MODEL IMAGE [--out OVERLAY.png] [--json PREDICTION.json] [options]\n"
    "  MODEL             TensorRT engine (.engine/.plan) or TorchScript file (.pt), with its sidecar <MODEL>.json\n"
    "  IMAGE             PNG, JPEG or binary PPM\n"
    "options:\n"
    "  --out FILE        mask overlay picture (.png; .ppm without libpng)\n"
    "  --json FILE       prediction JSON (contracts.md section 4)\n"
    "  --score-thr T     drop final instances scoring below T (default 0: keep all)\n"
    "  --device D        cpu | cuda | cuda:N (TorchScript default cpu; TensorRT default cuda:0)\n"
    "  --no-resize       native size: pad only, no test-time resize\n"
    "  --plugin LIB      TensorRT plugin library to load (repeatable; also $LAPMASK_TRT_PLUGINS)\n"
    "  --metadata FILE   metadata JSON when it is not next to the model\n"
    "  --threads N       libtorch intra-op threads (TorchScript)\n"
    "  --repeat N        run N times and report the mean time per image (warm-up run excluded)\n"
    "  --quiet           print nothing but errors\n";

struct Args {
  std::string model, image, out, json;
  double score_thr = 0.0;
  int repeat = 1;
  bool quiet = false;
  lapmask::ModelOptions options;
};

Args parse(int argc, char** argv) {
  Args a;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    const std::string s = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw lapmask::Error(s + " needs a value\n" + kUsage);
      return argv[++i];
    };
    auto number = [&](const std::string& v) {
      char* end = nullptr;
      const double d = std::strtod(v.c_str(), &end);
      if (end == v.c_str() || *end != '\0') throw lapmask::Error(s + " needs a number, got '" + v + "'");
      return d;
    };
    if (s == "-h" || s == "--help") {
      std::cout << kUsage;
      std::exit(0);
    } else if (s == "--out") {
      a.out = value();
    } else if (s == "--json") {
      a.json = value();
    } else if (s == "--score-thr") {
      a.score_thr = number(value());
    } else if (s == "--device") {
      a.options.device = value();
    } else if (s == "--no-resize") {
      a.options.resize = false;
    } else if (s == "--plugin") {
      a.options.plugin_libraries.push_back(value());
    } else if (s == "--metadata") {
      a.options.metadata_path = value();
    } else if (s == "--threads") {
      a.options.num_threads = static_cast<int>(number(value()));
    } else if (s == "--repeat") {
      a.repeat = static_cast<int>(number(value()));
      if (a.repeat < 1) throw lapmask::Error("--repeat must be >= 1");
    } else if (s == "--quiet") {
      a.quiet = true;
    } else if (!s.empty() && s[0] == '-') {
      throw lapmask::Error("unknown option " + s + "\n" + kUsage);
    } else {
      positional.push_back(s);
    }
  }
  if (positional.size() != 2) throw lapmask::Error(std::string("expected MODEL and IMAGE\n") + kUsage);
  a.model = positional[0];
  a.image = positional[1];
  return a;
}

// Golden-ratio hue walk, as lapmask/visualize.py::distinct_colors (HSV s = 0.75, v = 1). Returns RGB.
std::vector<std::array<uint8_t, 3>> distinct_colors(size_t n) {
  std::vector<std::array<uint8_t, 3>> colors;
  for (size_t i = 0; i < n; ++i) {
    const double h = std::fmod(i * 0.618034, 1.0), s = 0.75, v = 1.0;
    const int sector = static_cast<int>(h * 6.0) % 6;
    const double f = h * 6.0 - std::floor(h * 6.0), p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
    double r, g, b;
    switch (sector) {
      case 0: r = v; g = t; b = p; break;
      case 1: r = q; g = v; b = p; break;
      case 2: r = p; g = v; b = t; break;
      case 3: r = p; g = q; b = v; break;
      case 4: r = t; g = p; b = v; break;
      default: r = v; g = p; b = q; break;
    }
    colors.push_back({static_cast<uint8_t>(255 * r), static_cast<uint8_t>(255 * g), static_cast<uint8_t>(255 * b)});
  }
  return colors;
}

// Alpha-blended masks with solid outlines (no text labels: the JSON has them).
std::vector<uint8_t> overlay(const lapmask::ImageBGR& img, const std::vector<lapmask::Instance>& instances,
                             double score_thr) {
  std::vector<float> acc(img.data.begin(), img.data.end());
  const auto colors = distinct_colors(std::max<size_t>(instances.size(), 1));
  const int H = img.height, W = img.width;
  for (size_t i = 0; i < instances.size(); ++i) {
    const lapmask::Mask& m = instances[i].mask;
    if (instances[i].score < score_thr) continue;
    const float c[3] = {float(colors[i][2]), float(colors[i][1]), float(colors[i][0])};  // BGR
    for (int y = 0; y < H; ++y) {
      for (int x = 0; x < W; ++x) {
        if (!m.at(y, x)) continue;
        const bool edge = !(m.at((y + H - 1) % H, x) && m.at((y + 1) % H, x) && m.at(y, (x + W - 1) % W) &&
                            m.at(y, (x + 1) % W));
        float* p = &acc[(static_cast<size_t>(y) * W + x) * 3];
        for (int k = 0; k < 3; ++k) p[k] = edge ? c[k] : 0.5f * p[k] + 0.5f * c[k];
      }
    }
  }
  std::vector<uint8_t> out(acc.size());
  for (size_t i = 0; i < acc.size(); ++i) out[i] = static_cast<uint8_t>(std::min(255.0f, std::max(0.0f, acc[i])));
  return out;
}

std::string base_name(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args args = parse(argc, argv);
    lapmask::Model model(args.model, args.options);
    const lapmask::ImageBGR img = lapmask::read_image_bgr(args.image);
    std::vector<lapmask::Instance> instances = model.infer(img.data.data(), img.height, img.width);
    lapmask::Timings total;
    for (int r = 0; r < args.repeat - (args.repeat > 1 ? 0 : 1); ++r) {  // timed runs after the first
      instances = model.infer(img.data.data(), img.height, img.width);
      total.preprocess_ms += model.last_timings().preprocess_ms;
      total.inference_ms += model.last_timings().inference_ms;
      total.postprocess_ms += model.last_timings().postprocess_ms;
    }
    const lapmask::Timings& t = args.repeat > 1 ? total : model.last_timings();
    const double div = args.repeat > 1 ? args.repeat : 1;
    size_t kept = 0;
    for (const auto& inst : instances) kept += inst.score >= args.score_thr;
    if (!args.json.empty()) {
      std::ofstream f(args.json);
      f << lapmask::prediction_json(base_name(args.image), img.height, img.width, instances, args.score_thr);
      if (!f) throw lapmask::Error("cannot write " + args.json);
    }
    if (!args.out.empty()) {
      const std::vector<uint8_t> pic = overlay(img, instances, args.score_thr);
      lapmask::write_image_bgr(args.out, pic.data(), img.height, img.width);
    }
    if (!args.quiet) {
      std::printf("%s: %zu instances (%s, %d candidates) preprocess %.1f ms, %s %.1f ms, postprocess %.1f ms%s\n",
                  args.image.c_str(), kept, model.backend().c_str(), model.last_num_candidates(),
                  t.preprocess_ms / div, model.backend().c_str(), t.inference_ms / div, t.postprocess_ms / div,
                  args.repeat > 1 ? (" (mean of " + std::to_string(args.repeat) + " runs)").c_str() : "");
      if (model.metadata().k_pre > 0 && model.last_num_candidates() > model.metadata().k_pre) {
        std::printf("note: %d candidates passed the score threshold, more than K_pre = %d (the static path kept the "
                    "top %d)\n", model.last_num_candidates(), model.metadata().k_pre, model.metadata().k_pre);
      }
    }
    return 0;
  } catch (const lapmask::Error& e) {
    std::cerr << "lapmask_infer: error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "lapmask_infer: unexpected error: " << e.what() << "\n";
    return 1;
  }
}
