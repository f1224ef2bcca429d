// The runtime against the Python implementation: fixtures (inputs + Python outputs) are written by
// tests/runtime/fixtures.py; each suite compares exactly (bit-exact images and floats, identical masks, boxes and
// RLE strings, structurally identical prediction JSON).
//
//   lapmask_runtime_fixture_tests SUITE [FIXTURE_DIR]     (FIXTURE_DIR defaults to $LAPMASK_RUNTIME_FIXTURES)
//   SUITE: resized_hw | resize | prepare | bilinear | paste | rle | json | image
// Exit codes: 0 passed, 1 failed, 77 skipped (no fixture directory given).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "check.h"
#include "json.h"
#include "lapmask/image_io.h"
#include "lapmask/runtime.h"
#include "npy.h"

namespace fs = std::filesystem;
using lapmask_test::Failure;
using lapmask_test::load_npy;
using lapmask_test::Npy;

namespace {

// Case ids "NNN" of files "<dir>/NNN<suffix>", sorted.
std::vector<std::string> cases(const fs::path& dir, const std::string& suffix) {
  std::vector<std::string> ids;
  if (!fs::is_directory(dir)) throw Failure{"fixture directory " + dir.string() + " does not exist"};
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      ids.push_back(name.substr(0, name.size() - suffix.size()));
    }
  }
  std::sort(ids.begin(), ids.end());
  if (ids.empty()) throw Failure{"no fixtures *" + suffix + " in " + dir.string()};
  return ids;
}

std::string read_text(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw Failure{"cannot read " + p.string()};
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "(";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + ")";
}

// Byte-exact comparison with a description of the first difference.
void expect_bytes(const std::string& what, const std::vector<uint8_t>& got, const std::vector<uint8_t>& want,
                  const std::vector<int64_t>& shape) {
  if (got.size() != want.size()) {
    throw Failure{what + ": size " + std::to_string(got.size()) + " vs expected " + std::to_string(want.size())};
  }
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i] != want[i] && bad++ == 0) first = i;
  }
  if (bad) {
    throw Failure{what + " " + shape_str(shape) + ": " + std::to_string(bad) + " of " + std::to_string(got.size()) +
                  " values differ; first at flat index " + std::to_string(first) + ": " + std::to_string(got[first]) +
                  " vs " + std::to_string(want[first])};
  }
}

int suite_resized_hw(const fs::path& root) {
  const Npy a = load_npy((root / "resized_hw.npy").string());
  const auto v = a.as<int64_t>();
  const size_t n = static_cast<size_t>(a.shape.at(0));
  if (n == 0) throw Failure{"no resized_hw cases"};
  for (size_t i = 0; i < n; ++i) {
    const int64_t* r = &v[6 * i];
    const auto got = lapmask::resized_hw(int(r[0]), int(r[1]), int(r[2]), int(r[3]));
    if (got.first != r[4] || got.second != r[5]) {
      throw Failure{"resized_hw(" + std::to_string(r[0]) + ", " + std::to_string(r[1]) + ", " + std::to_string(r[2]) +
                    ", " + std::to_string(r[3]) + ") = (" + std::to_string(got.first) + ", " +
                    std::to_string(got.second) + "), Python (" + std::to_string(r[4]) + ", " + std::to_string(r[5]) +
                    ")"};
    }
  }
  return static_cast<int>(n);
}

int suite_resize(const fs::path& root) {
  const auto ids = cases(root / "resize", "_in.npy");
  for (const auto& id : ids) {
    const Npy in = load_npy((root / "resize" / (id + "_in.npy")).string());
    const Npy out = load_npy((root / "resize" / (id + "_out.npy")).string());
    const int h = int(in.shape[0]), w = int(in.shape[1]), c = in.shape.size() > 2 ? int(in.shape[2]) : 1;
    const int oh = int(out.shape[0]), ow = int(out.shape[1]);
    std::vector<uint8_t> got(static_cast<size_t>(oh) * ow * c);
    lapmask::resize_bilinear_pil(in.bytes.data(), h, w, w * c, c, got.data(), oh, ow);
    expect_bytes("resize case " + id + " " + shape_str(in.shape) + " ->", got, out.bytes, out.shape);
  }
  return static_cast<int>(ids.size());
}

