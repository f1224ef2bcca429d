"""COCO-format instance dataset with the official training mapping (spec 5.1).

Loading follows detectron2 ``load_coco_json`` + adet ``DatasetMapperWithBasis``:
* categories sorted by id; contiguous label = position in that order; ``class_names`` and ``category_ids`` (the
  dataset's own ids, in label order) travel to every results file.
* crowd annotations (``iscrowd=1``) are dropped (the mapper keeps only ``iscrowd == 0``).
* training drops images without a usable annotation (``DATALOADER.FILTER_EMPTY_ANNOTATIONS=True``); test keeps all.
* broken records (missing image file, bad image record, invalid/zero-area polygon, bad RLE, unknown category,
  invalid bbox, annotation of an unknown image) are skipped, counted, and named in ONE warning.
* per sample: image read with PIL (EXIF-rotated) and converted RGB -> BGR; ResizeShortestEdge + (train) flip;
  boxes = the annotation boxes transformed and clipped (not recomputed from masks); polygons transformed as
  coordinates and rasterised at the new size, RLEs decoded then resized NEAREST; ``filter_empty_instances``
  (box side <= 1e-5 or empty mask).

Item: ``{"image": uint8 Tensor[3, h, w] (BGR), "instances": {"boxes": float32 [N, 4] XYXY, "labels": int64 [N],
"masks": bool [N, h, w]}, "height": H, "width": W, "image_id": int, "file_name": str}`` (H, W original size).
"""
from __future__ import annotations

import json
import logging
import os
import pickle
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image, ImageOps

from lapmask.data.masks import (polygons_to_bitmask, rle_area, rle_problem, rle_to_bitmask, valid_polygon,
                                valid_xywh)
from lapmask.data.transforms import Augmentation, apply_augmentations, build_augmentation

logger = logging.getLogger(__name__)

_SHOW_IDS = 5  # ids named per reason in the warning


class BrokenRecordsWarning(UserWarning):
    """Some images or annotations of a dataset were skipped (missing files, invalid geometry, ...)."""


class EmptyDatasetError(ValueError):
    """No usable image is left in a dataset; the message says why."""


@dataclass
class LoadReport:
    """What loading kept and skipped. ``broken`` maps a reason to the image or annotation ids concerned."""

    source: str
    num_images: int = 0
    num_annotations: int = 0
    num_crowd: int = 0
    num_images_without_annotations: int = 0
    broken: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))
    num_invalid_polygon_parts: int = 0

    @property
    def num_broken(self) -> int:
        return sum(len(v) for v in self.broken.values())

    def broken_summary(self) -> str:
        parts = []
        for reason, ids in self.broken.items():
            shown = ", ".join(str(i) for i in ids[:_SHOW_IDS]) + (", ..." if len(ids) > _SHOW_IDS else "")
            parts.append(f"{len(ids)} {reason} ({shown})")
        return "; ".join(parts)


class ImageLoadError(RuntimeError):
    """An image file exists but cannot be decoded, or its size disagrees with its record."""


def read_image_bgr(path: str, height: int, width: int) -> np.ndarray:
    """``uint8 [H, W, 3]`` BGR; detectron2 ``read_image(format="BGR")`` + the mapper's size check (a transposed
    image is transposed back, any other mismatch is an error)."""
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            rgb = np.asarray(im.convert("RGB"))
    except Exception as e:  # PIL raises OSError, SyntaxError, DecompressionBombError, ... on bad files
        raise ImageLoadError(f"cannot decode image {path}: {e}") from e
    img = rgb[:, :, ::-1]
    if img.shape[:2] != (height, width):
        if img.shape[:2] == (width, height):
            img = img.transpose(1, 0, 2)
        else:
            raise ImageLoadError(f"image {path} is {img.shape[1]}x{img.shape[0]} but its record says {width}x{height}")
    return np.ascontiguousarray(img)


def _read_json(ann: str | Path | dict) -> tuple[dict, str]:
    if isinstance(ann, dict):
        return ann, "<dict>"
    p = Path(ann)
    if not p.is_file():
        raise FileNotFoundError(f"annotation file {p} does not exist")
    try:
        return json.loads(p.read_text()), str(p)
    except json.JSONDecodeError as e:
        raise ValueError(f"annotation file {p} is not valid JSON: {e}") from e


