// C++ interface of the CPU loops (used by the C ABI in c_api.cpp and by C++ callers such as the runtime's tests).
// Arguments are validated by the caller; these functions throw std::bad_alloc when scratch memory runs out.
#pragma once

#include "deform_sampling.h"
#include "matrix_nms_math.h"

namespace lapmask
{
namespace kernels
{

//! out[B, N, Ho, Wo] = DynamicDeformConv(x, weight, offset, mask, bias); T = float, Half or double.
//! mask / bias may be null when p.hasMask / p.hasBias are false.
template <typename T>
void deformConvCpu(DeformConvParams const& p, T const* x, T const* weight, T const* offset, T const* mask,
    T const* bias, T* out);

//! out[K] = Matrix NMS decayed scores; T (mask storage) = float, Half or uint8_t.
template <typename T>
void matrixNmsCpu(MatrixNmsParams const& p, T const* masks, float const* scores, int32_t const* labels, float* out);

//! Number of CPU threads the loops use (OpenMP's, or 1 without OpenMP).
int cpuThreads();

} // namespace kernels
} // namespace lapmask
