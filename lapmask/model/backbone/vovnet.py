"""VoVNet-eSE bottom-up network with the official (centermask2/AdelaiDet) module names (spec 2.2, 8.1).

Names contain '/' (allowed by PyTorch), e.g. ``stem.stem_1/conv.weight``,
``stage4.OSA4_2.layers.0.OSA4_2_0/norm.running_var``, ``stage4.OSA4_2.concat.OSA4_2_concat/conv.weight``,
``stage4.OSA4_2.ese.fc.bias``. Layout of V-57-eSE:

* stem: three 3x3 conv + FrozenBN + ReLU, 3->64 (/2), 64->64, 64->128 (/2): stride 4.
* stage2..stage5: conv channels [128, 160, 192, 224], outputs [256, 512, 768, 1024], blocks [1, 1, 4, 3],
  5 layers per OSA block; stages 3-5 start with ``Pooling`` = max-pool 3x3/2 (ceil_mode). Strides 4/8/16/32.
* OSA block: 5 chained 3x3 conv+BN+ReLU; concat(input, 5 outputs) -> 1x1 conv+BN+ReLU -> eSE
  (global average -> 1x1 conv with bias -> hard-sigmoid relu6(x+3)/6 -> multiply); blocks after the first in a
  stage add the block input (identity residual).

The official conv init is PyTorch's default (its ``_initialize_weights`` is never called); kept here.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lapmask.model.backbone.frozen_bn import FrozenBatchNorm2d
from lapmask.model.backbone.layers import stem_and_stages

# (stem channels, stage conv channels, stage output channels, layers per block, blocks per stage); eSE, no dw.
VOVNET_SPECS: dict[int, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], int, tuple[int, ...]]] = {
    19: ((64, 64, 128), (128, 160, 192, 224), (256, 512, 768, 1024), 3, (1, 1, 1, 1)),
    39: ((64, 64, 128), (128, 160, 192, 224), (256, 512, 768, 1024), 5, (1, 1, 2, 2)),
    57: ((64, 64, 128), (128, 160, 192, 224), (256, 512, 768, 1024), 5, (1, 1, 4, 3)),
    99: ((64, 64, 128), (128, 160, 192, 224), (256, 512, 768, 1024), 5, (1, 3, 9, 3)),
}


def _conv_bn_relu(prefix: str, in_ch: int, out_ch: int, kernel: int, stride: int = 1) -> list[tuple[str, nn.Module]]:
    """Entries ``<prefix>/conv`` (no bias), ``<prefix>/norm`` (FrozenBN), ``<prefix>/relu`` for an nn.Sequential."""
    return [
        (f"{prefix}/conv", nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, bias=False)),
        (f"{prefix}/norm", FrozenBatchNorm2d(out_ch)),
        (f"{prefix}/relu", nn.ReLU(inplace=True)),
    ]


def _sequential(entries: list[tuple[str, nn.Module]]) -> nn.Sequential:
    seq = nn.Sequential()
    for name, module in entries:
        seq.add_module(name, module)
    return seq


class ESEModule(nn.Module):
    """Effective squeeze-excitation: x * hsigmoid(fc(mean_hw(x))); x (Tensor[B, C, H, W])."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc = nn.Conv2d(channels, channels, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        w = self.fc(F.adaptive_avg_pool2d(x, 1))
        return x * (F.relu6(w + 3.0) / 6.0)


class OSAModule(nn.Module):
    """One-shot aggregation block named ``OSA{stage}_{k}``: [B, in_ch, H, W] -> [B, concat_ch, H, W]."""

    def __init__(self, in_ch: int, stage_ch: int, concat_ch: int, layers: int, name: str, identity: bool) -> None:
        super().__init__()
        self.identity = identity
        self.layers = nn.ModuleList()
        ch = in_ch
        for i in range(layers):
            self.layers.append(_sequential(_conv_bn_relu(f"{name}_{i}", ch, stage_ch, 3)))
            ch = stage_ch
        self.concat = _sequential(_conv_bn_relu(f"{name}_concat", in_ch + layers * stage_ch, concat_ch, 1))
        self.ese = ESEModule(concat_ch)

    def forward(self, x: Tensor) -> Tensor:
        outputs = [x]
        y = x
        for layer in self.layers:
            y = layer(y)
            outputs.append(y)
        out = self.ese(self.concat(torch.cat(outputs, dim=1)))
        return out + x if self.identity else out


class VoVNet(nn.Module):
    """VoVNet-eSE body: ``forward(x) -> {"stage2": [B, 256, H/4, W/4], ..., "stage5": [B, 1024, H/32, W/32]}``."""

    def __init__(self, depth: int = 57, freeze_at: int = 0, in_channels: int = 3) -> None:
        super().__init__()
        if depth not in VOVNET_SPECS:
            raise ValueError(f"VoVNet depth must be one of {sorted(VOVNET_SPECS)} (eSE), got {depth}")
        stem_ch, stage_ch, out_ch, layers, blocks = VOVNET_SPECS[depth]
        self.stem = _sequential(
            _conv_bn_relu("stem_1", in_channels, stem_ch[0], 3, 2)
            + _conv_bn_relu("stem_2", stem_ch[0], stem_ch[1], 3, 1)
            + _conv_bn_relu("stem_3", stem_ch[1], stem_ch[2], 3, 2))
        self.stage_names = ("stage2", "stage3", "stage4", "stage5")
        self.out_channels: dict[str, int] = {}
        self.strides: dict[str, int] = {}
        self._stages: list[nn.Sequential] = []
        in_ch, stride = stem_ch[2], 4
        for i, name in enumerate(self.stage_names):
            num = i + 2
            stage = nn.Sequential()
            if num != 2:
                stage.add_module("Pooling", nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True))
                stride *= 2
            for k in range(blocks[i]):
                stage.add_module(f"OSA{num}_{k + 1}", OSAModule(in_ch if k == 0 else out_ch[i], stage_ch[i],
                                                                out_ch[i], layers, f"OSA{num}_{k + 1}", k > 0))
            self.add_module(name, stage)
            self._stages.append(stage)
            in_ch = out_ch[i]
            self.out_channels[name], self.strides[name] = out_ch[i], stride
        self.freeze(freeze_at)

    def freeze(self, freeze_at: int) -> "VoVNet":
        """Official ``_freeze_backbone``: index 0 is the stem, index k the stage k+1 (requires_grad False)."""
        for idx in range(min(freeze_at, 1 + len(self._stages))):
            part = self.stem if idx == 0 else self._stages[idx - 1]
            for p in part.parameters():
                p.requires_grad = False
        return self

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return stem_and_stages(self.stem, self._stages, self.stage_names, x, "VoVNet")
