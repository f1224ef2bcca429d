"""Fixtures for the data tests: a tiny COCO-format dataset written to a temporary folder."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CATS = [{"id": 7, "name": "b"}, {"id": 3, "name": "a"}, {"id": 11, "name": "c"}]  # unsorted, non-contiguous


def write_image(path: Path, h: int, w: int, seed: int) -> np.ndarray:
    rgb = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(path)
    return rgb


def rect_poly(x0: float, y0: float, x1: float, y1: float) -> list[float]:
    return [x0, y0, x1, y0, x1, y1, x0, y1]


def ann(aid: int, iid: int, cid: int, segm, bbox=None, **kw) -> dict:
    if bbox is None:
        p = np.asarray(segm[0]).reshape(-1, 2)
        bbox = [float(p[:, 0].min()), float(p[:, 1].min()), float(np.ptp(p[:, 0])), float(np.ptp(p[:, 1]))]
    return {"id": aid, "image_id": iid, "category_id": cid, "segmentation": segm, "bbox": bbox,
            "area": 1.0, "iscrowd": 0, **kw}


@pytest.fixture
def make_coco(tmp_path):
    """Return ``build(images=[(id, h, w)], annotations=[...], extra_images=[...]) -> (json_path, image_root)``.

    Images get files ``img{id}.png`` (random RGB) unless listed in ``missing`` or ``corrupt``.
    """
    def build(images, annotations, missing=(), corrupt=(), categories=None, name="ann.json"):
        root = tmp_path / "images"
        root.mkdir(exist_ok=True)
        imgs = []
        for iid, h, w in images:
            fn = f"img{iid}.png"
            if iid in corrupt:
                (root / fn).write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
            elif iid not in missing:
                write_image(root / fn, h, w, iid)
            imgs.append({"id": iid, "file_name": fn, "height": h, "width": w})
        d = {"images": imgs, "annotations": annotations, "categories": CATS if categories is None else categories}
        p = tmp_path / name
        p.write_text(json.dumps(d))
        return p, root

    return build


@pytest.fixture
def h():
    """The helpers above, for test modules (test files cannot import conftest reliably)."""
    from types import SimpleNamespace
    return SimpleNamespace(rect_poly=rect_poly, ann=ann, write_image=write_image, cats=CATS)
