"""Fast modulated deformable convolution: sample once (deformable im2col via ``grid_sample``), then one matmul.

The dynamic filter of LapMask (spec 4.3) shares the offset/modulation map across all instances, so the sampled
columns ``[C*9, H*W]`` are computed once per Laplacian level and every instance is one row of the weight
matrix: ``R = W (N x C*9) @ columns`` -- no loop over instances. This is also the ``gridsample`` export form.

``grid_sample`` (bilinear, zeros padding) reproduces the DCN sampling rule exactly: each out-of-image corner
contributes 0 and points at or beyond -1 / H get weight 0 everywhere. We normalise with align_corners=False,
g = (2p + 1) / size - 1, which is exact for every size including 1 (align_corners=True needs size > 1).
Sampling coordinates are always float32 or wider, even for fp16 features.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def deform_sampling_grid(offset: Tensor, in_hw: tuple[int, int], kernel: tuple[int, int] = (3, 3), stride: int = 1,
                         padding: int = 1, dilation: int = 1) -> Tensor:
    """Normalised ``grid_sample`` grid for all taps.

    Args:
        offset (Tensor[B, 2*T, Ho, Wo]): (dy, dx) per tap t = a*kw + b.
        in_hw: (H, W) of the sampled input.
    Returns:
        Tensor[B, T*Ho, Wo, 2]: (gx, gy) in [-1, 1] units (align_corners=False), float32 or wider.
    """
    B, two_t, Ho, Wo = offset.shape
    kh, kw = kernel
    T = kh * kw
    if two_t != 2 * T:
        raise ValueError(f"offset has {two_t} channels, expected {2 * T} for a {kh}x{kw} kernel")
    H, W = in_hw
    dt = torch.promote_types(offset.dtype, torch.float32)
    off = offset.to(dt).view(B, T, 2, Ho, Wo)
    taps = torch.arange(T, device=offset.device)
    tap_y = (taps // kw).to(dt) * dilation  # [T]
    tap_x = (taps % kw).to(dt) * dilation
    base_y = torch.arange(Ho, device=offset.device, dtype=dt) * stride - padding  # [Ho]
    base_x = torch.arange(Wo, device=offset.device, dtype=dt) * stride - padding
    py = base_y.view(1, 1, Ho, 1) + tap_y.view(1, T, 1, 1) + off[:, :, 0]  # [B, T, Ho, Wo]
    px = base_x.view(1, 1, 1, Wo) + tap_x.view(1, T, 1, 1) + off[:, :, 1]
    gy = (2 * py + 1) / H - 1
    gx = (2 * px + 1) / W - 1
    return torch.stack((gx, gy), dim=-1).view(B, T * Ho, Wo, 2)


def deform_columns(x: Tensor, offset: Tensor, mask: Tensor, kernel: tuple[int, int] = (3, 3), stride: int = 1,
                   padding: int = 1, dilation: int = 1) -> Tensor:
    """Deformable im2col with modulation.

    Args:
        x (Tensor[B, C, H, W]).
        offset (Tensor[B, 2*T, Ho, Wo]): (dy, dx) interleaved per tap.
        mask (Tensor[B, T, Ho, Wo]): modulation (after sigmoid).
    Returns:
        Tensor[B, C*T, Ho*Wo] in x's dtype; row index c*T + t, matching ``weight.reshape(N, C*T)``.
    """
    B, C, H, W = x.shape
    T = kernel[0] * kernel[1]
    Ho, Wo = offset.shape[-2:]
    if mask.shape != (B, T, Ho, Wo):
        raise ValueError(f"mask shape {tuple(mask.shape)} != {(B, T, Ho, Wo)}")
    grid = deform_sampling_grid(offset, (H, W), kernel, stride, padding, dilation)
    xs = x.to(grid.dtype)
    cols = F.grid_sample(xs, grid, mode="bilinear", padding_mode="zeros", align_corners=False)  # [B, C, T*Ho, Wo]
    cols = cols.view(B, C, T, Ho, Wo) * mask.to(grid.dtype).view(B, 1, T, Ho, Wo)
    return cols.reshape(B, C * T, Ho * Wo).to(x.dtype)


def modulated_deform_conv(x: Tensor, weight: Tensor, offset: Tensor, mask: Tensor, bias: Tensor | None = None,
                          stride: int = 1, padding: int = 1, dilation: int = 1) -> Tensor:
    """Modulated deformable conv (groups = deformable groups = 1); same contract as the reference.

    Args:
        x (Tensor[B, C, H, W]); weight (Tensor[N, C, kh, kw]); offset (Tensor[B, 2*kh*kw, Ho, Wo]);
        mask (Tensor[B, kh*kw, Ho, Wo]) after sigmoid; bias (Tensor[N] | None).
    Returns:
        Tensor[B, N, Ho, Wo].
    """
    N, C, kh, kw = weight.shape
    if x.shape[1] != C:
        raise ValueError(f"weight has {C} input channels, input has {x.shape[1]}")
    Ho, Wo = offset.shape[-2:]
    cols = deform_columns(x, offset, mask, (kh, kw), stride, padding, dilation)  # [B, C*T, P]
    out = torch.matmul(weight.reshape(N, C * kh * kw).to(cols.dtype), cols)  # [B, N, P]
    if bias is not None:
        out = out + bias.view(1, N, 1).to(out.dtype)
    return out.view(x.shape[0], N, Ho, Wo)


def split_offset_mask(offset_mask: Tensor) -> tuple[Tensor, Tensor]:
    """Split the raw 27-channel offset conv output: channels 0-17 are offsets (original order), 18-26 -> sigmoid.

    Args:
        offset_mask (Tensor[B, 27, H, W]).
    Returns:
        offset (Tensor[B, 18, H, W]), mask (Tensor[B, 9, H, W]).
    """
    return offset_mask[:, :18], offset_mask[:, 18:27].sigmoid()


def dynamic_deform_filter(feature: Tensor, offset_mask: Tensor, kernels: Tensor) -> Tensor:
    """LapMask's DynamicDeformConv for one image and N instances (spec 4.3): sample once, one matmul.

    Args:
        feature (Tensor[1, C, H, W]): F_k of one Laplacian level.
        offset_mask (Tensor[1, 27, H, W]): raw output of ``offset_mask_conv_lapk``.
        kernels (Tensor[N, C*9]): per-instance 3x3 filters, W[n, c, a, b] = kernels[n, 9c + 3a + b].
    Returns:
        Tensor[N, H, W]: per-instance responses (no bias).
    """
    offset, mask = split_offset_mask(offset_mask)
    cols = deform_columns(feature, offset, mask)[0]  # [C*9, H*W]
    H, W = feature.shape[-2:]
    return (kernels.to(cols.dtype) @ cols).view(kernels.shape[0], H, W)
