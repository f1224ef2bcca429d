// Self-contained unit tests of the runtime (hand-computed expectations; the Python comparisons are in
// fixture_tests.cpp). Exit code 0 = all passed.
#include <unistd.h>

#include <cstdio>
#include <random>

#include "check.h"
#include "json.h"
#include "lapmask/runtime.h"

using lapmask_test::run_case;

namespace {

void test_resized_hw() {
  // detectron2 rule by hand: 480x640 short edge 800 -> 800 x 1066.67 -> (800, 1067).
  LM_CHECK(lapmask::resized_hw(480, 640, 800, 1333) == std::make_pair(800, 1067));
  // Long edge capped: 1000x3000 -> 800x2400 -> x 1333/2400 -> 444.33 x 1333 -> (444, 1333).
  LM_CHECK(lapmask::resized_hw(1000, 3000, 800, 1333) == std::make_pair(444, 1333));
  // Portrait, and square.
  LM_CHECK(lapmask::resized_hw(640, 480, 800, 1333) == std::make_pair(1067, 800));
  LM_CHECK(lapmask::resized_hw(100, 100, 256, 512) == std::make_pair(256, 256));
}

void test_pil_resize_by_hand() {
  // 1x2 row [0, 255] upscaled to 1x4: PIL taps (support 1, scale 0.5) give 0, 63.75, 191.25, 255 -> rounded.
  const uint8_t src[2] = {0, 255};
  uint8_t dst[4] = {9, 9, 9, 9};
  lapmask::resize_bilinear_pil(src, 1, 2, 2, 1, dst, 1, 4);
  LM_CHECK_EQ(int(dst[0]), 0);
  LM_CHECK_EQ(int(dst[1]), 64);
  LM_CHECK_EQ(int(dst[2]), 191);
  LM_CHECK_EQ(int(dst[3]), 255);
  // Same size is a copy (stride honoured).
  const uint8_t img[2 * 4] = {1, 2, 3, 99, 4, 5, 6, 99};
  uint8_t out[6];
  lapmask::resize_bilinear_pil(img, 2, 1, 4, 3, out, 2, 1);
  LM_CHECK(out[0] == 1 && out[2] == 3 && out[3] == 4 && out[5] == 6);
  // Downscale 4 -> 1: the triangle widens to support 4 around centre 2 -> weights 5/24, 7/24, 7/24, 5/24 -> 120.
  const uint8_t row[4] = {0, 80, 160, 240};
  uint8_t one = 0;
  lapmask::resize_bilinear_pil(row, 1, 4, 4, 1, &one, 1, 1);
  LM_CHECK_EQ(int(one), 120);
  LM_CHECK_THROWS(lapmask::resize_bilinear_pil(row, 1, 4, 4, 1, &one, 0, 1), "bad sizes");
}

void test_prepare_pads() {
  // 2x3 image, no resize, padded to 32x32 with zeros, channels split into planes.
  std::vector<uint8_t> img(2 * 3 * 3);
  for (size_t i = 0; i < img.size(); ++i) img[i] = static_cast<uint8_t>(i + 1);
  lapmask::PrepareOptions o;
  o.resize = false;
  const auto p = lapmask::prepare_image(img.data(), 2, 3, 9, o);
  LM_CHECK(p.padded_h == 32 && p.padded_w == 32 && p.h == 2 && p.w == 3);
  LM_CHECK_EQ(int(p.chw[0]), 1);                 // B of (0, 0)
  LM_CHECK_EQ(int(p.chw[32 * 32]), 2);           // G of (0, 0)
  LM_CHECK_EQ(int(p.chw[2 * 32 * 32 + 32 + 2]), 18);  // R of (1, 2)
  LM_CHECK_EQ(int(p.chw[3]), 0);                 // padding
  o.fixed_height = 64;
  o.fixed_width = 96;
  LM_CHECK(lapmask::prepare_image(img.data(), 2, 3, 9, o).padded_w == 96);
  LM_CHECK_THROWS(lapmask::prepare_image(img.data(), 2, 3, 5, o), "stride_bytes");
  LM_CHECK_THROWS(lapmask::prepare_image(img.data(), 0, 3, 9, o), "empty image");
}

void test_bilinear_f32_by_hand() {
  // torch align_corners=False 2x upsampling of [0, 1]: [0, 0.25, 0.75, 1] (exact in float32).
  const float src[2] = {0.0f, 1.0f};
  float dst[4];
  lapmask::resize_bilinear_f32(src, 1, 1, 2, dst, 1, 4);
  LM_CHECK(dst[0] == 0.0f && dst[1] == 0.25f && dst[2] == 0.75f && dst[3] == 1.0f);
}

void test_box_and_paste() {
  lapmask::Mask m(5, 6);
  m.row(1)[2] = 1;
  m.row(3)[4] = 1;
  const auto b = lapmask::box_from_mask(m);
  LM_CHECK(b[0] == 2 && b[1] == 1 && b[2] == 4 && b[3] == 3);
  const auto e = lapmask::box_from_mask(lapmask::Mask(3, 3));
  LM_CHECK(e[0] == 0 && e[1] == 0 && e[2] == 0 && e[3] == 0);
  // A probability map of all 0.9 pastes to a full mask, all 0.1 to an empty one.
  std::vector<float> probs(2 * 8 * 8, 0.9f);
  std::fill(probs.begin() + 64, probs.end(), 0.1f);
  const auto masks = lapmask::paste_masks(probs.data(), 2, 8, 8, 30, 25, 45, 50, 0.5);
  LM_CHECK_EQ(masks.size(), size_t{2});
  LM_CHECK_EQ(masks[0].area(), size_t{45 * 50});
  LM_CHECK_EQ(masks[1].area(), size_t{0});
}

void test_postprocess_labels() {
  lapmask::DeployOutputs out;
  out.k = 2;
  out.num_dets = 1;
  out.mask_h = out.mask_w = 8;
  out.scores = {0.7f, 0.0f};
  out.labels = {1, -1};
  out.masks.assign(2 * 64, 0.8f);
  const auto inst = lapmask::postprocess_static(out, 32, 32, 40, 40, 0.5, {"a", "b"}, {7, 9});
  LM_CHECK_EQ(inst.size(), size_t{1});
  LM_CHECK(inst[0].category == "b" && inst[0].category_id == 9 && inst[0].score == 0.7f);
  LM_CHECK(inst[0].box[2] == 39 && inst[0].box[3] == 39);
  out.labels[0] = 5;
  LM_CHECK_THROWS(lapmask::postprocess_static(out, 32, 32, 40, 40, 0.5, {"a", "b"}, {7, 9}), "has no class");
  out.num_dets = 3;
  LM_CHECK_THROWS(lapmask::postprocess_static(out, 32, 32, 40, 40, 0.5, {"a", "b"}, {7, 9}), "num_dets");
}

void test_rle_by_hand() {
  // [[0, 1], [1, 1]] column-major: 0, 1, 1, 1 -> runs [1, 3] -> "13".
  lapmask::Mask m(2, 2);
  m.row(0)[1] = 1;
  m.row(1)[0] = 1;
  m.row(1)[1] = 1;
  LM_CHECK_EQ(lapmask::rle_encode(m), std::string("13"));
  // Starting with a set pixel: an empty 0-run first.
  lapmask::Mask full(2, 3);
  std::fill(full.data.begin(), full.data.end(), 1);
  LM_CHECK(lapmask::rle_counts(full) == std::vector<uint32_t>({0, 6}));
  // Run 40 needs two characters: 40 = 0b01000_01000 -> (8 | 0x20) + 48 = 'X', then 1 + 48 = '1'.
  LM_CHECK_EQ(lapmask::rle_counts_to_string({40}), std::string("X1"));
  // Counts from the fourth on are deltas (pycocotools `i > 2`), possibly negative: [5, 2, 3, 1] -> 5, 2, 3,
  // 1 - 2 = -1 -> '5', '2', '3', (-1 & 0x1f) + 48 = 'O'.
  LM_CHECK_EQ(lapmask::rle_counts_to_string({5, 2, 3, 1}), std::string("523O"));
  // Round trip of random masks through the string form.
  std::mt19937 rng(1);
  for (int t = 0; t < 50; ++t) {
    lapmask::Mask r(1 + rng() % 40, 1 + rng() % 40);
    for (auto& v : r.data) v = (rng() % 7) < 3;
    const auto counts = lapmask::rle_counts(r);
    LM_CHECK(lapmask::rle_string_to_counts(lapmask::rle_encode(r)) == counts);
    size_t total = 0;
    for (auto c : counts) total += c;
    LM_CHECK_EQ(total, r.data.size());
  }
}

void test_json_and_metadata() {
  const auto v = lapmask::json::parse(R"({"a": [1, 2.5, -3e2], "s": "x\u00e9\"\n", "t": true, "n": null})", "t");
  LM_CHECK(v.find("a")->array[2].number == -300.0);
  LM_CHECK(v.find("s")->string == "x\xc3\xa9\"\n");
  LM_CHECK(v.find("t")->boolean && v.find("n")->is_null());
  LM_CHECK_THROWS(lapmask::json::parse("{\"a\": [1, }", "doc.json"), "doc.json: invalid JSON");
  const std::string good = R"({"format": "lapmask-deploy", "format_version": 1, "class_names": ["cat", "dog"],
    "category_ids": [17, 18], "min_size_test": 256, "max_size_test": 512, "mask_thr": 0.55,
    "size_divisibility": 32, "input_height": null, "input_width": null, "k_pre": 500, "max_dets": 100})";
  const lapmask::Metadata m = lapmask::parse_metadata(good, "m.json");
  LM_CHECK(m.class_names.size() == 2 && m.category_ids[1] == 18 && m.min_size_test == 256 && m.mask_thr == 0.55);
  LM_CHECK(m.resize && m.input_height == 0 && m.k_pre == 500);
  LM_CHECK_THROWS(lapmask::parse_metadata(R"({"class_names": ["a"], "category_ids": [1]})", "x.json"),
                  "\"min_size_test\" is missing");
  LM_CHECK_THROWS(lapmask::parse_metadata(R"({"class_names": ["a"], "category_ids": [1, 2], "min_size_test": 1,
                  "max_size_test": 2, "mask_thr": 0.5})", "x.json"), "category_ids");
  LM_CHECK_THROWS(lapmask::parse_metadata(R"({"format": "lapmask-deploy", "format_version": 99})", "x.json"),
                  "newer than this runtime");
}

