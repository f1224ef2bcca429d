"""Laplacian pyramid helpers shared by training and inference (spec 4.2, 4.4)."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def up2(x: Tensor) -> Tensor:
    """Bilinear x2 upsampling, align_corners=False (the official ``F.interpolate(scale_factor=2)``).

    Args:
        x (Tensor[..., C, H, W]) with 4 dims.
    Returns:
        Tensor[..., C, 2H, 2W].
    """
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


def down2(x: Tensor) -> Tensor:
    """Bilinear x0.5 (align_corners=False) on even sizes, written as the equal 2x2 average pool (spec 4.2).

    Args:
        x (Tensor[B, C, H, W]) with H, W even.
    Returns:
        Tensor[B, C, H/2, W/2].
    """
    if x.shape[-1] % 2 or x.shape[-2] % 2:
        raise ValueError(f"down2 needs even sizes, got {tuple(x.shape[-2:])}; pad the input to a multiple of 32")
    return F.avg_pool2d(x, 2, 2)


def reconstruct(r1: Tensor, r2: Tensor, r3: Tensor) -> Tensor:
    """Mask logits from the three Laplacian responses: M = R1 + up2(R2 + up2(R3)) (spec 4.4).

    Args:
        r1 (Tensor[N, H, W]) stride 4; r2 (Tensor[N, H/2, W/2]) stride 8; r3 (Tensor[N, H/4, W/4]) stride 16.
    Returns:
        Tensor[N, H, W]: instance mask logits at stride 4 (apply sigmoid afterwards).
    """
    if r1.shape[0] == 0:
        return r1
    x = r2 + up2(r3.unsqueeze(0)).squeeze(0)
    return r1 + up2(x.unsqueeze(0)).squeeze(0)
