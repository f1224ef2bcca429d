"""ONNX Runtime CPU custom ops for the ``plugins`` flavour: ``lapmask::DynamicDeformConv`` and ``lapmask::MatrixNMS``
run the CPU build of the shared C++ kernels (``liblapmask_kernels`` through ``lapmask.ops.clib``), not a second
copy of the math.

Mechanism: onnxruntime-extensions' Python custom ops (``onnx_op`` / ``PyCustomOpDef``; ``pip install
onnxruntime-extensions``). Its Python ops have fixed input lists and int/float/string attributes only, so the
session is built from an adapted in-memory copy of the graph (the file on disk keeps the contract form):

* ``DynamicDeformConv(X, W, offset, B?, mask)`` with int-list attributes becomes ``DynamicDeformConvOrt`` with
  the inputs actually present (4 without bias, 5 with) and the attributes as one JSON string;
* float16 plugin inputs are cast to float32 around the op (the kernels widen float16 to float32 anyway and round
  the result once, so the numbers are the same).

These ops exist to validate plugin graphs on CPU (export check, ``lapmask compare``, tests); deployment of the
plugins flavour is TensorRT. They need torch (``lapmask.ops.clib`` hands numpy buffers to the kernels through
zero-copy torch tensors) -- the standard flavour needs neither torch nor this module.
"""
from __future__ import annotations

import json
from functools import cache
from typing import Any

import numpy as np

from lapmask.ops.contract import DOMAIN, DYNAMIC_DEFORM_CONV, MATRIX_NMS

ORT_DCN_OP = "DynamicDeformConvOrt"
_F32, _F16 = 1, 10


class CustomOpsNotAvailableError(RuntimeError):
    """onnxruntime-extensions or liblapmask_kernels is missing; the message says how to get it."""


def _attr_defaults() -> dict[str, Any]:
    return {a.name: a.default for a in DYNAMIC_DEFORM_CONV.attributes}


def _dcn(x: np.ndarray, w: np.ndarray, offset: np.ndarray, mask: np.ndarray, bias: np.ndarray | None,
         attrs: str) -> np.ndarray:
    import torch

    from lapmask.ops import clib

    a = {**_attr_defaults(), **json.loads(attrs)}
    t = [None if v is None else torch.from_numpy(np.ascontiguousarray(v)) for v in (x, w, offset, mask, bias)]
    y = clib.deform_conv(t[0], t[1], t[2], t[3], t[4], stride=tuple(a["strides"]), padding=tuple(a["pads"]),
                         dilation=tuple(a["dilations"]), group=int(a["group"]), offset_group=int(a["offset_group"]))
    return y.numpy()


def _matrix_nms(masks: np.ndarray, scores: np.ndarray, labels: np.ndarray, kernel: str, sigma: float) -> np.ndarray:
    import torch

    from lapmask.ops import clib

    t = [torch.from_numpy(np.ascontiguousarray(v)) for v in (masks, scores, labels)]
    return clib.matrix_nms(t[0], t[2], t[1], kernel or MATRIX_NMS.attribute("kernel").default,
                           float(sigma)).numpy()


