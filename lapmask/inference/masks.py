"""Instance mask logits from selected kernels: three dynamic deformable filters + reconstruction (spec 4.3-4.4)."""
from __future__ import annotations

from typing import Callable

from torch import Tensor

from lapmask.model.laplacian import reconstruct
from lapmask.ops.deform import dynamic_deform_filter

# (feature [1, C, H, W], raw offset_mask [1, 27, H, W], kernels [N, C*9]) -> [N, H, W]
FilterFn = Callable[[Tensor, Tensor, Tensor], Tensor]


def instance_mask_logits(mask_feats: list[Tensor], offsets: list[Tensor], kernels: Tensor, b: int,
                         filter_fn: FilterFn = dynamic_deform_filter) -> Tensor:
    """Mask logits of N instances of image b.

    Args:
        mask_feats: [F1, F2, F3] (Tensor[B, NM, ., .]); offsets: [O1, O2, O3] (Tensor[B, 27, ., .]).
        kernels (Tensor[N, 3, 9*NM]): per-instance kernels for Laplacian levels 1..3.
        filter_fn: the dynamic filter implementation (exporters swap in DeformConv / plugin forms).
    Returns:
        Tensor[N, H/4, W/4]: logits at stride 4.
    """
    r = [filter_fn(mask_feats[k][b:b + 1], offsets[k][b:b + 1], kernels[:, k]) for k in range(3)]
    return reconstruct(r[0], r[1], r[2])
