"""Readable reference for modulated deformable convolution (DCNv2), float64-capable.

This follows detectron2's ``modulated_deformable_im2col_gpu_kernel`` rule line by line (spec 4.3), written
with explicit per-corner bilinear weights so it can be read against the formula:

    out[b, n, y, x] = sum_c sum_t W[n, c, t] * m_t(y, x) * B(X[b, c], py_t + dy_t(y, x), px_t + dx_t(y, x))

with py_t = y*stride - pad + a*dil, px_t = x*stride - pad + b*dil for tap t = a*kw + b, offset channels
(2t, 2t+1) = (dy_t, dx_t) (interleaved per tap), and B the bilinear sample in pixel-index coordinates that is 0
when the point is outside -1 < h < H, -1 < w < W, with each out-of-image corner contributing 0.

It is differentiable by autograd (gradients w.r.t. input, weight, offset and mask) and slow; the fast path in
``lapmask.ops.deform`` is tested against it.
"""
from __future__ import annotations

import torch
from torch import Tensor


def bilinear_sample_reference(img: Tensor, h: Tensor, w: Tensor) -> Tensor:
    """Sample ``img`` at fractional pixel positions with the DCN rule.

    Args:
        img (Tensor[C, H, W]): the image.
        h, w (Tensor[P]): row and column coordinates in pixel-index units.
    Returns:
        Tensor[C, P]: samples; 0 where the point is outside -1 < h < H, -1 < w < W.
    """
    C, H, W = img.shape
    inside = (h > -1) & (w > -1) & (h < H) & (w < W)
    h_low = torch.floor(h)
    w_low = torch.floor(w)
    lh = h - h_low
    lw = w - w_low
    hh = 1 - lh
    hw = 1 - lw
    h_low = h_low.long()
    w_low = w_low.long()
    h_high = h_low + 1
    w_high = w_low + 1
    out = img.new_zeros(C, h.numel())
    for hi, wi, wt in ((h_low, w_low, hh * hw), (h_low, w_high, hh * lw), (h_high, w_low, lh * hw),
                       (h_high, w_high, lh * lw)):
        ok = inside & (hi >= 0) & (hi <= H - 1) & (wi >= 0) & (wi <= W - 1)
        v = img[:, hi.clamp(0, H - 1), wi.clamp(0, W - 1)]  # [C, P]
        out = out + torch.where(ok, wt, torch.zeros_like(wt)) * v
    return out


def modulated_deform_conv_reference(
    x: Tensor,
    weight: Tensor,
    offset: Tensor,
    mask: Tensor,
    bias: Tensor | None = None,
    stride: int = 1,
    padding: int = 1,
    dilation: int = 1,
) -> Tensor:
    """Modulated deformable convolution, groups = deformable groups = 1.

    Args:
        x (Tensor[B, C, H, W]): input.
        weight (Tensor[N, C, kh, kw]): filters (a runtime tensor for the dynamic filter).
        offset (Tensor[B, 2*kh*kw, Ho, Wo]): (dy, dx) interleaved per tap.
        mask (Tensor[B, kh*kw, Ho, Wo]): modulation, already passed through sigmoid.
        bias (Tensor[N] | None).
    Returns:
        Tensor[B, N, Ho, Wo].
    """
    B, C, H, W = x.shape
    N, Cw, kh, kw = weight.shape
    if Cw != C:
        raise ValueError(f"weight has {Cw} input channels, input has {C}")
    Ho = (H + 2 * padding - dilation * (kh - 1) - 1) // stride + 1
    Wo = (W + 2 * padding - dilation * (kw - 1) - 1) // stride + 1
    if offset.shape != (B, 2 * kh * kw, Ho, Wo) or mask.shape != (B, kh * kw, Ho, Wo):
        raise ValueError(f"offset {tuple(offset.shape)} / mask {tuple(mask.shape)} do not match output {Ho}x{Wo}")
    ys = (torch.arange(Ho, dtype=x.dtype, device=x.device) * stride - padding).view(Ho, 1).expand(Ho, Wo)
    xs = (torch.arange(Wo, dtype=x.dtype, device=x.device) * stride - padding).view(1, Wo).expand(Ho, Wo)
    outs = []
    for b in range(B):
        cols = []  # one [C, Ho*Wo] block per tap; row index of the stacked matrix is c*kh*kw + t
        for a in range(kh):
            for bb in range(kw):
                t = a * kw + bb
                h = (ys + a * dilation + offset[b, 2 * t]).reshape(-1)
                w = (xs + bb * dilation + offset[b, 2 * t + 1]).reshape(-1)
                cols.append(bilinear_sample_reference(x[b], h, w) * mask[b, t].reshape(1, -1))
        columns = torch.stack(cols, dim=1).reshape(C * kh * kw, Ho * Wo)  # [C*T, P], row = c*T + t
        out = weight.reshape(N, C * kh * kw) @ columns
        if bias is not None:
            out = out + bias.view(N, 1)
        outs.append(out.view(N, Ho, Wo))
    return torch.stack(outs)
