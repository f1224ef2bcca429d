"""Export argument validation and ONNX graph checks (checker, shape inference, op audits, TopK limits).

Each failure raises with a message that says what to change. The audits are plain functions returning lists of
problems so that tests can feed them deliberately broken graphs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from export.flavours import DCN_FORMS, FLAVOURS, MIN_OPSET

TOPK_LIMIT = 3840  # TensorRT's ITopKLayer accepts K <= 3840 (spec 10.11: "TopK limits on K")
MAX_OPSET = 20  # the TorchScript-based exporter of torch 2.x stops at opset 20
STANDARD_DOMAINS = ("", "ai.onnx")


class ExportArgumentError(ValueError):
    """Export arguments that cannot give a valid deploy graph."""


class GraphCheckError(ValueError):
    """An exported graph that failed validation; the message lists the problems."""


def check_export_args(cfg: Any, *, flavour: str, dcn_form: str, opset: int | None, input_hw: tuple[int, int] | None,
                      k_pre: int, max_dets: int, batch: int = 1, fp16: bool = False) -> None:
    """Validate export arguments before any tracing (cheap, clear errors).

    Args:
        cfg: LapMaskConfig; opset: None for TorchScript; input_hw: fixed (H, W) or None (dynamic).
    """
    if flavour not in FLAVOURS:
        raise ExportArgumentError(f"unknown flavour {flavour!r}; choose one of {', '.join(FLAVOURS)}")
    if dcn_form not in DCN_FORMS:
        raise ExportArgumentError(f"unknown DCN form {dcn_form!r}; choose one of {', '.join(DCN_FORMS)}")
    d = cfg.input.size_divisibility
    if input_hw is not None:
        h, w = input_hw
        if h <= 0 or w <= 0 or h % d or w % d:
            raise ExportArgumentError(
                f"--height {h} --width {w}: both must be positive multiples of {d} (the mask branch halves the "
                f"stride-4 maps twice, spec 1.2); e.g. --height {max(d, -(-h // d) * d)} --width {max(d, -(-w // d) * d)}")
    if batch < 1:
        raise ExportArgumentError(f"--batch {batch}: must be >= 1")
    for name, k in (("--k-pre", k_pre), ("--max-dets", max_dets)):
        if k < 1:
            raise ExportArgumentError(f"{name} {k}: must be >= 1")
        if k > TOPK_LIMIT:
            raise ExportArgumentError(f"{name} {k} exceeds the TopK limit of {TOPK_LIMIT} (TensorRT's TopK layer "
                                      f"takes K <= {TOPK_LIMIT}); use a smaller value (default K_pre "
                                      f"{cfg.inference.k_pre}, max_dets {cfg.inference.max_per_img})")
    if cfg.inference.nms_type != "matrix":
        raise ExportArgumentError(f"config nms_type={cfg.inference.nms_type!r}: the deploy graph implements Matrix "
                                  "NMS only; set inference.nms_type to 'matrix'")
    if opset is not None:
        need = MIN_OPSET["plugins" if flavour == "plugins" else dcn_form]
        if opset < need:
            why = ("DeformConv exists from opset 19; use --opset 19 or --dcn-form gridsample"
                   if flavour == "standard" and dcn_form == "deformconv" else "GridSample exists from opset 16")
            raise ExportArgumentError(f"--opset {opset} is too old for the {flavour}/{dcn_form} graph: {why}")
        if opset > MAX_OPSET:
            raise ExportArgumentError(f"--opset {opset}: the TorchScript-based exporter supports opset <= {MAX_OPSET}")


def topk_problems(model: Any, limit: int = TOPK_LIMIT) -> list[str]:
    """Every TopK must have a constant K (an initializer or Constant node) no larger than ``limit``."""
    from onnx import numpy_helper

    g = model.graph
    consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    for n in g.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    consts[n.output[0]] = numpy_helper.to_array(a.t)
    problems = []
    for n in g.node:
        if n.op_type != "TopK":
            continue
        k = consts.get(n.input[1])
        if k is None:
            problems.append(f"TopK node {n.name!r}: K ({n.input[1]!r}) is not a constant")
        elif int(k.reshape(-1)[0]) > limit:
            problems.append(f"TopK node {n.name!r}: K = {int(k.reshape(-1)[0])} exceeds {limit}")
    if not any(n.op_type == "TopK" for n in g.node):
        problems.append("no TopK node: this is not the static deploy graph")
    return problems


def domain_problems(model: Any, flavour: str, dcn_form: str) -> list[str]:
    """Standard flavour: default-domain ops only, with the DCN form's op present; plugins: both lapmask ops."""
    from lapmask.ops.contract import DOMAIN, OPS

    g = model.graph
    ops = {(n.domain if n.domain != "ai.onnx" else "", n.op_type) for n in g.node}
    problems = []
    custom = sorted(f"{d}::{o}" for d, o in ops if d not in STANDARD_DOMAINS)
    if flavour == "standard":
        if custom:
            problems.append(f"standard flavour contains non-standard ops: {', '.join(custom)}")
        want = "DeformConv" if dcn_form == "deformconv" else "GridSample"
        if ("", want) not in ops:
            problems.append(f"standard/{dcn_form} graph has no {want} node")
        other = "GridSample" if dcn_form == "deformconv" else "DeformConv"
        if ("", other) in ops:
            problems.append(f"standard/{dcn_form} graph unexpectedly contains {other}")
    else:
        unknown = [c for c in custom if c.split("::")[0] != DOMAIN or c.split("::")[1] not in OPS]
        if unknown:
            problems.append(f"plugins flavour contains ops outside the contract: {', '.join(unknown)}")
        for name in OPS:
            if (DOMAIN, name) not in ops:
                problems.append(f"plugins graph has no {DOMAIN}::{name} node")
        for std in ("DeformConv", "GridSample"):
            if ("", std) in ops:
                problems.append(f"plugins graph still contains the standard {std}")
        version = {o.domain: o.version for o in model.opset_import}.get(DOMAIN)
        versions = {int(op.version) for op in OPS.values()}
        if version not in versions:
            problems.append(f"opset_import for domain {DOMAIN!r} is {version}, contract version(s) {sorted(versions)}")
    return problems


