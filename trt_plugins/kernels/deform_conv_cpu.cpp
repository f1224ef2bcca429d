// CPU loops of DynamicDeformConv: the per-point math comes from deform_sampling.h (shared with the CUDA kernels);
// this file only orders the loops for the cache and the cores.
//
// Work unit = (image, chunk of output pixels): sample the chunk's columns [C*T, chunk] into a per-thread buffer
// (sample points computed once per (offset group, tap, pixel) and reused across the group's channels), then
// multiply with the weights of every output channel while the buffer is hot. Pixel chunks are independent, so
// OpenMP splits them across threads with no synchronisation.
#include "kernels_cpu.h"

#include <algorithm>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define LAPMASK_X86_DISPATCH 1
#define LAPMASK_ALWAYS_INLINE __attribute__((always_inline)) inline
#else
#define LAPMASK_X86_DISPATCH 0
#define LAPMASK_ALWAYS_INLINE inline
#endif

namespace lapmask
{
namespace kernels
{

int cpuThreads()
{
#if defined(_OPENMP)
    return omp_get_max_threads();
#else
    return 1;
#endif
}

namespace
{

constexpr int64_t kRowBlock = 4;  // output channels per micro-kernel step
constexpr int64_t kColBlock = 16; // pixels per micro-kernel step (4 SSE / 2 AVX registers per row)

//! Pixels per work unit: keep the column buffer around 256 KiB so it stays in L2 during the product.
int64_t pixelChunk(int64_t rows, size_t accBytes)
{
    int64_t const target = (256 * 1024) / static_cast<int64_t>(accBytes) / std::max<int64_t>(rows, 1);
    int64_t const chunk = std::max<int64_t>(kColBlock, (target / kColBlock) * kColBlock);
    return std::min<int64_t>(chunk, 1024);
}

//! Deformable im2col of pixels [q0, q0 + len) of image n into cols[C*T, len] (row c*T + t).
template <typename T, typename Acc>
void sampleChunk(DeformConvParams const& p, T const* x, T const* offset, T const* mask, int64_t n, int64_t q0,
    int64_t len, std::vector<SamplePoint<Acc>>& points, Acc* cols)
{
    int64_t const taps = deformTaps(p);
    int64_t const plane = p.height * p.width;
    int64_t const cog = deformChannelsPerOffsetGroup(p);
    for (int64_t g = 0; g < p.offsetGroup; ++g)
    {
        for (int64_t t = 0; t < taps; ++t)
        {
            for (int64_t ql = 0; ql < len; ++ql)
            {
                points[t * len + ql] = deformLoadSamplePoint<Acc>(p, offset, mask, n, g, t, q0 + ql);
            }
        }
        for (int64_t cl = 0; cl < cog; ++cl)
        {
            int64_t const c = g * cog + cl;
            T const* src = x + (n * p.channels + c) * plane;
            for (int64_t t = 0; t < taps; ++t)
            {
                Acc* dst = cols + (c * taps + t) * len;
                SamplePoint<Acc> const* pts = points.data() + t * len;
                for (int64_t ql = 0; ql < len; ++ql)
                {
                    dst[ql] = deformSampleChannel<Acc>(pts[ql], src);
                }
            }
        }
    }
}

//! acc[r][j] = sum_k w[r*ldw + k] * cols[k*len + j] for rows r < R (<= kRowBlock) and pixels j < J (<= kColBlock).
//! Fixed-size accumulators so the compiler keeps them in vector registers.
template <typename Acc>
LAPMASK_ALWAYS_INLINE void microKernel(Acc const* w, int64_t ldw, Acc const* cols, int64_t len, int64_t depth,
    int64_t rows, int64_t width, Acc (&acc)[kRowBlock][kColBlock])
{
    for (int64_t r = 0; r < kRowBlock; ++r)
    {
        for (int64_t j = 0; j < kColBlock; ++j)
        {
            acc[r][j] = Acc(0);
        }
    }
    if (rows == kRowBlock && width == kColBlock)
    {
        for (int64_t k = 0; k < depth; ++k)
        {
            Acc const* c = cols + k * len;
            Acc const w0 = w[k];
            Acc const w1 = w[ldw + k];
            Acc const w2 = w[2 * ldw + k];
            Acc const w3 = w[3 * ldw + k];
            for (int64_t j = 0; j < kColBlock; ++j)
            {
                acc[0][j] += w0 * c[j];
                acc[1][j] += w1 * c[j];
                acc[2][j] += w2 * c[j];
                acc[3][j] += w3 * c[j];
            }
        }
        return;
    }
    for (int64_t k = 0; k < depth; ++k) // edge blocks
    {
        Acc const* c = cols + k * len;
        for (int64_t r = 0; r < rows; ++r)
        {
            Acc const wr = w[r * ldw + k];
            for (int64_t j = 0; j < width; ++j)
            {
                acc[r][j] += wr * c[j];
            }
        }
    }
}

//! out[n, o, q0 + j] = bias[o] + W[o, :] @ cols[group rows, j] for every output channel o.
template <typename T, typename Acc>
LAPMASK_ALWAYS_INLINE void multiplyChunkImpl(DeformConvParams const& p, Acc const* w, Acc const* bias,
    Acc const* cols, int64_t n, int64_t q0, int64_t len, T* out)
{
    int64_t const kg = deformChannelsPerGroup(p) * deformTaps(p);
    int64_t const ng = deformOutChannelsPerGroup(p);
    int64_t const pixels = deformPixels(p);
    Acc acc[kRowBlock][kColBlock];
    for (int64_t gi = 0; gi < p.group; ++gi)
    {
        Acc const* colsG = cols + gi * kg * len;
        for (int64_t o0 = gi * ng; o0 < (gi + 1) * ng; o0 += kRowBlock)
        {
            int64_t const rows = std::min<int64_t>(kRowBlock, (gi + 1) * ng - o0);
            for (int64_t j0 = 0; j0 < len; j0 += kColBlock)
            {
                int64_t const width = std::min<int64_t>(kColBlock, len - j0);
                microKernel<Acc>(w + o0 * kg, kg, colsG + j0, len, kg, rows, width, acc);
                for (int64_t r = 0; r < rows; ++r)
                {
                    Acc const b = bias != nullptr ? bias[o0 + r] : Acc(0);
                    T* dst = out + (n * p.outChannels + o0 + r) * pixels + q0 + j0;
                    for (int64_t j = 0; j < width; ++j)
                    {
                        dst[j] = StoreAs<T>::apply(acc[r][j] + b);
                    }
                }
            }
        }
    }
}

template <typename T, typename Acc>
void multiplyChunkGeneric(DeformConvParams const& p, Acc const* w, Acc const* bias, Acc const* cols, int64_t n,
    int64_t q0, int64_t len, T* out)
{
    multiplyChunkImpl<T, Acc>(p, w, bias, cols, n, q0, len, out);
}

#if LAPMASK_X86_DISPATCH
// Same source compiled for AVX2 + FMA; chosen at run time when the CPU has them.
template <typename T, typename Acc>
__attribute__((target("avx2,fma"))) void multiplyChunkAvx2(DeformConvParams const& p, Acc const* w,
    Acc const* bias, Acc const* cols, int64_t n, int64_t q0, int64_t len, T* out)
{
    multiplyChunkImpl<T, Acc>(p, w, bias, cols, n, q0, len, out);
}

bool cpuHasAvx2Fma()
{
    static bool const has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return has;
}
#endif

} // namespace

template <typename T>
void deformConvCpu(DeformConvParams const& p, T const* x, T const* weight, T const* offset, T const* mask,
    T const* bias, T* out)
{
    using Acc = typename AccType<T>::type;
    int64_t const rows = deformColumnRows(p);
    int64_t const pixels = deformPixels(p);
    int64_t const kg = deformChannelsPerGroup(p) * deformTaps(p);
    if (p.batch == 0 || p.outChannels == 0 || pixels == 0)
    {
        return;
    }
    // Widen weights and bias once (fp16 storage -> fp32).
    std::vector<Acc> w(static_cast<size_t>(p.outChannels * kg));
    for (size_t i = 0; i < w.size(); ++i)
    {
        w[i] = loadAs<Acc>(weight[i]);
    }
    std::vector<Acc> b;
    if (p.hasBias)
    {
        b.resize(static_cast<size_t>(p.outChannels));
        for (size_t i = 0; i < b.size(); ++i)
        {
            b[i] = loadAs<Acc>(bias[i]);
        }
    }
    int64_t const chunk = std::min<int64_t>(pixelChunk(rows, sizeof(Acc)), pixels);
    int64_t const chunksPerImage = (pixels + chunk - 1) / chunk;
    int64_t const units = p.batch * chunksPerImage;
    int const threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(cpuThreads(), units)));
    // Scratch is allocated before the parallel region so that std::bad_alloc is thrown here, never inside it.
    std::vector<Acc> colsAll(static_cast<size_t>(threads * rows * chunk));
    std::vector<std::vector<SamplePoint<Acc>>> pointsAll(
        threads, std::vector<SamplePoint<Acc>>(static_cast<size_t>(deformTaps(p) * chunk)));
#if LAPMASK_X86_DISPATCH
    bool const avx2 = cpuHasAvx2Fma();
#endif

#if defined(_OPENMP)
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
#endif
    for (int64_t u = 0; u < units; ++u)
    {
#if defined(_OPENMP)
        int const tid = omp_get_thread_num();
#else
        int const tid = 0;
#endif
        int64_t const n = u / chunksPerImage;
        int64_t const q0 = (u % chunksPerImage) * chunk;
        int64_t const len = std::min<int64_t>(chunk, pixels - q0);
        Acc* cols = colsAll.data() + static_cast<size_t>(tid) * rows * chunk;
        sampleChunk<T, Acc>(p, x, offset, p.hasMask ? mask : nullptr, n, q0, len, pointsAll[tid], cols);
        Acc const* bp = p.hasBias ? b.data() : nullptr;
#if LAPMASK_X86_DISPATCH
        if (avx2)
        {
            multiplyChunkAvx2<T, Acc>(p, w.data(), bp, cols, n, q0, len, out);
            continue;
        }
#endif
        multiplyChunkGeneric<T, Acc>(p, w.data(), bp, cols, n, q0, len, out);
    }
}

template void deformConvCpu<float>(DeformConvParams const&, float const*, float const*, float const*, float const*,
    float const*, float*);
template void deformConvCpu<Half>(
    DeformConvParams const&, Half const*, Half const*, Half const*, Half const*, Half const*, Half*);
template void deformConvCpu<double>(DeformConvParams const&, double const*, double const*, double const*,
    double const*, double const*, double*);

} // namespace kernels
} // namespace lapmask
