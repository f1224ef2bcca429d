// Matrix NMS decay (spec 6 step 7; SOLOv2 utils.matrix_nms), written once for the CPU loops and the CUDA kernels.
// Python reference: lapmask/ops/matrix_nms.py. All arithmetic in fp32, whatever the mask storage (areas at
// stride 4 exceed the fp16 range).
//
// Candidates come sorted by descending score (the op does not sort). With binary masks M_k:
//   inter_ij = |M_i & M_j| (the matrix product of the flattened 0/1 masks, computed exactly as bit counts),
//   a_k = |M_k|, IoU_ij = inter_ij / (a_i + a_j - inter_ij)  (0 when both masks are empty),
//   D_ij = IoU_ij if i < j and label_i == label_j and both are valid, else 0,
//   c_i  = max_k D_ki,
//   gaussian: decay_j = min_i exp(-sigma * D_ij^2) / exp(-sigma * c_i^2)   (sigma multiplies, as the code)
//   linear:   decay_j = min_i (1 - D_ij) / (1 - c_i)
//   out_j = score_j * decay_j for valid j (score >= 0); invalid entries (score < 0, i.e. -1) are returned as is.
// The min runs over all i (terms with D_ij = 0 are >= 1 and never win over the first valid i). Invalid
// candidates take part with D = 0, which is the same as leaving them out; sorted last, they cannot change any
// valid result either way. A nan ratio propagates into the min, as torch.min does in the official code.
#pragma once

#include "common.h"

namespace lapmask
{
namespace kernels
{

enum MatrixNmsKernel : int32_t
{
    kMatrixNmsGaussian = 0,
    kMatrixNmsLinear = 1,
};

struct MatrixNmsParams
{
    int64_t candidates; //!< K
    int64_t pixels;     //!< H*W of one mask
    int32_t kernel;     //!< MatrixNmsKernel
    float sigma;        //!< gaussian sigma (multiplies the exponent)
};

//! 64-bit words per packed mask row (bits past `pixels` are 0).
LAPMASK_HD int64_t matrixNmsWords(int64_t pixels)
{
    return (pixels + 63) / 64;
}

//! A mask pixel is set when it is non-zero (masks are 0/1; -0 counts as 0).
LAPMASK_HD bool maskPixelSet(float v)
{
    return v != 0.0f;
}
LAPMASK_HD bool maskPixelSet(Half v)
{
    return (v.bits & 0x7fffu) != 0;
}
LAPMASK_HD bool maskPixelSet(uint8_t v)
{
    return v != 0;
}

//! Word `word` of the bit-packed row: bit b = pixel word*64 + b.
template <typename T>
LAPMASK_HD uint64_t packMaskWord(T const* row, int64_t pixels, int64_t word)
{
    int64_t const begin = word * 64;
    int64_t const n = pixels - begin < 64 ? pixels - begin : 64;
    uint64_t bits = 0;
    for (int64_t b = 0; b < n; ++b)
    {
        bits |= static_cast<uint64_t>(maskPixelSet(row[begin + b])) << b;
    }
    return bits;
}

LAPMASK_HD int popcount64(uint64_t v)
{
#if defined(__CUDA_ARCH__)
    return __popcll(v);
#else
    return __builtin_popcountll(v);
#endif
}

//! |row_a| or |row_a & row_b| over packed rows: exact integer counts (what the fp32 matrix product computes).
LAPMASK_HD int64_t maskArea(uint64_t const* row, int64_t words)
{
    int64_t s = 0;
    for (int64_t w = 0; w < words; ++w)
    {
        s += popcount64(row[w]);
    }
    return s;
}
LAPMASK_HD int64_t maskIntersection(uint64_t const* a, uint64_t const* b, int64_t words)
{
    int64_t s = 0;
    for (int64_t w = 0; w < words; ++w)
    {
        s += popcount64(a[w] & b[w]);
    }
    return s;
}

LAPMASK_HD bool matrixNmsValid(float score)
{
    return score >= 0.0f; // invalid candidates carry -1 (nan is invalid too)
}

//! Does D_ij need an intersection (i < j, same label, both valid)? Otherwise D_ij = 0.
LAPMASK_HD bool matrixNmsPairActive(
    int64_t i, int64_t j, int32_t const* labels, float const* scores)
{
    return i < j && labels[i] == labels[j] && matrixNmsValid(scores[i]) && matrixNmsValid(scores[j]);
}

//! IoU in fp32 with the official operation order: inter / ((a_i + a_j) - inter); 0 when both masks are empty.
LAPMASK_HD float matrixNmsIou(float inter, float areaI, float areaJ)
{
    float const uni = (areaI + areaJ) - inter;
    return uni > 0.0f ? inter / uni : 0.0f;
}

//! D_ij for an active pair from packed rows and areas.
LAPMASK_HD float matrixNmsDecayIou(
    MatrixNmsParams const& p, uint64_t const* packed, float const* areas, int64_t i, int64_t j)
{
    int64_t const words = matrixNmsWords(p.pixels);
    float const inter = static_cast<float>(maskIntersection(packed + i * words, packed + j * words, words));
    return matrixNmsIou(inter, areas[i], areas[j]);
}

//! Numerator of the decay ratio for one D value: exp(-sigma*D^2) or 1 - D.
LAPMASK_HD float matrixNmsDecayTerm(MatrixNmsParams const& p, float d)
{
    return p.kernel == kMatrixNmsLinear ? 1.0f - d : expAcc(-p.sigma * (d * d));
}

//! Column max of D (c_i = max_k D_ki over k < i; D is 0 elsewhere), returned as the ratio's denominator term.
LAPMASK_HD float matrixNmsCompensationTerm(MatrixNmsParams const& p, float const* decayIou, int64_t i)
{
    float c = 0.0f;
    for (int64_t k = 0; k < i; ++k)
    {
        float const d = decayIou[k * p.candidates + i];
        c = d > c ? d : c;
    }
    return matrixNmsDecayTerm(p, c);
}

//! Decayed score of candidate j: score_j * min_i term(D_ij) / compTerm_i; invalid scores pass through.
LAPMASK_HD float matrixNmsDecayedScore(MatrixNmsParams const& p, float const* decayIou, float const* compTerms,
    float const* scores, int64_t j)
{
    float const s = scores[j];
    if (!matrixNmsValid(s))
    {
        return s;
    }
    float best = 0.0f;
    bool first = true;
    for (int64_t i = 0; i < p.candidates; ++i)
    {
        float const r = matrixNmsDecayTerm(p, decayIou[i * p.candidates + j]) / compTerms[i];
        if (first || r < best || r != r) // propagate nan like torch.min
        {
            best = r;
            first = false;
            if (r != r)
            {
                break;
            }
        }
    }
    return s * best;
}

} // namespace kernels
} // namespace lapmask
