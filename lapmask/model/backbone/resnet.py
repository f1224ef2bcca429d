"""ResNet bottom-up network with detectron2's conventions and module names (spec 2.1, 8.1).

Module tree (state_dict keys relative to ``backbone.bottom_up.``)::

    stem.conv1(.norm)                                   7x7/2, no bias, FrozenBN, ReLU, max-pool 3x3/2 pad 1
    res{2..5}.{b}.shortcut(.norm)                       1x1 projection, only where channels/stride change
    res{2..5}.{b}.conv1 / conv2 / conv3 (.norm)         Bottleneck (R50/101/152)
    res{2..5}.{b}.conv2_offset                          DCN stages only: 3x3 conv with bias, 27 (or 18) channels
    res{2..5}.{b}.conv1 / conv2 (.norm)                 BasicBlock (R18/34)

Every norm is FrozenBN (buffers only). ``stride_in_1x1=True`` is the MSRA/caffe2 convention (stride 2 in the
first 1x1 conv of a stage's block 0); ``False`` is torchvision's (stride in the 3x3 conv).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lapmask.model.backbone.frozen_bn import FrozenBatchNorm2d
from lapmask.model.backbone.layers import Conv2d, ModulatedDeformConv2d, c2_msra_fill, stem_and_stages

# Blocks per stage res2..res5 (detectron2 ``make_default_stages``).
BLOCKS_PER_STAGE = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}


class _Block(nn.Module):
    """Common bits: channel/stride bookkeeping and detectron2's ``CNNBlockBase.freeze``."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = stride

    def freeze(self) -> "_Block":
        for p in self.parameters():
            p.requires_grad = False
        return self

    def _make_shortcut(self) -> Conv2d | None:
        if self.in_channels == self.out_channels:
            return None  # identity (detectron2 adds a projection only when the channel count changes)
        return Conv2d(self.in_channels, self.out_channels, kernel_size=1, stride=self.stride, bias=False,
                      norm=FrozenBatchNorm2d(self.out_channels))


class BasicStem(_Block):
    """conv1 7x7/2 (no bias) + FrozenBN + ReLU + max-pool 3x3/2 pad 1: [B, 3, H, W] -> [B, 64, H/4, W/4]."""

    def __init__(self, in_channels: int = 3, out_channels: int = 64) -> None:
        super().__init__(in_channels, out_channels, 4)
        self.conv1 = Conv2d(in_channels, out_channels, kernel_size=7, stride=2, padding=3, bias=False,
                            norm=FrozenBatchNorm2d(out_channels))
        c2_msra_fill(self.conv1)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu_(self.conv1(x))
        # The same max-pool on a channels-last copy: a max is exact in any memory layout, and torch's CPU kernel
        # for NCHW is slow (measured on [8, 64, 112, 112], 2 threads, both copies included: forward 32 -> 7 ms in
        # bfloat16, 37 -> 9 ms in float32; forward + backward about equal, 37 vs 34 ms). The result is contiguous.
        if x.device.type == "cpu":
            pooled = F.max_pool2d(x.contiguous(memory_format=torch.channels_last), kernel_size=3, stride=2, padding=1)
            return pooled.contiguous()
        return F.max_pool2d(x, kernel_size=3, stride=2, padding=1)


