"""fp16 export: a strongly typed fp16 graph whose sensitive tensors stay float32 (the audit), close to fp32."""
from __future__ import annotations

import pytest
from export_testlib import SIZES, run_ort


@pytest.fixture(scope="module")
def fp16_model(exports):
    import onnx

    return exports.onnx("standard", "gridsample", fp16=True), onnx.load(str(exports.onnx("standard", "gridsample",
                                                                                       fp16=True)))


def test_fp16_graph_passes_audit_and_checks(fp16_model):
    from export.checks import check_onnx_graph
    from export.fp16 import audit_fp16

    path, model = fp16_model
    assert audit_fp16(model) == []
    check_onnx_graph(path, flavour="standard", dcn_form="gridsample", opset=19, fp16=True)
    weights = [t for t in model.graph.initializer if t.dims and len(t.dims) == 4]
    assert weights and all(t.data_type == 10 for t in weights), "conv weights are stored as float16"
    out = {o.name: o.type.tensor_type.elem_type for o in model.graph.output}
    assert out == {"num_dets": 6, "scores": 1, "labels": 6, "masks": 1, "num_candidates": 6}


def test_fp16_close_to_fp32_reference(fp16_model, references, lite):
    from export.compare import Tolerances, compare_raw

    path, _ = fp16_model
    _, cfg = lite
    for hw in SIZES:
        (image, size), ref = references[hw]
        got = run_ort(path, "standard", image, size)
        report = compare_raw(ref, got, cfg.inference.mask_thr, Tolerances.for_precision("fp16"))
        assert report.ok, report.summary()
        assert report.images[0].matched >= 0.9 * int(ref[0][0])


def _insert_cast_before(model, op_type: str, input_index: int = 0):
    """Mutate a copy: cast input ``input_index`` of the first ``op_type`` node to float16."""
    import onnx
    from onnx import helper

    m = onnx.ModelProto.FromString(model.SerializeToString())
    nodes = list(m.graph.node)
    i = next(k for k, n in enumerate(nodes) if n.op_type == op_type)
    src = nodes[i].input[input_index]
    cast = helper.make_node("Cast", [src], [src + "__as_f16"], to=10, name="mutation")
    nodes[i].input[input_index] = src + "__as_f16"
    del m.graph.node[:]
    m.graph.node.extend(nodes[:i] + [cast] + nodes[i:])
    return m


@pytest.mark.parametrize("op_type,what", [("TopK", "sorted input"), ("ReduceSum", "output"),
                                          ("GridSample", "sampling grid"), ("Exp", "output")])
def test_audit_catches_fp16_where_fp32_is_required(fp16_model, op_type, what):
    from export.fp16 import audit_fp16

    _, model = fp16_model
    index = 1 if op_type == "GridSample" else 0
    problems = audit_fp16(_insert_cast_before(model, op_type, index))
    assert any(op_type in p and what in p for p in problems), problems


def test_audit_catches_intersection_matmul_and_outputs():
    """Hand-made graph: an fp16 mask intersection (M @ M^T) and an fp16 scores output are both reported."""
    from onnx import TensorProto as TP
    from onnx import helper

    from export.fp16 import audit_fp16

    nodes = [helper.make_node("Conv", ["x", "w"], ["y"]),
             helper.make_node("Transpose", ["m"], ["mt"], perm=[1, 0]),
             helper.make_node("MatMul", ["m", "mt"], ["inter"]),
             helper.make_node("ReduceMax", ["inter"], ["scores"], keepdims=0)]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TP.FLOAT16, [1, 1, 4, 4]),
                                       helper.make_tensor_value_info("w", TP.FLOAT16, [1, 1, 1, 1]),
                                       helper.make_tensor_value_info("m", TP.FLOAT16, [3, 5])],
                          [helper.make_tensor_value_info("y", TP.FLOAT16, None),
                           helper.make_tensor_value_info("scores", TP.FLOAT16, None)])
    problems = audit_fp16(helper.make_model(g, opset_imports=[helper.make_opsetid("", 19)]))
    text = "\n".join(problems)
    assert "mask intersection" in text and "ReduceMax" in text and "graph output 'scores'" in text
    assert "Conv" not in text  # the only Conv is fp16, as required
