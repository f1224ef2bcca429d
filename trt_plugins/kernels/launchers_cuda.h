// C++ launchers of the CUDA kernels (device pointers, asynchronous on `stream`). The TensorRT plugins call these
// directly; the C ABI (c_api.cpp) wraps them for Python. Arguments are validated by the caller.
#pragma once

#include <cuda_runtime_api.h>

#include "deform_sampling.h"
#include "matrix_nms_math.h"

namespace lapmask
{
namespace kernels
{

//! Device workspace for launchDeformConv: the fp32 column matrix [C*T, Ho*Wo] of one image (+ alignment).
size_t deformConvCudaWorkspaceSize(DeformConvParams const& p);

//! out[B, N, Ho, Wo] = DynamicDeformConv(...) for T = float or Half; images run one after another on `stream`
//! and share the workspace. mask / bias may be null when p.hasMask / p.hasBias are false.
template <typename T>
cudaError_t launchDeformConv(DeformConvParams const& p, T const* x, T const* weight, T const* offset, T const* mask,
    T const* bias, T* out, void* workspace, size_t workspaceBytes, cudaStream_t stream);

//! Device workspace for launchMatrixNms: packed masks, areas, D [K, K] and compensation terms.
size_t matrixNmsCudaWorkspaceSize(MatrixNmsParams const& p);

//! out[K] = Matrix NMS decayed scores for mask storage T = float, Half or uint8_t.
template <typename T>
cudaError_t launchMatrixNms(MatrixNmsParams const& p, T const* masks, float const* scores, int32_t const* labels,
    float* out, void* workspace, size_t workspaceBytes, cudaStream_t stream);

} // namespace kernels
} // namespace lapmask
