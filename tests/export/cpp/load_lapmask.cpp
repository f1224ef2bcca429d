// Minimal libtorch client (test_export_torchscript.py): load a lapmask TorchScript file with its metadata,
// run it once on a 128x96 input, print the five outputs' shapes and the metadata size.
#include <torch/script.h>
#include <iostream>
#include <unordered_map>

int main(int argc, char** argv) {
  if (argc < 2) { std::cerr << "usage: load MODEL.pt\n"; return 2; }
  torch::jit::ExtraFilesMap extra{{"lapmask_metadata.json", ""}};
  torch::jit::script::Module m = torch::jit::load(argv[1], torch::kCPU, extra);
  m.eval();
  auto image = torch::zeros({1, 3, 128, 96}, torch::kUInt8);
  auto size = torch::tensor({{120, 90}}, torch::kInt32);
  torch::NoGradGuard g;
  auto out = m.forward({image, size}).toTuple();
  for (auto& e : out->elements()) std::cout << e.toTensor().sizes() << " ";
  std::cout << "\nmetadata bytes " << extra["lapmask_metadata.json"].size() << "\n";
  return 0;
}
