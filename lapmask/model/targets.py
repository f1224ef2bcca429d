"""Training targets: grid-cell categories and (cell, mask) pairs per instance level (spec 5.2, 5.3a).

This reproduces the official ``LapMask.get_ground_truth_single`` for one image:

* levels are visited in order 0..5 (outer loop), instances in their original order after the scale filter
  (inner loop; no sorting by area), cells of one instance row-major over [top..bottom] x [left..right];
* every cell of an instance's centre region gets its label (a later instance overwrites an earlier one), is
  flagged positive, and contributes one (cell, stride-4 mask) pair -- duplicates across instances are kept;
* all grid arithmetic is float32 torch arithmetic on the masks' device, written with the same operations as
  the official code (``(c / size) / (1 / S)`` then truncation), so boundary cases round the same way.

The record layout is the contract of ``contracts.md`` section 8.
"""
from __future__ import annotations

import torch
from torch import Tensor

from lapmask.config import LapMaskConfig

MASK_STRIDE = 4  # mask targets live at the stride of F1 (spec 4.4, 5.2 step 7)


def _check_gt(gt: dict, canvas_hw: tuple[int, int], num_classes: int) -> tuple[Tensor, Tensor, Tensor]:
    """Validate one image's ground truth and return (boxes float32 [N, 4], labels int64 [N], masks bool [N, h, w])."""
    for key in ("boxes", "labels", "masks"):
        if key not in gt:
            raise ValueError(f"build_targets: gt has no {key!r}; expected keys 'boxes', 'labels', 'masks'")
    boxes, labels, masks = gt["boxes"], gt["labels"], gt["masks"]
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(f"build_targets: boxes must be [N, 4] (x0, y0, x1, y1), got {tuple(boxes.shape)}")
    n = boxes.shape[0]
    if labels.shape != (n,):
        raise ValueError(f"build_targets: labels must be [N]={n}, got {tuple(labels.shape)}")
    if masks.dim() != 3 or masks.shape[0] != n:
        raise ValueError(f"build_targets: masks must be [N={n}, h, w], got {tuple(masks.shape)}")
    if labels.is_floating_point() or labels.is_complex():
        raise ValueError("build_targets: labels must be an integer tensor of 0-based class indices")
    if n and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"build_targets: labels must lie in [0, {num_classes}), got "
                         f"[{int(labels.min())}, {int(labels.max())}]; labels are 0-based contiguous class indices")
    H, W = canvas_hw
    if H % 32 or W % 32 or H <= 0 or W <= 0:
        raise ValueError(f"build_targets: canvas {canvas_hw} must be positive multiples of 32 (the batch canvas "
                         "after padding, spec 1.1)")
    h, w = masks.shape[1:]
    if h > H or w > W:
        raise ValueError(f"build_targets: masks of size {(h, w)} do not fit the canvas {canvas_hw}; pass the padded "
                         "batch canvas (at least the image size)")
    # The official boxes are float32 detectron2 Boxes; masks are binary (spec 5.1).
    return boxes.to(torch.float32), labels.to(torch.int64), masks.to(device=boxes.device) != 0


def center_of_mass(masks: Tensor) -> tuple[Tensor, Tensor]:
    """Centre of mass of binary masks in pixel-index units (spec 5.2 step 3: mean column, mean row, no +0.5).

    Same float32 arithmetic as the official ``utils.center_of_mass``: per-row sums first, then over rows.

    Args:
        masks (Tensor[N, h, w]) bool.
    Returns:
        (cx, cy): Tensor[N] float32 each. Empty masks give 0 (they are skipped by the caller).
    """
    _, h, w = masks.shape
    ys = torch.arange(h, dtype=torch.float32, device=masks.device)
    xs = torch.arange(w, dtype=torch.float32, device=masks.device)
    m = masks.to(torch.float32)
    m00 = m.sum(dim=-1).sum(dim=-1).clamp(min=1e-6)
    m10 = (m * xs).sum(dim=-1).sum(dim=-1)
    m01 = (m * ys[:, None]).sum(dim=-1).sum(dim=-1)
    return m10 / m00, m01 / m00


def stride4_targets(masks: Tensor, canvas_hw: tuple[int, int]) -> Tensor:
    """Stride-4 mask targets (spec 5.2 step 7).

    The official code zero-pads to the canvas, resizes by x0.25 (bilinear, align_corners=False, no antialias)
    and keeps "non-zero". With a scale of exactly 1/4 every output sample sits at source position 4i + 1.5,
    so it averages rows 4i+1, 4i+2 and columns 4j+1, 4j+2 with weight 1/4 each: non-zero <=> OR of those four
    pixels. We compute that OR directly (exact, no float buffer of the canvas size).

    Args:
        masks (Tensor[N, h, w]) bool, unpadded; canvas_hw: (H, W) multiples of 4.
    Returns:
        Tensor[N, H/4, W/4] uint8 in {0, 1}.
    """
    n, h, w = masks.shape
    H, W = canvas_hw
    padded = torch.zeros((n, H, W), dtype=torch.bool, device=masks.device)
    padded[:, :h, :w] = masks
    out = padded[:, 1::4, 1::4] | padded[:, 1::4, 2::4] | padded[:, 2::4, 1::4] | padded[:, 2::4, 2::4]
    return out.to(torch.uint8)


