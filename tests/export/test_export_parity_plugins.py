"""ONNX Runtime vs PyTorch for the plugins flavour (lapmask::DynamicDeformConv, lapmask::MatrixNMS), whose ORT CPU
custom ops run the C++ kernels (export.ort_ops). Skips with the reason when the kernels or
onnxruntime-extensions are missing.
"""
from __future__ import annotations

import pytest
from export_testlib import check_form, plugins_available


def test_plugins_matches_pytorch_at_two_sizes(kernels_lib, exports, references, lite):
    reason = plugins_available()
    if reason:
        pytest.skip(reason)
    check_form(exports, references, lite, "plugins", "gridsample")