int suite_prepare(const fs::path& root) {
  const auto ids = cases(root / "prepare", "_in.npy");
  for (const auto& id : ids) {
    const Npy in = load_npy((root / "prepare" / (id + "_in.npy")).string());
    const auto p = load_npy((root / "prepare" / (id + "_params.npy")).string()).as<int64_t>();
    const Npy out = load_npy((root / "prepare" / (id + "_out.npy")).string());
    lapmask::PrepareOptions o;
    o.min_size = int(p[0]);
    o.max_size = int(p[1]);
    o.resize = p[2] != 0;
    o.divisibility = int(p[3]);
    const int h = int(in.shape[0]), w = int(in.shape[1]);
    const auto got = lapmask::prepare_image(in.bytes.data(), h, w, w * 3, o);
    if (got.h != p[4] || got.w != p[5] || got.padded_h != out.shape[2] || got.padded_w != out.shape[3]) {
      throw Failure{"prepare case " + id + ": sizes (" + std::to_string(got.h) + ", " + std::to_string(got.w) +
                    ") padded (" + std::to_string(got.padded_h) + ", " + std::to_string(got.padded_w) +
                    "), Python (" + std::to_string(p[4]) + ", " + std::to_string(p[5]) + ") padded " +
                    shape_str(out.shape)};
    }
    expect_bytes("prepare case " + id, got.chw, out.bytes, out.shape);
  }
  return static_cast<int>(ids.size());
}

int suite_bilinear(const fs::path& root) {
  const auto ids = cases(root / "bilinear", "_in.npy");
  for (const auto& id : ids) {
    const Npy in = load_npy((root / "bilinear" / (id + "_in.npy")).string());
    const Npy out = load_npy((root / "bilinear" / (id + "_out.npy")).string());
    const auto src = in.as<float>();
    std::vector<float> got(out.count());
    lapmask::resize_bilinear_f32(src.data(), int(in.shape[0]), int(in.shape[1]), int(in.shape[2]), got.data(),
                                 int(out.shape[1]), int(out.shape[2]));
    std::vector<uint8_t> gb(got.size() * 4);
    std::memcpy(gb.data(), got.data(), gb.size());
    expect_bytes("bilinear case " + id + " (float32 bytes)", gb, out.bytes, out.shape);
  }
  return static_cast<int>(ids.size());
}

