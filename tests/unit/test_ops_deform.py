"""Deformable conv fast path vs the readable reference (float64): values and gradients; batched dynamic filter."""
import functools

import pytest
import torch
import torchvision

from lapmask.ops import (dynamic_deform_filter, modulated_deform_conv, modulated_deform_conv_reference,
                         split_offset_mask)

CASES = [(1, 3, 7, 9, 2), (2, 5, 1, 1, 3), (1, 4, 13, 4, 1), (1, 6, 8, 8, 0)]


def _inputs(B, C, H, W, N, far=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, C, H, W, generator=g, dtype=torch.float64)
    w = torch.randn(N, C, 3, 3, generator=g, dtype=torch.float64)
    off = torch.randn(B, 18, H, W, generator=g, dtype=torch.float64) * 2.5
    if far:  # offsets pointing well outside the image, both sides, and exactly onto the -1 / H borders
        off[:, 0::4] += 3 * H
        off[:, 1::4] -= 3 * W
        off[:, 2, 0, 0] = -1.0  # row -1 + ... exact border values are part of the rule
    m = torch.rand(B, 9, H, W, generator=g, dtype=torch.float64)
    return x, w, off, m


@pytest.mark.parametrize("far", [False, True])
@pytest.mark.parametrize("shape", CASES)
def test_fast_equals_reference_float64(shape, far):
    x, w, off, m = _inputs(*shape, far=far)
    ref = modulated_deform_conv_reference(x, w, off, m)
    fast = modulated_deform_conv(x, w, off, m)
    assert fast.shape == ref.shape
    assert torch.allclose(fast, ref, atol=1e-12, rtol=0)


def test_reference_equals_torchvision():
    x, w, off, m = _inputs(2, 3, 6, 7, 4)
    b = torch.randn(4, dtype=torch.float64)
    ref = modulated_deform_conv_reference(x, w, off, m, b)
    tv = torchvision.ops.deform_conv2d(x, off, w, b, padding=1, mask=m)
    assert torch.allclose(ref, tv, atol=1e-12)


def test_zero_modulation_gives_zero():
    x, w, off, m = _inputs(1, 3, 5, 5, 2)
    assert modulated_deform_conv(x, w, off, torch.zeros_like(m)).abs().max() == 0


def test_zero_offsets_half_modulation_is_half_conv():
    # Untrained filter: zero offsets, sigmoid(0) = 0.5 -> 0.5 x plain 3x3 conv (spec 4.3).
    x, w, off, m = _inputs(1, 3, 6, 5, 2)
    out = modulated_deform_conv(x, w, torch.zeros_like(off), torch.full_like(m, 0.5))
    assert torch.allclose(out, 0.5 * torch.nn.functional.conv2d(x, w, padding=1), atol=1e-12)


@pytest.mark.parametrize("method", ["pixel", "grid_sample"])  # grid_sample: the form training uses (model/loss.py)
def test_gradients_match_reference(method):
    x, w, off, m = _inputs(1, 2, 5, 6, 3, seed=3)
    off = off * 0.3 + 0.37  # keep away from integer sample points where bilinear is not differentiable
    grads = []
    for fn in (modulated_deform_conv_reference, functools.partial(modulated_deform_conv, method=method)):
        ts = [t.clone().requires_grad_(True) for t in (x, w, off, m)]
        (fn(*ts) ** 2).sum().backward()
        grads.append([t.grad for t in ts])
    for a, b in zip(*grads):
        assert torch.allclose(a, b, atol=1e-10)
    ts = [t.clone().requires_grad_(True) for t in (x, w, off, m)]
    assert torch.autograd.gradcheck(lambda *a: modulated_deform_conv(*a, method=method), ts, atol=1e-6)


def test_batched_dynamic_filter_equals_per_instance_loop():
    C, H, W, N = 16, 9, 11, 7
    g = torch.Generator().manual_seed(1)
    feat = torch.randn(1, C, H, W, generator=g, dtype=torch.float64)
    om = torch.randn(1, 27, H, W, generator=g, dtype=torch.float64)
    kernels = torch.randn(N, C * 9, generator=g, dtype=torch.float64)
    batched = dynamic_deform_filter(feat, om, kernels)
    off, m = split_offset_mask(om)
    loop = torch.cat([modulated_deform_conv_reference(feat, kernels[i].view(1, C, 3, 3), off, m)[0]
                      for i in range(N)])
    assert batched.shape == (N, H, W)
    assert torch.allclose(batched, loop, atol=1e-12)
    assert dynamic_deform_filter(feat, om, kernels[:0]).shape == (0, H, W)


def test_offset_layout_is_dy_dx_interleaved():
    # A pure +1 row shift on every tap equals sampling the image one row down (channel 2t = dy).
    x = torch.arange(30, dtype=torch.float64).view(1, 1, 5, 6)
    w = torch.zeros(1, 1, 3, 3, dtype=torch.float64)
    w[0, 0, 1, 1] = 1  # centre tap only
    off = torch.zeros(1, 18, 5, 6, dtype=torch.float64)
    off[:, 8] = 1.0  # tap 4 (centre): dy
    out = modulated_deform_conv(x, w, off, torch.ones(1, 9, 5, 6, dtype=torch.float64))
    assert torch.allclose(out[0, 0, :4], x[0, 0, 1:], atol=1e-12)
    assert out[0, 0, 4].abs().max() == 0  # row 5 is outside the image


def test_pixel_method_is_bit_identical_to_reference_float32():
    # The eager default reproduces the DCN kernel arithmetic exactly, so official outputs reproduce exactly.
    x, w, off, m = (t.float() for t in _inputs(1, 16, 11, 13, 5, far=True, seed=7))
    assert torch.equal(modulated_deform_conv(x, w, off, m), modulated_deform_conv_reference(x, w, off, m))


@pytest.mark.parametrize("shape", CASES)
def test_grid_sample_method_equals_reference_float64(shape):
    x, w, off, m = _inputs(*shape, far=True)
    ref = modulated_deform_conv_reference(x, w, off, m)
    assert torch.allclose(modulated_deform_conv(x, w, off, m, method="grid_sample"), ref, atol=1e-12)
    with pytest.raises(ValueError, match="unknown deformable sampling method"):
        modulated_deform_conv(x, w, off, m, method="bogus")
