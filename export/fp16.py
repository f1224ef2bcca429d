"""Strongly typed fp16 deploy graph and the audit that its numerically sensitive tensors stay float32.

The network (backbone, FPN, heads, mask branch, the instance-kernel MatMul) runs in float16; these stay float32
(spec 10.8 and 10.11, contracts.md section 3):

* category scores (the logits are widened before sigmoid / point NMS / TopK: the 0.1 threshold, the candidate
  TopK and the final scores see float32),
* deformable sampling coordinates (``lapmask.ops.deform_sampling_grid`` widens; the DeformConv form runs in float32;
  the plugin widens inside, per its contract),
* mask probabilities after sigmoid, the 0.2-mask areas, the maskness sums, Matrix NMS (intersections, IoU, decay)
  and every score (the areas at stride 4 reach 67,200 > 65,504, the float16 maximum),
* the graph outputs ``scores`` and ``masks`` (float32 by contract).

``audit_fp16`` checks those rules on an exported ONNX graph by structure, so a change that silently moves one of
them to float16 fails the export (and the test that exports an fp16 graph).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from lapmask.inference.deploy_module import DeployLapMask
from lapmask.inference.static import static_inference

_F32, _F16 = 1, 10  # onnx.TensorProto.FLOAT / FLOAT16
_INTS = (2, 3, 4, 5, 6, 7, 9, 12, 13)  # uint8, int8, uint16, int16, int32, int64, bool, uint32, uint64 (counts)


class DeployLapMaskFp16(DeployLapMask):
    """``DeployLapMask`` whose network runs in float16, with the float32 islands of the module docstring.

    Build with ``DeployLapMaskFp16.from_model(model, ...)``: it converts a COPY of the model to half precision and
    keeps the normalisation constants in float32 (uint8 - mean is exact in float32; the result is rounded once).
    """

    @classmethod
    def from_model(cls, model: nn.Module, **kwargs: Any) -> DeployLapMaskFp16:
        import copy

        half = copy.deepcopy(model).half().eval()
        half.pixel_mean = half.pixel_mean.float()
        half.pixel_std = half.pixel_std.float()
        return cls(half, **kwargs)

    def forward(self, image: Tensor, image_size: Tensor) -> tuple[Tensor, ...]:
        """As ``DeployLapMask.forward``; outputs keep their contract dtypes (scores, masks float32)."""
        outputs = dict(self.model(self.normalize(image, image_size).half()))
        outputs["cate"] = [c.float() for c in outputs["cate"]]  # scores: threshold, TopK and products in fp32
        return static_inference(outputs, self.cfg, self.k_pre, self.max_dets, self.filter_fn, self.nms_fn)


def _value_types(model: Any) -> dict[str, int]:
    """Element type of every named value in an ONNX model (after shape inference; custom ops may leave gaps)."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=False)
    except Exception:  # noqa: BLE001 - fall back to what the exporter wrote
        inferred = model
    g = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type for v in list(g.value_info) + list(g.input) + list(g.output)}
    types.update({t.name: t.data_type for t in g.initializer})
    for n in g.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    types[n.output[0]] = a.t.data_type
    return types


def audit_fp16(model: Any) -> list[str]:
    """Return violations of the fp16 policy in an exported ONNX model (empty list = compliant).

    Args:
        model: an ``onnx.ModelProto`` of a lapmask fp16 export.
    Rules:
        1. the network is float16: every Conv has a float16 input;
        2. every TopK (candidates, NMS order, final selection) sorts float32;
        3. every ReduceSum (areas, maskness sums, pixel counts), ReduceMax/ReduceMin and Exp (Matrix NMS
           compensation and decay) produces float32 (or an integer count);
        4. the intersection MatMul (a MatMul whose second input is the Transpose of its first) is float32;
        5. GridSample grids and all DeformConv inputs are float32; ``lapmask::MatrixNMS`` scores/output float32;
        6. graph outputs ``scores`` and ``masks`` are float32.
    """
    g = model.graph
    types = _value_types(model)
    producers = {o: n for n in g.node for o in n.output}
    problems: list[str] = []

    def t(name: str) -> int | None:
        return types.get(name) or None

    def need_f32(node: Any, name: str, what: str, allow_int: bool = False) -> None:
        code = t(name)
        if code != _F32 and not (allow_int and code in _INTS):
            problems.append(f"{node.op_type} node {node.name!r}: {what} {name!r} is {_type_name(t(name))}, "
                            "expected float32")

    convs = [n for n in g.node if n.op_type == "Conv"]
    if not convs or any(t(n.input[0]) != _F16 for n in convs):
        n16 = sum(t(n.input[0]) == _F16 for n in convs)
        problems.append(f"{n16} of {len(convs)} Conv nodes take float16 input; an fp16 graph runs every Conv in fp16")
    for n in g.node:
        if n.op_type == "TopK":
            need_f32(n, n.input[0], "sorted input")
        elif n.op_type in ("ReduceSum", "ReduceMax", "ReduceMin", "Exp"):
            need_f32(n, n.output[0], "output", allow_int=True)
        elif n.op_type == "MatMul":
            src = producers.get(n.input[1])
            if src is not None and src.op_type == "Transpose" and src.input[0] == n.input[0]:
                need_f32(n, n.output[0], "mask intersection")
        elif n.op_type == "GridSample":
            need_f32(n, n.input[1], "sampling grid")
        elif n.op_type == "DeformConv" and n.domain in ("", "ai.onnx"):
            for i, name in enumerate(n.input):
                if name:
                    need_f32(n, name, f"input {i}")
        elif n.op_type == "MatrixNMS":
            need_f32(n, n.input[1], "scores")
            need_f32(n, n.output[0], "decayed scores")
    for o in g.output:
        if o.name in ("scores", "masks") and o.type.tensor_type.elem_type != _F32:
            problems.append(f"graph output {o.name!r} is {_type_name(o.type.tensor_type.elem_type)}, expected float32")
    return problems


def _type_name(code: int | None) -> str:
    if code is None:
        return "of unknown type"
    import onnx

    return onnx.TensorProto.DataType.Name(code).lower()


def half_supported_here() -> bool:
    """Whether this torch build runs the half-precision CPU kernels tracing needs (Conv, GroupNorm)."""
    try:
        x = torch.zeros(1, 32, 4, 4, dtype=torch.float16)
        nn.GroupNorm(32, 32).half()(nn.Conv2d(32, 32, 3, padding=1).half()(x))
        return True
    except RuntimeError:
        return False
