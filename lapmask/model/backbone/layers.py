"""Conv building blocks with detectron2's module layout (so state_dict keys match the official ones, spec 8.1).

``Conv2d`` owns an optional ``norm`` submodule (saved as ``<name>.norm.*``) and an optional activation, like
``detectron2.layers.Conv2d``. ``ModulatedDeformConv2d`` is the DCNv2 3x3 conv of ``DeformBottleneckBlock``:
it owns ``weight`` (no bias) and ``norm`` and takes the offsets/modulation as inputs; the sampling is
``lapmask.ops.modulated_deform_conv`` (grid_sample + matmul), so no compiled op is needed for training,
TorchScript tracing or ONNX export.
"""
from __future__ import annotations

from collections.abc import Sequence

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lapmask.ops import modulated_deform_conv


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` followed by an optional norm module and an optional activation (norm before activation).

    Extra keyword arguments: ``norm`` (nn.Module | None), ``activation`` (callable | None).
    """

    def __init__(self, *args, norm: nn.Module | None = None, activation: Callable[[Tensor], Tensor] | None = None,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.norm = norm
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        """x (Tensor[B, C_in, H, W]) -> Tensor[B, C_out, H', W']."""
        x = F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        if self.norm is not None:
            x = self.norm(x)
        if self.activation is not None:
            x = self.activation(x)
        return x


class ModulatedDeformConv2d(nn.Module):
    """Modulated deformable 3x3 conv (DCNv2, groups = deformable groups = 1) with an optional norm.

    ``forward(x, offset, mask)``: x (Tensor[B, C_in, H, W]); offset (Tensor[B, 2*k*k, Ho, Wo]) with (dy, dx)
    interleaved per tap (detectron2's layout, spec 4.3); mask (Tensor[B, k*k, Ho, Wo]) after the sigmoid.
    Returns Tensor[B, C_out, Ho, Wo].
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 padding: int = 1, dilation: int = 1, norm: nn.Module | None = None) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = (kernel_size, kernel_size)
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        # detectron2's ModulatedDeformConv default init (overridden by c2_msra_fill in the ResNet block).
        nn.init.kaiming_uniform_(self.weight, nonlinearity="relu")
        self.norm = norm

    def forward(self, x: Tensor, offset: Tensor, mask: Tensor) -> Tensor:
        out = modulated_deform_conv(x, self.weight, offset, mask, None, self.stride, self.padding, self.dilation)
        if self.norm is not None:
            out = self.norm(out)
        return out

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}")


def c2_msra_fill(module: nn.Module) -> None:
    """Caffe2 "MSRAFill": He normal init with fan_out (fvcore ``c2_msra_fill``); bias 0."""
    nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    if getattr(module, "bias", None) is not None:
        nn.init.constant_(module.bias, 0)


def c2_xavier_fill(module: nn.Module) -> None:
    """Caffe2 "XavierFill" (uniform, fan_in, gain 1; fvcore ``c2_xavier_fill``); bias 0."""
    nn.init.kaiming_uniform_(module.weight, a=1)
    if getattr(module, "bias", None) is not None:
        nn.init.constant_(module.bias, 0)


def stem_and_stages(stem: nn.Module, stages: Sequence[nn.Module], names: Sequence[str], x: Tensor,
                    who: str) -> dict[str, Tensor]:
    """Bottom-up forward shared by ResNet and VoVNet: stem, then each stage, keeping every stage's output.

    Args:
        x (Tensor[B, C, H, W]). Returns: {stage name: Tensor[B, C_s, H/s, W/s]}.
    """
    if x.dim() != 4:
        raise ValueError(f"{who} expects [B, C, H, W], got shape {tuple(x.shape)}")
    out: dict[str, Tensor] = {}
    x = stem(x)
    for name, stage in zip(names, stages):
        x = stage(x)
        out[name] = x
    return out
