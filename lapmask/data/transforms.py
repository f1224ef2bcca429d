"""Geometric transforms of detectron2 (``detectron2/data/transforms``), reproduced for images, boxes, polygons
and bitmasks (spec 5.1).

* ``ResizeShortestEdge``: the short side becomes a length chosen from a list ("choice", the training sampling
  style) unless the long side would exceed ``max_size``; new size rounded with ``int(x + 0.5)``
  (``ResizeShortestEdge.get_output_shape``).
* ``ResizeTransform``: uint8 images through **PIL BILINEAR** (``Image.resize``), bitmasks through PIL NEAREST
  (``apply_segmentation``), coordinates scaled by new/old (``apply_coords``).
* ``HFlipTransform``: image and masks mirrored, x -> W - x for coordinates (``RandomFlip``, p = 0.5).

Random choices come from a ``numpy.random.Generator`` passed in, so that a sample's augmentation is a pure
function of its seed (the training sampler hands every sample one).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class ResizeTransform:
    """Resize from (h, w) to (new_h, new_w)."""

    h: int
    w: int
    new_h: int
    new_w: int

    def apply_image(self, img: np.ndarray, interp: int = Image.BILINEAR) -> np.ndarray:
        """``uint8 [h, w, C]`` or ``[h, w]`` -> same dtype at the new size, via PIL (detectron2 uint8 path)."""
        if img.shape[:2] != (self.h, self.w):
            raise ValueError(f"image of shape {img.shape[:2]} given to a resize from {(self.h, self.w)}")
        if img.dtype != np.uint8:
            raise TypeError(f"ResizeTransform expects uint8 images (PIL path), got {img.dtype}")
        pil = Image.fromarray(np.ascontiguousarray(img))
        return np.asarray(pil.resize((self.new_w, self.new_h), interp))

    def apply_segmentation(self, mask: np.ndarray) -> np.ndarray:
        """``bool/uint8 [h, w]`` -> same at the new size, NEAREST (detectron2 ``apply_segmentation``)."""
        return self.apply_image(mask.astype(np.uint8), interp=Image.NEAREST).astype(mask.dtype)

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        """``float [K, 2]`` (x, y) -> scaled copy."""
        out = np.array(coords, dtype=np.float64, copy=True)
        out[:, 0] *= self.new_w * 1.0 / self.w
        out[:, 1] *= self.new_h * 1.0 / self.h
        return out


@dataclass(frozen=True)
class HFlipTransform:
    """Horizontal flip of an image of width ``width``."""

    width: int

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(img[:, ::-1])

    def apply_segmentation(self, mask: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(mask[:, ::-1])

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        out = np.array(coords, dtype=np.float64, copy=True)
        out[:, 0] = self.width - out[:, 0]
        return out


Transform = ResizeTransform | HFlipTransform


class TransformList:
    """A sequence of transforms applied in order (detectron2 ``TransformList``)."""

    def __init__(self, transforms: Sequence[Transform]):
        self.transforms = list(transforms)

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        for t in self.transforms:
            img = t.apply_image(img)
        return img

    def apply_segmentation(self, mask: np.ndarray) -> np.ndarray:
        for t in self.transforms:
            mask = t.apply_segmentation(mask)
        return mask

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        out = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
        for t in self.transforms:
            out = t.apply_coords(out)
        return out

    def apply_box(self, boxes: np.ndarray) -> np.ndarray:
        """``float [N, 4]`` XYXY -> XYXY: transform the 4 corners, take min/max (detectron2 ``apply_box``)."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        idx = np.array([[0, 1], [2, 1], [0, 3], [2, 3]])
        corners = self.apply_coords(boxes[:, idx].reshape(-1, 2)).reshape(-1, 4, 2)
        return np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1)

    def apply_polygons(self, polygons: Sequence[Sequence[float]]) -> list[np.ndarray]:
        """Flat polygons -> transformed flat ``float64`` polygons."""
        return [self.apply_coords(np.asarray(p, dtype=np.float64).reshape(-1, 2)).reshape(-1) for p in polygons]


