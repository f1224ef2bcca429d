// CUDA kernels of DynamicDeformConv: the per-point math is deform_sampling.h (shared with the CPU loops).
// Per image: (1) deformable im2col into an fp32 column matrix [C*T, Ho*Wo] in the workspace, one thread per
// (offset group, tap, pixel) reusing its sample point across the group's channels; (2) a tiled fp32 matrix product
// out[o, :] = W[o, :] @ columns (+ bias), rounded once into the storage type.
#include "cuda_utils.cuh"
#include "launchers_cuda.h"

namespace lapmask
{
namespace kernels
{
namespace
{

template <typename T>
__global__ void deformIm2colKernel(
    DeformConvParams p, T const* __restrict__ x, T const* offset, T const* mask, int64_t n, float* __restrict__ cols)
{
    int64_t const taps = deformTaps(p);
    int64_t const pixels = deformPixels(p);
    int64_t const plane = p.height * p.width;
    int64_t const cog = deformChannelsPerOffsetGroup(p);
    int64_t const total = p.offsetGroup * taps * pixels;
    LAPMASK_GRID_STRIDE_LOOP(idx, total)
    {
        int64_t const q = idx % pixels;
        int64_t const rest = idx / pixels;
        int64_t const t = rest % taps;
        int64_t const g = rest / taps;
        SamplePoint<float> const s = deformLoadSamplePoint<float>(p, offset, mask, n, g, t, q);
        for (int64_t cl = 0; cl < cog; ++cl)
        {
            int64_t const c = g * cog + cl;
            cols[(c * taps + t) * pixels + q] = deformSampleChannel<float>(s, x + (n * p.channels + c) * plane);
        }
    }
}

constexpr int kTileM = 64; // output channels per block
constexpr int kTileN = 64; // pixels per block
constexpr int kTileK = 16; // reduction slice held in shared memory
constexpr int kThreadsX = 16;
constexpr int kThreadsY = 16;
constexpr int kPerThread = 4; // each thread owns a 4 x 4 strided sub-tile: rows ty + 16*i, pixels tx + 16*j

//! out[n, gi*Ng + r, q] = bias + sum_k W[gi*Ng + r, k] * cols[gi*Kg + k, q] for one image n and group gi = z.
template <typename T>
__global__ void __launch_bounds__(kThreadsX* kThreadsY) deformGemmKernel(
    DeformConvParams p, T const* __restrict__ weight, T const* bias, float const* __restrict__ cols, int64_t n,
    T* __restrict__ out)
{
    __shared__ float sA[kTileK][kTileM + 1]; // +1: the transposed stores hit distinct banks
    __shared__ float sB[kTileK][kTileN];
    int64_t const kg = deformChannelsPerGroup(p) * deformTaps(p);
    int64_t const ng = deformOutChannelsPerGroup(p);
    int64_t const pixels = deformPixels(p);
    int64_t const gi = blockIdx.z;
    int64_t const row0 = static_cast<int64_t>(blockIdx.y) * kTileM;
    int64_t const col0 = static_cast<int64_t>(blockIdx.x) * kTileN;
    T const* w = weight + gi * ng * kg;
    float const* c = cols + gi * kg * pixels;
    int const tx = threadIdx.x;
    int const ty = threadIdx.y;
    int const tid = ty * kThreadsX + tx;

    float acc[kPerThread][kPerThread];
#pragma unroll
    for (int i = 0; i < kPerThread; ++i)
    {
#pragma unroll
        for (int j = 0; j < kPerThread; ++j)
        {
            acc[i][j] = 0.0f;
        }
    }
    for (int64_t k0 = 0; k0 < kg; k0 += kTileK)
    {
#pragma unroll
        for (int l = 0; l < (kTileM * kTileK) / (kThreadsX * kThreadsY); ++l)
        {
            int const e = tid + l * kThreadsX * kThreadsY;
            int const ar = e / kTileK; // A tile [kTileM, kTileK], consecutive threads along k
            int const ak = e % kTileK;
            int64_t const gr = row0 + ar;
            int64_t const gk = k0 + ak;
            sA[ak][ar] = (gr < ng && gk < kg) ? loadAs<float>(w[gr * kg + gk]) : 0.0f;
            int const bk = e / kTileN; // B tile [kTileK, kTileN], consecutive threads along pixels
            int const bc = e % kTileN;
            int64_t const gkb = k0 + bk;
            int64_t const gc = col0 + bc;
            sB[bk][bc] = (gkb < kg && gc < pixels) ? c[gkb * pixels + gc] : 0.0f;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < kTileK; ++kk)
        {
            float a[kPerThread];
            float b[kPerThread];
#pragma unroll
            for (int i = 0; i < kPerThread; ++i)
            {
                a[i] = sA[kk][ty + kThreadsY * i];
                b[i] = sB[kk][tx + kThreadsX * i];
            }
#pragma unroll
            for (int i = 0; i < kPerThread; ++i)
            {
#pragma unroll
                for (int j = 0; j < kPerThread; ++j)
                {
                    acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
                }
            }
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < kPerThread; ++i)
    {
        int64_t const gr = row0 + ty + kThreadsY * i;
        if (gr >= ng)
        {
            continue;
        }
        int64_t const o = gi * ng + gr;
        float const bo = p.hasBias ? loadAs<float>(bias[o]) : 0.0f;
        T* dst = out + (n * p.outChannels + o) * pixels;
#pragma unroll
        for (int j = 0; j < kPerThread; ++j)
        {
            int64_t const gc = col0 + tx + kThreadsX * j;
            if (gc < pixels)
            {
                dst[gc] = StoreAs<T>::apply(acc[i][j] + bo);
            }
        }
    }
}

} // namespace

size_t deformConvCudaWorkspaceSize(DeformConvParams const& p)
{
    return alignWorkspace(static_cast<size_t>(deformColumnRows(p) * deformPixels(p)) * sizeof(float));
}

template <typename T>
cudaError_t launchDeformConv(DeformConvParams const& p, T const* x, T const* weight, T const* offset, T const* mask,
    T const* bias, T* out, void* workspace, size_t workspaceBytes, cudaStream_t stream)
{
    int64_t const pixels = deformPixels(p);
    if (p.batch == 0 || p.outChannels == 0 || pixels == 0)
    {
        return cudaSuccess;
    }
    if (workspace == nullptr || workspaceBytes < deformConvCudaWorkspaceSize(p))
    {
        return cudaErrorInvalidValue;
    }
    float* cols = static_cast<float*>(workspace);
    int64_t const sampleItems = p.offsetGroup * deformTaps(p) * pixels;
    dim3 const block(kThreadsX, kThreadsY);
    dim3 const grid(static_cast<unsigned int>((pixels + kTileN - 1) / kTileN),
        static_cast<unsigned int>((deformOutChannelsPerGroup(p) + kTileM - 1) / kTileM),
        static_cast<unsigned int>(p.group));
    for (int64_t n = 0; n < p.batch; ++n)
    {
        deformIm2colKernel<T><<<gridBlocks(sampleItems), kThreadsPerBlock, 0, stream>>>(p, x, offset, mask, n, cols);
        deformGemmKernel<T><<<grid, block, 0, stream>>>(p, weight, bias, cols, n, out);
        cudaError_t const err = cudaGetLastError();
        if (err != cudaSuccess)
        {
            return err;
        }
    }
    return cudaSuccess;
}

template cudaError_t launchDeformConv<float>(DeformConvParams const&, float const*, float const*, float const*,
    float const*, float const*, float*, void*, size_t, cudaStream_t);
template cudaError_t launchDeformConv<Half>(DeformConvParams const&, Half const*, Half const*, Half const*,
    Half const*, Half const*, Half*, void*, size_t, cudaStream_t);

} // namespace kernels
} // namespace lapmask
