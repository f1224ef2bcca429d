"""COCO mask and box AP with pycocotools (detectron2 ``COCOEvaluator`` semantics), numpy only.

No torch import at module level: the torch-free deploy predictors use ``instances_to_results`` and
``evaluate_segm`` too.

* Results: ``{"image_id", "category_id" (the dataset's ORIGINAL id), "score", "segmentation" (compressed RLE,
  counts as str), "bbox" ([x, y, w, h] of the mask, w = x_max - x_min + 1)}`` (contracts 4).
* "segm" is evaluated with the results' "bbox" removed (detectron2 does the same: with a bbox present,
  pycocotools' ``loadRes`` sets the detection area to w*h instead of the mask area); "bbox" uses the mask boxes.
* AP values are pycocotools' numbers on a 0-1 scale; a metric whose area range has no ground truth is NaN
  (pycocotools -1), as is the per-class AP of a class without ground truth. Empty results give 0 AP (pycocotools
  cannot load an empty result list; an empty detection set is evaluated instead).
"""
from __future__ import annotations

import contextlib
import copy
import io
import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from lapmask.data.masks import encode_masks, mask_to_xywh, segmentation_to_bitmask

METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl")


def instances_to_results(image_id: int, masks: np.ndarray, scores: Sequence[float], labels: Sequence[int],
                         category_ids: Sequence[int]) -> list[dict]:
    """One image's predictions -> COCO result dicts.

    Args:
        masks (bool [N, H, W]): binary masks at the original image size.
        scores (float [N]), labels (int [N]): 0-based contiguous class indices.
        category_ids: the dataset's original ids, indexed by label.
    """
    masks = np.asarray(masks, dtype=bool)
    scores, labels = np.asarray(scores, dtype=np.float64).reshape(-1), np.asarray(labels).reshape(-1)
    if masks.ndim != 3 or not (len(masks) == len(scores) == len(labels)):
        raise ValueError(f"masks {masks.shape}, scores {scores.shape}, labels {labels.shape}: expected [N, H, W], "
                         "[N], [N]")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(category_ids)):
        raise ValueError(f"labels must be in 0..{len(category_ids) - 1} (got {labels.min()}..{labels.max()})")
    rles = encode_masks(masks)
    return [{"image_id": int(image_id), "category_id": int(category_ids[int(lab)]), "score": float(s),
             "segmentation": rle, "bbox": mask_to_xywh(m)}
            for m, s, lab, rle in zip(masks, scores, labels, rles)]


def _load_gt(gt: str | Path | dict) -> COCO:
    if isinstance(gt, (str, Path)):
        p = Path(gt)
        if not p.is_file():
            raise FileNotFoundError(f"ground-truth file {p} does not exist")
        d = json.loads(p.read_text())
    else:
        d = copy.deepcopy(gt)
    for key in ("images", "annotations", "categories"):
        if key not in d:
            raise ValueError(f"ground truth lacks '{key}'; pass a COCO instances file")
    imgs = {im["id"]: im for im in d["images"]}
    for a in d["annotations"]:  # fill what COCOeval needs and some hand-made files lack
        a.setdefault("iscrowd", 0)
        if "area" not in a:
            im = imgs[a["image_id"]]
            a["area"] = float(segmentation_to_bitmask(a["segmentation"], im["height"], im["width"]).sum())
    coco = COCO()
    coco.dataset = d
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _load_dt(coco_gt: COCO, results: list[dict], iou_type: str) -> COCO:
    known = set(coco_gt.getImgIds())
    bad = sorted({r["image_id"] for r in results} - known)
    if bad:
        raise ValueError(f"results name image ids not in the ground truth: {bad[:5]}{' ...' if len(bad) > 5 else ''}")
    cats = {c["id"] for c in coco_gt.dataset["categories"]}
    bad_c = sorted({r["category_id"] for r in results} - cats)
    if bad_c:
        raise ValueError(f"results use category ids {bad_c} absent from the ground truth; results must carry the "
                         "dataset's original category ids (instances_to_results(category_ids=...))")
    if not results:  # loadRes fails on []; an empty detection set scores 0 where there is ground truth
        dt = COCO()
        dt.dataset = {"images": list(coco_gt.dataset["images"]), "categories": copy.deepcopy(
            coco_gt.dataset["categories"]), "annotations": []}
        with contextlib.redirect_stdout(io.StringIO()):
            dt.createIndex()
        return dt
    res = copy.deepcopy(results)
    if iou_type == "segm":
        for r in res:
            r.pop("bbox", None)
    with contextlib.redirect_stdout(io.StringIO()):
        return coco_gt.loadRes(res)