@cache
def register() -> str:
    """Register the Python custom ops once per process; returns the extensions library path for SessionOptions."""
    try:
        from onnxruntime_extensions import PyCustomOpDef, get_library_path, onnx_op
    except ImportError as e:
        raise CustomOpsNotAvailableError("the plugins flavour needs onnxruntime-extensions on CPU: "
                                         "pip install onnxruntime-extensions") from e
    from lapmask.ops import clib

    if not clib.is_available():
        raise CustomOpsNotAvailableError("liblapmask_kernels (CPU build) is missing: build it with "
                                         "`python -m lapmask.ops.build_kernels --cuda off`")
    f32, i32, s = PyCustomOpDef.dt_float, PyCustomOpDef.dt_int32, PyCustomOpDef.dt_string

    @onnx_op(op_type=f"{DOMAIN}::{ORT_DCN_OP}", inputs=[f32] * 4, outputs=[f32], attrs={"attrs": s})
    def dcn_no_bias(x, w, offset, mask, attrs="{}"):
        return _dcn(x, w, offset, mask, None, attrs)

    @onnx_op(op_type=f"{DOMAIN}::{ORT_DCN_OP}Bias", inputs=[f32] * 5, outputs=[f32], attrs={"attrs": s})
    def dcn_bias(x, w, offset, bias, mask, attrs="{}"):
        return _dcn(x, w, offset, mask, bias, attrs)

    @onnx_op(op_type=f"{DOMAIN}::{MATRIX_NMS.name}", inputs=[f32, f32, i32], outputs=[f32],
             attrs={"kernel": s, "sigma": PyCustomOpDef.dt_float})
    def matrix_nms(masks, scores, labels, kernel="gaussian", sigma=2.0):
        return _matrix_nms(masks, scores, labels, kernel, sigma)

    return get_library_path()


def adapt_for_ort(model: Any) -> Any:
    """Return a copy of an ONNX model whose ``lapmask`` nodes fit the Python custom ops (see module docstring)."""
    import onnx
    from onnx import helper

    model = onnx.ModelProto.FromString(model.SerializeToString())
    try:
        types = {v.name: v.type.tensor_type.elem_type for v in onnx.shape_inference.infer_shapes(model).graph.value_info}
    except Exception:  # noqa: BLE001
        types = {}
    types.update({v.name: v.type.tensor_type.elem_type for v in model.graph.input})
    nodes = []
    for n in model.graph.node:
        if n.domain != DOMAIN:
            nodes.append(n)
            continue
        ins, out = list(n.input), n.output[0]
        cast_in = [i for i in range(len(ins)) if ins[i] and types.get(ins[i]) == _F16]
        for i in cast_in:
            nodes.append(helper.make_node("Cast", [ins[i]], [f"{ins[i]}__f32_{n.name}"], to=_F32))
            ins[i] = f"{ins[i]}__f32_{n.name}"
        half_out = n.op_type == DYNAMIC_DEFORM_CONV.name and types.get(n.input[0]) == _F16
        y = f"{out}__f32" if half_out else out
        if n.op_type == DYNAMIC_DEFORM_CONV.name:
            attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
            attrs = {k: list(v) if isinstance(v, (list, tuple)) else v for k, v in attrs.items()}
            has_bias = len(ins) > 3 and bool(ins[3])
            present = ins[:3] + ([ins[3]] if has_bias else []) + ([ins[4]] if len(ins) > 4 and ins[4] else [])
            if len(present) != (5 if has_bias else 4):
                raise CustomOpsNotAvailableError(f"{n.name}: DynamicDeformConv without mask is not supported by the "
                                                 "ONNX Runtime adapter")
            nodes.append(helper.make_node(ORT_DCN_OP + ("Bias" if has_bias else ""), present, [y], name=n.name,
                                          domain=DOMAIN, attrs=json.dumps(attrs)))
        else:
            nodes.append(helper.make_node(n.op_type, ins, [y], name=n.name, domain=DOMAIN,
                                          **{a.name: helper.get_attribute_value(a) for a in n.attribute}))
        if half_out:
            nodes.append(helper.make_node("Cast", [y], [out], to=_F16))
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model


def plugin_session(model_path: str, providers: list[str] | None = None,
                   options: Any | None = None) -> Any:
    """An ``onnxruntime.InferenceSession`` for a plugins-flavour model, with the custom ops registered."""
    import onnx
    import onnxruntime as ort

    lib = register()
    so = options or ort.SessionOptions()
    so.register_custom_ops_library(lib)
    model = adapt_for_ort(onnx.load(model_path))
    return ort.InferenceSession(model.SerializeToString(), so, providers=providers or ["CPUExecutionProvider"])


def extensions_version() -> str | None:
    """Installed onnxruntime-extensions version, or None."""
    try:
        import onnxruntime_extensions

        return onnxruntime_extensions.__version__
    except ImportError:
        return None
