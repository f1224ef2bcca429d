"""The deploy graph as a module: uint8 padded image + image_size in, contracts.md section 3 outputs out.

Eager ``--static``, TorchScript and ONNX export all run this module, so they compute the same thing.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from lapmask.inference.masks import FilterFn
from lapmask.inference.static import NmsFn, static_inference
from lapmask.model.lapmask import LapMask
from lapmask.ops.deform import dynamic_deform_filter


class DeployLapMask(nn.Module):
    """Wraps a LapMask model with in-graph normalisation and the static inference path."""

    def __init__(self, model: LapMask, k_pre: int | None = None, max_dets: int | None = None,
                 filter_fn: FilterFn = dynamic_deform_filter, nms_fn: NmsFn | None = None) -> None:
        super().__init__()
        self.model = model
        self.cfg = model.cfg
        self.k_pre = self.cfg.inference.k_pre if k_pre is None else k_pre
        self.max_dets = self.cfg.inference.max_per_img if max_dets is None else max_dets
        self.filter_fn = filter_fn
        self.nms_fn = nms_fn

    def normalize(self, image: Tensor, image_size: Tensor) -> Tensor:
        """(image - mean) / std with the padding set to 0 (what the official model sees, spec 1.1).

        Args:
            image (Tensor[B, 3, H, W] uint8, BGR); image_size (Tensor[B, 2] int32): (h, w) before padding.
        Returns:
            Tensor[B, 3, H, W] float32.
        """
        x = (image.float() - self.model.pixel_mean) / self.model.pixel_std
        H, W = image.shape[-2:]
        rows = torch.arange(H, device=image.device).view(1, H, 1) < image_size[:, 0].view(-1, 1, 1)
        cols = torch.arange(W, device=image.device).view(1, 1, W) < image_size[:, 1].view(-1, 1, 1)
        return x * (rows & cols).unsqueeze(1).to(x.dtype)

    def forward(self, image: Tensor, image_size: Tensor) -> tuple[Tensor, ...]:
        """Returns num_dets [B] i32, scores [B, K] f32, labels [B, K] i32, masks [B, K, H/4, W/4] f32,
        num_candidates [B] i32."""
        outputs = self.model(self.normalize(image, image_size))
        return static_inference(outputs, self.cfg, self.k_pre, self.max_dets, self.filter_fn, self.nms_fn)
