// CPU loops of MatrixNMS: every value comes from matrix_nms_math.h (shared with the CUDA kernels); this file
// only runs the five steps (pack, areas, D, compensation, decay) over OpenMP threads.
#include "kernels_cpu.h"

#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

#if defined(__GNUC__)
#define LAPMASK_ROW_INLINE __attribute__((always_inline)) inline
#else
#define LAPMASK_ROW_INLINE inline
#endif

namespace lapmask
{
namespace kernels
{
namespace
{

//! Row i of D (j > i): the O(K^2 * HW/64) part.
LAPMASK_ROW_INLINE void decayIouRow(MatrixNmsParams const& p, uint64_t const* packed, float const* areas, int32_t const* labels,
    float const* scores, float* decayIou, int64_t i)
{
    for (int64_t j = i + 1; j < p.candidates; ++j)
    {
        if (matrixNmsPairActive(i, j, labels, scores))
        {
            decayIou[i * p.candidates + j] = matrixNmsDecayIou(p, packed, areas, i, j);
        }
    }
}

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
// Same source with the POPCNT instruction (every x86-64 CPU since 2008); chosen at run time. The target attribute
// sits on the per-row function (not around the OpenMP loop, which GCC outlines before inlining).
__attribute__((target("popcnt"))) void decayIouRowPopcnt(MatrixNmsParams const& p, uint64_t const* packed,
    float const* areas, int32_t const* labels, float const* scores, float* decayIou, int64_t i)
{
    decayIouRow(p, packed, areas, labels, scores, decayIou, i);
}
#define LAPMASK_POPCNT_DISPATCH 1
#else
#define LAPMASK_POPCNT_DISPATCH 0
#endif

} // namespace

template <typename T>
void matrixNmsCpu(MatrixNmsParams const& p, T const* masks, float const* scores, int32_t const* labels, float* out)
{
    int64_t const k = p.candidates;
    if (k == 0)
    {
        return;
    }
    int64_t const words = matrixNmsWords(p.pixels);
    std::vector<uint64_t> packed(static_cast<size_t>(k * words));
    std::vector<float> areas(static_cast<size_t>(k));
    std::vector<float> decayIou(static_cast<size_t>(k * k), 0.0f);
    std::vector<float> compTerms(static_cast<size_t>(k));

#if defined(_OPENMP)
#pragma omp parallel for schedule(static)
#endif
    for (int64_t r = 0; r < k; ++r)
    {
        uint64_t* row = packed.data() + r * words;
        for (int64_t w = 0; w < words; ++w)
        {
            row[w] = packMaskWord(masks + r * p.pixels, p.pixels, w);
        }
        areas[r] = static_cast<float>(maskArea(row, words));
    }

#if LAPMASK_POPCNT_DISPATCH
    bool const popcnt = __builtin_cpu_supports("popcnt");
#endif
#if defined(_OPENMP)
#pragma omp parallel for schedule(dynamic, 4)
#endif
    for (int64_t i = 0; i < k; ++i)
    {
#if LAPMASK_POPCNT_DISPATCH
        if (popcnt)
        {
            decayIouRowPopcnt(p, packed.data(), areas.data(), labels, scores, decayIou.data(), i);
            continue;
        }
#endif
        decayIouRow(p, packed.data(), areas.data(), labels, scores, decayIou.data(), i);
    }

#if defined(_OPENMP)
#pragma omp parallel for schedule(static)
#endif
    for (int64_t i = 0; i < k; ++i)
    {
        compTerms[i] = matrixNmsCompensationTerm(p, decayIou.data(), i);
    }
#if defined(_OPENMP)
#pragma omp parallel for schedule(static)
#endif
    for (int64_t j = 0; j < k; ++j)
    {
        out[j] = matrixNmsDecayedScore(p, decayIou.data(), compTerms.data(), scores, j);
    }
}

template void matrixNmsCpu<float>(MatrixNmsParams const&, float const*, float const*, int32_t const*, float*);
template void matrixNmsCpu<Half>(MatrixNmsParams const&, Half const*, float const*, int32_t const*, float*);
template void matrixNmsCpu<uint8_t>(MatrixNmsParams const&, uint8_t const*, float const*, int32_t const*, float*);

} // namespace kernels
} // namespace lapmask