def plugin_node_problems(model: Any) -> list[str]:
    """Every ``lapmask`` node agrees with the op contract: input count/order, attribute names, types and values."""
    from onnx import AttributeProto, helper

    from lapmask.ops.contract import DOMAIN, OPS

    kinds = {"int": AttributeProto.INT, "ints": AttributeProto.INTS, "float": AttributeProto.FLOAT,
             "string": AttributeProto.STRING, "floats": AttributeProto.FLOATS}
    problems = []
    for n in model.graph.node:
        if n.domain != DOMAIN:
            continue
        op = OPS.get(n.op_type)
        if op is None:
            problems.append(f"{n.name!r}: {DOMAIN}::{n.op_type} is not in the contract")
            continue
        required = sum(not t.optional for t in op.inputs)
        if not required <= len(n.input) <= len(op.inputs):
            problems.append(f"{n.name!r}: {len(n.input)} inputs, contract has {len(op.inputs)} ({required} required)")
        for i, (name, spec) in enumerate(zip(n.input, op.inputs)):
            if not name and not spec.optional:
                problems.append(f"{n.name!r}: required input {i} ({spec.name}) is empty")
        if len(n.output) != len(op.outputs):
            problems.append(f"{n.name!r}: {len(n.output)} outputs, contract has {len(op.outputs)}")
        by_name = {a.name: a for a in op.attributes}
        for a in n.attribute:
            spec = by_name.get(a.name)
            if spec is None:
                problems.append(f"{n.name!r}: attribute {a.name!r} is not in the contract")
                continue
            if a.type != kinds[spec.type]:
                problems.append(f"{n.name!r}: attribute {a.name!r} has type {a.type}, contract {spec.type}")
            value = helper.get_attribute_value(a)
            value = value.decode() if isinstance(value, bytes) else value
            value = list(value) if isinstance(value, (list, tuple)) else value
            if spec.lapmask_value is not None and value != spec.lapmask_value:
                problems.append(f"{n.name!r}: attribute {a.name}={value!r}, LapMask value {spec.lapmask_value!r}")
    return problems


def check_onnx_graph(path: str | Path, *, flavour: str, dcn_form: str, opset: int, fp16: bool) -> dict[str, Any]:
    """Full structural validation of an exported file; raises GraphCheckError listing every problem.

    onnx.checker (by path: works above 2 GB), strict shape inference for standard graphs (custom ops have no
    ONNX shape functions, so plugin graphs get non-strict inference), op-domain audit, contract audit for plugin
    nodes, constant TopK K <= 3840, the default-domain opset, and the fp16 audit for fp16 graphs.
    Returns a summary (node counts per op type).
    """
    import onnx

    from export.fp16 import audit_fp16

    onnx.checker.check_model(str(path))
    model = onnx.load(str(path))
    problems: list[str] = []
    try:
        onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=flavour == "standard")
    except Exception as e:  # noqa: BLE001 - InferenceError and friends
        problems.append(f"ONNX shape inference failed: {str(e).splitlines()[0]}")
    got = {o.domain: o.version for o in model.opset_import}.get("", None)
    if got != opset:
        problems.append(f"default-domain opset is {got}, asked for {opset}")
    problems += domain_problems(model, flavour, dcn_form)
    problems += plugin_node_problems(model)
    problems += topk_problems(model)
    if fp16:
        problems += audit_fp16(model)
    if problems:
        raise GraphCheckError(f"{path} failed validation:\n  - " + "\n  - ".join(problems))
    counts: dict[str, int] = {}
    for n in model.graph.node:
        key = f"{n.domain}::{n.op_type}" if n.domain not in STANDARD_DOMAINS else n.op_type
        counts[key] = counts.get(key, 0) + 1
    return {"op_counts": counts, "nodes": len(model.graph.node)}
