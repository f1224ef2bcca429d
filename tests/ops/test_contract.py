"""The op contract table agrees with OPS.md, the C ABI defaults, the Python binding, the config and ONNX."""
from __future__ import annotations

import ctypes
import inspect

import pytest

from lapmask.config import get_preset
from lapmask.ops import contract
from lapmask.ops.contract import DYNAMIC_DEFORM_CONV, MATRIX_NMS, MATRIX_NMS_KERNELS, OPS


def test_ops_md_is_generated_from_the_table():
    assert contract.OPS_MD.is_file(), "OPS.md is missing: run `python -m lapmask.ops.contract --write`"
    assert contract.OPS_MD.read_text() == contract.render_markdown(), \
        "OPS.md is out of date: run `python -m lapmask.ops.contract --write`"
    assert contract.main(["--check"]) == 0


def test_every_op_names_domain_version_plugin():
    assert set(OPS) == {"DynamicDeformConv", "MatrixNMS"}
    text = contract.OPS_MD.read_text()
    for op in OPS.values():
        assert op.domain == "lapmask" and op.plugin_namespace == "lapmask"
        assert op.plugin_name == op.name and op.plugin_version == op.version == "1"
        assert f"## {op.name} (domain `lapmask`, version {op.version})" in text
        for t in op.inputs + op.outputs:
            assert f"`{t.name}`" in text and t.dtypes and t.shape.startswith("[")
        assert len({a.name for a in op.attributes}) == len(op.attributes)


def test_deform_conv_mirrors_onnx_deformconv_19():
    onnx = pytest.importorskip("onnx")
    schema = onnx.defs.get_schema("DeformConv", 19)
    assert [i.name for i in schema.inputs] == [t.name for t in DYNAMIC_DEFORM_CONV.inputs]
    assert [i.option == i.option.Optional for i in schema.inputs] == [t.optional for t in DYNAMIC_DEFORM_CONV.inputs]
    assert sorted(schema.attributes) == sorted(a.name for a in DYNAMIC_DEFORM_CONV.attributes)
    for name, attr in schema.attributes.items():
        if attr.default_value.name:  # ONNX encodes group / offset_group defaults; the rest are documented as ours
            assert onnx.helper.get_attribute_value(attr.default_value) == DYNAMIC_DEFORM_CONV.attribute(name).default


def test_c_abi_defaults_match_the_table(clib):
    lib = clib.load()
    desc = clib._DeformDesc()
    lib.lapmask_deform_conv_desc_init(ctypes.byref(desc))
    op = DYNAMIC_DEFORM_CONV
    assert [desc.stride_h, desc.stride_w] == op.attribute("strides").default
    assert [desc.dilation_h, desc.dilation_w] == op.attribute("dilations").default
    assert [desc.pad_top, desc.pad_left, desc.pad_bottom, desc.pad_right] == op.attribute("pads").default
    assert desc.group == op.attribute("group").default
    assert desc.offset_group == op.attribute("offset_group").default
    assert [desc.kernel_h, desc.kernel_w] == op.attribute("kernel_shape").lapmask_value
    code = ctypes.c_int32()
    for name, value in MATRIX_NMS_KERNELS.items():
        assert lib.lapmask_matrix_nms_kernel_from_name(name.encode(), ctypes.byref(code)) == 0
        assert code.value == value
    default_kernel = MATRIX_NMS.attribute("kernel").default
    assert lib.lapmask_matrix_nms_default_kernel() == MATRIX_NMS_KERNELS[default_kernel]
    assert lib.lapmask_matrix_nms_default_sigma() == pytest.approx(MATRIX_NMS.attribute("sigma").default)


def test_python_binding_defaults_are_lapmask_values():
    from lapmask.ops import clib

    conv = inspect.signature(clib.deform_conv).parameters
    op = DYNAMIC_DEFORM_CONV
    assert [conv["stride"].default] * 2 == op.attribute("strides").lapmask_value
    assert [conv["dilation"].default] * 2 == op.attribute("dilations").lapmask_value
    assert [conv["padding"].default] * 4 == op.attribute("pads").lapmask_value
    assert conv["group"].default == op.attribute("group").default
    assert conv["offset_group"].default == op.attribute("offset_group").default
    nms = inspect.signature(clib.matrix_nms).parameters
    assert nms["kernel"].default == MATRIX_NMS.attribute("kernel").default
    assert nms["sigma"].default == MATRIX_NMS.attribute("sigma").default


def test_matrix_nms_defaults_match_the_config():
    inf = get_preset("R50_3x").inference
    assert MATRIX_NMS.attribute("kernel").lapmask_value == inf.nms_kernel
    assert MATRIX_NMS.attribute("sigma").lapmask_value == inf.nms_sigma
    assert set(MATRIX_NMS_KERNELS) == {"gaussian", "linear"}


def test_markdown_cli_prints_the_table(capsys):
    assert contract.main(["--markdown"]) == 0
    assert capsys.readouterr().out == contract.render_markdown()
