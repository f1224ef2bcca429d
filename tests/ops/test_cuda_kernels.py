"""CUDA kernels of liblapmask_kernels against the float64 references and the CPU build (run on a GPU machine).

Skipped with a reason where torch sees no GPU (tests/conftest.py) or the library lacks the CUDA kernels.
"""
from __future__ import annotations

import pytest
import torch

from lapmask.ops import (
    dynamic_deform_filter,
    matrix_nms,
    matrix_nms_reference,
    modulated_deform_conv_reference,
    split_offset_mask,
)

pytestmark = pytest.mark.cuda


@pytest.fixture()
def gpu(clib):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU (torch.cuda.is_available() is False)")
    if not clib.has_cuda():
        pytest.skip(f"liblapmask_kernels has no CUDA kernels ({clib.build_info()}); build with nvcc on PATH")
    return clib


def _conv_inputs(B, C, H, W, N, k=3, stride=1, pad=1, dil=1, og=1, group=1, off_scale=2.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    Ho = (H + 2 * pad - dil * (k - 1) - 1) // stride + 1
    Wo = (W + 2 * pad - dil * (k - 1) - 1) // stride + 1
    return (torch.randn(B, C, H, W, generator=g, dtype=torch.float64),
            torch.randn(N, C // group, k, k, generator=g, dtype=torch.float64) / (C * k),
            torch.randn(B, og * 2 * k * k, Ho, Wo, generator=g, dtype=torch.float64) * off_scale,
            torch.rand(B, og * k * k, Ho, Wo, generator=g, dtype=torch.float64),
            torch.randn(N, generator=g, dtype=torch.float64))


CONV_CASES = [
    # B, C, H, W, N, kwargs: odd sizes, C*9 not a multiple of the 16-deep tile, N across the 64-row tile,
    # pixels not a multiple of 64, strides/dilation, offsets far outside
    (1, 3, 5, 7, 4, {}),
    (2, 5, 17, 23, 65, {}),
    (1, 64, 31, 45, 130, {}),
    (3, 7, 12, 9, 6, {"stride": 2, "pad": 0}),
    (1, 6, 14, 11, 5, {"dil": 2, "pad": 2}),
    (1, 8, 10, 10, 3, {"off_scale": 40.0}),
]


@pytest.mark.parametrize("B,C,H,W,N,kw", CONV_CASES)
def test_deform_conv_fp32(gpu, B, C, H, W, N, kw):
    x, w, off, mask, bias = _conv_inputs(B, C, H, W, N, seed=C + N, **kw)
    conv_kw = {"stride": kw.get("stride", 1), "padding": kw.get("pad", 1), "dilation": kw.get("dil", 1)}
    ref = modulated_deform_conv_reference(x, w, off, mask, bias, *conv_kw.values())
    out = gpu.deform_conv(*(t.float().cuda() for t in (x, w, off, mask, bias)), **conv_kw)
    assert out.is_cuda and out.dtype == torch.float32
    torch.testing.assert_close(out.cpu().double(), ref, rtol=1e-5, atol=1e-5)
    cpu = gpu.deform_conv(*(t.float() for t in (x, w, off, mask, bias)), **conv_kw)
    torch.testing.assert_close(out.cpu(), cpu, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("B,C,H,W,N,kw", CONV_CASES[:3])
def test_deform_conv_fp16(gpu, B, C, H, W, N, kw):
    x, w, off, mask, bias = (t.half() for t in _conv_inputs(B, C, H, W, N, seed=C, **kw))
    ref = modulated_deform_conv_reference(*(t.double() for t in (x, w, off, mask, bias)))
    out = gpu.deform_conv(*(t.cuda() for t in (x, w, off, mask, bias)))
    assert out.dtype == torch.float16
    err = (out.cpu().double() - ref).abs()
    assert (err <= ref.abs() * 2.0 ** -11 + 1e-4).all(), float(err.max())


@pytest.mark.parametrize("group,og", [(2, 1), (1, 2), (3, 3)])
def test_deform_conv_groups_match_cpu(gpu, group, og):
    x, w, off, mask, bias = (t.float() for t in _conv_inputs(2, 12, 9, 8, 6, og=og, group=group, seed=group + og))
    cpu = gpu.deform_conv(x, w, off, mask, bias, group=group, offset_group=og)
    out = gpu.deform_conv(*(t.cuda() for t in (x, w, off, mask, bias)), group=group, offset_group=og)
    torch.testing.assert_close(out.cpu(), cpu, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("B,N", [(1, 0), (0, 3)])
def test_deform_conv_empty(gpu, B, N):
    x, w, off, mask, _ = (t.float().cuda() for t in _conv_inputs(B, 4, 5, 6, N))
    assert gpu.deform_conv(x, w, off, mask).shape == (B, N, 5, 6)


def test_dynamic_filter_lapmask_size_on_a_side_stream(gpu):
    g = torch.Generator().manual_seed(1)
    feat = torch.randn(1, 64, 50, 76, generator=g)
    raw = torch.randn(1, 27, 50, 76, generator=g) * 2
    kernels = torch.randn(100, 576, generator=g) * 0.05
    fast = dynamic_deform_filter(feat, raw, kernels)
    off, mask = split_offset_mask(raw.cuda())
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        out = gpu.deform_conv(feat.cuda(), kernels.cuda().view(100, 64, 3, 3), off.contiguous(), mask.contiguous())
    stream.synchronize()
    torch.testing.assert_close(out[0].cpu(), fast, rtol=1e-4, atol=1e-4)


def _nms_inputs(K, H, W, classes, seed):
    g = torch.Generator().manual_seed(seed)
    base = (torch.rand(max(K // 3, 1), H, W, generator=g) > 0.6).float()
    masks = base[torch.randint(base.shape[0], (K,), generator=g)]
    masks = masks * (torch.rand(K, H, W, generator=g) > 0.1).float()  # near-duplicates: real decays
    scores = torch.sort(torch.rand(K, generator=g), descending=True).values
    labels = torch.randint(classes, (K,), generator=g, dtype=torch.int32)
    return masks, labels, scores


@pytest.mark.parametrize("K,classes", [(0, 1), (1, 1), (37, 1), (60, 5)])
@pytest.mark.parametrize("kernel", ["gaussian", "linear"])
def test_matrix_nms_matches_reference(gpu, K, classes, kernel):
    masks, labels, scores = _nms_inputs(K, 11, 13, classes, seed=K)
    ref = matrix_nms_reference(masks, labels, scores, kernel)
    out = gpu.matrix_nms(masks.cuda(), labels.cuda(), scores.cuda(), kernel)
    assert out.is_cuda and out.shape == (K,)
    torch.testing.assert_close(out.cpu().double(), ref, rtol=1e-6, atol=1e-7)


def test_matrix_nms_k500_storage_types_and_invalid(gpu):
    masks, labels, scores = _nms_inputs(500, 200, 304, 80, seed=500)
    scores[450:] = -1.0
    ref = matrix_nms(masks, labels, scores.double())
    cpu = gpu.matrix_nms(masks, labels, scores)
    for m in (masks, masks.half(), masks.to(torch.uint8), masks.bool()):
        out = gpu.matrix_nms(m.cuda(), labels.cuda(), scores.cuda()).cpu()
        torch.testing.assert_close(out[:450].double(), ref[:450], rtol=1e-6, atol=1e-7)
        assert torch.equal(out[450:], torch.full((50,), -1.0))
        torch.testing.assert_close(out, cpu, rtol=1e-6, atol=1e-7)


def test_mixed_devices_are_refused(gpu):
    x, w, off, mask, _ = (t.float() for t in _conv_inputs(1, 4, 5, 6, 2))
    with pytest.raises(ValueError, match="is on cpu"):
        gpu.deform_conv(x.cuda(), w, off.cuda(), mask.cuda())
    with pytest.raises(ValueError, match="float64"):
        gpu.deform_conv(*(t.double().cuda() for t in (x, w, off, mask)))
