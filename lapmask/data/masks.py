"""COCO segmentation helpers: polygon / RLE validation, decoding to bitmasks, encoding and mask boxes.

numpy + pycocotools only (no torch), so the evaluator and torch-free predictors can share them.

Conventions (the ones detectron2 and pycocotools use, spec 5.1):
* a polygon is a flat list ``[x0, y0, x1, y1, ...]`` in pixel coordinates (0..W, 0..H, continuous); an
  instance may have several polygons, which are unioned. It is rasterised by pycocotools (``frPyObjects`` +
  ``merge`` + ``decode``), exactly as detectron2's ``polygons_to_bitmask``.
* an RLE is ``{"size": [H, W], "counts": str | bytes}`` (compressed) or ``{"size": [H, W], "counts": [int]}``
  (uncompressed, column-major run lengths, as COCO stores crowd regions).
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Sequence

import numpy as np
from pycocotools import mask as mask_util


def _decode(rle: dict | list) -> np.ndarray:
    # pycocotools' cython decode trips numpy 2's __array__(copy=...) DeprecationWarning; harmless, silenced here.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=r"__array__ implementation")
        return mask_util.decode(rle)


def polygon_area(poly: Sequence[float]) -> float:
    """Absolute shoelace area of one flat polygon ``[x0, y0, x1, y1, ...]``."""
    p = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
    x, y = p[:, 0], p[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) * 0.5)


def valid_polygon(poly: Any, height: int | None = None, width: int | None = None) -> bool:
    """True if ``poly`` is a flat list of >= 3 finite (x, y) pairs enclosing a non-zero area.

    detectron2's ``load_coco_json`` drops polygons with an odd length or fewer than 6 numbers; we also drop
    non-finite and zero-area ones (they rasterise to nothing or to garbage) and, given the image size, ones
    reaching further than one image size outside it (pycocotools would overflow on such coordinates).
    """
    if not isinstance(poly, (list, tuple, np.ndarray)) or len(poly) < 6 or len(poly) % 2:
        return False
    try:
        arr = np.asarray(poly, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    if arr.ndim != 1 or not np.all(np.isfinite(arr)):
        return False
    if height is not None and width is not None:
        x, y = arr[0::2], arr[1::2]
        if x.min() < -width or x.max() > 2 * width or y.min() < -height or y.max() > 2 * height:
            return False
    return polygon_area(arr) > 0.0


def rle_problem(rle: Any, height: int, width: int) -> str | None:
    """Return why ``rle`` is unusable for an image of ``height`` x ``width`` (None when it is fine).

    Cheap: checks the size, the run-length sum of uncompressed RLEs and that compressed counts parse.
    """
    if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
        return "RLE without size/counts"
    size = rle["size"]
    if not isinstance(size, (list, tuple)) or len(size) != 2 or [int(size[0]), int(size[1])] != [height, width]:
        return f"RLE size {size} != image size [{height}, {width}]"
    counts = rle["counts"]
    if isinstance(counts, list):
        if not all(isinstance(c, (int, np.integer)) and c >= 0 for c in counts):
            return "uncompressed RLE with negative or non-integer counts"
        if sum(int(c) for c in counts) != height * width:
            return f"uncompressed RLE counts sum to {sum(int(c) for c in counts)}, not H*W = {height * width}"
        return None
    if not isinstance(counts, (str, bytes)):
        return f"RLE counts of type {type(counts).__name__}"
    try:
        mask_util.area(_compressed(rle))
    except Exception as e:  # pycocotools raises various types on garbage strings
        return f"undecodable compressed RLE ({e})"
    return None


def _compressed(rle: dict) -> dict:
    """Compressed RLE (counts as bytes) from a compressed or uncompressed one."""
    h, w = int(rle["size"][0]), int(rle["size"][1])
    counts = rle["counts"]
    if isinstance(counts, list):
        return mask_util.frPyObjects({"size": [h, w], "counts": list(map(int, counts))}, h, w)
    return {"size": [h, w], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}


def rle_area(rle: dict) -> int:
    """Pixel count of a (compressed or uncompressed) RLE."""
    return int(mask_util.area(_compressed(rle)))


def rle_to_bitmask(rle: dict) -> np.ndarray:
    """Decode a compressed or uncompressed RLE to ``bool [H, W]``."""
    return _decode(_compressed(rle)).astype(bool)


def polygons_to_bitmask(polygons: Sequence[Sequence[float]], height: int, width: int) -> np.ndarray:
    """Rasterise (and union) polygons to ``bool [height, width]``; detectron2 ``polygons_to_bitmask``.

    Each polygon must have >= 6 numbers (pycocotools reads a 4-number list as a box).
    """
    if len(polygons) == 0:
        return np.zeros((height, width), dtype=bool)
    polys = [np.asarray(p, dtype=np.float64).reshape(-1) for p in polygons]
    if any(p.size < 6 for p in polys):
        raise ValueError("polygons need at least 3 points (6 numbers); filter them with valid_polygon() first")
    rles = mask_util.frPyObjects([p.tolist() for p in polys], height, width)
    return _decode(mask_util.merge(rles)).astype(bool)


def segmentation_to_bitmask(segm: list | dict, height: int, width: int) -> np.ndarray:
    """Polygons (list) or RLE (dict) -> ``bool [height, width]``."""
    if isinstance(segm, dict):
        return rle_to_bitmask(segm)
    return polygons_to_bitmask(segm, height, width)


def encode_masks(masks: np.ndarray) -> list[dict]:
    """``bool [N, H, W]`` -> COCO compressed RLEs with ``counts`` as ASCII str (JSON-ready)."""
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"masks must be [N, H, W], got shape {masks.shape}")
    if masks.shape[0] == 0:
        return []
    rles = mask_util.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))
    return [{"size": [int(r["size"][0]), int(r["size"][1])], "counts": r["counts"].decode("ascii")} for r in rles]


def mask_to_xywh(mask: np.ndarray) -> list[float]:
    """COCO box ``[x, y, w, h]`` of a ``bool [H, W]`` mask: x, y of the top-left set pixel, w = x_max - x_min + 1.

    An empty mask gives ``[0, 0, 0, 0]`` (contracts 4).
    """
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    if ys.size == 0:
        return [0.0, 0.0, 0.0, 0.0]
    return [float(xs[0]), float(ys[0]), float(xs[-1] - xs[0] + 1), float(ys[-1] - ys[0] + 1)]


def valid_xywh(bbox: Any) -> bool:
    """A COCO box is 4 finite numbers with w > 0 and h > 0."""
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
        return False
    try:
        x, y, w, h = (float(v) for v in bbox)
    except (TypeError, ValueError):
        return False
    return all(math.isfinite(v) for v in (x, y, w, h)) and w > 0 and h > 0