int suite_paste(const fs::path& root) {
  const auto ids = cases(root / "paste", "_probs.npy");
  for (const auto& id : ids) {
    auto path = [&](const std::string& s) { return (root / "paste" / (id + s)).string(); };
    const Npy probs = load_npy(path("_probs.npy"));
    const auto prm = load_npy(path("_params.npy")).as<double>();
    const Npy masks = load_npy(path("_masks.npy"));
    const auto boxes = load_npy(path("_boxes.npy")).as<float>();
    const auto out_scores = load_npy(path("_out_scores.npy")).as<float>();
    const auto out_labels = load_npy(path("_out_labels.npy")).as<int64_t>();
    lapmask::DeployOutputs d;
    d.k = int(probs.shape[0]);
    d.mask_h = int(probs.shape[1]);
    d.mask_w = int(probs.shape[2]);
    d.num_dets = int(prm[0]);
    d.masks = probs.as<float>();
    d.scores = load_npy(path("_scores.npy")).as<float>();
    d.labels = load_npy(path("_labels.npy")).as<int32_t>();
    std::vector<std::string> names;
    std::vector<int> ids_;
    for (int c = 0; c < 100; ++c) {
      names.push_back("c" + std::to_string(c));
      ids_.push_back(1000 + c);
    }
    const auto inst = lapmask::postprocess_static(d, int(prm[1]), int(prm[2]), int(prm[3]), int(prm[4]), prm[5],
                                                  names, ids_);
    if (inst.size() != static_cast<size_t>(masks.shape[0])) {
      throw Failure{"paste case " + id + ": " + std::to_string(inst.size()) + " instances, Python " +
                    std::to_string(masks.shape[0])};
    }
    const size_t plane = static_cast<size_t>(masks.shape[1]) * masks.shape[2];
    for (size_t i = 0; i < inst.size(); ++i) {
      const std::vector<uint8_t> want(masks.bytes.begin() + i * plane, masks.bytes.begin() + (i + 1) * plane);
      expect_bytes("paste case " + id + " mask " + std::to_string(i), inst[i].mask.data, want,
                   {masks.shape[1], masks.shape[2]});
      for (int k = 0; k < 4; ++k) {
        if (inst[i].box[k] != boxes[4 * i + k]) {
          throw Failure{"paste case " + id + " box " + std::to_string(i) + "[" + std::to_string(k) + "] = " +
                        std::to_string(inst[i].box[k]) + ", Python " + std::to_string(boxes[4 * i + k])};
        }
      }
      if (inst[i].score != out_scores[i] || inst[i].label != out_labels[i]) {
        throw Failure{"paste case " + id + " instance " + std::to_string(i) + ": score/label differ"};
      }
    }
  }
  return static_cast<int>(ids.size());
}

int suite_rle(const fs::path& root) {
  const auto ids = cases(root / "rle", "_mask.npy");
  for (const auto& id : ids) {
    const Npy m = load_npy((root / "rle" / (id + "_mask.npy")).string());
    lapmask::Mask mask(int(m.shape[0]), int(m.shape[1]));
    mask.data = m.bytes;
    std::string want = read_text(root / "rle" / (id + "_counts.txt"));
    const std::string got = lapmask::rle_encode(mask);
    if (got != want) {
      throw Failure{"rle case " + id + " " + shape_str(m.shape) + ": '" + got.substr(0, 80) + "' vs pycocotools '" +
                    want.substr(0, 80) + "'"};
    }
  }
  return static_cast<int>(ids.size());
}

// Structural equality of two JSON values (numbers exactly).
void expect_json(const lapmask::json::Value& got, const lapmask::json::Value& want, const std::string& where) {
  using T = lapmask::json::Value::Type;
  if (got.type != want.type) throw Failure{where + ": JSON types differ"};
  switch (want.type) {
    case T::Number:
      if (got.number != want.number) {
        throw Failure{where + ": " + std::to_string(got.number) + " vs Python " + std::to_string(want.number)};
      }
      break;
    case T::String:
      if (got.string != want.string) throw Failure{where + ": '" + got.string + "' vs Python '" + want.string + "'"};
      break;
    case T::Bool:
      if (got.boolean != want.boolean) throw Failure{where + ": booleans differ"};
      break;
    case T::Array:
      if (got.array.size() != want.array.size()) {
        throw Failure{where + ": " + std::to_string(got.array.size()) + " items vs Python " +
                      std::to_string(want.array.size())};
      }
      for (size_t i = 0; i < want.array.size(); ++i) {
        expect_json(got.array[i], want.array[i], where + "[" + std::to_string(i) + "]");
      }
      break;
    case T::Object:
      if (got.object.size() != want.object.size()) throw Failure{where + ": different key sets"};
      for (const auto& kv : want.object) {
        const auto* g = got.find(kv.first);
        if (g == nullptr) throw Failure{where + ": missing key " + kv.first};
        expect_json(*g, kv.second, where + "." + kv.first);
      }
      break;
    case T::Null:
      break;
  }
}

