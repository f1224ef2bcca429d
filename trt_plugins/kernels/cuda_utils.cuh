// Small helpers shared by the .cu files: launch geometry for grid-stride loops and workspace carving.
#pragma once

#include <cstddef>
#include <cstdint>

namespace lapmask
{
namespace kernels
{

constexpr int kThreadsPerBlock = 256;

//! Blocks for a grid-stride loop over `total` items (capped; the loop covers the rest).
inline unsigned int gridBlocks(int64_t total)
{
    int64_t const blocks = (total + kThreadsPerBlock - 1) / kThreadsPerBlock;
    return static_cast<unsigned int>(blocks < 1 ? 1 : (blocks > (1 << 20) ? (1 << 20) : blocks));
}

//! Bytes rounded up to 256 so every carved workspace region is aligned for any element type.
inline size_t alignWorkspace(size_t bytes)
{
    return (bytes + 255) & ~static_cast<size_t>(255);
}

#define LAPMASK_GRID_STRIDE_LOOP(index, total)                                                                      \
    for (int64_t index = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; index < (total);             \
         index += static_cast<int64_t>(blockDim.x) * gridDim.x)

} // namespace kernels
} // namespace lapmask
