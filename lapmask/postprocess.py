"""Torch-free post-processing for deploy predictors (ONNX Runtime, TensorRT) and the prediction JSON.

Numpy only: the same logic as ``lapmask.inference.paste`` (bilinear, align_corners=False, the official
ceil(h / (H/4)) upsampling ratio, crop, resize to the original size, threshold, boxes from masks), so that an
application deploys with numpy + onnxruntime/tensorrt alone (contracts.md sections 1 and 3).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np


def _axis_weights(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights of torch's bilinear resize (align_corners=False, explicit output size)."""
    scale = np.float32(in_size / out_size)
    src = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    src = np.maximum(src, np.float32(0))
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    l1 = np.clip(src - i0.astype(np.float32), 0, 1).astype(np.float32)
    return i0, i1, (np.float32(1) - l1), l1


def resize_bilinear(x: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of ``x`` (np.ndarray[N, h, w] float32) to [N, H, W], as torch ``F.interpolate``."""
    n, h, w = x.shape
    H, W = out_hw
    y0, y1, wy0, wy1 = _axis_weights(h, H)
    x0, x1, wx0, wx1 = _axis_weights(w, W)
    rows = x[:, y0, :] * wy0[None, :, None] + x[:, y1, :] * wy1[None, :, None]  # [N, H, w]
    return (rows[:, :, x0] * wx0[None, None, :] + rows[:, :, x1] * wx1[None, None, :]).astype(np.float32)


def paste_masks_np(probs: np.ndarray, image_hw: tuple[int, int], ori_hw: tuple[int, int],
                   mask_thr: float) -> np.ndarray:
    """numpy twin of ``lapmask.inference.paste.paste_masks``: probs [N, H/4, W/4] -> bool [N, ori_h, ori_w]."""
    n, fh, fw = probs.shape
    if n == 0:
        return np.zeros((0, *ori_hw), dtype=bool)
    h, w = image_hw
    ratio = math.ceil(h / fh)
    up = resize_bilinear(probs.astype(np.float32), (fh * ratio, fw * ratio))[:, :h, :w]
    return resize_bilinear(np.ascontiguousarray(up), tuple(ori_hw)) > mask_thr


def boxes_from_masks_np(masks: np.ndarray) -> np.ndarray:
    """[x_min, y_min, x_max, y_max] inclusive; zeros for empty masks. masks bool [N, H, W] -> float32 [N, 4]."""
    boxes = np.zeros((masks.shape[0], 4), dtype=np.float32)
    for i, m in enumerate(masks):
        ys = np.flatnonzero(m.any(1))
        xs = np.flatnonzero(m.any(0))
        if ys.size:
            boxes[i] = (xs[0], ys[0], xs[-1], ys[-1])
    return boxes


def postprocess_static(num_dets: int, scores: np.ndarray, labels: np.ndarray, masks: np.ndarray,
                       image_hw: tuple[int, int], ori_hw: tuple[int, int], mask_thr: float) -> dict[str, np.ndarray]:
    """Turn one image's fixed-size deploy outputs (contracts.md section 3) into instances at the original size.

    Args:
        num_dets: valid count; scores (np.ndarray[K]); labels (np.ndarray[K]); masks (np.ndarray[K, H/4, W/4]).
    Returns:
        dict with ``scores`` [N] f32, ``labels`` [N] int64, ``masks`` bool [N, ori_h, ori_w], ``boxes`` [N, 4].
    """
    n = int(num_dets)
    pasted = paste_masks_np(masks[:n], image_hw, ori_hw, mask_thr)
    return {"scores": scores[:n].astype(np.float32), "labels": labels[:n].astype(np.int64), "masks": pasted,
            "boxes": boxes_from_masks_np(pasted)}


def prediction_json(file_name: str, height: int, width: int, result: dict[str, np.ndarray],
                    class_names: tuple[str, ...], category_ids: tuple[int, ...],
                    score_thr: float = 0.0) -> dict[str, Any]:
    """The prediction JSON of contracts.md section 4 (sorted by descending score, COCO RLE, COCO bbox from masks).

    ``score_thr`` filters final outputs only; it never changes the model's own threshold.
    """
    from pycocotools import mask as mask_utils

    masks = result["masks"]
    order = np.argsort(-result["scores"], kind="stable")
    instances = []
    for i in order:
        s = float(result["scores"][i])
        if s < score_thr:
            continue
        m = masks[i]
        x0, y0, x1, y1 = (int(v) for v in boxes_from_masks_np(m[None])[0])
        rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        label = int(result["labels"][i])
        instances.append({
            "label": label, "category_id": int(category_ids[label]), "category": class_names[label], "score": s,
            "bbox": [x0, y0, x1 - x0 + 1, y1 - y0 + 1] if m.any() else [0, 0, 0, 0],
            "segmentation": {"size": [int(height), int(width)], "counts": rle["counts"].decode("ascii")},
        })
    return {"image": file_name, "height": int(height), "width": int(width), "instances": instances}