int suite_json(const fs::path& root) {
  const auto ids = cases(root / "json", "_info.json");
  for (const auto& id : ids) {
    auto path = [&](const std::string& s) { return (root / "json" / (id + s)).string(); };
    const auto info = lapmask::json::parse(read_text(path("_info.json")), path("_info.json"));
    const Npy masks = load_npy(path("_masks.npy"));
    const auto scores = load_npy(path("_scores.npy")).as<float>();
    const auto labels = load_npy(path("_labels.npy")).as<int64_t>();
    const int n = int(masks.shape[0]), H = int(masks.shape[1]), W = int(masks.shape[2]);
    std::vector<lapmask::Instance> inst(n);
    const auto& names = info.find("class_names")->array;
    const auto& cids = info.find("category_ids")->array;
    for (int i = 0; i < n; ++i) {
      inst[i].label = int(labels[i]);
      inst[i].score = scores[i];
      inst[i].category = names.at(labels[i]).string;
      inst[i].category_id = int(cids.at(labels[i]).number);
      inst[i].mask = lapmask::Mask(H, W);
      std::memcpy(inst[i].mask.data.data(), masks.bytes.data() + static_cast<size_t>(i) * H * W,
                  static_cast<size_t>(H) * W);
      inst[i].box = lapmask::box_from_mask(inst[i].mask);
    }
    const std::string got = lapmask::prediction_json(info.find("file_name")->string, H, W, inst,
                                                     info.find("score_thr")->number);
    expect_json(lapmask::json::parse(got, "C++ prediction_json"),
                lapmask::json::parse(read_text(path("_expected.json")), path("_expected.json")), "json case " + id);
  }
  return static_cast<int>(ids.size());
}

int suite_image(const fs::path& root) {
  const auto ids = cases(root / "image", "_bgr.npy");
  for (const auto& id : ids) {
    std::string file;
    for (const char* ext : {".png", ".jpg", ".ppm"}) {
      if (fs::exists(root / "image" / (id + ext))) file = (root / "image" / (id + ext)).string();
    }
    if (file.empty()) throw Failure{"image case " + id + ": no image file"};
    const Npy want = load_npy((root / "image" / (id + "_bgr.npy")).string());
    const lapmask::ImageBGR got = lapmask::read_image_bgr(file);
    if (got.height != want.shape[0] || got.width != want.shape[1]) {
      throw Failure{"image " + file + ": decoded " + std::to_string(got.height) + "x" + std::to_string(got.width) +
                    ", PIL " + shape_str(want.shape)};
    }
    expect_bytes("image " + file, got.data, want.bytes, want.shape);
  }
  return static_cast<int>(ids.size());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s SUITE [FIXTURE_DIR]\n", argv[0]);
    return 2;
  }
  const std::string suite = argv[1];
  const char* env = std::getenv("LAPMASK_RUNTIME_FIXTURES");
  const std::string dir = argc > 2 ? argv[2] : (env ? env : "");
  if (dir.empty()) {
    std::printf("skipped: set LAPMASK_RUNTIME_FIXTURES (tests/runtime/ writes the fixtures)\n");
    return 77;
  }
  const fs::path root(dir);
  int n = -1;
  const bool ok = lapmask_test::run_case(suite, [&]() {
    if (suite == "resized_hw") n = suite_resized_hw(root);
    else if (suite == "resize") n = suite_resize(root);
    else if (suite == "prepare") n = suite_prepare(root);
    else if (suite == "bilinear") n = suite_bilinear(root);
    else if (suite == "paste") n = suite_paste(root);
    else if (suite == "rle") n = suite_rle(root);
    else if (suite == "json") n = suite_json(root);
    else if (suite == "image") n = suite_image(root);
    else throw Failure{"unknown suite " + suite};
  });
  std::printf("%s: %d case(s) %s\n", suite.c_str(), n, ok ? "passed" : "FAILED");
  return ok ? 0 : 1;
}
