"""PyTorch predictor: BGR image in, instances at the original size out (dynamic official path or static path)."""
from __future__ import annotations

import numpy as np
import torch

from lapmask.config import LapMaskConfig
from lapmask.inference.deploy_module import DeployLapMask
from lapmask.inference.dynamic import dynamic_single
from lapmask.inference.paste import boxes_from_masks, paste_masks
from lapmask.model.lapmask import LapMask
from lapmask.model.preprocess import normalize_and_pad
from lapmask.preprocess import check_image, pad_to, resize_bgr, resized_hw


class Predictor:
    """Run a LapMask model on single BGR images.

    Args:
        model: a LapMask model (put in eval mode here).
        resize: official test-time resize (shortest edge to ``cfg.input.min_size_test``); False = native size.
        static: use the fixed-size deploy path (what ONNX/TensorRT run) instead of the official dynamic path.
    """

    def __init__(self, model: LapMask, cfg: LapMaskConfig | None = None, resize: bool = True, static: bool = False,
                 k_pre: int | None = None, max_dets: int | None = None) -> None:
        self.model = model.eval()
        self.cfg = cfg or model.cfg
        self.resize = resize
        self.static = static
        self.deploy = DeployLapMask(model, k_pre, max_dets) if static else None
        self.last_num_candidates: int | None = None

    @property
    def device(self) -> torch.device:
        return self.model.pixel_mean.device

    def prepare(self, bgr: np.ndarray) -> np.ndarray:
        """Validate and resize (official rule) a BGR uint8 [H, W, 3] image."""
        check_image(bgr)
        if not self.resize:
            return bgr
        ic = self.cfg.input
        return resize_bgr(bgr, resized_hw(bgr.shape[0], bgr.shape[1], ic.min_size_test, ic.max_size_test))

    @torch.no_grad()
    def __call__(self, bgr: np.ndarray) -> dict[str, np.ndarray]:
        """Returns numpy ``scores`` [N], ``labels`` [N] (0-based), ``masks`` bool [N, H, W] (original size),
        ``boxes`` [N, 4] (x0, y0, x1, y1 inclusive)."""
        ori_hw = (int(bgr.shape[0]), int(bgr.shape[1])) if isinstance(bgr, np.ndarray) and bgr.ndim >= 2 else None
        img = self.prepare(bgr)
        hw = (int(img.shape[0]), int(img.shape[1]))
        if self.static:
            padded = pad_to(img, self.model.size_divisibility).transpose(2, 0, 1)[None]
            image = torch.from_numpy(np.ascontiguousarray(padded)).to(self.device)
            size = torch.tensor([hw], dtype=torch.int32, device=self.device)
            num, scores, labels, probs, ncand = self.deploy(image, size)
            n = int(num[0])
            self.last_num_candidates = int(ncand[0])
            scores, labels, probs = scores[0, :n], labels[0, :n].long(), probs[0, :n]
        else:
            t = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).to(self.device)
            batch, _ = normalize_and_pad([t], self.model.pixel_mean, self.model.pixel_std,
                                         self.model.size_divisibility)
            r = dynamic_single(self.model(batch), 0, self.cfg)
            scores, labels, probs = r["scores"], r["labels"], r["probs"]
        masks = paste_masks(probs, hw, ori_hw, self.cfg.inference.mask_thr)
        return {"scores": scores.float().cpu().numpy(), "labels": labels.cpu().numpy(),
                "masks": masks.cpu().numpy(), "boxes": boxes_from_masks(masks).cpu().numpy()}