def parse_categories(d: dict, source: str) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """(class_names, category_ids) sorted by id (detectron2 ``load_coco_json``)."""
    cats = d.get("categories")
    if not isinstance(cats, list) or not cats:
        raise EmptyDatasetError(f"{source}: no 'categories' list; a COCO instances file needs one")
    try:
        pairs = sorted((int(c["id"]), str(c["name"])) for c in cats)
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{source}: every category needs an integer 'id' and a 'name' ({e})") from e
    ids = [i for i, _ in pairs]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{source}: duplicate category ids {sorted(i for i in set(ids) if ids.count(i) > 1)}")
    return tuple(n for _, n in pairs), tuple(ids)


def _parse_annotation(a: dict, img: dict, label_of: dict[int, int], report: LoadReport) -> dict | None:
    """One annotation -> ``{"label", "bbox" (XYXY), "segm"}`` or None (crowd or broken; counted)."""
    aid = a.get("id", "?")
    if a.get("iscrowd", 0):
        report.num_crowd += 1
        return None
    cid = a.get("category_id")
    if not isinstance(cid, int) or cid not in label_of:
        report.broken["annotations with a category not in 'categories'"].append(aid)
        return None
    if not valid_xywh(a.get("bbox")):
        report.broken["annotations with an invalid bbox"].append(aid)
        return None
    segm = a.get("segmentation")
    if isinstance(segm, dict):
        if rle_problem(segm, img["height"], img["width"]) is not None:
            report.broken["annotations with an invalid RLE (size, counts)"].append(aid)
            return None
        if rle_area(segm) == 0:
            report.broken["annotations with an empty RLE mask"].append(aid)
            return None
    elif isinstance(segm, list) and segm:
        polys = [[float(v) for v in p] for p in segm if valid_polygon(p, img["height"], img["width"])]
        report.num_invalid_polygon_parts += len(segm) - len(polys)
        if not polys:
            report.broken["annotations with only invalid or zero-area polygons"].append(aid)
            return None
        segm = polys
    else:
        report.broken["annotations without a segmentation"].append(aid)
        return None
    x, y, w, h = (float(v) for v in a["bbox"])
    return {"label": label_of[cid], "bbox": [x, y, x + w, y + h], "segm": segm}


def load_coco_records(ann: str | Path | dict, image_root: str | Path, *, filter_empty: bool,
                      check_files: bool = True) -> tuple[list[dict], tuple[str, ...], tuple[int, ...], LoadReport]:
    """Parse a COCO instances file into per-image records (sorted by image id, like detectron2).

    Returns ``(records, class_names, category_ids, report)``; warns once (BrokenRecordsWarning) when anything was
    skipped and raises EmptyDatasetError when no image is left.
    """
    d, source = _read_json(ann)
    class_names, category_ids = parse_categories(d, source)
    label_of = {cid: k for k, cid in enumerate(category_ids)}
    report = LoadReport(source=source)
    images: dict[int, dict] = {}
    for im in d.get("images") or []:
        iid = im.get("id") if isinstance(im, dict) else None
        try:
            ok = (isinstance(iid, int) and isinstance(im.get("file_name"), str) and int(im["height"]) > 0
                  and int(im["width"]) > 0 and iid not in images)
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            report.broken["invalid image records (id/file_name/height/width, or duplicate id)"].append(iid)
            continue
        path = os.path.join(str(image_root), im["file_name"])
        if check_files and not os.path.isfile(path):
            report.broken["images whose file is missing"].append(iid)
            continue
        images[iid] = {"image_id": iid, "file_name": path, "height": int(im["height"]),
                       "width": int(im["width"]), "annos": []}
    report.num_images = len(d.get("images") or [])
    known_ids = {im["id"] for im in d.get("images") or [] if isinstance(im, dict) and isinstance(im.get("id"), int)}
    for a in d.get("annotations") or []:
        report.num_annotations += 1
        if not isinstance(a, dict):
            report.broken["annotation entries that are not objects"].append("?")
            continue
        iid = a.get("image_id")
        if not isinstance(iid, int) or iid not in images:
            if not isinstance(iid, int) or iid not in known_ids:  # annotations of skipped images: not twice
                report.broken["annotations of an image id not in 'images'"].append(a.get("id", "?"))
            continue
        parsed = _parse_annotation(a, images[iid], label_of, report)
        if parsed is not None:
            images[iid]["annos"].append(parsed)
    records = [images[i] for i in sorted(images)]
    if filter_empty:
        kept = [r for r in records if r["annos"]]
        report.num_images_without_annotations = len(records) - len(kept)
        records = kept
    if report.num_broken:
        warnings.warn(f"{source}: skipped {report.num_broken} broken record(s): {report.broken_summary()}",
                      BrokenRecordsWarning, stacklevel=3)
    if report.num_images_without_annotations:
        logger.info("%s: removed %d images with no usable annotations (FILTER_EMPTY_ANNOTATIONS); %d left",
                    source, report.num_images_without_annotations, len(records))
    if not records:
        why = [f"{report.num_images} image record(s) in the file"]
        if report.num_broken:
            why.append(f"skipped: {report.broken_summary()}")
        if report.num_images_without_annotations:
            why.append(f"{report.num_images_without_annotations} image(s) without a usable (non-crowd, valid) "
                       "annotation were dropped for training")
        raise EmptyDatasetError(f"{source}: no usable image left ({'; '.join(why)}). Check the image root "
                                f"'{image_root}' and the annotation file.")
    return records, class_names, category_ids, report


