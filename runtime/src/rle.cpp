// COCO RLE as pycocotools' maskApi.c (rleEncode + rleToString), written from its documented format.
#include "lapmask/rle.h"

namespace lapmask {

std::vector<uint32_t> rle_counts(const Mask& mask) {
  std::vector<uint32_t> counts;
  uint8_t current = 0;  // runs alternate 0, 1, 0, ... starting with zeros (first run may be empty)
  uint32_t run = 0;
  for (int x = 0; x < mask.width; ++x) {
    for (int y = 0; y < mask.height; ++y) {  // column-major: the mask as np.asfortranarray sees it
      const uint8_t v = mask.at(y, x) ? 1 : 0;
      if (v != current) {
        counts.push_back(run);
        run = 0;
        current = v;
      }
      ++run;
    }
  }
  counts.push_back(run);
  return counts;
}

std::string rle_counts_to_string(const std::vector<uint32_t>& counts) {
  std::string s;
  for (size_t i = 0; i < counts.size(); ++i) {
    long long x = counts[i];
    if (i > 2) x -= static_cast<long long>(counts[i - 2]);  // delta against the run of the same value
    bool more = true;
    while (more) {
      long long c = x & 0x1f;
      x >>= 5;  // arithmetic shift: negative deltas end on -1
      more = (c & 0x10) ? x != -1 : x != 0;
      if (more) c |= 0x20;
      s += static_cast<char>(c + 48);
    }
  }
  return s;
}

std::string rle_encode(const Mask& mask) { return rle_counts_to_string(rle_counts(mask)); }

std::vector<uint32_t> rle_string_to_counts(const std::string& s) {
  std::vector<uint32_t> counts;
  size_t p = 0;
  while (p < s.size()) {
    long long x = 0;
    int k = 0;
    bool more = true;
    while (more) {
      if (p >= s.size()) throw Error("truncated RLE string");
      const long long c = static_cast<long long>(s[p]) - 48;
      if (c < 0 || c > 63) throw Error("bad character in RLE string");
      x |= (c & 0x1f) << (5 * k);
      more = (c & 0x20) != 0;
      ++p;
      ++k;
      if (!more && (c & 0x10)) x |= static_cast<long long>(~0ULL << (5 * k));  // sign-extend
      if (k > 12) throw Error("RLE count too long");
    }
    if (counts.size() > 2) x += counts[counts.size() - 2];
    if (x < 0 || x > 0xffffffffLL) throw Error("RLE count out of range");
    counts.push_back(static_cast<uint32_t>(x));
  }
  return counts;
}

}  // namespace lapmask
