"""Run a predictor over a dataset split and score it with COCO mask/box AP (``lapmask.engine.evaluator``).

A predictor is any callable ``bgr (uint8 [H, W, 3]) -> {"scores", "labels", "masks" (bool, original size),
"boxes"}`` -- ``lapmask.inference.Predictor`` or an ``export.predictors`` runtime -- so the same loop scores
PyTorch, ONNX Runtime and TensorRT. Images are read at their original size (the predictor applies the official
test-time resize itself), which is exactly what ``lapmask predict`` does.

In a distributed run every rank scores a contiguous shard (detectron2 ``InferenceSampler``) and rank 0 gathers
the results and evaluates; the other ranks get ``None``.
"""
from __future__ import annotations

import json
import logging
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lapmask.engine import distributed as du

logger = logging.getLogger(__name__)

PredictFn = Callable[[np.ndarray], dict[str, np.ndarray]]


@dataclass
class SplitPaths:
    """A COCO-format split: the instances JSON and the folder its ``file_name`` entries are relative to."""

    ann_file: Path
    image_root: Path

    @classmethod
    def from_data_dir(cls, data_dir: str | Path, split: str) -> SplitPaths:
        """``DIR/annotations/instances_<split>.json`` + ``DIR/<split>/`` (the layout ``lapmask data synth`` writes)."""
        d = Path(data_dir)
        p = cls(d / "annotations" / f"instances_{split}.json", d / split)
        if not p.ann_file.is_file():
            raise FileNotFoundError(f"{p.ann_file} not found: --data must be a folder with annotations/"
                                    f"instances_{split}.json and {split}/ (e.g. made by `lapmask data synth --out DIR`)")
        if not p.image_root.is_dir():
            raise FileNotFoundError(f"image folder {p.image_root} not found (expected next to annotations/)")
        return p


@dataclass
class InferenceStats:
    num_images: int = 0
    num_failed: int = 0
    seconds: float = 0.0
    num_instances: int = 0
    failed_ids: list[int] = field(default_factory=list)

    @property
    def images_per_s(self) -> float:
        return self.num_images / self.seconds if self.seconds > 0 else 0.0


def load_split_records(split: SplitPaths, max_images: int | None = None) -> tuple[list[dict], tuple[str, ...],
                                                                                  tuple[int, ...]]:
    """Image records (all images, with or without annotations) and the split's categories."""
    from lapmask.data.coco import load_coco_records  # lazy: the data package imports torch

    records, names, ids, _ = load_coco_records(split.ann_file, split.image_root, filter_empty=False)
    if max_images is not None:
        records = records[:max_images]
    return records, names, ids


def run_inference(predict: PredictFn, records: Sequence[dict], category_ids: Sequence[int],
                  progress: bool = True, distributed: bool | None = None) -> tuple[list[dict], InferenceStats]:
    """Predict every record of this rank's shard and convert to COCO results (contracts 4).

    Returns:
        (results of ALL ranks on rank 0 / this rank's own results elsewhere, stats of this rank).
    """
    from lapmask.data.coco import ImageLoadError, read_image_bgr
    from lapmask.data.collate import InferenceSampler
    from lapmask.engine.evaluator import instances_to_results

    rank, world = (du.get_rank(), du.get_world_size()) if distributed is not False else (0, 1)
    shard = [records[i] for i in InferenceSampler(len(records), rank, world)]
    stats = InferenceStats()
    results: list[dict] = []
    bar = None
    if progress and rank == 0:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(shard), desc="eval", unit="img", dynamic_ncols=True, leave=False)
    t0 = time.perf_counter()
    for rec in shard:
        try:
            bgr = read_image_bgr(rec["file_name"], rec["height"], rec["width"])
        except ImageLoadError as e:
            stats.num_failed += 1
            stats.failed_ids.append(rec["image_id"])
            warnings.warn(f"{e} -- scored as an image without detections", stacklevel=2)
            continue
        out = predict(bgr)
        results += instances_to_results(rec["image_id"], out["masks"], out["scores"], out["labels"], category_ids)
        stats.num_images += 1
        stats.num_instances += len(out["scores"])
        if bar is not None:
            bar.update(1)
    stats.seconds = time.perf_counter() - t0
    if bar is not None:
        bar.close()
    if world > 1:
        gathered = du.all_gather_object(results)
        results = [r for part in gathered for r in part]
    return results, stats


def evaluate_predictor(predict: PredictFn, split: SplitPaths, category_ids: Sequence[int] | None = None,
                       class_names: Sequence[str] | None = None, out_dir: str | Path | None = None,
                       max_images: int | None = None, progress: bool = True,
                       distributed: bool | None = None) -> dict[str, Any] | None:
    """Score ``predict`` on a split: COCO segm and bbox AP, per-class AP; rank 0 returns the metrics dict.

    Args:
        category_ids / class_names: what the predictor's labels mean (default: the split's own categories).
            Names must agree with the split's, else the AP would silently compare different classes.
        out_dir: when given (rank 0), writes ``coco_instances_results.json`` and ``metrics.json`` there.
        max_images: score only the first N images (quick checks); AP is then over those images only.
    Returns:
        ``evaluate_segm``'s dict plus ``inference`` (images, seconds, images/s, failures), or None off rank 0.
    """
    from lapmask.engine.evaluator import evaluate_segm, to_json_safe

    records, names, ids = load_split_records(split, max_images)
    if class_names is not None and tuple(class_names) != tuple(names):
        raise ValueError(f"the model's classes {list(class_names)} differ from the dataset's {list(names)} "
                         f"({split.ann_file}); evaluate with a model trained on these categories")
    cat_ids = tuple(ids if category_ids is None else category_ids)
    if tuple(cat_ids) != tuple(ids):
        raise ValueError(f"the model's category ids {list(cat_ids)} differ from the dataset's {list(ids)}")
    results, stats = run_inference(predict, records, cat_ids, progress, distributed)
    all_stats = du.all_gather_object(stats) if distributed is not False else [stats]
    if distributed is not False and not du.is_main_process():
        return None
    n = sum(s.num_images for s in all_stats)
    failed = [i for s in all_stats for i in s.failed_ids]
    secs = max(s.seconds for s in all_stats)
    metrics = evaluate_segm(split.ann_file, results, image_ids=[r["image_id"] for r in records])
    metrics["inference"] = {"num_images": n, "num_failed": len(failed), "failed_ids": failed[:20],
                            "seconds": secs, "images_per_s": n / secs if secs > 0 else 0.0,
                            "num_instances": len(results)}
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "coco_instances_results.json").write_text(json.dumps(results))
        (out / "metrics.json").write_text(json.dumps(to_json_safe(metrics), indent=2))
    return metrics
