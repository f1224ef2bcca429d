// Modulated deformable sampling (DCNv2 deformable im2col), written once for the CPU loops and the CUDA kernels.
//
// The rule is detectron2's modulated_deformable_im2col_gpu_kernel (spec 4.3; Python reference
// lapmask/ops/deform_ref.py): for output pixel (oy, ox) and tap t = a*kw + b of offset group g
//   h = oy*strideH - padTop  + a*dilationH + dy,   dy = offset[n, g*2T + 2t,     oy, ox]
//   w = ox*strideW - padLeft + b*dilationW + dx,   dx = offset[n, g*2T + 2t + 1, oy, ox]
//   column[c*T + t, oy*Wo + ox] = m * bilinear(X[n, c], h, w),   m = mask[n, g*T + t, oy, ox] (1 without mask)
// where bilinear() is 0 unless -1 < h < H and -1 < w < W, and each corner outside the image contributes 0.
// The output is out[n, o, :] = bias[o] + W[o, :] (as [C/group * T]) @ columns[rows of o's group, :].
//
// Coordinates and corner weights are computed in Acc (float for fp16/fp32 storage, double for the fp64 test
// build), never in the storage type.
#pragma once

#include "common.h"

namespace lapmask
{
namespace kernels
{

//! Shapes and attributes of one DynamicDeformConv call (ONNX DeformConv-19 attribute names in comments).
struct DeformConvParams
{
    int64_t batch;       //!< B
    int64_t channels;    //!< C (input channels)
    int64_t height;      //!< H
    int64_t width;       //!< W
    int64_t outChannels; //!< N (filters; instances for the dynamic filter)
    int64_t outHeight;   //!< Ho
    int64_t outWidth;    //!< Wo
    int32_t kernelH;     //!< kernel_shape[0]
    int32_t kernelW;     //!< kernel_shape[1]
    int32_t strideH;     //!< strides[0]
    int32_t strideW;     //!< strides[1]
    int32_t padTop;      //!< pads[0]
    int32_t padLeft;     //!< pads[1]
    int32_t padBottom;   //!< pads[2]
    int32_t padRight;    //!< pads[3]
    int32_t dilationH;   //!< dilations[0]
    int32_t dilationW;   //!< dilations[1]
    int32_t group;       //!< group: C and N split into `group` independent convolutions
    int32_t offsetGroup; //!< offset_group: C split into groups sharing one offset/mask field
    bool hasMask;        //!< mask input present (ONNX makes it optional; LapMask always passes it)
    bool hasBias;        //!< bias input present
};

LAPMASK_HD int64_t deformTaps(DeformConvParams const& p)
{
    return static_cast<int64_t>(p.kernelH) * p.kernelW;
}

//! Rows of the column matrix: C * T (row c*T + t, matching W.reshape(N, C/group * T) per group).
LAPMASK_HD int64_t deformColumnRows(DeformConvParams const& p)
{
    return p.channels * deformTaps(p);
}

LAPMASK_HD int64_t deformPixels(DeformConvParams const& p)
{
    return p.outHeight * p.outWidth;
}

//! Output extent along one axis (ONNX/PyTorch conv arithmetic); -1 when the window does not fit.
LAPMASK_HD int64_t deformOutExtent(int64_t in, int32_t padBegin, int32_t padEnd, int32_t kernel, int32_t stride,
    int32_t dilation)
{
    int64_t const span = in + padBegin + padEnd - static_cast<int64_t>(dilation) * (kernel - 1) - 1;
    return span < 0 ? -1 : span / stride + 1;
}

//! The four bilinear corners of one sampling point: flat indices into an H*W plane (-1 = contributes 0) and
//! weights. Computed once per (image, offset group, tap, pixel) and reused for every channel of the group.
template <typename Acc>
struct SamplePoint
{
    int64_t index[4];
    Acc weight[4];
    Acc modulation;
};

//! Where tap `tap` of output pixel (oy, ox) samples, given its offset (dy, dx) and modulation m.
template <typename Acc>
LAPMASK_HD SamplePoint<Acc> deformSamplePoint(
    DeformConvParams const& p, int64_t tap, int64_t oy, int64_t ox, Acc dy, Acc dx, Acc m)
{
    SamplePoint<Acc> s;
    s.modulation = m;
    int64_t const a = tap / p.kernelW;
    int64_t const b = tap - a * p.kernelW;
    Acc const h = static_cast<Acc>(oy * p.strideH - p.padTop + a * p.dilationH) + dy;
    Acc const w = static_cast<Acc>(ox * p.strideW - p.padLeft + b * p.dilationW) + dx;
    for (int k = 0; k < 4; ++k)
    {
        s.index[k] = -1;
        s.weight[k] = Acc(0);
    }
    // Whole sample is 0 unless -1 < h < H and -1 < w < W (also rejects nan coordinates).
    if (!(h > Acc(-1) && w > Acc(-1) && h < static_cast<Acc>(p.height) && w < static_cast<Acc>(p.width)))
    {
        return s;
    }
    Acc const hFloor = floorAcc(h);
    Acc const wFloor = floorAcc(w);
    int64_t const hLow = static_cast<int64_t>(hFloor);
    int64_t const wLow = static_cast<int64_t>(wFloor);
    int64_t const hHigh = hLow + 1;
    int64_t const wHigh = wLow + 1;
    Acc const lh = h - hFloor;
    Acc const lw = w - wFloor;
    Acc const hh = Acc(1) - lh;
    Acc const hw = Acc(1) - lw;
    // Corner order and weights as detectron2's dmcn_im2col_bilinear: (low,low) (low,high) (high,low) (high,high).
    bool const rowLow = hLow >= 0;
    bool const rowHigh = hHigh <= p.height - 1;
    bool const colLow = wLow >= 0;
    bool const colHigh = wHigh <= p.width - 1;
    if (rowLow && colLow)
    {
        s.index[0] = hLow * p.width + wLow;
        s.weight[0] = hh * hw;
    }
    if (rowLow && colHigh)
    {
        s.index[1] = hLow * p.width + wHigh;
        s.weight[1] = hh * lw;
    }
    if (rowHigh && colLow)
    {
        s.index[2] = hHigh * p.width + wLow;
        s.weight[2] = lh * hw;
    }
    if (rowHigh && colHigh)
    {
        s.index[3] = hHigh * p.width + wHigh;
        s.weight[3] = lh * lw;
    }
    return s;
}

//! One column entry: m * (w1*v1 + w2*v2 + w3*v3 + w4*v4) on one channel plane, corners outside never read.
template <typename Acc, typename T>
LAPMASK_HD Acc deformSampleChannel(SamplePoint<Acc> const& s, T const* plane)
{
    Acc v = Acc(0);
    for (int k = 0; k < 4; ++k)
    {
        if (s.index[k] >= 0)
        {
            v += s.weight[k] * loadAs<Acc>(plane[s.index[k]]);
        }
    }
    return v * s.modulation;
}

//! Flat index of dy for (image n, offset group g, tap t, pixel q = oy*Wo + ox); dx is at + Ho*Wo.
LAPMASK_HD int64_t deformOffsetIndex(DeformConvParams const& p, int64_t n, int64_t g, int64_t tap, int64_t q)
{
    int64_t const taps = deformTaps(p);
    return ((n * p.offsetGroup + g) * 2 * taps + 2 * tap) * deformPixels(p) + q;
}

//! Flat index of the modulation for (image n, offset group g, tap t, pixel q).
LAPMASK_HD int64_t deformMaskIndex(DeformConvParams const& p, int64_t n, int64_t g, int64_t tap, int64_t q)
{
    return ((n * p.offsetGroup + g) * deformTaps(p) + tap) * deformPixels(p) + q;
}

//! Read offset and modulation of (n, g, tap, q) and build its sample point (the per-point math, both builds).
template <typename Acc, typename T>
LAPMASK_HD SamplePoint<Acc> deformLoadSamplePoint(
    DeformConvParams const& p, T const* offset, T const* mask, int64_t n, int64_t g, int64_t tap, int64_t q)
{
    int64_t const oi = deformOffsetIndex(p, n, g, tap, q);
    Acc const dy = loadAs<Acc>(offset[oi]);
    Acc const dx = loadAs<Acc>(offset[oi + deformPixels(p)]);
    Acc const m = p.hasMask ? loadAs<Acc>(mask[deformMaskIndex(p, n, g, tap, q)]) : Acc(1);
    int64_t const oy = q / p.outWidth;
    return deformSamplePoint<Acc>(p, tap, oy, q - oy * p.outWidth, dy, dx, m);
}

//! Channels per offset group and per convolution group.
LAPMASK_HD int64_t deformChannelsPerOffsetGroup(DeformConvParams const& p)
{
    return p.channels / p.offsetGroup;
}
LAPMASK_HD int64_t deformChannelsPerGroup(DeformConvParams const& p)
{
    return p.channels / p.group;
}
LAPMASK_HD int64_t deformOutChannelsPerGroup(DeformConvParams const& p)
{
    return p.outChannels / p.group;
}

} // namespace kernels
} // namespace lapmask
