// COCO run-length encoding, identical to pycocotools `mask.encode(np.asfortranarray(m))["counts"]`.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lapmask/types.h"

namespace lapmask {

// Column-major (Fortran order) run lengths, alternating 0-runs and 1-runs, starting with a (possibly empty) 0-run.
std::vector<uint32_t> rle_counts(const Mask& mask);

// pycocotools rleToString: each count (minus the count two places earlier, from the fourth on) as a
// little-endian base-32 varint with a sign-terminated continuation bit, characters offset by 48.
std::string rle_counts_to_string(const std::vector<uint32_t>& counts);

// rle_counts_to_string(rle_counts(mask)).
std::string rle_encode(const Mask& mask);

// Inverse of rle_counts_to_string (for tests and tools). Throws lapmask::Error on malformed input.
std::vector<uint32_t> rle_string_to_counts(const std::string& s);

}  // namespace lapmask