class BasicBlock(_Block):
    """Two 3x3 convs (stride on the first) + shortcut; ResNet-18/34 (detectron2 ``BasicBlock``)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__(in_channels, out_channels, stride)
        self.shortcut = self._make_shortcut()
        self.conv1 = Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False,
                            norm=FrozenBatchNorm2d(out_channels))
        self.conv2 = Conv2d(out_channels, out_channels, kernel_size=3, stride=1, padding=1, bias=False,
                            norm=FrozenBatchNorm2d(out_channels))
        for layer in (self.conv1, self.conv2, self.shortcut):
            if layer is not None:
                c2_msra_fill(layer)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv2(F.relu_(self.conv1(x)))
        out = out + (self.shortcut(x) if self.shortcut is not None else x)
        return F.relu_(out)


class BottleneckBlock(_Block):
    """1x1 -> 3x3 -> 1x1 bottleneck + shortcut (detectron2 ``BottleneckBlock``, NUM_GROUPS 1, dilation 1)."""

    def __init__(self, in_channels: int, out_channels: int, bottleneck_channels: int, stride: int = 1,
                 stride_in_1x1: bool = True) -> None:
        super().__init__(in_channels, out_channels, stride)
        self.shortcut = self._make_shortcut()
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = Conv2d(in_channels, bottleneck_channels, kernel_size=1, stride=s1, bias=False,
                            norm=FrozenBatchNorm2d(bottleneck_channels))
        self._build_conv2(bottleneck_channels, s3)
        self.conv3 = Conv2d(bottleneck_channels, out_channels, kernel_size=1, bias=False,
                            norm=FrozenBatchNorm2d(out_channels))
        for layer in (self.conv1, self.conv2, self.conv3, self.shortcut):
            if layer is not None:
                c2_msra_fill(layer)

    def _build_conv2(self, channels: int, stride: int) -> None:
        self.conv2 = Conv2d(channels, channels, kernel_size=3, stride=stride, padding=1, bias=False,
                            norm=FrozenBatchNorm2d(channels))

    def _conv2(self, x: Tensor) -> Tensor:
        return self.conv2(x)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu_(self.conv1(x))
        out = F.relu_(self._conv2(out))
        out = self.conv3(out)
        out = out + (self.shortcut(x) if self.shortcut is not None else x)
        return F.relu_(out)


class DeformBottleneckBlock(BottleneckBlock):
    """Bottleneck whose 3x3 conv is deformable (DCNv2 when modulated), fed by ``conv2_offset`` (spec 2.1).

    ``conv2_offset`` (3x3, bias, zero-initialised) outputs 27 channels when modulated: detectron2 splits them
    as ``o1, o2, m = chunk(3)`` and uses ``offset = cat(o1, o2)`` -- i.e. channels 0..17 unchanged, in the
    (dy, dx)-per-tap layout of the DCN kernel -- and ``mask = sigmoid(channels 18..26)``. Non-modulated DCNv1
    uses 18 offset channels and a mask of ones. At initialisation the modulation is sigmoid(0) = 0.5.
    """

    def __init__(self, in_channels: int, out_channels: int, bottleneck_channels: int, stride: int = 1,
                 stride_in_1x1: bool = True, deform_modulated: bool = True) -> None:
        self.deform_modulated = deform_modulated
        super().__init__(in_channels, out_channels, bottleneck_channels, stride, stride_in_1x1)
        nn.init.constant_(self.conv2_offset.weight, 0)
        nn.init.constant_(self.conv2_offset.bias, 0)

    def _build_conv2(self, channels: int, stride: int) -> None:
        # conv2_offset is registered before conv2, as in detectron2 (state_dict key order).
        self.conv2_offset = Conv2d(channels, 27 if self.deform_modulated else 18, kernel_size=3, stride=stride,
                                   padding=1)
        self.conv2 = ModulatedDeformConv2d(channels, channels, kernel_size=3, stride=stride, padding=1,
                                           norm=FrozenBatchNorm2d(channels))

    def _conv2(self, x: Tensor) -> Tensor:
        offset_mask = self.conv2_offset(x)
        if self.deform_modulated:
            offset, mask = offset_mask[:, :18], offset_mask[:, 18:].sigmoid()
        else:
            offset = offset_mask
            mask = offset_mask.new_ones(offset_mask.shape[0], 9, offset_mask.shape[2], offset_mask.shape[3])
        return self.conv2(x, offset, mask)


class ResNet(nn.Module):
    """ResNet body: ``forward(x[B, 3, H, W]) -> {"res2": [B, C2, H/4, W/4], ..., "res5": [B, C5, H/32, W/32]}``.

    Attributes ``out_channels`` and ``strides`` map "res2".."res5" to channels and strides (for the FPN).
    """

    def __init__(self, depth: int = 50, stride_in_1x1: bool = True, freeze_at: int = 2,
                 deform_on_per_stage: tuple[bool, bool, bool, bool] = (False, False, False, False),
                 deform_modulated: bool = True, res2_out_channels: int = 256, stem_out_channels: int = 64,
                 in_channels: int = 3) -> None:
        super().__init__()
        if depth not in BLOCKS_PER_STAGE:
            raise ValueError(f"ResNet depth must be one of {sorted(BLOCKS_PER_STAGE)}, got {depth}")
        basic = depth < 50
        if basic and res2_out_channels != stem_out_channels:
            # detectron2 asserts 64 == 64 here; a narrower BasicBlock ResNet (the lite presets' width option)
            # keeps the same rule: res2 has no projection shortcut, so its width is the stem's.
            raise ValueError(f"ResNet-{depth} (BasicBlock) needs backbone.res2_out_channels equal to "
                             f"backbone.stem_out_channels ({stem_out_channels}), got {res2_out_channels}")
        if basic and any(deform_on_per_stage):
            raise ValueError(f"deformable stages are not supported for ResNet-{depth} (BasicBlock); "
                             "set backbone.deform_on_per_stage to all false")
        if len(deform_on_per_stage) != 4:
            raise ValueError("backbone.deform_on_per_stage needs 4 booleans (res2..res5)")
        self.stem = BasicStem(in_channels, stem_out_channels)
        self.stage_names = ("res2", "res3", "res4", "res5")
        self.out_channels: dict[str, int] = {}
        self.strides: dict[str, int] = {}
        self._stages: list[nn.Sequential] = []
        in_ch, out_ch, width, stride = stem_out_channels, res2_out_channels, 64, 4
        for idx, (name, n) in enumerate(zip(self.stage_names, BLOCKS_PER_STAGE[depth])):
            first_stride = 1 if idx == 0 else 2
            blocks = []
            for b in range(n):
                s = first_stride if b == 0 else 1
                if basic:
                    block: nn.Module = BasicBlock(in_ch, out_ch, s)
                elif deform_on_per_stage[idx]:
                    block = DeformBottleneckBlock(in_ch, out_ch, width, s, stride_in_1x1, deform_modulated)
                else:
                    block = BottleneckBlock(in_ch, out_ch, width, s, stride_in_1x1)
                blocks.append(block)
                in_ch = out_ch
            stage = nn.Sequential(*blocks)
            self.add_module(name, stage)
            self._stages.append(stage)
            stride *= first_stride
            self.out_channels[name], self.strides[name] = out_ch, stride
            out_ch, width = out_ch * 2, width * 2
        self.freeze(freeze_at)

    def freeze(self, freeze_at: int) -> "ResNet":
        """detectron2 FREEZE_AT: 1 freezes the stem, 2 the stem and res2, ... (requires_grad False)."""
        if freeze_at >= 1:
            self.stem.freeze()
        for idx, stage in enumerate(self._stages, start=2):
            if freeze_at >= idx:
                for block in stage:
                    block.freeze()
        return self

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return stem_and_stages(self.stem, self._stages, self.stage_names, x, "ResNet")
