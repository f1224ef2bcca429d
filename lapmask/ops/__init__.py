"""Ops: modulated deformable conv, the batched dynamic filter, point NMS and Matrix NMS.

Each op has a fast path (used by the model and the exported graphs) and a slow readable reference
(float64-capable) that tests compare against. The optional C++ build of the shared kernels is reached through
``lapmask.ops.clib`` (loaded lazily; ``import lapmask.ops`` never needs it).
"""
from lapmask.ops.deform import (
    deform_columns,
    deform_sampling_grid,
    dynamic_deform_filter,
    modulated_deform_conv,
    split_offset_mask,
)
from lapmask.ops.deform_ref import bilinear_sample_reference, modulated_deform_conv_reference
from lapmask.ops.matrix_nms import matrix_nms, matrix_nms_reference
from lapmask.ops.point_nms import point_nms, point_nms_reference

__all__ = [
    "deform_columns", "deform_sampling_grid", "dynamic_deform_filter", "modulated_deform_conv", "split_offset_mask",
    "bilinear_sample_reference", "modulated_deform_conv_reference", "matrix_nms", "matrix_nms_reference",
    "point_nms", "point_nms_reference",
]
