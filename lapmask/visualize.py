"""Overlay pictures of predictions (numpy + PIL): masks in distinct colours, class names and scores."""
from __future__ import annotations

import colorsys

import numpy as np
from PIL import Image, ImageDraw


def distinct_colors(n: int) -> np.ndarray:
    """n well-separated RGB colours (golden-ratio hue walk). Returns uint8 [n, 3]."""
    return np.array([[int(255 * c) for c in colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.75, 1.0)]
                     for i in range(n)], dtype=np.uint8).reshape(n, 3)


def overlay(bgr: np.ndarray, result: dict[str, np.ndarray], class_names: tuple[str, ...],
            alpha: float = 0.5) -> Image.Image:
    """Draw masks (alpha-blended), their outlines and 'name score' labels on a copy of the image (RGB PIL)."""
    rgb = bgr[:, :, ::-1].astype(np.float32)
    masks, scores, labels, boxes = result["masks"], result["scores"], result["labels"], result["boxes"]
    colors = distinct_colors(max(len(scores), 1))
    for i, m in enumerate(masks):
        rgb[m] = (1 - alpha) * rgb[m] + alpha * colors[i]
        edge = m & ~(np.roll(m, 1, 0) & np.roll(m, -1, 0) & np.roll(m, 1, 1) & np.roll(m, -1, 1))
        rgb[edge] = colors[i]
    img = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for i in np.argsort(-scores):
        if not masks[i].any():
            continue
        x0, y0 = int(boxes[i][0]), int(boxes[i][1])
        text = f"{class_names[int(labels[i])]} {scores[i]:.2f}"
        tw, th = draw.textbbox((0, 0), text)[2:]
        draw.rectangle([x0, y0, x0 + tw + 4, y0 + th + 2], fill=tuple(int(c) for c in colors[i]))
        draw.text((x0 + 2, y0 + 1), text, fill=(0, 0, 0))
    return img
