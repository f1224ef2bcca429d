"""FrozenBatchNorm2d: batch norm with fixed statistics and affine terms (detectron2 ``FrozenBN``, spec 2.1).

All four tensors are **buffers** (``weight``, ``bias``, ``running_mean``, ``running_var``) so they are saved in
the state_dict under the official names but never receive gradients; there is no ``num_batches_tracked``
(spec 8.1). The default state is the identity map: running_var starts at ``1 - eps`` so that
``(x - 0) / sqrt(1 - eps + eps) * 1 + 0 == x`` exactly, as in detectron2.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class FrozenBatchNorm2d(nn.Module):
    """y = (x - running_mean) / sqrt(running_var + eps) * weight + bias, per channel; nothing is trained."""

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features) - eps)

    def forward(self, x: Tensor) -> Tensor:
        """x (Tensor[B, C, H, W]) -> Tensor[B, C, H, W]."""
        if x.requires_grad:
            # Training path: an explicit affine map keeps autograd from allocating gradients for the
            # statistics (which F.batch_norm would do when its input needs a gradient).
            scale = self.weight * (self.running_var + self.eps).rsqrt()
            shift = self.bias - self.running_mean * scale
            return x * scale.view(1, -1, 1, 1).to(x.dtype) + shift.view(1, -1, 1, 1).to(x.dtype)
        # Inference/export: one fused BatchNormalization op.
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, training=False,
                            eps=self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"

    @classmethod
    def convert(cls, module: nn.Module) -> nn.Module:
        """Replace every ``nn.BatchNorm2d`` / ``SyncBatchNorm`` in ``module`` (in place) by a FrozenBatchNorm2d
        carrying the same statistics; returns the (possibly new) module."""
        if isinstance(module, (nn.BatchNorm2d, nn.SyncBatchNorm)):
            frozen = cls(module.num_features, module.eps)
            with torch.no_grad():
                if module.affine:
                    frozen.weight.copy_(module.weight)
                    frozen.bias.copy_(module.bias)
                if module.running_mean is not None:
                    frozen.running_mean.copy_(module.running_mean)
                    frozen.running_var.copy_(module.running_var)
            return frozen
        for name, child in module.named_children():
            new = cls.convert(child)
            if new is not child:
                module.add_module(name, new)
        return module
