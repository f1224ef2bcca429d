"""Point NMS on category heat maps (spec 6 step 1, official ``utils.point_nms``)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def point_nms(heat: Tensor) -> Tensor:
    """Keep a cell only where it equals the 2x2 max-pool (stride 1, pad 1, last row/column dropped).

    Equivalent: a cell survives iff it is >= its top, left and top-left neighbours (ties survive).

    Args:
        heat (Tensor[B, C, S, S]): sigmoid scores.
    Returns:
        Tensor[B, C, S, S]: heat where kept, 0 elsewhere.
    """
    hmax = F.max_pool2d(heat, (2, 2), stride=1, padding=1)[:, :, :-1, :-1]
    return heat * (hmax == heat).to(heat.dtype)


def point_nms_reference(heat: Tensor) -> Tensor:
    """Plain-loop reference of ``point_nms`` (readable, slow)."""
    out = heat.clone()
    B, C, H, W = heat.shape
    for i in range(H):
        for j in range(W):
            v = heat[:, :, i, j]
            keep = torch.ones_like(v, dtype=torch.bool)
            for di, dj in ((-1, 0), (0, -1), (-1, -1)):
                if i + di >= 0 and j + dj >= 0:
                    keep &= v >= heat[:, :, i + di, j + dj]
            out[:, :, i, j] = torch.where(keep, v, torch.zeros_like(v))
    return out
