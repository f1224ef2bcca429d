"""Shared front and back of every deployed-graph predictor (torch-free): metadata, pre- and post-processing.

Subclasses implement ``infer(image, image_size) -> [num_dets, scores, labels, masks, num_candidates]``.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from export.metadata import validate_metadata
from lapmask.postprocess import postprocess_static
from lapmask.preprocess import check_image, prepare_image


class StaticGraphPredictor:
    """Pre-process (official resize, pad to 32 or into the exported fixed size), run, post-process.

    Args:
        metadata: the export's metadata (``export.metadata``); source: file name for messages.
        resize: official test-time resize; False = native size (padding only).
    """

    def __init__(self, metadata: Mapping[str, Any], source: str, resize: bool = True) -> None:
        validate_metadata(metadata, source)
        self.metadata = dict(metadata)
        self.model_path = source
        self.resize = resize
        self.class_names = tuple(metadata["class_names"])
        self.category_ids = tuple(int(c) for c in metadata["category_ids"])
        self.min_size, self.max_size = int(metadata["min_size_test"]), int(metadata["max_size_test"])
        self.mask_thr = float(metadata["mask_thr"])
        self.divisibility = int(metadata.get("size_divisibility", 32))
        h, w = metadata.get("input_height"), metadata.get("input_width")
        self.fixed_hw = (int(h), int(w)) if h and w else None
        self.batch = int(metadata.get("batch", 1))
        self.last_num_candidates: int | None = None

    def prepare(self, bgr: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
        """BGR uint8 [H, W, 3] -> (image uint8 [B, 3, H', W'] padded, (h, w) resized size before padding).

        Fixed-size exports get the image padded into their H x W (an error when it does not fit).
        """
        image, hw = prepare_image(bgr, self.min_size, self.max_size, self.resize, self.divisibility)
        if self.fixed_hw is not None:
            H, W = self.fixed_hw
            if hw[0] > H or hw[1] > W:
                raise ValueError(f"the resized image is {hw[0]}x{hw[1]} but {self.model_path} was exported for a "
                                 f"fixed {H}x{W} input; export with --dynamic or a larger --height/--width")
            canvas = np.zeros((1, 3, H, W), dtype=np.uint8)
            ph, pw = min(H, image.shape[2]), min(W, image.shape[3])
            canvas[:, :, :ph, :pw] = image[:, :, :ph, :pw]
            image = canvas
        if self.batch > 1:  # fixed-batch export: the other slots carry copies whose outputs are ignored
            image = np.repeat(image, self.batch, axis=0)
        return image, hw

    def infer(self, image: np.ndarray, image_size: np.ndarray) -> list[np.ndarray]:
        raise NotImplementedError

    def __call__(self, bgr: np.ndarray) -> dict[str, np.ndarray]:
        """Returns ``scores`` [N] f32, ``labels`` [N] int64 (0-based), ``masks`` bool [N, H, W] (original size),
        ``boxes`` [N, 4] (x0, y0, x1, y1 inclusive)."""
        check_image(bgr)
        ori_hw = (int(bgr.shape[0]), int(bgr.shape[1]))
        image, hw = self.prepare(bgr)
        size = np.array([hw] * image.shape[0], dtype=np.int32)
        num, scores, labels, masks, ncand = self.infer(image, size)
        self.last_num_candidates = int(ncand[0])
        return postprocess_static(int(num[0]), scores[0], labels[0], masks[0], hw, ori_hw, self.mask_thr)
