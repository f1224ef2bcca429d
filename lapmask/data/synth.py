"""The embedded synthetic dataset: COCO-format images of six shape classes, learnable in CPU-minutes.

Definition (version ``SYNTH_VERSION``; image size S, square, default 256; all lengths scale with S / 256):

* Classes (``lapmask.classes``): circle 1, square 2, triangle 3, star 5, ring 8, cross 13 (non-contiguous ids on
  purpose). A class is defined by its SHAPE only; colour and texture are random and never class-coded.
  - circle: disc of radius r;            - square: rotated square of circumradius r;
  - triangle: rotated equilateral, circumradius r;  - star: rotated 5-point star, radii r and 0.45 r;
  - ring: annulus, radii r and 0.55 r;   - cross: rotated plus sign, arm length r, arm width 0.6 r.
* Instances per image: 2..8 (uniform), class uniform. Size b = 2r drawn from three modes: small (p 0.45, b in
  [16, 36) px: COCO-"small", area < 32^2), medium (p 0.40, b in [36, 110)), large (p 0.15, b in [110, 240]);
  so >= 30 % of instances are small and some exceed 96x96 (every FPN level gets positives).
  Shapes lie entirely inside the image.
* Drawing order: decreasing size, later shapes on top (partial occlusion). A new shape is rejected (and
  re-placed) if it would leave any earlier instance with less than ``MIN_VISIBLE`` = 50 % of its own area (or
  fewer than 12 px) visible. The annotation is the VISIBLE mask.
* Appearance: background = random colour + linear gradient + low-frequency noise; 2..6 distractors (lines and
  translucent irregular blobs, never annotated) drawn before the shapes; each shape has a random colour at
  least 100 (L1) away from the mean colour beneath it, with a random texture (flat, gradient, stripes or
  speckle); finally Gaussian pixel noise (sigma 2..8). Edges are crisp: shape pixels are exactly the mask.
* Annotations: un-occluded polygon shapes (all but the ring) are stored as polygons (the very vertices that
  were rasterised, so decoding reproduces the pixels), everything else as compressed RLE. ``bbox`` is the
  visible mask's pixel box [x, y, w, h] (w = x_max - x_min + 1), ``area`` its pixel count, ``iscrowd`` 0.
* Files: ``out/train/NNNNNN.png``, ``out/val/NNNNNN.png`` (RGB PNG), ``out/annotations/instances_{train,val}.json``.
  Image ids start at 1. Every image is a pure function of (seed, split, index): the same arguments give
  byte-identical JSON and PNGs. The val split uses ``val_seed`` (default ``DEFAULT_VAL_SEED``, independent of
  the training seed, so the validation set stays fixed when the training seed changes).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageDraw

from lapmask.classes import SYNTH_CATEGORY_IDS, SYNTH_CLASS_NAMES
from lapmask.data.masks import encode_masks, mask_to_xywh, polygons_to_bitmask

SYNTH_VERSION = 1
DEFAULT_SIZE = 256
DEFAULT_VAL_SEED = 10_000
MIN_VISIBLE = 0.5
MIN_PIXELS = 12
# (name, probability, b_min, b_max) at S = 256; b = 2r is the shape's circumscribed diameter in pixels.
SIZE_MODES = (("small", 0.45, 16.0, 36.0), ("medium", 0.40, 36.0, 110.0), ("large", 0.15, 110.0, 240.0))
_SPLIT_TAG = {"train": 0, "val": 1}


def _shape_polygons(cls: int, cx: float, cy: float, r: float, theta: float) -> tuple[list[np.ndarray], bool]:
    """Flat polygons (rounded to 0.01 px) of a shape, and whether it is one polygon (False for the ring, whose
    hole a COCO polygon cannot express: ring = polygon 0 minus polygon 1)."""
    def ring_pts(radii: np.ndarray, angles: np.ndarray) -> np.ndarray:
        return np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], 1)

    name = SYNTH_CLASS_NAMES[cls]
    if name in ("circle", "ring"):
        n = int(np.clip(2 * math.pi * r / 3, 16, 64))
        a = theta + np.arange(n) * 2 * math.pi / n
        polys = [ring_pts(np.full(n, r), a)] + ([ring_pts(np.full(n, 0.55 * r), a)] if name == "ring" else [])
    elif name == "square":
        polys = [ring_pts(np.full(4, r), theta + math.pi / 4 + np.arange(4) * math.pi / 2)]
    elif name == "triangle":
        polys = [ring_pts(np.full(3, r), theta + np.arange(3) * 2 * math.pi / 3)]
    elif name == "star":
        polys = [ring_pts(np.where(np.arange(10) % 2 == 0, r, 0.45 * r), theta + np.arange(10) * math.pi / 5)]
    else:  # cross
        h = 0.3 * r
        local = np.array([(h, r), (h, h), (r, h), (r, -h), (h, -h), (h, -r), (-h, -r), (-h, -h), (-r, -h),
                          (-r, h), (-h, h), (-h, r)])
        c, s = math.cos(theta), math.sin(theta)
        polys = [np.stack([cx + c * local[:, 0] - s * local[:, 1], cy + s * local[:, 0] + c * local[:, 1]], 1)]
    return [np.round(p.reshape(-1), 2) for p in polys], name != "ring"


def _shape_mask(polys: list[np.ndarray], single: bool, size: int) -> np.ndarray:
    outer = polygons_to_bitmask([polys[0]], size, size)
    return outer if single else outer & ~polygons_to_bitmask([polys[1]], size, size)


def _smooth_noise(rng: np.random.Generator, size: int, cells: int, sigma: float) -> np.ndarray:
    """float32 [size, size, 3] low-frequency noise (a coarse random grid resized bilinearly)."""
    grid = rng.normal(0.0, sigma, (3, cells, cells)).astype(np.float32)
    return np.stack([np.asarray(Image.fromarray(g, mode="F").resize((size, size), Image.BILINEAR)) for g in grid], -1)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    ang = rng.uniform(0, 2 * math.pi)
    ramp = (np.cos(ang) * xx + np.sin(ang) * yy)[..., None] * rng.uniform(-60, 60, 3).astype(np.float32)
    img = rng.uniform(0, 255, 3).astype(np.float32) + ramp + _smooth_noise(rng, size, 5, 18.0)
    pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    for _ in range(int(rng.integers(2, 7))):  # distractors: lines and translucent irregular blobs
        col = tuple(int(v) for v in rng.integers(0, 256, 3))
        if rng.uniform() < 0.5:
            pts = [tuple(float(v) for v in rng.uniform(0, size, 2)) for _ in range(int(rng.integers(2, 5)))]
            ImageDraw.Draw(pil).line(pts, fill=col, width=int(rng.integers(1, 4)))
        else:
            n = int(rng.integers(12, 19))
            rad = rng.uniform(6, 40) * size / DEFAULT_SIZE * rng.uniform(0.45, 1.0, n)
            a = np.sort(rng.uniform(0, 2 * math.pi, n))
            c = rng.uniform(0, size, 2)
            layer = pil.copy()
            ImageDraw.Draw(layer).polygon([(float(c[0] + r * math.cos(t)), float(c[1] + r * math.sin(t)))
                                           for r, t in zip(rad, a)], fill=col)
            pil = Image.blend(pil, layer, float(rng.uniform(0.25, 0.55)))
    return np.asarray(pil).astype(np.float32)


def _paint(rng: np.random.Generator, canvas: np.ndarray, mask: np.ndarray) -> None:
    """Fill ``mask`` pixels of ``canvas`` (float32 [S, S, 3]) with a contrasting colour and a random texture."""
    under = canvas[mask].mean(0)
    best, colour = -1.0, None
    for _ in range(12):
        c = rng.uniform(0, 255, 3)
        d = float(np.abs(c - under).sum())
        if d > best:
            best, colour = d, c
        if d >= 100:
            break
    ys, xs = np.nonzero(mask)
    kind = int(rng.integers(4))
    if kind == 0:  # flat
        tex = np.zeros((len(ys), 1))
    elif kind == 1:  # gradient across the shape
        ang = rng.uniform(0, 2 * math.pi)
        t = np.cos(ang) * xs + np.sin(ang) * ys
        tex = ((t - t.min()) / max(float(np.ptp(t)), 1.0) - 0.5)[:, None] * rng.uniform(20, 70)
    elif kind == 2:  # stripes
        ang, period = rng.uniform(0, math.pi), rng.uniform(3, 9)
        tex = np.sin(2 * math.pi * (np.cos(ang) * xs + np.sin(ang) * ys) / period)[:, None] * rng.uniform(10, 30)
    else:  # speckle
        tex = rng.normal(0, rng.uniform(6, 18), (len(ys), 3))
    canvas[ys, xs] = colour + tex


def render_image(rng: np.random.Generator, size: int = DEFAULT_SIZE) -> tuple[np.ndarray, list[dict]]:
    """One synthetic image: ``uint8 [S, S, 3]`` RGB and its instances ``{"label", "mask" (visible, bool [S, S]),
    "polygons" (flat polygons when un-occluded and expressible, else None)}``."""
    scale = size / DEFAULT_SIZE
    canvas = _background(rng, size)
    n = int(rng.integers(2, 9))
    modes = rng.choice(len(SIZE_MODES), size=n, p=[m[1] for m in SIZE_MODES])
    diam = sorted((float(rng.uniform(SIZE_MODES[m][2], SIZE_MODES[m][3])) * scale for m in modes), reverse=True)
    labels = rng.integers(len(SYNTH_CLASS_NAMES), size=n)
    inst: list[dict] = []
    for b, cls in zip(diam, labels):
        r = min(b / 2, size / 2 - 1.0)
        for attempt in range(40):
            if attempt and attempt % 15 == 0:
                r *= 0.8  # crowded image: shrink and try again
            cx, cy = rng.uniform(r, size - r, 2)
            polys, single = _shape_polygons(int(cls), float(cx), float(cy), r, float(rng.uniform(0, 2 * math.pi)))
            full = _shape_mask(polys, single, size)
            area = int(full.sum())
            if area < MIN_PIXELS:
                continue
            if any(((p["mask"] & ~full).sum() < max(MIN_VISIBLE * p["area"], MIN_PIXELS)) for p in inst):
                continue
            for p in inst:  # the new shape is on top
                p["mask"] &= ~full
            _paint(rng, canvas, full)
            inst.append({"label": int(cls), "mask": full, "area": area, "polygons": polys if single else None})
            break
    canvas += rng.normal(0, rng.uniform(2, 8), canvas.shape)
    for p in inst:
        if p["polygons"] is not None and int(p["mask"].sum()) != p["area"]:
            p["polygons"] = None  # occluded: store the visible mask as RLE
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8), [{k: p[k] for k in ("label", "mask", "polygons")}
                                                                 for p in inst]


def _render_record(img_dir: Path, split: str, size: int, seed: int, i: int) -> tuple[dict, list[dict]]:
    """Render image ``i`` of a split, write its PNG; returns its image record and its annotations (no ids yet)."""
    rng = np.random.default_rng([seed, _SPLIT_TAG[split], i])
    img, inst = render_image(rng, size)
    name = f"{i + 1:06d}.png"
    Image.fromarray(img).save(img_dir / name, format="PNG")
    rles = encode_masks(np.stack([p["mask"] for p in inst])) if inst else []
    anns = [{"image_id": i + 1, "category_id": SYNTH_CATEGORY_IDS[p["label"]],
             "segmentation": [[float(v) for v in p["polygons"][0]]] if p["polygons"] is not None else rle,
             "area": int(p["mask"].sum()), "bbox": mask_to_xywh(p["mask"]), "iscrowd": 0}
            for p, rle in zip(inst, rles)]
    return {"id": i + 1, "file_name": name, "height": size, "width": size}, anns


def _render_chunk(args: tuple[Path, str, int, int, range]) -> list[tuple[dict, list[dict]]]:
    img_dir, split, size, seed, idx = args
    return [_render_record(img_dir, split, size, seed, i) for i in idx]


def _split_json(out_dir: Path, split: str, n: int, size: int, seed: int, workers: int = 1) -> dict:
    """Render a split (with ``workers`` processes) and return its COCO dict. Each image depends only on (seed,
    split, index) and annotation ids are given in index order afterwards, so the output is byte-identical
    whatever the number of workers."""
    img_dir = out_dir / split
    img_dir.mkdir(parents=True, exist_ok=True)
    chunk = 25  # images per task: enough to amortise sending the results back, few enough to balance the workers
    jobs = [(img_dir, split, size, seed, range(a, min(a + chunk, n))) for a in range(0, n, chunk)]
    if workers > 1 and len(jobs) > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        # spawn, not fork: the demo calls this from a process that holds torch threads; the children import
        # numpy, PIL and pycocotools only (not torch)
        with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=mp.get_context("spawn")) as pool:
            records = [r for part in pool.map(_render_chunk, jobs) for r in part]
    else:
        records = [r for job in jobs for r in _render_chunk(job)]
    images = [im for im, _ in records]
    anns = [{"id": k + 1, **a} for k, a in enumerate(a for _, part in records for a in part)]
    cats = [{"id": c, "name": nm, "supercategory": "shape"} for c, nm in zip(SYNTH_CATEGORY_IDS, SYNTH_CLASS_NAMES)]
    return {"info": {"description": "lapmask synthetic shapes", "version": SYNTH_VERSION, "split": split,
                     "size": size, "seed": seed}, "licenses": [], "images": images, "annotations": anns,
            "categories": cats}


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, separators=(",", ":")))
    os.replace(tmp, path)


def generate_synthetic(out_dir: str | Path, n_train: int, n_val: int, size: int = DEFAULT_SIZE, seed: int = 0,
                       val_seed: int | None = None, workers: int = 1) -> dict[str, Path]:
    """Write the synthetic dataset (see the module docstring) with ``workers`` processes (the files do not depend
    on it); returns the train/val json and image folders."""
    if n_train < 0 or n_val < 0 or n_train + n_val == 0:
        raise ValueError(f"need a positive number of images (train={n_train}, val={n_val})")
    if size < 64:
        raise ValueError(f"size {size} is too small for the shape definitions; use >= 64 (default 256)")
    out = Path(out_dir)
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    val_seed = DEFAULT_VAL_SEED if val_seed is None else val_seed
    paths = synthetic_paths(out)
    for split, n, s in (("train", n_train, seed), ("val", n_val, val_seed)):
        _write_json(paths[f"{split}_json"], _split_json(out, split, n, size, s, workers))
    _write_json(out / "synth_params.json", _params(n_train, n_val, size, seed, val_seed))
    return paths


def synthetic_paths(out_dir: str | Path) -> dict[str, Path]:
    out = Path(out_dir)
    return {"train_json": out / "annotations" / "instances_train.json", "train_images": out / "train",
            "val_json": out / "annotations" / "instances_val.json", "val_images": out / "val"}


def _params(n_train: int, n_val: int, size: int, seed: int, val_seed: int) -> dict:
    return {"version": SYNTH_VERSION, "n_train": n_train, "n_val": n_val, "size": size, "seed": seed,
            "val_seed": val_seed}


def ensure_synthetic(out_dir: str | Path, n_train: int, n_val: int, size: int = DEFAULT_SIZE, seed: int = 0,
                     val_seed: int | None = None, workers: int = 1) -> dict[str, Path]:
    """Generate unless ``out_dir`` already holds exactly this dataset (same parameters and version)."""
    out = Path(out_dir)
    val_seed = DEFAULT_VAL_SEED if val_seed is None else val_seed
    stamp = out / "synth_params.json"
    paths = synthetic_paths(out)
    if stamp.is_file() and paths["train_json"].is_file() and paths["val_json"].is_file():
        try:
            if json.loads(stamp.read_text()) == _params(n_train, n_val, size, seed, val_seed):
                return paths
        except json.JSONDecodeError:
            pass
    return generate_synthetic(out, n_train, n_val, size, seed, val_seed, workers)


def dataset_statistics(ann: str | Path | dict) -> dict:
    """Instance statistics of a COCO file: per class (and overall) count and fractions of COCO-small
    (area < 32^2), medium (< 96^2) and large instances, boxes over 96x96, instances per image."""
    d = json.loads(Path(ann).read_text()) if not isinstance(ann, dict) else ann
    names = {c["id"]: c["name"] for c in d["categories"]}
    rows: dict[str, list[tuple[float, list[float]]]] = {n: [] for n in names.values()}
    for a in d["annotations"]:
        rows[names[a["category_id"]]].append((float(a["area"]), a["bbox"]))

    def summarise(items: Sequence[tuple[float, list[float]]]) -> dict:
        n = len(items)
        area = np.array([x[0] for x in items], dtype=np.float64)
        big = sum(1 for _, b in items if b[2] > 96 and b[3] > 96)
        frac = (lambda k: float(k) / n) if n else (lambda k: 0.0)
        return {"n": n, "small": frac((area < 32**2).sum()), "medium": frac(((area >= 32**2) & (area < 96**2)).sum()),
                "large": frac((area >= 96**2).sum()), "box_gt_96x96": frac(big)}

    per_image = np.bincount([a["image_id"] for a in d["annotations"]], minlength=1)
    counts = per_image[[im["id"] for im in d["images"]]] if d["images"] else np.zeros(0, int)
    return {"num_images": len(d["images"]), "num_instances": len(d["annotations"]),
            "instances_per_image": {"min": int(counts.min()) if counts.size else 0,
                                    "max": int(counts.max()) if counts.size else 0,
                                    "mean": float(counts.mean()) if counts.size else 0.0},
            "per_class": {n: summarise(v) for n, v in rows.items()},
            "overall": summarise([x for v in rows.values() for x in v]),
            "polygon_fraction": (sum(isinstance(a["segmentation"], list) for a in d["annotations"])
                                 / max(len(d["annotations"]), 1))}


def format_statistics(stats: dict) -> str:
    """Markdown table of ``dataset_statistics``."""
    lines = ["| class | n | small | medium | large | box > 96x96 |", "|---|---|---|---|---|---|"]
    for name, s in list(stats["per_class"].items()) + [("all", stats["overall"])]:
        lines.append(f"| {name} | {s['n']} | {s['small']:.1%} | {s['medium']:.1%} | {s['large']:.1%} | "
                     f"{s['box_gt_96x96']:.1%} |")
    ipi = stats["instances_per_image"]
    lines.append(f"\n{stats['num_images']} images, {stats['num_instances']} instances, {ipi['min']}-{ipi['max']} "
                 f"per image (mean {ipi['mean']:.2f}); {stats['polygon_fraction']:.0%} stored as polygons")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``lapmask data synth --out DIR --train N --val M --size S [--seed K] [--val-seed K] [--workers W]``."""
    ap = argparse.ArgumentParser(prog="lapmask data synth", description="Generate the synthetic shapes dataset "
                                 "(COCO format) used by the demo and the CPU tests.")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--train", type=int, default=1000, help="training images (default 1000)")
    ap.add_argument("--val", type=int, default=200, help="validation images (default 200)")
    ap.add_argument("--size", type=int, default=DEFAULT_SIZE, help=f"image side in pixels (default {DEFAULT_SIZE})")
    ap.add_argument("--seed", type=int, default=0, help="training split seed (default 0)")
    ap.add_argument("--val-seed", type=int, default=None,
                    help=f"validation split seed (default {DEFAULT_VAL_SEED}, independent of --seed)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                    help="rendering processes (default: one per CPU; the files are the same for any number)")
    args = ap.parse_args(argv)
    if args.workers < 1:
        ap.error("--workers must be >= 1")
    t0 = time.perf_counter()
    try:
        paths = generate_synthetic(args.out, args.train, args.val, args.size, args.seed, args.val_seed,
                                   args.workers)
    except ValueError as e:
        ap.error(str(e))
    dt = time.perf_counter() - t0
    print(f"wrote {args.train} train + {args.val} val images ({args.size}x{args.size}) to {args.out} in {dt:.1f}s")
    if args.train:
        print(format_statistics(dataset_statistics(paths["train_json"])))
    print(f"annotations: {paths['train_json']} (images {paths['train_images']}), {paths['val_json']} "
          f"(images {paths['val_images']})")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
