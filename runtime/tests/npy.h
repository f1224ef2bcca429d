// Minimal .npy reader for test fixtures written by numpy.save (little-endian, C order).
#pragma once

#include <cstdint>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace lapmask_test {

struct Npy {
  std::string descr;             // e.g. "<f4", "|u1", "|b1", "<i8", "<f8", "<i4"
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;

  size_t count() const {
    size_t n = 1;
    for (int64_t d : shape) n *= static_cast<size_t>(d);
    return n;
  }
  template <typename T>
  std::vector<T> as() const {
    if (bytes.size() != count() * sizeof(T)) {
      throw std::runtime_error("npy: dtype " + descr + " does not hold " + std::to_string(sizeof(T)) + "-byte items");
    }
    std::vector<T> v(count());
    std::memcpy(v.data(), bytes.data(), bytes.size());
    return v;
  }
};

inline Npy load_npy(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + path);
  char magic[6];
  f.read(magic, 6);
  if (std::memcmp(magic, "\x93NUMPY", 6) != 0) throw std::runtime_error(path + " is not an .npy file");
  const int major = f.get();
  f.get();
  uint32_t hlen = 0;
  if (major == 1) {
    uint16_t h16 = 0;
    f.read(reinterpret_cast<char*>(&h16), 2);
    hlen = h16;
  } else {
    f.read(reinterpret_cast<char*>(&hlen), 4);
  }
  std::string header(hlen, '\0');
  f.read(&header[0], hlen);
  Npy a;
  auto field = [&](const std::string& key) {
    const size_t k = header.find("'" + key + "'");
    if (k == std::string::npos) throw std::runtime_error(path + ": header lacks " + key);
    return header.substr(header.find(':', k) + 1);
  };
  const std::string d = field("descr");
  const size_t q0 = d.find('\''), q1 = d.find('\'', q0 + 1);
  a.descr = d.substr(q0 + 1, q1 - q0 - 1);
  const std::string fo = field("fortran_order");
  const size_t fo0 = fo.find_first_not_of(' ');
  if (fo0 != std::string::npos && fo.compare(fo0, 4, "True") == 0) {
    throw std::runtime_error(path + ": Fortran-order arrays are not supported");
  }
  const std::string s = field("shape");
  const size_t p0 = s.find('('), p1 = s.find(')');
  std::string dims = s.substr(p0 + 1, p1 - p0 - 1);
  size_t pos = 0;
  while (pos < dims.size()) {
    while (pos < dims.size() && (dims[pos] == ' ' || dims[pos] == ',')) ++pos;
    if (pos >= dims.size()) break;
    size_t end = pos;
    while (end < dims.size() && dims[end] >= '0' && dims[end] <= '9') ++end;
    a.shape.push_back(std::stoll(dims.substr(pos, end - pos)));
    pos = end;
  }
  const size_t item = std::stoul(a.descr.substr(2));
  a.bytes.resize(a.count() * item);
  f.read(reinterpret_cast<char*>(a.bytes.data()), static_cast<std::streamsize>(a.bytes.size()));
  if (static_cast<size_t>(f.gcount()) != a.bytes.size()) throw std::runtime_error(path + ": truncated data");
  if (a.descr[0] == '>') throw std::runtime_error(path + ": big-endian arrays are not supported");
  return a;
}

}  // namespace lapmask_test
