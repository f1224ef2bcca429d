"""Custom-node inventory of ONNX graphs against plugin creators, the creators (as written in the C++ sources)
against the op contract, the plugin READMEs' contract tables, and the graph preparation for TensorRT's parser."""
from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import pytest
from onnx import TensorProto
from trt_testlib import tiny_onnx


def creators():
    from export.trt_checks import parse_plugin_sources

    return parse_plugin_sources()


def test_sources_register_what_the_contract_says():
    from export.trt_checks import contract_problems
    from lapmask.ops.contract import OPS, PLUGIN_NAMESPACE

    cs = creators()
    assert sorted(c.name for c in cs) == sorted(OPS)
    assert all(c.namespace == PLUGIN_NAMESPACE for c in cs)
    assert contract_problems(cs, check_combinations=False) == []


@pytest.mark.parametrize("mutate, needle", [
    (lambda c: dataclasses.replace(c, version="2"), "version/namespace 2/lapmask"),
    (lambda c: dataclasses.replace(c, namespace=""), "version/namespace 1/"),
    (lambda c: dataclasses.replace(c, fields={k: v for k, v in c.fields.items() if k != "pads"}), "fields"),
    (lambda c: dataclasses.replace(c, fields={**c.fields, "group": ("FLOAT32", 1)}), "group: field type FLOAT32"),
    (lambda c: dataclasses.replace(c, fields={**c.fields, "pads": ("INT32", 2)}), "pads: field length 2"),
])
def test_contract_check_catches_drift(mutate, needle):
    from export.trt_checks import contract_problems

    cs = [mutate(c) if c.name == "DynamicDeformConv" else c for c in creators()]
    problems = contract_problems(cs, check_combinations=False)
    assert any(needle in p for p in problems), problems


def test_contract_check_of_type_combinations():
    from export.trt_checks import contract_problems

    good = {"DynamicDeformConv": {n: [("float32",) * (n + 1), ("float16",) * (n + 1)] for n in (3, 4, 5)},
            "MatrixNMS": {3: [("float32", "float32", "int32", "float32"), ("float16", "float32", "int32", "float32")]}}
    cs = [dataclasses.replace(c, combinations=good[c.name]) for c in creators()]
    assert contract_problems(cs) == []
    bad = dict(good["MatrixNMS"])
    bad[3] = bad[3] + [("float16", "float16", "int32", "float32")]  # fp16 scores: outside the contract
    problems = contract_problems([dataclasses.replace(c, combinations=bad) if c.name == "MatrixNMS" else c
                                  for c in cs])
    assert any("outside the contract" in p and "scores=float16" in p for p in problems), problems
    only32 = {3: [good["MatrixNMS"][3][0]]}  # fp16 masks not accepted although the contract allows them
    problems = contract_problems([dataclasses.replace(c, combinations=only32) if c.name == "MatrixNMS" else c
                                  for c in cs])
    assert any("masks as float16" in p for p in problems), problems
    fewer = {n: v for n, v in good["DynamicDeformConv"].items() if n != 4}
    problems = contract_problems([dataclasses.replace(c, combinations=fewer) if c.name == "DynamicDeformConv" else c
                                  for c in cs])
    assert any("input counts [3, 5]" in p for p in problems), problems


def test_inventory_of_a_plugins_graph(tmp_path):
    from export.trt_checks import inventory_problems, onnx_custom_nodes

    nodes = onnx_custom_nodes(tiny_onnx(tmp_path / "p.onnx", flavour="plugins"))
    assert sorted((n.domain, n.op_type, n.version) for n in nodes) == [
        ("lapmask", "DynamicDeformConv", 1), ("lapmask", "MatrixNMS", 1)]
    assert inventory_problems(nodes, creators()) == []
    assert onnx_custom_nodes(tiny_onnx(tmp_path / "s.onnx")) == []


