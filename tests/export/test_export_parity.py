"""ONNX Runtime vs PyTorch (eager static path) on the engineered lite_R18, two sizes: the standard/gridsample
form here (also with zero detections and with more candidates than K_pre); the other forms in their own files.

Bar (issue 5): scores within 1e-4, identical labels, mask IoU >= 0.99 per instance, identical num_dets and
num_candidates. The engineered weights give more than MAX_DETS detections with distinct scores (conftest).
"""
from __future__ import annotations

import numpy as np
from export_testlib import NONE_BIAS, SIZES, check_form, deploy_inputs, reference, run_ort, with_cate_bias


def test_standard_gridsample_matches_pytorch_at_two_sizes(exports, references, lite):
    check_form(exports, references, lite, "standard", "gridsample")


def test_zero_detections(exports, lite, tmp_path):
    """Same graph with the category bias forced down: zero candidates, zero detections, padded outputs."""
    import onnx
    from onnx import numpy_helper

    model, _ = lite
    src = onnx.load(str(exports.onnx()))
    init = {t.name: t for t in src.graph.initializer}
    bias = init["model.ins_head.cate_pred.bias"]
    bias.CopyFrom(numpy_helper.from_array(np.full(numpy_helper.to_array(bias).shape, NONE_BIAS, np.float32),
                                          bias.name))
    path = tmp_path / "none.onnx"
    onnx.save(src, str(path))
    image, size = deploy_inputs(SIZES[0], seed=10)
    ref, _ = reference(with_cate_bias(model, NONE_BIAS), image, size)
    got = run_ort(path, "standard", image, size)
    assert int(ref[0][0]) == 0 and int(ref[4][0]) == 0
    np.testing.assert_array_equal(got[0], ref[0])
    np.testing.assert_array_equal(got[4], ref[4])
    assert (got[2] == -1).all() and not got[1].any() and not got[3].any()


def test_more_candidates_than_k_pre(exports, lite):
    """Raise the bias so candidates exceed K_pre: num_candidates still reports the true count, identically."""
    import onnx
    import onnxruntime as ort
    from export_testlib import K_PRE
    from onnx import numpy_helper

    model, _ = lite
    src = onnx.load(str(exports.onnx()))
    bias = {t.name: t for t in src.graph.initializer}["model.ins_head.cate_pred.bias"]
    bias.CopyFrom(numpy_helper.from_array(np.full(numpy_helper.to_array(bias).shape, -2.0, np.float32), bias.name))
    sess = ort.InferenceSession(src.SerializeToString(), providers=["CPUExecutionProvider"])
    image, size = deploy_inputs(SIZES[0], seed=10)
    ref, _ = reference(with_cate_bias(model, -2.0), image, size)
    got = sess.run(None, {"image": image.numpy(), "image_size": size.numpy()})
    assert int(ref[4][0]) > K_PRE
    np.testing.assert_array_equal(got[4], ref[4])
    np.testing.assert_array_equal(got[0], ref[0])