void test_prediction_json() {
  std::vector<lapmask::Instance> inst(2);
  for (int i = 0; i < 2; ++i) {
    inst[i].mask = lapmask::Mask(4, 5);
    inst[i].label = i;
    inst[i].category = i ? "b\"q" : "a";
    inst[i].category_id = 10 + i;
  }
  inst[0].score = 0.25f;
  inst[1].score = 0.75f;
  inst[1].mask.row(2)[1] = 1;
  inst[1].mask.row(3)[3] = 1;
  const auto doc = lapmask::json::parse(lapmask::prediction_json("x.png", 4, 5, inst), "out");
  const auto& list = doc.find("instances")->array;
  LM_CHECK_EQ(list.size(), size_t{2});
  LM_CHECK(list[0].find("score")->number == 0.75 && list[0].find("category")->string == "b\"q");
  const auto& bbox = list[0].find("bbox")->array;  // x 1..3, y 2..3 -> [1, 2, 3, 2]
  LM_CHECK(bbox[0].number == 1 && bbox[1].number == 2 && bbox[2].number == 3 && bbox[3].number == 2);
  LM_CHECK(list[1].find("bbox")->array[2].number == 0);  // empty mask
  const auto filtered = lapmask::json::parse(lapmask::prediction_json("x.png", 4, 5, inst, 0.5), "out");
  LM_CHECK_EQ(filtered.find("instances")->array.size(), size_t{1});
}

