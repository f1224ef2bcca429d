"""Inputs and the Python implementation's outputs for the C++ fixture tests (runtime/tests/fixture_tests.cpp).

Layout (all .npy written by numpy.save; case ids are zero-padded numbers):
    resized_hw.npy                       int64 [N, 6]: h, w, short, max, new_h, new_w
    resize/NNN_in.npy, NNN_out.npy       uint8 [h, w, C] -> PIL BILINEAR [oh, ow, C]
    prepare/NNN_in.npy, _params.npy, _out.npy
    bilinear/NNN_in.npy, NNN_out.npy     float32 [n, h, w] -> lapmask.postprocess.resize_bilinear
    paste/NNN_*.npy                      deploy outputs -> postprocess_static masks/boxes/scores/labels
    rle/NNN_mask.npy, NNN_counts.txt     pycocotools mask.encode counts
    json/NNN_*.npy, _info.json, _expected.json   lapmask.postprocess.prediction_json
    image/NNN.{png,jpg}, NNN_bgr.npy     lapmask.preprocess.load_image_bgr
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from lapmask.postprocess import postprocess_static, prediction_json, resize_bilinear
from lapmask.preprocess import load_image_bgr, prepare_image, resized_hw


def _texture(rng: np.random.Generator, h: int, w: int, c: int) -> np.ndarray:
    """uint8 [h, w, c]: smooth gradients + edges + noise, so resampling rounding is exercised everywhere."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.empty((h, w, c))
    for k in range(c):
        f = rng.uniform(0.02, 0.4, size=2)
        img[:, :, k] = 127.5 + 100 * np.sin(f[0] * yy + rng.uniform(0, 6)) * np.cos(f[1] * xx)
    img += rng.normal(0, 25, size=img.shape)
    img[rng.random((h, w)) < 0.02] = 255  # isolated saturated pixels
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _smooth_probs(rng: np.random.Generator, k: int, fh: int, fw: int) -> np.ndarray:
    """float32 [k, fh, fw] in [0, 1]: blobs that cross the mask threshold along curved edges."""
    yy, xx = np.mgrid[0:fh, 0:fw].astype(np.float32)
    out = np.empty((k, fh, fw), np.float32)
    for i in range(k):
        cy, cx = rng.uniform(0, fh), rng.uniform(0, fw)
        sy, sx = rng.uniform(1, fh / 2 + 1), rng.uniform(1, fw / 2 + 1)
        out[i] = np.exp(-((yy - cy) / sy) ** 2 - ((xx - cx) / sx) ** 2) * rng.uniform(0.3, 1.0)
        out[i] += rng.normal(0, 0.03, size=(fh, fw)).astype(np.float32)
    return np.clip(out, 0, 1).astype(np.float32)


def write_resized_hw(root: Path, rng: np.random.Generator) -> int:
    rows = []
    cases = [(480, 640, 800, 1333), (1000, 3000, 800, 1333), (1, 1, 256, 512), (333, 500, 256, 512),
             (4000, 10, 800, 1333), (427, 640, 800, 1333), (640, 427, 640, 1066)]
    for _ in range(200):
        cases.append((int(rng.integers(1, 5000)), int(rng.integers(1, 5000)), int(rng.choice([256, 512, 640, 800])),
                      int(rng.choice([512, 853, 1066, 1333]))))
    for h, w, s, m in cases:
        rows.append((h, w, s, m, *resized_hw(h, w, s, m)))
    np.save(root / "resized_hw.npy", np.array(rows, dtype=np.int64))
    return len(rows)


def write_resize(root: Path, rng: np.random.Generator, n_random: int = 90) -> int:
    d = root / "resize"
    d.mkdir()
    sizes = [  # (in_h, in_w, out_h, out_w, channels): edge cases first
        (1, 1, 5, 7, 3), (5, 7, 1, 1, 3), (2, 2, 2, 2, 3), (13, 17, 13, 40, 3), (40, 17, 13, 17, 3),
        (300, 40, 30, 39, 3),  # height shrinks > 2x the width: PIL runs the vertical pass first
        (100, 100, 99, 23, 3), (480, 640, 256, 341, 3), (427, 640, 256, 384, 3), (333, 250, 341, 256, 3),
        (64, 64, 1, 64, 1), (7, 300, 7, 11, 1), (97, 31, 256, 82, 3), (500, 3, 171, 1, 3),
        (600, 900, 800, 1200, 3), (720, 1280, 450, 800, 3),  # COCO-like sizes: official up- and downscaling
    ]
    for _ in range(n_random):
        ih, iw = int(rng.integers(1, 260)), int(rng.integers(1, 260))
        mode = rng.integers(0, 3)
        if mode == 0:  # shrink
            oh, ow = int(rng.integers(1, ih + 1)), int(rng.integers(1, iw + 1))
        elif mode == 1:  # grow
            oh, ow = int(rng.integers(ih, 3 * ih + 2)), int(rng.integers(iw, 3 * iw + 2))
        else:  # anything
            oh, ow = int(rng.integers(1, 300)), int(rng.integers(1, 300))
        sizes.append((ih, iw, oh, ow, 3 if rng.random() < 0.8 else 1))
    for i, (ih, iw, oh, ow, c) in enumerate(sizes):
        img = _texture(rng, ih, iw, c)
        pil = Image.fromarray(img if c == 3 else img[:, :, 0])
        out = np.asarray(pil.resize((ow, oh), Image.BILINEAR)).reshape(oh, ow, c)
        np.save(d / f"{i:03d}_in.npy", img)
        np.save(d / f"{i:03d}_out.npy", np.ascontiguousarray(out))
    return len(sizes)


