"""Feature pyramid on top of a bottom-up network (detectron2 ``FPN``, spec 2.1/2.2, keys spec 8.1).

``FPN.forward(x[B, 3, H, W]) -> {"p2": [B, C, H/4, W/4], ..., "p5": [B, C, H/32, W/32], "p6": [B, C, H6, W6]}``
(H, W multiples of 32; p6 rounds up: H6 = ceil(H/64), e.g. 25 -> 13).

* ``fpn_lateral{k}``: 1x1 conv with bias; ``fpn_output{k}``: 3x3 conv with bias (FPN.NORM = ""), Caffe2
  Xavier init; registered per level in the order lateral2, output2, lateral3, ... as in detectron2, then the
  top block, then ``bottom_up`` -- which gives the official state_dict key order.
* Top-down: nearest x2 upsampling + sum (FUSE_TYPE "sum").
* Top block "maxpool" (detectron2 ``LastLevelMaxPool``, ResNet): p6 = max_pool2d(p5, kernel 1, stride 2) =
  p5[..., ::2, ::2]; no parameters. "conv" (AdelaiDet ``LastLevelP6``, VoVNet): ``top_block.p6`` = 3x3/2 conv
  with bias on the FPN output p5.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lapmask.model.backbone.layers import Conv2d, c2_xavier_fill


class LastLevelMaxPool(nn.Module):
    """p6 = max_pool2d(p5, kernel_size=1, stride=2): every second pixel of p5 (no parameters)."""

    def forward(self, p5: Tensor) -> Tensor:
        return F.max_pool2d(p5, kernel_size=1, stride=2, padding=0)


class LastLevelP6(nn.Module):
    """p6 = conv3x3/2(p5) with bias (AdelaiDet ``LastLevelP6`` on the FPN output "p5")."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.p6 = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=2, padding=1)
        c2_xavier_fill(self.p6)

    def forward(self, p5: Tensor) -> Tensor:
        return self.p6(p5)


class FPN(nn.Module):
    """FPN over ``bottom_up`` (a module returning a dict of stride-4/8/16/32 maps named in ``in_features``).

    Attributes: ``size_divisibility`` (32: the stride of the coarsest input level), ``out_features``
    ("p2".."p6"), ``out_channels``.
    """

    def __init__(self, bottom_up: nn.Module, in_features: tuple[str, ...], out_channels: int,
                 top_block: str = "maxpool") -> None:
        super().__init__()
        strides = [bottom_up.strides[f] for f in in_features]
        in_channels = [bottom_up.out_channels[f] for f in in_features]
        for a, b in zip(strides, strides[1:]):
            if b != 2 * a:
                raise ValueError(f"FPN input strides must double level to level, got {strides}")
        laterals, outputs = [], []
        for stride, ch in zip(strides, in_channels):
            lateral = Conv2d(ch, out_channels, kernel_size=1, bias=True)
            output = Conv2d(out_channels, out_channels, kernel_size=3, stride=1, padding=1, bias=True)
            c2_xavier_fill(lateral)
            c2_xavier_fill(output)
            level = int(math.log2(stride))
            self.add_module(f"fpn_lateral{level}", lateral)
            self.add_module(f"fpn_output{level}", output)
            laterals.append(lateral)
            outputs.append(output)
        # Plain lists (not ModuleList) in top-down order, so the modules are registered once, by level name.
        self._laterals = laterals[::-1]
        self._outputs = outputs[::-1]
        if top_block == "maxpool":
            self.top_block: nn.Module = LastLevelMaxPool()
        elif top_block == "conv":
            self.top_block = LastLevelP6(out_channels, out_channels)
        else:
            raise ValueError(f"backbone.p6 must be 'maxpool' or 'conv', got {top_block!r}")
        self.in_features = tuple(in_features)
        self.bottom_up = bottom_up
        last = int(math.log2(strides[-1]))
        self.out_features = tuple(f"p{int(math.log2(s))}" for s in strides) + (f"p{last + 1}",)
        self.out_channels = out_channels
        self.size_divisibility = strides[-1]

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """x (Tensor[B, 3, H, W]), normalised and padded to multiples of ``size_divisibility``."""
        if not (torch.jit.is_tracing() or torch.jit.is_scripting() or torch.compiler.is_compiling()):
            # Eager-only check (a graph capture would specialise the symbolic sizes).
            h, w = int(x.shape[-2]), int(x.shape[-1])
            if h % self.size_divisibility or w % self.size_divisibility:
                raise ValueError(f"FPN input size {h}x{w} must be a multiple of {self.size_divisibility} on both "
                                 "sides; pad the batch (bottom/right, value 0 after normalisation, spec 1.1)")
        feats = self.bottom_up(x)
        prev = self._laterals[0](feats[self.in_features[-1]])
        results = [self._outputs[0](prev)]
        for idx in range(1, len(self._laterals)):
            lateral = self._laterals[idx](feats[self.in_features[-idx - 1]])
            prev = lateral + F.interpolate(prev, scale_factor=2.0, mode="nearest")
            results.insert(0, self._outputs[idx](prev))
        results.append(self.top_block(results[-1]))
        return dict(zip(self.out_features, results))