def test_inventory_reports_missing_creators(tmp_path):
    from export.trt_checks import inventory_problems, onnx_custom_nodes

    v2 = onnx_custom_nodes(tiny_onnx(tmp_path / "v2.onnx", flavour="plugins", lapmask_version=2))
    problems = inventory_problems(v2, creators(), "libX.so")
    assert len(problems) == 2 and all("version 2) has no creator in libX.so" in p for p in problems)
    odd = onnx_custom_nodes(tiny_onnx(tmp_path / "odd.onnx", flavour="plugins", extra_op=("lapmask", "Foo")))
    assert [p for p in inventory_problems(odd, creators()) if "lapmask::Foo" in p]
    other = onnx_custom_nodes(tiny_onnx(tmp_path / "ms.onnx", extra_op=("com.microsoft", "Gelu")))
    (p,) = inventory_problems(other, creators())
    assert "com.microsoft::Gelu" in p
    only_nms = [c for c in creators() if c.name == "MatrixNMS"]
    missing = inventory_problems(onnx_custom_nodes(tiny_onnx(tmp_path / "p.onnx", flavour="plugins")), only_nms)
    assert len(missing) == 1 and "DynamicDeformConv" in missing[0]


def test_inventory_checks_attribute_names(tmp_path):
    from export.trt_checks import CustomNode, inventory_problems

    node = CustomNode("dcn", "lapmask", "DynamicDeformConv", 1, ("pads", "padding_mode"))
    (p,) = inventory_problems([node], creators())
    assert "padding_mode" in p


def test_plugin_readmes_embed_the_contract():
    from export.trt_checks import readme_block, readme_problems

    assert readme_problems() == []
    block = readme_block("MatrixNMS")
    assert "| `kernel` | string |" in block and "**fp16 policy:**" in block


def test_prepare_for_tensorrt_annotates_and_fills_the_bias(tmp_path):
    """Parser attributes are added; the empty DeformConv bias becomes zeros [N] of W's type (checked by running
    the inserted standard nodes in ONNX Runtime)."""
    import onnxruntime as ort

    from export.trt_engine import prepare_for_tensorrt

    for w_dtype, np_dtype in ((TensorProto.FLOAT, np.float32), (TensorProto.FLOAT16, np.float16)):
        src = onnx.load(str(tiny_onnx(tmp_path / "p.onnx", flavour="plugins", w_dtype=w_dtype)))
        before = src.SerializeToString()
        m = prepare_for_tensorrt(src)
        assert src.SerializeToString() == before  # the input model is not modified
        custom = {n.op_type: n for n in m.graph.node if n.domain == "lapmask"}
        for n in custom.values():
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
            assert attrs["plugin_namespace"] == b"lapmask" and attrs["plugin_version"] == b"1"
        bias = custom["DynamicDeformConv"].input[3]
        assert bias and custom["DynamicDeformConv"].input[4] == "mask"
        # run just the inserted bias subgraph: W -> zeros [N] in W's dtype
        keep = [n for n in m.graph.node if n.domain != "lapmask" and n.output[0].startswith("lapmask_trt_zero_bias")]
        graph = onnx.helper.make_graph(keep, "bias", [], [onnx.helper.make_tensor_value_info(bias, w_dtype, None)],
                                       initializer=[t for t in m.graph.initializer if t.name == "W"])
        sub = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 19)])
        (out,) = ort.InferenceSession(sub.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {})
        assert out.dtype == np_dtype and out.shape == (4,) and not out.any()


def test_prepare_for_tensorrt_leaves_other_graphs_alone(tmp_path):
    from export.trt_engine import prepare_for_tensorrt

    std = onnx.load(str(tiny_onnx(tmp_path / "s.onnx")))
    assert prepare_for_tensorrt(std).graph == std.graph
    no_bias = onnx.load(str(tiny_onnx(tmp_path / "n.onnx", flavour="plugins", empty_bias=False)))
    m = prepare_for_tensorrt(no_bias)
    assert len(m.graph.node) == len(no_bias.graph.node)  # 3 inputs: nothing to fill
