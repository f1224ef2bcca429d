"""Building blocks of the LapMask heads (spec 3.2): Conv, Bottleneck, the CSP ConvBlock, conv+GN+SiLU units.

Attribute names mirror the official ``utils.Conv`` / ``Bottleneck`` / ``ConvBlock`` so that official state_dict
keys load without renaming.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


class Conv(nn.Module):
    """Conv2d k x k (padding k//2, no bias) -> GroupNorm(32) -> SiLU; attributes ``conv``, ``norm``, ``act``."""

    def __init__(self, c_in: int, c_out: int, k: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False)
        self.norm = nn.GroupNorm(32, c_out)
        self.act = nn.SiLU()
        nn.init.normal_(self.conv.weight, std=0.01)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.norm(self.conv(x)))


class Bottleneck(nn.Module):
    """x + cv2(cv1(x)) with cv1 1x1 and cv2 3x3 (expansion 1.0, residual always on since in == out)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.cv1 = Conv(c, c, 1)
        self.cv2 = Conv(c, c, 3)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.cv2(self.cv1(x))


class ConvBlock(nn.Module):
    """YOLOv5-style CSP block with GroupNorm: cv3(cat[m(cv1(x)), cv2(x)]), ``m`` = n + 1 Bottlenecks (spec 3.2)."""

    def __init__(self, c_in: int, c_out: int, n: int) -> None:
        super().__init__()
        h = c_out // 2
        self.cv1 = Conv(c_in, h, 1)
        self.cv2 = Conv(c_in, h, 1)
        self.cv3 = Conv(2 * h, c_out, 1)
        self.m = nn.Sequential(*(Bottleneck(h) for _ in range(n + 1)))

    def forward(self, x: Tensor) -> Tensor:
        return self.cv3(torch.cat([self.m(self.cv1(x)), self.cv2(x)], dim=1))


def conv_gn_silu(c_in: int, c_out: int, k: int = 3, groups: int = 32) -> nn.Sequential:
    """Sequential(Conv2d k x k no bias, GroupNorm(groups), SiLU) -- keys ``.0.weight``, ``.1.weight/bias``."""
    conv = nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False)
    nn.init.normal_(conv.weight, std=0.01)
    return nn.Sequential(conv, nn.GroupNorm(groups, c_out), nn.SiLU())


def coord_feat(x: Tensor) -> Tensor:
    """CoordConv maps at x's own resolution (spec 3.1): channels [x-ramp, y-ramp], each linspace(-1, 1).

    Args:
        x (Tensor[B, C, h, w]).
    Returns:
        Tensor[B, 2, h, w] in x's dtype.
    """
    h, w = x.shape[-2:]
    xr = torch.linspace(-1, 1, w, device=x.device, dtype=x.dtype)
    yr = torch.linspace(-1, 1, h, device=x.device, dtype=x.dtype)
    yy = yr.view(1, 1, h, 1).expand(x.shape[0], 1, h, w)
    xx = xr.view(1, 1, 1, w).expand(x.shape[0], 1, h, w)
    return torch.cat([xx, yy], dim=1)