class _SerializedList:
    """Records pickled into one numpy buffer, so forked DataLoader workers do not copy them on access
    (detectron2 ``DatasetFromList(serialize=True)``)."""

    def __init__(self, items: Sequence[Any]):
        blobs = [np.frombuffer(pickle.dumps(x, protocol=pickle.HIGHEST_PROTOCOL), dtype=np.uint8) for x in items]
        self._addr = np.cumsum([len(b) for b in blobs], dtype=np.int64)
        self._buf = np.concatenate(blobs) if blobs else np.zeros(0, np.uint8)

    def __len__(self) -> int:
        return len(self._addr)

    def __getitem__(self, i: int) -> Any:
        start = 0 if i == 0 else int(self._addr[i - 1])
        return pickle.loads(memoryview(self._buf[start:int(self._addr[i])]))  # our own bytes, built above


class CocoInstanceDataset(torch.utils.data.Dataset):
    """COCO-format instance segmentation dataset (map-style).

    Args:
        ann_file: COCO instances JSON path (or the parsed dict).
        image_root: folder the ``file_name`` entries are relative to.
        is_train: training mapping (random size choice + flip, drop images without annotations) or test mapping.
        min_sizes: short-side lengths (train: choices; test: one value); None or 0 = native size (no resize).
        max_size: cap for the long side.
        hflip: flip with p = 0.5 (default: ``is_train``).
        filter_empty: drop images without annotations (default: ``is_train``, detectron2's behaviour).
    Keys: ``dataset[i]`` (fresh randomness) or ``dataset[(i, seed)]`` (augmentation a pure function of seed; the
    training sampler passes these), or ``dataset[(i, seed, size_seed)]`` (the short side drawn from ``size_seed``,
    shared by a whole batch when ``InputConfig.size_per_batch``). A training image that fails to decode is
    replaced by another one (counted in ``num_load_failures``, warned once per file); at test time the item is None
    (``trivial_collate`` drops it).
    """

    max_retries = 10

    def __init__(self, ann_file: str | Path | dict, image_root: str | Path, *, is_train: bool,
                 min_sizes: Sequence[int] | int | None = None, max_size: int | None = None,
                 hflip: bool | None = None, filter_empty: bool | None = None, check_files: bool = True):
        self.is_train = is_train
        self.ann_file = ann_file
        records, self.class_names, self.category_ids, self.report = load_coco_records(
            ann_file, image_root, filter_empty=is_train if filter_empty is None else filter_empty,
            check_files=check_files)
        self.image_ids = [r["image_id"] for r in records]
        self.heights = np.array([r["height"] for r in records], dtype=np.int64)
        self.widths = np.array([r["width"] for r in records], dtype=np.int64)
        self._records = _SerializedList(records)
        self.augmentations: list[Augmentation] = build_augmentation(
            min_sizes, max_size, is_train if hflip is None else hflip)
        self.num_load_failures = 0
        self._bad: set[int] = set()

    @classmethod
    def from_config(cls, cfg: Any, ann_file: str | Path | dict, image_root: str | Path, *, is_train: bool,
                    native_size: bool = False, **kw: Any) -> "CocoInstanceDataset":
        """Sizes from ``cfg.input`` (MIN/MAX_SIZE_TRAIN or _TEST, HFLIP_TRAIN); ``native_size`` = no resize."""
        inp = cfg.input
        if is_train:
            sizes, max_size, hflip = inp.min_size_train, inp.max_size_train, inp.hflip_train
        else:
            sizes, max_size, hflip = (None if native_size else inp.min_size_test), inp.max_size_test, False
        return cls(ann_file, image_root, is_train=is_train, min_sizes=sizes, max_size=max_size, hflip=hflip, **kw)

    def __len__(self) -> int:
        return len(self._records)

    def aspect_groups(self) -> np.ndarray:
        """``int64 [len]``: 0 if width > height else 1 (detectron2 ``AspectRatioGroupedDataset`` buckets)."""
        return np.where(self.widths > self.heights, 0, 1).astype(np.int64)

    def __getitem__(self, key: int | tuple[int, int] | tuple[int, int, int]) -> dict | None:
        if isinstance(key, tuple):
            idx, seed, size_seed = key if len(key) == 3 else (*key, None)
        else:
            idx, seed, size_seed = key, None, None
        rng = np.random.default_rng(seed)
        size_rng = None if size_seed is None else np.random.default_rng(size_seed)
        idx = int(idx)
        for _ in range(self.max_retries):
            rec = self._records[idx]
            try:
                image = read_image_bgr(rec["file_name"], rec["height"], rec["width"])
            except ImageLoadError as e:
                self._note_failure(idx, e)
                if not self.is_train:
                    return None
                idx = self._fallback_index(rng)
                continue
            return self.map_record(rec, image, rng, size_rng)
        raise RuntimeError(f"{self.max_retries} images in a row failed to load (last: {rec['file_name']}); "
                           "check the image folder")

    def _note_failure(self, idx: int, err: Exception) -> None:
        self.num_load_failures += 1
        if idx not in self._bad:
            self._bad.add(idx)
            warnings.warn(f"{err} -- skipping it ({len(self._bad)} unreadable image(s) so far in this process)",
                          BrokenRecordsWarning, stacklevel=3)

    def _fallback_index(self, rng: np.random.Generator) -> int:
        if len(self._bad) >= len(self):
            raise RuntimeError("every image of the dataset failed to load; check the image folder")
        while True:
            i = int(rng.integers(len(self)))
            if i not in self._bad:
                return i

    def map_record(self, rec: dict, image: np.ndarray, rng: np.random.Generator,
                   size_rng: np.random.Generator | None = None) -> dict:
        """Apply the mapping to one decoded record (``image``: uint8 [H, W, 3] BGR); ``size_rng`` (optional)
        draws the training short side (one per batch), ``rng`` everything else."""
        h0, w0 = image.shape[:2]
        tfm = apply_augmentations(self.augmentations, h0, w0, rng, size_rng)
        img = tfm.apply_image(image)
        h, w = img.shape[:2]
        annos = rec["annos"]
        boxes = tfm.apply_box(np.array([a["bbox"] for a in annos], dtype=np.float64).reshape(-1, 4)).clip(min=0)
        boxes = np.minimum(boxes, [w, h, w, h])
        masks = np.zeros((len(annos), h, w), dtype=bool)
        for k, a in enumerate(annos):
            if isinstance(a["segm"], list):  # polygons: transform coordinates, rasterise at the new size
                masks[k] = polygons_to_bitmask(tfm.apply_polygons(a["segm"]), h, w)
            else:  # RLE: decode at the original size, resize NEAREST / flip
                masks[k] = tfm.apply_segmentation(rle_to_bitmask(a["segm"]))
        boxes_t = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
        labels_t = torch.as_tensor([a["label"] for a in annos], dtype=torch.int64)
        masks_t = torch.from_numpy(masks)
        # filter_empty_instances: box sides > 1e-5 (on the float32 boxes) and a non-empty mask
        keep = ((boxes_t[:, 2] - boxes_t[:, 0]) > 1e-5) & ((boxes_t[:, 3] - boxes_t[:, 1]) > 1e-5)
        keep &= masks_t.flatten(1).any(1) if len(annos) else torch.zeros(0, dtype=torch.bool)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))),
            "instances": {"boxes": boxes_t[keep], "labels": labels_t[keep], "masks": masks_t[keep]},
            "height": h0, "width": w0, "image_id": rec["image_id"], "file_name": rec["file_name"],
        }


def check_categories(dataset: CocoInstanceDataset, class_names: Sequence[str], category_ids: Sequence[int]) -> None:
    """Raise ValueError when a dataset's categories differ from a config's (training on one, labelling with the
    other would silently mislabel every results file)."""
    if tuple(dataset.class_names) != tuple(class_names) or tuple(dataset.category_ids) != tuple(category_ids):
        raise ValueError(
            f"the dataset's categories {list(zip(dataset.category_ids, dataset.class_names))} differ from the "
            f"config's {list(zip(category_ids, class_names))}; use a config whose class_names/category_ids match "
            "the dataset (and num_classes = their count)")