def _nan_if_negative(v: float) -> float:
    return float(v) if v >= 0 else math.nan


def _run(coco_gt: COCO, results: list[dict], iou_type: str, image_ids: Sequence[int] | None
         ) -> tuple[dict[str, float], dict[str, float], str]:
    coco_dt = _load_dt(coco_gt, results, iou_type)
    ev = COCOeval(coco_gt, coco_dt, iou_type)
    if image_ids is not None:
        ev.params.imgIds = sorted(int(i) for i in image_ids)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    stats = {m: _nan_if_negative(ev.stats[i]) for i, m in enumerate(METRICS)}
    # per-class AP: precision [T, R, K, A, M], area "all" (0), maxDets 100 (-1); detectron2 _derive_coco_results
    precision = ev.eval["precision"]
    per_class = {}
    for k, cid in enumerate(ev.params.catIds):
        p = precision[:, :, k, 0, -1]
        p = p[p > -1]
        per_class[coco_gt.cats[cid]["name"]] = float(np.mean(p)) if p.size else math.nan
    return stats, per_class, buf.getvalue()


def evaluate_segm(gt: str | Path | dict, results: list[dict], image_ids: Sequence[int] | None = None) -> dict:
    """COCO "segm" and "bbox" AP of ``results`` against ``gt`` (a COCO instances file or dict).

    ``image_ids`` restricts evaluation to those images (e.g. a shard, or images that loaded); default: all.
    Returns ``{"segm": {AP, AP50, AP75, APs, APm, APl}, "bbox": {...}, "per_class": {name: mask AP},
    "per_class_bbox": {name: box AP}, "summary": pycocotools' printed summary}``.
    """
    coco_gt = _load_gt(gt)
    segm, per_class, text_s = _run(coco_gt, results, "segm", image_ids)
    bbox, per_class_bbox, text_b = _run(coco_gt, results, "bbox", image_ids)
    return {"segm": segm, "bbox": bbox, "per_class": per_class, "per_class_bbox": per_class_bbox,
            "summary": f"segm:\n{text_s}\nbbox:\n{text_b}"}


def _pct(v: float) -> str:
    return "nan" if v != v else f"{100 * v:.1f}"


def format_table(metrics: dict) -> str:
    """Markdown tables: summary (segm and bbox rows) and per-class mask AP; values shown x100."""
    lines = ["| task | " + " | ".join(METRICS) + " |", "|---" * (len(METRICS) + 1) + "|"]
    for task in ("segm", "bbox"):
        if task in metrics:
            lines.append(f"| {task} | " + " | ".join(_pct(metrics[task][m]) for m in METRICS) + " |")
    per = metrics.get("per_class") or {}
    if per:
        lines += ["", "| category | mask AP |", "|---|---|"]
        lines += [f"| {name} | {_pct(ap)} |" for name, ap in per.items()]
    return "\n".join(lines) + "\n"


def to_json_safe(metrics: dict) -> dict:
    """Copy of ``metrics`` with NaN replaced by None (strict JSON)."""
    def fix(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: fix(x) for k, x in v.items()}
        return None if isinstance(v, float) and v != v else v
    return fix(metrics)
