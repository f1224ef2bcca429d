"""The plugins flavour: its lapmask nodes agree with the op contract table (lapmask.ops.contract / OPS.md), the
audits catch nodes that do not, and the ONNX Runtime custom ops (C++ kernels) match the float64 references.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from export_testlib import plugins_available


def _graph_with(node, inputs, outputs, opsets=(("", 19), ("lapmask", 1))):
    from onnx import helper

    g = helper.make_graph([node], "g", inputs, outputs)
    return helper.make_model(g, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets])


def test_symbolics_emit_the_contract(exports):
    """Export the plugins flavour and read its lapmask nodes back: names, domain, version, inputs, attributes."""
    import onnx
    from onnx import helper

    from export.checks import domain_problems, plugin_node_problems
    from lapmask.ops.contract import DOMAIN, DYNAMIC_DEFORM_CONV, MATRIX_NMS

    model = onnx.load(str(exports.onnx("plugins")))
    assert {o.domain: o.version for o in model.opset_import}[DOMAIN] == int(DYNAMIC_DEFORM_CONV.version)
    nodes = [n for n in model.graph.node if n.domain == DOMAIN]
    dcn = [n for n in nodes if n.op_type == DYNAMIC_DEFORM_CONV.name]
    nms = [n for n in nodes if n.op_type == MATRIX_NMS.name]
    assert len(dcn) == 3 and len(nms) == 1 and len(nodes) == 4  # one filter per Laplacian level, one NMS
    for n in dcn:
        assert len(n.input) == len(DYNAMIC_DEFORM_CONV.inputs) and n.input[3] == ""  # X, W, offset, B (absent), mask
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        assert {k: list(v) if isinstance(v, (list, tuple)) else v for k, v in attrs.items()} == \
            {a.name: a.lapmask_value for a in DYNAMIC_DEFORM_CONV.attributes}
    attrs = {a.name: helper.get_attribute_value(a) for a in nms[0].attribute}
    assert attrs["kernel"].decode() == MATRIX_NMS.attribute("kernel").lapmask_value
    assert attrs["sigma"] == pytest.approx(MATRIX_NMS.attribute("sigma").lapmask_value)
    assert len(nms[0].input) == len(MATRIX_NMS.inputs) and len(nms[0].output) == 1
    assert plugin_node_problems(model) == [] and domain_problems(model, "plugins", "gridsample") == []
    assert not any(n.op_type in ("DeformConv", "GridSample") for n in model.graph.node)


def test_contract_audit_catches_deviations():
    from onnx import TensorProto as TP
    from onnx import helper

    from export.checks import domain_problems, plugin_node_problems

    f = [helper.make_tensor_value_info(n, TP.FLOAT, None) for n in ("x", "w", "o", "m")]
    y = [helper.make_tensor_value_info("y", TP.FLOAT, None)]
    bad_pads = helper.make_node("DynamicDeformConv", ["x", "w", "o", "", "m"], ["y"], domain="lapmask",
                                pads=[0, 0, 0, 0], kernel_shape=[3, 3], extra=1)
    problems = "\n".join(plugin_node_problems(_graph_with(bad_pads, f, y)))
    assert "pads=[0, 0, 0, 0]" in problems and "'extra' is not in the contract" in problems
    no_offset = helper.make_node("DynamicDeformConv", ["x", "w", ""], ["y"], domain="lapmask")
    assert "required input 2 (offset) is empty" in "\n".join(plugin_node_problems(_graph_with(no_offset, f, y)))
    wrong_type = helper.make_node("MatrixNMS", ["x", "w", "o"], ["y"], domain="lapmask", sigma=2)
    assert "has type" in "\n".join(plugin_node_problems(_graph_with(wrong_type, f, y)))
    unknown = helper.make_node("Foo", ["x"], ["y"], domain="lapmask")
    model = _graph_with(unknown, f[:1], y)
    assert "not in the contract" in "\n".join(plugin_node_problems(model))
    assert any("non-standard ops" in p for p in domain_problems(model, "standard", "gridsample"))
    assert any("outside the contract" in p for p in domain_problems(model, "plugins", "gridsample"))


@pytest.fixture(scope="module")
def custom_ops(kernels_lib):
    reason = plugins_available()
    if reason:
        pytest.skip(reason)
    from export import ort_ops

    return ort_ops


def _session(model, ort_ops):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.register_custom_ops_library(ort_ops.register())
    return ort.InferenceSession(ort_ops.adapt_for_ort(model).SerializeToString(), so,
                               providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_ort_dynamic_deform_conv_matches_reference(custom_ops, dtype):
    from onnx import TensorProto as TP
    from onnx import helper

    from lapmask.ops import modulated_deform_conv_reference

    tp = TP.FLOAT if dtype == np.float32 else TP.FLOAT16
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 5, 9, 11)).astype(dtype)
    w = rng.standard_normal((7, 5, 3, 3)).astype(dtype)
    o = (rng.standard_normal((1, 18, 9, 11)) * 3).astype(dtype)  # some samples fall outside the image
    m = rng.random((1, 9, 9, 11)).astype(dtype)
    node = helper.make_node("DynamicDeformConv", ["x", "w", "o", "", "m"], ["y"], domain="lapmask",
                            kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1], dilations=[1, 1], group=1,
                            offset_group=1)
    ins = [helper.make_tensor_value_info(n, tp, list(a.shape)) for n, a in zip("xwom", (x, w, o, m))]
    model = _graph_with(node, ins, [helper.make_tensor_value_info("y", tp, None)])
    y = _session(model, custom_ops).run(None, {"x": x, "w": w, "o": o, "m": m})[0]
    t = [torch.from_numpy(a.astype(np.float64)) for a in (x, w, o, m)]
    ref = modulated_deform_conv_reference(*t).numpy()
    assert y.dtype == dtype and y.shape == (1, 7, 9, 11)
    np.testing.assert_allclose(y.astype(np.float64), ref, atol=1e-4 if dtype == np.float32 else 0.05, rtol=1e-3)


def test_ort_matrix_nms_matches_reference(custom_ops):
    from onnx import TensorProto as TP
    from onnx import helper

    from lapmask.ops import matrix_nms_reference

    rng = np.random.default_rng(1)
    k = 12
    masks = (rng.random((k, 10, 12)) > 0.6).astype(np.float32)
    masks[3] = masks[1]  # an identical same-label pair: strongest decay
    scores = np.sort(rng.uniform(0.1, 1.0, k)).astype(np.float32)[::-1].copy()
    scores[-2:] = -1.0  # invalid candidates sort last
    labels = rng.integers(0, 3, k).astype(np.int32)
    labels[3] = labels[1]
    node = helper.make_node("MatrixNMS", ["m", "s", "l"], ["y"], domain="lapmask", kernel="gaussian", sigma=2.0)
    ins = [helper.make_tensor_value_info("m", TP.FLOAT, [k, 10, 12]), helper.make_tensor_value_info("s", TP.FLOAT, [k]),
           helper.make_tensor_value_info("l", TP.INT32, [k])]
    model = _graph_with(node, ins, [helper.make_tensor_value_info("y", TP.FLOAT, None)])
    y = _session(model, custom_ops).run(None, {"m": masks, "s": scores, "l": labels})[0]
    ref = matrix_nms_reference(torch.from_numpy(masks[:-2]), torch.from_numpy(labels[:-2]),
                               torch.from_numpy(scores[:-2])).numpy()
    np.testing.assert_allclose(y[:-2], ref, rtol=1e-5, atol=1e-6)
    assert (y[-2:] == -1).all() and y[3] < 0.5 * scores[3]
