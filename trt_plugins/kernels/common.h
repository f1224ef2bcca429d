// Shared building blocks of the lapmask kernels: host/device qualifiers, a storage-only fp16 type and the
// storage <-> accumulation conversions. Included by the CPU loops (g++), the CUDA kernels (nvcc) and, later,
// the TensorRT plugins; nothing here depends on CUDA headers unless compiled by nvcc.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#include <cuda_fp16.h>
#define LAPMASK_HD __host__ __device__ __forceinline__
#else
#define LAPMASK_HD inline
#endif

namespace lapmask
{
namespace kernels
{

//! IEEE binary16 storage (the bits only). Arithmetic never happens in this type: values are widened to the
//! accumulation type (float) on load and rounded once on store (fp16 policy in OPS.md).
struct Half
{
    uint16_t bits;
};
static_assert(sizeof(Half) == 2, "Half must be 2 bytes to alias fp16 tensors");

//! fp16 bits -> float, exact (every binary16 value is representable in binary32).
LAPMASK_HD float halfBitsToFloat(uint16_t h)
{
#if defined(__CUDA_ARCH__)
    return __half2float(__ushort_as_half(h));
#else
    uint32_t const sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    uint32_t exponent = (h >> 10) & 0x1fu;
    uint32_t mantissa = h & 0x3ffu;
    uint32_t bits;
    if (exponent == 0x1fu)
    {
        bits = sign | 0x7f800000u | (mantissa << 13); // inf / nan
    }
    else if (exponent != 0)
    {
        bits = sign | ((exponent + 112u) << 23) | (mantissa << 13); // normal: rebias 15 -> 127
    }
    else if (mantissa == 0)
    {
        bits = sign; // +-0
    }
    else
    {
        // subnormal half: normalise into a float normal
        exponent = 113u;
        while ((mantissa & 0x400u) == 0)
        {
            mantissa <<= 1;
            --exponent;
        }
        bits = sign | (exponent << 23) | ((mantissa & 0x3ffu) << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof(f));
    return f;
#endif
}

//! float -> fp16 bits with round-to-nearest-even (the IEEE default, as __float2half and torch's .half()).
LAPMASK_HD uint16_t floatToHalfBits(float f)
{
#if defined(__CUDA_ARCH__)
    return __half_as_ushort(__float2half_rn(f));
#else
    uint32_t x;
    memcpy(&x, &f, sizeof(x));
    uint16_t const sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
    uint32_t const absx = x & 0x7fffffffu;
    if (absx >= 0x7f800000u) // inf or nan (keep a quiet nan payload bit)
    {
        return static_cast<uint16_t>(sign | 0x7c00u | (absx > 0x7f800000u ? 0x200u : 0u));
    }
    if (absx >= 0x477ff000u) // >= 65520 rounds to inf
    {
        return static_cast<uint16_t>(sign | 0x7c00u);
    }
    if (absx < 0x38800000u) // below the smallest normal half (2^-14): subnormal or zero
    {
        if (absx < 0x33000000u) // < 2^-25 rounds to zero (2^-25 itself ties to even = 0)
        {
            return sign;
        }
        uint32_t const e = absx >> 23;
        uint32_t const m = (absx & 0x7fffffu) | 0x800000u;
        uint32_t const shift = 126u - e; // 14..24 -> value = m * 2^(e-150), half ulp = 2^-24
        uint32_t half = m >> shift;
        uint32_t const rem = m & ((1u << shift) - 1u);
        uint32_t const mid = 1u << (shift - 1u);
        if (rem > mid || (rem == mid && (half & 1u)))
        {
            ++half;
        }
        return static_cast<uint16_t>(sign | half);
    }
    uint32_t half = ((absx >> 13) - (112u << 10)); // rebias exponent, truncate mantissa
    uint32_t const rem = absx & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (half & 1u)))
    {
        ++half; // may carry into the exponent, which is the correct rounding (up to inf handled above)
    }
    return static_cast<uint16_t>(sign | half);
#endif
}

//! floor/exp in the accumulation type (float overloads explicitly, so host and device pick the same precision).
LAPMASK_HD float floorAcc(float v)
{
    return floorf(v);
}
LAPMASK_HD double floorAcc(double v)
{
    return floor(v);
}
LAPMASK_HD float expAcc(float v)
{
    return expf(v);
}
LAPMASK_HD double expAcc(double v)
{
    return exp(v);
}

//! Accumulation type for a storage type: fp32 for fp16/fp32 storage, fp64 for the fp64 test instantiation.
template <typename T>
struct AccType
{
    using type = float;
};
template <>
struct AccType<double>
{
    using type = double;
};

//! Widen one stored element to the accumulation type.
template <typename Acc>
LAPMASK_HD Acc loadAs(float v)
{
    return static_cast<Acc>(v);
}
template <typename Acc>
LAPMASK_HD Acc loadAs(double v)
{
    return static_cast<Acc>(v);
}
template <typename Acc>
LAPMASK_HD Acc loadAs(Half v)
{
    return static_cast<Acc>(halfBitsToFloat(v.bits));
}

//! Round one accumulated value into the storage type (the only rounding an fp16 output sees).
template <typename T>
struct StoreAs
{
    template <typename Acc>
    LAPMASK_HD static T apply(Acc v)
    {
        return static_cast<T>(v);
    }
};
template <>
struct StoreAs<Half>
{
    template <typename Acc>
    LAPMASK_HD static Half apply(Acc v)
    {
        Half h;
        h.bits = floatToHalfBits(static_cast<float>(v));
        return h;
    }
};

} // namespace kernels
} // namespace lapmask
