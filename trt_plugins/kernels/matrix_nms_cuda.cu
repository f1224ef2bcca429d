// CUDA kernels of MatrixNMS: every value comes from matrix_nms_math.h (shared with the CPU loops). Five small
// kernels on one stream: pack masks to bits, areas, D (one thread per pair), compensation, decayed scores.
#include "cuda_utils.cuh"
#include "launchers_cuda.h"

namespace lapmask
{
namespace kernels
{
namespace
{

template <typename T>
__global__ void packMasksKernel(MatrixNmsParams p, T const* __restrict__ masks, uint64_t* __restrict__ packed)
{
    int64_t const words = matrixNmsWords(p.pixels);
    LAPMASK_GRID_STRIDE_LOOP(idx, p.candidates * words)
    {
        int64_t const r = idx / words;
        packed[idx] = packMaskWord(masks + r * p.pixels, p.pixels, idx - r * words);
    }
}

__global__ void maskAreasKernel(MatrixNmsParams p, uint64_t const* __restrict__ packed, float* __restrict__ areas)
{
    int64_t const words = matrixNmsWords(p.pixels);
    LAPMASK_GRID_STRIDE_LOOP(r, p.candidates)
    {
        areas[r] = static_cast<float>(maskArea(packed + r * words, words));
    }
}

__global__ void decayIouKernel(MatrixNmsParams p, uint64_t const* __restrict__ packed, float const* __restrict__ areas,
    int32_t const* __restrict__ labels, float const* __restrict__ scores, float* __restrict__ decayIou)
{
    LAPMASK_GRID_STRIDE_LOOP(idx, p.candidates * p.candidates)
    {
        int64_t const i = idx / p.candidates;
        int64_t const j = idx - i * p.candidates;
        decayIou[idx] = matrixNmsPairActive(i, j, labels, scores) ? matrixNmsDecayIou(p, packed, areas, i, j) : 0.0f;
    }
}

__global__ void compensationKernel(MatrixNmsParams p, float const* __restrict__ decayIou, float* __restrict__ compTerms)
{
    LAPMASK_GRID_STRIDE_LOOP(i, p.candidates)
    {
        compTerms[i] = matrixNmsCompensationTerm(p, decayIou, i);
    }
}

__global__ void decayedScoresKernel(MatrixNmsParams p, float const* __restrict__ decayIou,
    float const* __restrict__ compTerms, float const* __restrict__ scores, float* __restrict__ out)
{
    LAPMASK_GRID_STRIDE_LOOP(j, p.candidates)
    {
        out[j] = matrixNmsDecayedScore(p, decayIou, compTerms, scores, j);
    }
}

//! Byte offsets of the workspace regions (each 256-aligned): packed masks, areas, D [K, K], compensation terms.
struct NmsWorkspaceLayout
{
    size_t areas;
    size_t decayIou;
    size_t compTerms;
    size_t bytes;
};

NmsWorkspaceLayout workspaceLayout(MatrixNmsParams const& p)
{
    size_t const k = static_cast<size_t>(p.candidates);
    size_t const packedBytes = alignWorkspace(k * static_cast<size_t>(matrixNmsWords(p.pixels)) * sizeof(uint64_t));
    size_t const vecBytes = alignWorkspace(k * sizeof(float));
    size_t const matBytes = alignWorkspace(k * k * sizeof(float));
    NmsWorkspaceLayout l;
    l.areas = packedBytes;
    l.decayIou = l.areas + vecBytes;
    l.compTerms = l.decayIou + matBytes;
    l.bytes = l.compTerms + vecBytes;
    return l;
}

} // namespace

size_t matrixNmsCudaWorkspaceSize(MatrixNmsParams const& p)
{
    return workspaceLayout(p).bytes;
}

template <typename T>
cudaError_t launchMatrixNms(MatrixNmsParams const& p, T const* masks, float const* scores, int32_t const* labels,
    float* out, void* workspace, size_t workspaceBytes, cudaStream_t stream)
{
    if (p.candidates == 0)
    {
        return cudaSuccess;
    }
    if (workspace == nullptr || workspaceBytes < matrixNmsCudaWorkspaceSize(p))
    {
        return cudaErrorInvalidValue;
    }
    NmsWorkspaceLayout const l = workspaceLayout(p);
    char* const base = static_cast<char*>(workspace);
    uint64_t* const packed = reinterpret_cast<uint64_t*>(base);
    float* const areas = reinterpret_cast<float*>(base + l.areas);
    float* const decayIou = reinterpret_cast<float*>(base + l.decayIou);
    float* const compTerms = reinterpret_cast<float*>(base + l.compTerms);
    int64_t const k = p.candidates;
    packMasksKernel<T><<<gridBlocks(k * matrixNmsWords(p.pixels)), kThreadsPerBlock, 0, stream>>>(p, masks, packed);
    maskAreasKernel<<<gridBlocks(k), kThreadsPerBlock, 0, stream>>>(p, packed, areas);
    decayIouKernel<<<gridBlocks(k * k), kThreadsPerBlock, 0, stream>>>(p, packed, areas, labels, scores, decayIou);
    compensationKernel<<<gridBlocks(k), kThreadsPerBlock, 0, stream>>>(p, decayIou, compTerms);
    decayedScoresKernel<<<gridBlocks(k), kThreadsPerBlock, 0, stream>>>(p, decayIou, compTerms, scores, out);
    return cudaGetLastError();
}

template cudaError_t launchMatrixNms<float>(
    MatrixNmsParams const&, float const*, float const*, int32_t const*, float*, void*, size_t, cudaStream_t);
template cudaError_t launchMatrixNms<Half>(
    MatrixNmsParams const&, Half const*, float const*, int32_t const*, float*, void*, size_t, cudaStream_t);
template cudaError_t launchMatrixNms<uint8_t>(
    MatrixNmsParams const&, uint8_t const*, float const*, int32_t const*, float*, void*, size_t, cudaStream_t);

} // namespace kernels
} // namespace lapmask