def write_prepare(root: Path, rng: np.random.Generator) -> int:
    d = root / "prepare"
    d.mkdir()
    cases = [(480, 640, 256, 512, True, 32), (333, 250, 256, 512, True, 32), (100, 1000, 256, 512, True, 32),
             (256, 256, 256, 512, True, 32), (37, 53, 256, 512, False, 32), (200, 150, 800, 1333, True, 64),
             (97, 300, 128, 256, True, 32)]
    for i, (h, w, mn, mx, resize, div) in enumerate(cases):
        img = _texture(rng, h, w, 3)
        out, hw = prepare_image(img, mn, mx, resize=resize, divisibility=div)
        np.save(d / f"{i:03d}_in.npy", img)
        np.save(d / f"{i:03d}_params.npy", np.array([mn, mx, int(resize), div, *hw], dtype=np.int64))
        np.save(d / f"{i:03d}_out.npy", out)
    return len(cases)


def write_bilinear(root: Path, rng: np.random.Generator) -> int:
    d = root / "bilinear"
    d.mkdir()
    shapes = [(2, 8, 8, 32, 32), (1, 1, 1, 4, 5), (3, 5, 7, 5, 7), (2, 64, 80, 250, 333), (1, 24, 20, 17, 13),
              (1, 80, 64, 77, 301)]
    for _ in range(20):
        shapes.append((int(rng.integers(1, 4)), int(rng.integers(1, 50)), int(rng.integers(1, 50)),
                       int(rng.integers(1, 200)), int(rng.integers(1, 200))))
    for i, (n, h, w, oh, ow) in enumerate(shapes):
        x = rng.random((n, h, w), dtype=np.float32)
        np.save(d / f"{i:03d}_in.npy", x)
        np.save(d / f"{i:03d}_out.npy", np.ascontiguousarray(resize_bilinear(x, (oh, ow))))
    return len(shapes)


