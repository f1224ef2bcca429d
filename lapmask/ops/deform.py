"""Fast modulated deformable convolution: sample once (deformable im2col), then one matmul.

The dynamic filter of LapMask (spec 4.3) shares the offset/modulation map across all instances, so the sampled
columns ``[C*9, H*W]`` are computed once per Laplacian level and every instance is one row of the weight
matrix: ``R = W (N x C*9) @ columns`` -- no loop over instances.

Two sampling methods compute the same function:

* ``"pixel"`` (default for every eager path): vectorised gathers in pixel coordinates with the DCN kernel's own
  arithmetic and operation order (h = (h_in + i*dil) + dy; corner weights hh*hw, hh*lw, lh*hw, lh*lw summed
  left to right; times the modulation). It is bit-identical to ``modulated_deform_conv_reference``, which mirrors
  detectron2's ``modulated_deformable_im2col`` kernel, so converted official checkpoints reproduce the official
  outputs without float drift at the 0.2 / 0.55 mask thresholds.
* ``"grid_sample"``: ``F.grid_sample`` (bilinear, zeros padding) -- the ONNX ``gridsample`` export form. It follows
  the same sampling rule (each out-of-image corner contributes 0; points at or beyond -1 / H get weight 0) but
  normalises coordinates, g = (2p + 1) / size - 1 (align_corners=False: exact for every size including 1), which
  costs ~1e-7 relative rounding.

Sampling coordinates are always float32 or wider, even for fp16 features.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lapmask.ops.deform_ref import bilinear_sample_reference


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


def _pixel_columns(x: Tensor, offset: Tensor, mask: Tensor, kernel: tuple[int, int], stride: int, padding: int,
                   dilation: int) -> Tensor:
    """Deformable im2col in pixel coordinates with the DCN kernel's arithmetic. Returns Tensor[B, C, T, Ho*Wo].

    The sampling is the readable reference's own ``bilinear_sample_reference``, called once for all taps of an
    image (the reference loops over taps), so the two agree bit for bit by construction.
    """
    B, C, H, W = x.shape
    kh, kw = kernel
    T = kh * kw
    Ho, Wo = offset.shape[-2:]
    dt = torch.promote_types(offset.dtype, torch.float32)
    if B == 0:
        return x.new_zeros((0, C, T, Ho * Wo), dtype=dt)
    off = offset.to(dt).view(B, T, 2, Ho, Wo)
    taps = torch.arange(T, device=x.device)
    tap_y = ((taps // kw) * dilation).view(1, T, 1, 1)
    tap_x = ((taps % kw) * dilation).view(1, T, 1, 1)
    base_y = (torch.arange(Ho, device=x.device) * stride - padding).view(1, 1, Ho, 1)
    base_x = (torch.arange(Wo, device=x.device) * stride - padding).view(1, 1, 1, Wo)
    h = (base_y + tap_y).to(dt) + off[:, :, 0]  # integer part exact, one rounding for + dy (as the kernel)
    w = (base_x + tap_x).to(dt) + off[:, :, 1]
    cols = torch.stack([bilinear_sample_reference(x[b].to(dt), h[b].reshape(-1), w[b].reshape(-1))
                        for b in range(B)])  # [B, C, T*Ho*Wo]; a loop over images, never over instances
    return cols.view(B, C, T, Ho * Wo) * mask.to(dt).view(B, 1, T, Ho * Wo)


def deform_columns(x: Tensor, offset: Tensor, mask: Tensor, kernel: tuple[int, int] = (3, 3), stride: int = 1,
                   padding: int = 1, dilation: int = 1, method: str = "pixel") -> Tensor:
    """Deformable im2col with modulation.

    Args:
        x (Tensor[B, C, H, W]).
        offset (Tensor[B, 2*T, Ho, Wo]): (dy, dx) interleaved per tap.
        mask (Tensor[B, T, Ho, Wo]): modulation (after sigmoid).
        method: "pixel" (DCN arithmetic) or "grid_sample" (the exportable form); see the module docstring.
    Returns:
        Tensor[B, C*T, Ho*Wo] in x's dtype; row index c*T + t, matching ``weight.reshape(N, C*T)``.
    """
    B, C, H, W = x.shape
    T = kernel[0] * kernel[1]
    Ho, Wo = offset.shape[-2:]
    if mask.shape != (B, T, Ho, Wo):
        raise ValueError(f"mask shape {tuple(mask.shape)} != {(B, T, Ho, Wo)}")
    if method == "pixel":
        cols = _pixel_columns(x, offset, mask, kernel, stride, padding, dilation)
        return cols.reshape(B, C * T, Ho * Wo).to(x.dtype)
    if method != "grid_sample":
        raise ValueError(f"unknown deformable sampling method {method!r}; use 'pixel' or 'grid_sample'")
    grid = deform_sampling_grid(offset, (H, W), kernel, stride, padding, dilation)
    xs = x.to(grid.dtype)
    cols = F.grid_sample(xs, grid, mode="bilinear", padding_mode="zeros", align_corners=False)  # [B, C, T*Ho, Wo]
    cols = cols.view(B, C, T, Ho, Wo) * mask.to(grid.dtype).view(B, 1, T, Ho, Wo)
    return cols.reshape(B, C * T, Ho * Wo).to(x.dtype)


def modulated_deform_conv(x: Tensor, weight: Tensor, offset: Tensor, mask: Tensor, bias: Tensor | None = None,
                          stride: int = 1, padding: int = 1, dilation: int = 1, method: str = "pixel") -> Tensor:
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
    cols = deform_columns(x, offset, mask, (kh, kw), stride, padding, dilation, method)  # [B, C*T, P]
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


def dynamic_deform_filter(feature: Tensor, offset_mask: Tensor, kernels: Tensor, method: str = "pixel") -> Tensor:
    """LapMask's DynamicDeformConv for one image and N instances (spec 4.3): sample once, one matmul.

    Args:
        feature (Tensor[1, C, H, W]): F_k of one Laplacian level.
        offset_mask (Tensor[1, 27, H, W]): raw output of ``offset_mask_conv_lapk``.
        kernels (Tensor[N, C*9]): per-instance 3x3 filters, W[n, c, a, b] = kernels[n, 9c + 3a + b].
        method: "pixel" (default) or "grid_sample" (the ONNX gridsample form).
    Returns:
        Tensor[N, H, W]: per-instance responses (no bias).
    """
    offset, mask = split_offset_mask(offset_mask)
    cols = deform_columns(feature, offset, mask, method=method)[0]  # [C*9, H*W]
    return filter_columns(cols, kernels, tuple(feature.shape[-2:]))


def filter_columns(cols: Tensor, kernels: Tensor, hw: tuple[int, int]) -> Tensor:
    """The dynamic filter's second half: per-instance responses from one image's sampled columns.

    Args:
        cols (Tensor[C*9, H*W]): ``deform_columns(...)[b]`` of the image.
        kernels (Tensor[N, C*9]): per-instance 3x3 filters (row layout as ``dynamic_deform_filter``).
        hw: (H, W) of the sampled feature.
    Returns:
        Tensor[N, H, W].
    """
    return (kernels.to(cols.dtype) @ cols).view(kernels.shape[0], *hw)
