"""Deterministic, structured synthetic test images for the parity run (our code).

Each image: a smooth two-colour gradient background, 6-14 filled shapes (ellipses, rectangles, triangles) of
random colours and sizes, some overlapping, and mild Gaussian noise. The sizes include ones that are not
multiples of 32 and a portrait, so the resize / pad / crop path is exercised (acceptance of issue 2).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

# (name, height, width); names are what the npz files are called after.
DEFAULT_IMAGES: tuple[tuple[str, int, int], ...] = (
    ("img480x640", 480, 640),
    ("img427x640", 427, 640),
    ("img500x375", 500, 375),  # portrait
    ("img333x500", 333, 500),
    ("img200x300", 200, 300),  # small: upsampled x4 by the test resize
)


def make_image(height: int, width: int, seed: int) -> np.ndarray:
    """Return a deterministic RGB uint8 image [height, width, 3]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    c0, c1 = rng.uniform(40, 215, size=(2, 3))
    t = (xx / max(width - 1, 1) * rng.uniform(0.3, 1.0) + yy / max(height - 1, 1) * rng.uniform(0.3, 1.0)) / 2
    bg = c0[None, None] * (1 - t[..., None]) + c1[None, None] * t[..., None]
    img = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    side = min(height, width)
    for _ in range(int(rng.integers(6, 15))):
        s = rng.uniform(0.08, 0.5) * side
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        ar = rng.uniform(0.5, 2.0)
        w, h = s * np.sqrt(ar), s / np.sqrt(ar)
        color = tuple(int(v) for v in rng.integers(0, 256, size=3))
        kind = int(rng.integers(0, 3))
        box = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
        if kind == 0:
            draw.ellipse(box, fill=color)
        elif kind == 1:
            draw.rectangle(box, fill=color)
        else:
            draw.polygon([(cx, cy - h / 2), (cx + w / 2, cy + h / 2), (cx - w / 2, cy + h / 2)], fill=color)
    arr = np.asarray(img).astype(np.float32) + rng.normal(0, 4.0, size=(height, width, 3))
    return np.clip(np.round(arr), 0, 255).astype(np.uint8)


def write_images(out_dir: str | Path, images: tuple[tuple[str, int, int], ...] = DEFAULT_IMAGES,
                 seed: int = 2022) -> list[Path]:
    """Write the PNGs (only those missing) and return their paths in order."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (name, h, w) in enumerate(images):
        p = out_dir / f"{name}.png"
        if not p.exists():
            Image.fromarray(make_image(h, w, seed + i), "RGB").save(p)
        paths.append(p)
    return paths


def read_bgr(path: str | Path) -> np.ndarray:
    """Read an image the way detectron2 ``read_image(format="BGR")`` does for these PNGs: PIL RGB -> BGR uint8."""
    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB"))
    return np.ascontiguousarray(rgb[:, :, ::-1])