void test_model_errors() {
  LM_CHECK_THROWS(lapmask::Model("/nonexistent/model.engine"), "model file not found");
  const std::string onnx = "/tmp/lapmask_runtime_unit_test_" + std::to_string(::getpid()) + ".onnx";
  std::FILE* f = std::fopen(onnx.c_str(), "wb");
  LM_CHECK(f != nullptr);
  std::fclose(f);
  LM_CHECK_THROWS(lapmask::Model(onnx), "not ONNX");
  std::remove(onnx.c_str());
}

}  // namespace

int main() {
  run_case("resized_hw", test_resized_hw);
  run_case("pil_resize_by_hand", test_pil_resize_by_hand);
  run_case("prepare_pads", test_prepare_pads);
  run_case("bilinear_f32_by_hand", test_bilinear_f32_by_hand);
  run_case("box_and_paste", test_box_and_paste);
  run_case("postprocess_labels", test_postprocess_labels);
  run_case("rle_by_hand", test_rle_by_hand);
  run_case("json_and_metadata", test_json_and_metadata);
  run_case("prediction_json", test_prediction_json);
  run_case("model_errors", test_model_errors);
  std::printf("%d failure(s)\n", lapmask_test::failures());
  return lapmask_test::failures() == 0 ? 0 : 1;
}
