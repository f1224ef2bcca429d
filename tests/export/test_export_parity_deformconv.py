"""ONNX Runtime vs PyTorch for the standard flavour with the dynamic filter as ONNX DeformConv-19 (and a
fixed batch of two).

onnxruntime 1.32 has a CPU DeformConv kernel, so this form is parity-tested like the others (not only
structurally).
"""
from __future__ import annotations

from export_testlib import check_form


def test_standard_deformconv_matches_pytorch_at_two_sizes(exports, references, lite):
    check_form(exports, references, lite, "standard", "deformconv")


def test_batch_of_two(lite, tmp_path):
    """--batch 2 (fixed batch): each entry equals the single-image reference, with its own image_size."""
    import numpy as np
    import torch
    from export_testlib import K_PRE, MAX_DETS, SIZES, TRACE_HW, assert_parity, deploy_inputs, reference, run_ort

    from export.onnx_export import ExportOptions, export_onnx

    model, cfg = lite
    path = tmp_path / "b2.onnx"
    export_onnx(model, cfg, path, ExportOptions(batch=2, k_pre=K_PRE, max_dets=MAX_DETS), validate=False,
                trace_hw=TRACE_HW)
    (a, sa), (b, sb) = deploy_inputs(SIZES[0], seed=10), deploy_inputs(SIZES[0], seed=11)
    sb = sb - 8
    got = run_ort(path, "standard", torch.cat([a, b]), torch.cat([sa, sb]))
    assert got[3].shape == (2, MAX_DETS, SIZES[0][0] // 4, SIZES[0][1] // 4)
    for i, (img, size) in enumerate(((a, sa), (b, sb))):
        ref, _ = reference(model, img, size)
        assert_parity(ref, [np.ascontiguousarray(g[i:i + 1]) for g in got], cfg.inference.mask_thr)