def get_output_shape(oldh: int, oldw: int, short_edge_length: int, max_size: int) -> tuple[int, int]:
    """New (h, w): detectron2 ``ResizeShortestEdge.get_output_shape`` (scale the short side, cap the long side,
    round each side with ``int(x + 0.5)``)."""
    h, w = oldh, oldw
    size = short_edge_length * 1.0
    scale = size / min(h, w)
    if h < w:
        newh, neww = size, scale * w
    else:
        newh, neww = scale * h, size
    if max(newh, neww) > max_size:
        scale = max_size * 1.0 / max(newh, neww)
        newh = newh * scale
        neww = neww * scale
    return int(newh + 0.5), int(neww + 0.5)


class ResizeShortestEdge:
    """Shortest-edge resize with the short side drawn from ``short_edge_lengths`` ("choice" sampling).

    ``short_edge_lengths = (0,)`` or ``()`` means no resize (native size; detectron2 returns a NoOpTransform
    for size 0).
    """

    def __init__(self, short_edge_lengths: Sequence[int] | int, max_size: int = 2**31 - 1):
        if isinstance(short_edge_lengths, int):
            short_edge_lengths = (short_edge_lengths,)
        self.short_edge_lengths = tuple(int(s) for s in short_edge_lengths)
        if any(s < 0 for s in self.short_edge_lengths) or max_size <= 0:
            raise ValueError(f"bad resize sizes {self.short_edge_lengths} / max_size {max_size}")
        self.max_size = int(max_size)

    def get_transform(self, h: int, w: int, rng: np.random.Generator) -> list[Transform]:
        if not self.short_edge_lengths:
            return []
        if len(self.short_edge_lengths) == 1:
            size = self.short_edge_lengths[0]  # no draw: test time is deterministic without an rng
        else:
            size = int(rng.choice(self.short_edge_lengths))
        if size == 0:
            return []
        newh, neww = get_output_shape(h, w, size, self.max_size)
        return [ResizeTransform(h, w, newh, neww)]


class RandomHFlip:
    """Horizontal flip with probability ``prob`` (detectron2 ``RandomFlip``: flip if U[0, 1) < prob)."""

    def __init__(self, prob: float = 0.5):
        self.prob = float(prob)

    def get_transform(self, h: int, w: int, rng: np.random.Generator) -> list[Transform]:
        return [HFlipTransform(w)] if rng.uniform(0.0, 1.0) < self.prob else []


Augmentation = ResizeShortestEdge | RandomHFlip


def build_augmentation(min_sizes: Sequence[int] | int | None, max_size: int | None, hflip: bool) -> list[Augmentation]:
    """Official ``build_augmentation`` (adet ``detection_utils``): resize, then (train) flip.

    ``min_sizes`` None or 0 = native size (no resize).
    """
    if min_sizes is None or min_sizes == 0:
        augs: list[Augmentation] = [ResizeShortestEdge((), max_size or 2**31 - 1)]
    else:
        augs = [ResizeShortestEdge(min_sizes, max_size or 2**31 - 1)]
    if hflip:
        augs.append(RandomHFlip(0.5))
    return augs


def apply_augmentations(augs: Sequence[Augmentation], h: int, w: int, rng: np.random.Generator,
                        size_rng: np.random.Generator | None = None) -> TransformList:
    """Draw each augmentation's transform in order, each seeing the size produced by the previous ones.

    ``size_rng``: draws the resize's short side instead of ``rng`` (one size per batch: every image of the batch
    gets the same generator state, see ``InputConfig.size_per_batch``); the flip still draws from ``rng``."""
    out: list[Transform] = []
    for a in augs:
        use = size_rng if size_rng is not None and isinstance(a, ResizeShortestEdge) else rng
        ts = a.get_transform(h, w, use)
        for t in ts:
            if isinstance(t, ResizeTransform):
                h, w = t.new_h, t.new_w
        out.extend(ts)
    return TransformList(out)


def output_size(tfm: TransformList, h: int, w: int) -> tuple[int, int]:
    """Image size after ``tfm``."""
    for t in tfm.transforms:
        if isinstance(t, ResizeTransform):
            h, w = t.new_h, t.new_w
    return h, w