def _grid_index(coord: Tensor, size: int, num_grid: int) -> list[int]:
    """Official cell arithmetic: int(torch.div(coord / size, 1. / S)) in float32 (spec 5.2 step 4).

    ``torch.div`` without a rounding mode is true division; ``int()`` truncates toward zero. Written with the
    same tensor ops (a tensor divided by Python scalars) so CPU and CUDA round exactly as the official code does
    on that device.
    """
    return torch.div(coord / size, 1.0 / num_grid).to(torch.int64).tolist()


def _empty_level(num_grid: int, num_classes: int, feat_hw: tuple[int, int], device: torch.device) -> dict:
    return {
        "cate": torch.full((num_grid, num_grid), num_classes, dtype=torch.int64, device=device),
        "positive": torch.zeros(num_grid * num_grid, dtype=torch.bool, device=device),
        "grid_order": torch.zeros(0, dtype=torch.int64, device=device),
        "masks": torch.zeros((0, *feat_hw), dtype=torch.uint8, device=device),
        "instance": torch.zeros(0, dtype=torch.int64, device=device),
    }


@torch.no_grad()
def build_targets(gt: dict, canvas_hw: tuple[int, int], cfg: LapMaskConfig) -> list[dict]:
    """Targets of one image for the 6 instance levels (spec 5.2, 5.3a; contracts.md section 8).

    Args:
        gt: ``boxes`` (Tensor[N, 4] float32, x0, y0, x1, y1 in input pixels), ``labels`` (Tensor[N] int64,
            0-based), ``masks`` (Tensor[N, h, w] bool at the resized, unpadded input resolution).
        canvas_hw: (H, W) of the padded BATCH canvas (multiples of 32). Grid cells are computed against it
            (spec 5.3a: the same image gets different cells in a batch with a larger image).
        cfg: the model config (``head.scale_ranges``, ``head.num_grids``, ``head.sigma``, ``head.num_classes``).
    Returns:
        One dict per level with
          ``cate`` (Tensor[S, S] int64; background = num_classes),
          ``positive`` (Tensor[S*S] bool),
          ``grid_order`` (Tensor[P] int64; flat cell index y*S + x of each pair, in creation order),
          ``masks`` (Tensor[P, H/4, W/4] uint8; the pair's stride-4 mask target),
          ``instance`` (Tensor[P] int64; index into the gt of each pair -- extra, for checks and debugging).
    """
    head = cfg.head
    num_classes = head.num_classes
    boxes, labels, masks = _check_gt(gt, canvas_hw, num_classes)
    device = boxes.device
    H, W = canvas_hw
    feat_hw = (H // MASK_STRIDE, W // MASK_STRIDE)

    # Scale = sqrt of the GT box area (spec 5.2 step 1), float32 like the official Boxes tensor.
    bw = boxes[:, 2] - boxes[:, 0]
    bh = boxes[:, 3] - boxes[:, 1]
    scale = torch.sqrt(bw * bh)
    # Centre-region half sizes: 0.5 * box size * sigma, same operation order as the official code (step 5).
    half_w = 0.5 * bw * head.sigma
    half_h = 0.5 * bh * head.sigma
    cx, cy = center_of_mass(masks)  # step 3, full-resolution unpadded masks
    valid = masks.flatten(1).any(dim=1).tolist()  # step 2: empty masks are skipped

    # Stride-4 targets, computed once per instance (the official recomputes them per level; same values).
    seg = stride4_targets(masks, canvas_hw)

    records = []
    for (lo, hi), num_grid in zip(head.scale_ranges, head.num_grids):
        rec = _empty_level(num_grid, num_classes, feat_hw, device)
        # Inclusive range on both ends; instances keep their original order (nonzero is ascending).
        hit = ((scale >= lo) & (scale <= hi)).nonzero(as_tuple=False).flatten()
        hit = [i for i in hit.tolist() if valid[i]]
        if not hit:
            records.append(rec)
            continue
        idx = torch.tensor(hit, dtype=torch.int64, device=device)
        c_x, c_y, h_w, h_h = cx[idx], cy[idx], half_w[idx], half_h[idx]
        coord_w = _grid_index(c_x, W, num_grid)
        coord_h = _grid_index(c_y, H, num_grid)
        top_box = _grid_index(c_y - h_h, H, num_grid)
        down_box = _grid_index(c_y + h_h, H, num_grid)
        left_box = _grid_index(c_x - h_w, W, num_grid)
        right_box = _grid_index(c_x + h_w, W, num_grid)

        cate, positive = rec["cate"], rec["positive"]
        order: list[int] = []
        owner: list[int] = []
        for k, ins in enumerate(hit):
            # Centre region clipped to the image grid and to the 3x3 neighbourhood of the centre cell (step 5).
            top = max(max(0, top_box[k]), coord_h[k] - 1)
            down = min(min(num_grid - 1, down_box[k]), coord_h[k] + 1)
            left = max(coord_w[k] - 1, max(0, left_box[k]))
            right = min(min(num_grid - 1, right_box[k]), coord_w[k] + 1)
            cate[top:down + 1, left:right + 1] = labels[ins]  # later instances overwrite (step 6)
            for i in range(top, down + 1):
                for j in range(left, right + 1):
                    cell = i * num_grid + j
                    positive[cell] = True
                    order.append(cell)
                    owner.append(ins)
        if order:
            rec["grid_order"] = torch.tensor(order, dtype=torch.int64, device=device)
            rec["instance"] = torch.tensor(owner, dtype=torch.int64, device=device)
            rec["masks"] = seg[rec["instance"]]
        records.append(rec)
    return records
