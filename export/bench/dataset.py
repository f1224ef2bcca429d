"""Benchmark data: the synthetic val split (default) or COCO val2017 (``--data DIR``), and the mask-AP pass.

Torch-free (json, numpy, PIL, pycocotools): a worker for a torch-free backend uses it too.

Accepted ``--data`` layouts (first match wins):
* COCO:     ``DIR/annotations/instances_val2017.json`` + ``DIR/val2017/`` (or ``DIR/images/val2017/``)
* lapmask:  ``DIR/annotations/instances_val.json`` + ``DIR/val/`` (what ``lapmask data synth`` writes)
"""
from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

LAYOUTS = (("annotations/instances_val2017.json", "val2017"), ("annotations/instances_val2017.json", "images/val2017"),
           ("annotations/instances_val.json", "val"))
AP_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl")


@dataclass(frozen=True)
class DatasetSpec:
    """One evaluation split: its instances JSON, the folder its ``file_name`` entries are relative to, a name."""

    name: str
    ann_file: str
    image_root: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def resolve_data_dir(data_dir: str | Path) -> DatasetSpec:
    """The val split of a COCO-format folder in one of ``LAYOUTS``; a FileNotFoundError lists what was tried."""
    d = Path(data_dir)
    if not d.is_dir():
        raise FileNotFoundError(f"--data {d} is not a folder (expected COCO: annotations/instances_val2017.json + "
                                "val2017/)")
    for ann, images in LAYOUTS:
        if (d / ann).is_file() and (d / images).is_dir():
            return DatasetSpec(f"{d.name}/{Path(images).name}", str(d / ann), str(d / images))
    tried = "; ".join(f"{ann} + {images}/" for ann, images in LAYOUTS)
    raise FileNotFoundError(f"--data {d}: no known layout found (tried {tried})")


def synthetic_dataset(folder: str | Path, n_val: int, size: int) -> DatasetSpec:
    """The embedded synthetic dataset's val split (generated once, reused while its parameters match)."""
    from lapmask.data.synth import ensure_synthetic

    paths = ensure_synthetic(folder, 0, n_val, size=size)
    return DatasetSpec(f"synthetic-val ({n_val} images, {size}x{size})", str(paths["val_json"]),
                       str(paths["val_images"]))


def load_split(spec: DatasetSpec, max_images: int | None = None) -> tuple[list[dict], tuple[str, ...], tuple[int, ...]]:
    """Image records sorted by id (``file``, ``id``, ``height``, ``width``) and the categories sorted by id
    (names, ids), as detectron2's ``load_coco_json`` orders them."""
    try:
        d = json.loads(Path(spec.ann_file).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot read the annotation file {spec.ann_file}: {e}") from e
    if "images" not in d or "categories" not in d:
        raise ValueError(f"{spec.ann_file} is not a COCO instances file (no 'images' / 'categories')")
    cats = sorted(d["categories"], key=lambda c: c["id"])
    images = sorted(d["images"], key=lambda im: im["id"])[:max_images]
    records = [{"file": str(Path(spec.image_root) / im["file_name"]), "id": int(im["id"]),
                "height": int(im["height"]), "width": int(im["width"])} for im in images]
    if not records:
        raise ValueError(f"{spec.ann_file} lists no images")
    return records, tuple(c["name"] for c in cats), tuple(int(c["id"]) for c in cats)


def load_bgr(record: dict) -> np.ndarray:
    """BGR uint8 [H, W, 3] of a record (EXIF applied; a transposed file is transposed back, as detectron2 does)."""
    from lapmask.preprocess import load_image_bgr

    img = load_image_bgr(record["file"])
    hw = (record["height"], record["width"])
    if img.shape[:2] != hw:
        if img.shape[:2] == hw[::-1]:
            return np.ascontiguousarray(img.transpose(1, 0, 2))
        raise ValueError(f"{record['file']} is {img.shape[1]}x{img.shape[0]}, its record says {hw[1]}x{hw[0]}")
    return img


def class_mismatch(model_names: Sequence[str], model_ids: Sequence[int], data_names: Sequence[str],
                   data_ids: Sequence[int]) -> str | None:
    """Why the model's labels cannot be scored on this dataset, or None when they can."""
    if tuple(model_names) != tuple(data_names):
        return (f"the model's {len(model_names)} classes ({', '.join(list(model_names)[:4])}, ...) differ from the "
                f"dataset's {len(data_names)} ({', '.join(list(data_names)[:4])}, ...)")
    if tuple(int(i) for i in model_ids) != tuple(int(i) for i in data_ids):
        return "the model's category ids differ from the dataset's"
    return None


def mask_ap(predict: Callable[[np.ndarray], dict[str, np.ndarray]], records: Sequence[dict], ann_file: str,
            category_ids: Sequence[int], tick: Callable[[], None] = lambda: None) -> dict[str, Any]:
    """COCO mask AP of ``predict`` (bgr -> scores, labels, masks at the original size) on ``records``.

    Returns ``{AP, AP50, AP75, APs, APm, APl}`` on pycocotools' 0-1 scale (None where the area range has no
    ground truth), plus ``box_AP``, ``images`` (scored) and ``unreadable`` (images scored without detections).
    """
    from lapmask.engine.evaluator import evaluate_segm, instances_to_results

    results: list[dict] = []
    unreadable = 0
    for rec in records:
        try:
            bgr = load_bgr(rec)
        except ValueError as e:  # lapmask.preprocess.ImageError is a ValueError
            warnings.warn(f"{e} -- scored as an image without detections", stacklevel=2)
            unreadable += 1
            tick()
            continue
        out = predict(bgr)
        results += instances_to_results(rec["id"], out["masks"], out["scores"], out["labels"], category_ids)
        tick()
    metrics = evaluate_segm(ann_file, results, image_ids=[r["id"] for r in records])

    def clean(v: float) -> float | None:
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)
    acc: dict[str, Any] = {k: clean(metrics["segm"][k]) for k in AP_KEYS}
    acc["box_AP"] = clean(metrics["bbox"]["AP"])
    acc["images"] = len(records)
    acc["unreadable"] = unreadable
    acc["instances"] = len(results)
    return acc