def write_paste(root: Path, rng: np.random.Generator) -> int:
    d = root / "paste"
    d.mkdir()
    # (padded H, W, resized h, w, original h, w, K, num_dets, mask_thr)
    cases = [(256, 352, 256, 341, 480, 640, 8, 5, 0.55), (352, 256, 341, 256, 333, 250, 6, 6, 0.5),
             (64, 64, 20, 64, 20, 64, 4, 3, 0.55),  # ratio ceil(20 / 16) = 2 < 4: width crop clamps
             (64, 96, 40, 70, 123, 211, 5, 0, 0.55), (128, 128, 100, 128, 50, 64, 7, 7, 0.3),
             (96, 64, 77, 50, 900, 600, 3, 2, 0.55)]
    for i, (H, W, h, w, oh, ow, k, n, thr) in enumerate(cases):
        probs = _smooth_probs(rng, k, H // 4, W // 4)
        if i == 0:  # a plane at exactly float32(mask_thr): numpy compares in float32, so this must stay False
            probs[1] = np.float32(thr)
        scores = np.sort(rng.random(k).astype(np.float32))[::-1].copy()
        scores[n:] = 0
        labels = rng.integers(0, 80, size=k).astype(np.int32)
        labels[n:] = -1
        r = postprocess_static(n, scores, labels, probs, (h, w), (oh, ow), thr)
        p = f"{i:03d}"
        np.save(d / f"{p}_probs.npy", probs)
        np.save(d / f"{p}_scores.npy", scores)
        np.save(d / f"{p}_labels.npy", labels)
        np.save(d / f"{p}_params.npy", np.array([n, h, w, oh, ow, thr], dtype=np.float64))
        np.save(d / f"{p}_masks.npy", np.ascontiguousarray(r["masks"]))
        np.save(d / f"{p}_boxes.npy", r["boxes"])
        np.save(d / f"{p}_out_scores.npy", r["scores"])
        np.save(d / f"{p}_out_labels.npy", r["labels"].astype(np.int64))
    return len(cases)


def write_rle(root: Path, rng: np.random.Generator) -> int:
    from pycocotools import mask as mask_utils

    d = root / "rle"
    d.mkdir()
    masks = [np.zeros((5, 4), np.uint8), np.ones((3, 7), np.uint8), np.eye(6, dtype=np.uint8),
             np.pad(np.ones((1, 1), np.uint8), ((4, 5), (2, 3))), np.ones((1, 300), np.uint8),
             np.zeros((200, 1), np.uint8)]
    masks[-1][150:] = 1
    for _ in range(40):
        h, w = int(rng.integers(1, 120)), int(rng.integers(1, 120))
        yy, xx = np.mgrid[0:h, 0:w]
        m = ((yy - rng.uniform(0, h)) ** 2 / rng.uniform(1, h) ** 2 +
             (xx - rng.uniform(0, w)) ** 2 / rng.uniform(1, w) ** 2) < 1
        m ^= rng.random((h, w)) < rng.choice([0.0, 0.01, 0.3])
        masks.append(m.astype(np.uint8))
    for i, m in enumerate(masks):
        counts = mask_utils.encode(np.asfortranarray(m))["counts"].decode("ascii")
        np.save(d / f"{i:03d}_mask.npy", m)
        (d / f"{i:03d}_counts.txt").write_text(counts)
    return len(masks)


def write_json(root: Path, rng: np.random.Generator) -> int:
    d = root / "json"
    d.mkdir()
    names = ("person", 'quote"d', "caf\u00e9", "back\\slash", "zebra")
    ids = (1, 7, 13, 42, 90)
    cases = [(4, 40, 60, 0.0), (6, 33, 21, 0.3), (0, 10, 10, 0.0), (3, 64, 48, 0.0)]
    for i, (n, h, w, thr) in enumerate(cases):
        masks = rng.random((n, h, w)) < 0.05
        if n:
            masks[0] = False  # an empty mask: bbox [0, 0, 0, 0]
        scores = rng.choice(np.array([0.9, 0.5, 0.5, 0.25, 0.7, 0.123456789], np.float32), size=n)  # ties
        labels = rng.integers(0, len(names), size=n).astype(np.int64)
        result = {"scores": scores.astype(np.float32), "labels": labels, "masks": masks,
                  "boxes": np.zeros((n, 4), np.float32)}
        doc = prediction_json(f"img_{i}.png", h, w, result, names, ids, thr)
        p = f"{i:03d}"
        np.save(d / f"{p}_masks.npy", np.ascontiguousarray(masks.reshape(n, h, w)))
        np.save(d / f"{p}_scores.npy", scores.astype(np.float32))
        np.save(d / f"{p}_labels.npy", labels)
        (d / f"{p}_info.json").write_text(json.dumps({"file_name": f"img_{i}.png", "class_names": names,
                                                      "category_ids": ids, "score_thr": thr}))
        (d / f"{p}_expected.json").write_text(json.dumps(doc))
    return len(cases)


def _exif(orientation: int) -> bytes:
    ex = Image.Exif()
    ex[0x0112] = orientation
    return ex.tobytes()


def write_images(root: Path, rng: np.random.Generator, jpeg: bool = True) -> int:
    """PNG variants (RGB, RGBA, L, P, EXIF-rotated) and, with ``jpeg``, JPEG ones, with PIL's decoding."""
    d = root / "image"
    d.mkdir()
    rgb = _texture(rng, 37, 53, 3)
    files = []
    Image.fromarray(rgb).save(d / "000.png")
    Image.fromarray(np.dstack([rgb, _texture(rng, 37, 53, 1)])).save(d / "001.png")  # RGBA: alpha dropped
    Image.fromarray(rgb[:, :, 0]).save(d / "002.png")  # grayscale
    Image.fromarray(rgb).quantize(colors=17).save(d / "003.png")  # palette
    for k, o in enumerate((3, 6, 5, 8)):
        Image.fromarray(rgb).save(d / f"{4 + k:03d}.png", exif=_exif(o))
    files += [d / f"{i:03d}.png" for i in range(8)]
    if jpeg:
        Image.fromarray(rgb).save(d / "010.jpg", quality=90)
        Image.fromarray(rgb[:, :, 1]).save(d / "011.jpg", quality=80)
        Image.fromarray(rgb).save(d / "012.jpg", quality=95, exif=_exif(6), subsampling=0)
        files += [d / "010.jpg", d / "011.jpg", d / "012.jpg"]
    for f in files:
        np.save(d / f"{f.stem}_bgr.npy", load_image_bgr(f))
    return len(files)


def write_all(root: Path, seed: int = 0) -> dict[str, int]:
    """Write every suite's fixtures under ``root``; returns the number of cases per suite."""
    rng = np.random.default_rng(seed)
    return {"resized_hw": write_resized_hw(root, rng), "resize": write_resize(root, rng),
            "prepare": write_prepare(root, rng), "bilinear": write_bilinear(root, rng),
            "paste": write_paste(root, rng), "rle": write_rle(root, rng), "json": write_json(root, rng),
            "image": write_images(root, rng)}
