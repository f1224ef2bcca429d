"""CPU build of DynamicDeformConv (liblapmask_kernels) against the readable float64 reference (spec 4.3)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from lapmask.ops import dynamic_deform_filter, modulated_deform_conv_reference, split_offset_mask


def _inputs(B: int, C: int, H: int, W: int, N: int, off_scale: float = 1.5, k: int = 3, stride: int = 1,
            pad: int = 1, dil: int = 1, og: int = 1, group: int = 1, seed: int = 0,
            dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    Ho = (H + 2 * pad - dil * (k - 1) - 1) // stride + 1
    Wo = (W + 2 * pad - dil * (k - 1) - 1) // stride + 1
    x = torch.randn(B, C, H, W, generator=g, dtype=dtype)
    w = torch.randn(N, C // group, k, k, generator=g, dtype=dtype) / (C * k)
    off = torch.randn(B, og * 2 * k * k, Ho, Wo, generator=g, dtype=dtype) * off_scale
    mask = torch.rand(B, og * k * k, Ho, Wo, generator=g, dtype=dtype)
    bias = torch.randn(N, generator=g, dtype=dtype)
    return x, w, off, mask, bias


def _grouped_reference(x: Tensor, w: Tensor, off: Tensor, mask: Tensor | None, bias: Tensor | None, stride: int,
                       pad: int, dil: int, group: int, og: int) -> Tensor:
    """Grouped / offset-grouped conv from the ungrouped reference: one input channel at a time."""
    B, C = x.shape[:2]
    N, kh, kw = w.shape[0], w.shape[2], w.shape[3]
    T = kh * kw
    cg, ng, cog = C // group, N // group, C // og
    if mask is None:
        mask = torch.ones(B, og * T, *off.shape[-2:], dtype=x.dtype)
    out = None
    for c in range(C):
        gi, o = c // cg, c // cog
        rows = slice(gi * ng, (gi + 1) * ng)
        part = modulated_deform_conv_reference(x[:, c:c + 1], w[rows, c - gi * cg:c - gi * cg + 1],
                                               off[:, o * 2 * T:(o + 1) * 2 * T], mask[:, o * T:(o + 1) * T],
                                               None, stride, pad, dil)
        if out is None:
            out = torch.zeros(B, N, *part.shape[-2:], dtype=x.dtype)
        out[:, rows] += part
    return out if bias is None else out + bias.view(1, N, 1, 1)


@pytest.mark.parametrize("B,C,H,W,N,off_scale", [
    (1, 3, 5, 7, 4, 1.0),      # odd sizes, C not a multiple of 4
    (2, 5, 1, 1, 3, 0.5),      # 1x1 image: everything near the border
    (1, 7, 9, 13, 1, 30.0),    # offsets far outside the image
    (3, 6, 6, 4, 11, 2.0),     # batch 3
    (1, 64, 12, 19, 37, 1.5),  # LapMask's C = 64
])
def test_float64_matches_reference(clib, B, C, H, W, N, off_scale):
    x, w, off, mask, bias = _inputs(B, C, H, W, N, off_scale, seed=B * 100 + C)
    ref = modulated_deform_conv_reference(x, w, off, mask, bias)
    out = clib.deform_conv(x, w, off, mask, bias)
    assert out.shape == ref.shape and out.dtype == torch.float64
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("stride,pad,dil,k", [(2, 0, 1, 3), (1, 2, 2, 3), (3, 1, 1, 3), (1, 0, 1, 1), (2, 2, 1, 5)])
def test_stride_padding_dilation(clib, stride, pad, dil, k):
    x, w, off, mask, bias = _inputs(2, 3, 11, 10, 5, 2.0, k, stride, pad, dil, seed=stride * 10 + pad + dil)
    ref = modulated_deform_conv_reference(x, w, off, mask, bias, stride, pad, dil)
    out = clib.deform_conv(x, w, off, mask, bias, stride=stride, padding=pad, dilation=dil)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)


def test_asymmetric_padding_equals_zero_padded_input(clib):
    # The DCN boundary rule makes padding equivalent to zero-padding the input (outside corners contribute 0).
    top, left, bottom, right = 2, 0, 1, 3
    x, w, _, _, bias = _inputs(1, 4, 7, 6, 3, seed=5)
    xp = F.pad(x, (left, right, top, bottom))
    Ho, Wo = xp.shape[2] - 2, xp.shape[3] - 2
    g = torch.Generator().manual_seed(6)
    off = torch.randn(1, 18, Ho, Wo, generator=g, dtype=torch.float64) * 0.7
    mask = torch.rand(1, 9, Ho, Wo, generator=g, dtype=torch.float64)
    ref = modulated_deform_conv_reference(xp, w, off, mask, bias, 1, 0, 1)
    out = clib.deform_conv(x, w, off, mask, bias, padding=(top, left, bottom, right))
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("group,og", [(2, 1), (1, 2), (2, 4), (3, 3)])
def test_group_and_offset_group(clib, group, og):
    C, N = 12, 6
    x, w, off, mask, bias = _inputs(2, C, 6, 7, N, 1.5, og=og, group=group, seed=group * 7 + og)
    ref = _grouped_reference(x, w, off, mask, bias, 1, 1, 1, group, og)
    out = clib.deform_conv(x, w, off, mask, bias, group=group, offset_group=og)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)


def test_boundary_coordinates(clib):
    # Points exactly at h = -1, w = -1, h = H, w = W and just inside: the strict inequalities of the DCN rule.
    H, W = 4, 5
    x = torch.arange(1, H * W + 1, dtype=torch.float64).view(1, 1, H, W)
    w = torch.ones(1, 1, 1, 1, dtype=torch.float64)
    vals = torch.tensor([-1.0, -0.999, -0.5, 0.0, 2.25, H - 1.0, H - 0.5, H - 1e-9, float(H), H + 0.5])
    for dy in vals:
        for dx in (-1.0, -0.25, W - 1.0, W - 0.75, float(W)):
            off = torch.zeros(1, 2, H, W, dtype=torch.float64)
            off[:, 0] = dy - torch.arange(H, dtype=torch.float64).view(H, 1)  # every pixel samples (dy, dx)
            off[:, 1] = dx - torch.arange(W, dtype=torch.float64).view(1, W)
            mask = torch.ones(1, 1, H, W, dtype=torch.float64)
            ref = modulated_deform_conv_reference(x, w, off, mask, None, 1, 0, 1)
            out = clib.deform_conv(x, w, off, mask, None, padding=0)
            torch.testing.assert_close(out, ref, rtol=0, atol=1e-12, msg=f"dy={dy} dx={dx}")


def test_zero_modulation_gives_bias(clib):
    x, w, off, mask, bias = _inputs(2, 5, 6, 7, 4, seed=3)
    out = clib.deform_conv(x, w, off, torch.zeros_like(mask), bias)
    assert torch.equal(out, bias.view(1, -1, 1, 1).expand_as(out))


def test_no_mask_is_modulation_one(clib):
    x, w, off, mask, bias = _inputs(1, 3, 5, 6, 2, seed=4)
    torch.testing.assert_close(clib.deform_conv(x, w, off, None, bias),
                               clib.deform_conv(x, w, off, torch.ones_like(mask), bias), rtol=0, atol=0)


@pytest.mark.parametrize("B,N", [(1, 0), (0, 3), (0, 0)])
def test_empty_batch_or_instances(clib, B, N):
    x, w, off, mask, bias = _inputs(B, 4, 5, 6, N, seed=1)
    out = clib.deform_conv(x, w, off, mask, bias)
    assert out.shape == (B, N, 5, 6)


def test_float32_matches_reference(clib):
    x, w, off, mask, bias = _inputs(2, 19, 13, 17, 9, 3.0, seed=11)
    ref = modulated_deform_conv_reference(x, w, off, mask, bias)
    out = clib.deform_conv(*(t.float() for t in (x, w, off, mask, bias)))
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-5)


def test_float16_storage_fp32_math(clib):
    # Reference on the fp16-rounded inputs in float64: the only differences left are fp32 accumulation and the
    # single final rounding to fp16 (OPS.md fp16 policy).
    x, w, off, mask, bias = (t.half() for t in _inputs(1, 64, 9, 14, 21, 2.0, seed=12))
    ref = modulated_deform_conv_reference(*(t.double() for t in (x, w, off, mask, bias)))
    out = clib.deform_conv(x, w, off, mask, bias)
    assert out.dtype == torch.float16
    err = (out.double() - ref).abs()
    assert (err <= ref.abs() * 2.0 ** -11 + 1e-4).all(), float(err.max())
    # and it is the fp32 result rounded once
    out32 = clib.deform_conv(*(t.float() for t in (x, w, off, mask, bias)))
    assert (out.float() - out32.half().float()).abs().max() <= 2.0 ** -10 * out32.abs().max()


def test_dynamic_filter_matches_fast_path(clib):
    # LapMask usage (spec 4.3): F [1, 64, H, W], raw offsets [1, 27, H, W], kernels [N, 576], padding 1, no bias.
    g = torch.Generator().manual_seed(21)
    feat = torch.randn(1, 64, 25, 38, generator=g)
    raw = torch.randn(1, 27, 25, 38, generator=g) * 2
    kernels = torch.randn(40, 64 * 9, generator=g) * 0.05
    fast = dynamic_deform_filter(feat, raw, kernels)
    off, mask = split_offset_mask(raw)
    out = clib.deform_conv(feat, kernels.view(40, 64, 3, 3), off.contiguous(), mask.contiguous())
    torch.testing.assert_close(out[0], fast, rtol=1e-4, atol=1e-4)
