"""The custom-op contract (contracts.md section 6): one table for the ONNX symbolics, the TensorRT plugins, the C
kernels (trt_plugins/kernels) and the docs. OPS.md is generated from it:

    python -m lapmask.ops.contract --markdown > OPS.md      # or: --write (writes OPS.md at the repository root)
    python -m lapmask.ops.contract --check                  # exit 1 when OPS.md is out of date

Versioning rule: any change of semantics (inputs, outputs, attributes or their defaults, numerics policy) bumps
the op's ``version``, which is both the ONNX opset version of the op in domain ``lapmask`` and the TensorRT plugin
version; the ONNX symbolic, the plugin and OPS.md change in the same commit.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

DOMAIN = "lapmask"
PLUGIN_NAMESPACE = "lapmask"
OPS_MD = Path(__file__).resolve().parents[2] / "OPS.md"

#: Matrix NMS ``kernel`` attribute values and their codes in the C ABI (lapmask_nms_kernel).
MATRIX_NMS_KERNELS: dict[str, int] = {"gaussian": 0, "linear": 1}


@dataclass(frozen=True)
class TensorSpec:
    """One input or output: name, allowed element types, symbolic shape, whether optional, meaning."""

    name: str
    dtypes: tuple[str, ...]
    shape: str
    doc: str
    optional: bool = False


@dataclass(frozen=True)
class AttributeSpec:
    """One attribute: ONNX type (int, ints, float, string), default (None = required or inferred), LapMask value."""

    name: str
    type: str
    default: object
    doc: str
    lapmask_value: object = None


@dataclass(frozen=True)
class OpContract:
    """Everything an exporter, a plugin and a kernel must agree on for one op."""

    name: str
    version: str
    summary: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    attributes: tuple[AttributeSpec, ...]
    fp16_policy: str
    semantics: tuple[str, ...]
    includes: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()
    domain: str = DOMAIN
    plugin_namespace: str = PLUGIN_NAMESPACE
    mirrors: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def plugin_name(self) -> str:
        """TensorRT plugin name = op name."""
        return self.name

    @property
    def plugin_version(self) -> str:
        return self.version

    def attribute(self, name: str) -> AttributeSpec:
        for a in self.attributes:
            if a.name == name:
                return a
        raise KeyError(f"{self.name} has no attribute {name!r}")


DYNAMIC_DEFORM_CONV = OpContract(
    name="DynamicDeformConv",
    version="1",
    summary="Modulated deformable convolution (DCNv2) whose weights are a runtime tensor: LapMask's dynamic filter "
            "(spec 4.3), one call per Laplacian level with the N instance kernels as W.",
    mirrors="ONNX DeformConv-19: same inputs (order X, W, offset, B, mask), attributes and defaults, so the "
            "standard flavour exports `DeformConv` (default domain, opset 19) and the plugin flavour "
            "`lapmask::DynamicDeformConv` from the same arguments.",
    inputs=(
        TensorSpec("X", ("float32", "float16"), "[B, C, H, W]", "input feature map (LapMask: F_k, C = 64, B = 1)"),
        TensorSpec("W", ("float32", "float16"), "[N, C/group, kh, kw]",
                   "filters, a runtime tensor (LapMask: the N instance kernels, kernels[N, 9C] viewed as [N, C, 3, 3])"),
        TensorSpec("offset", ("float32", "float16"), "[B, offset_group*2*kh*kw, Ho, Wo]",
                   "(dy, dx) interleaved per tap t = a*kw + b: channel 2t = dy (rows), 2t+1 = dx (columns)"),
        TensorSpec("B", ("float32", "float16"), "[N]", "bias (LapMask: absent)", optional=True),
        TensorSpec("mask", ("float32", "float16"), "[B, offset_group*kh*kw, Ho, Wo]",
                   "modulation, already passed through sigmoid (LapMask: sigmoid(O_k[18:27])); absent = 1",
                   optional=True),
    ),
    outputs=(TensorSpec("Y", ("float32", "float16"), "[B, N, Ho, Wo]", "responses (LapMask: R_k [N, H, W] for B = 1)"),),
    attributes=(
        AttributeSpec("dilations", "ints", [1, 1], "dilation along (h, w)", [1, 1]),
        AttributeSpec("group", "int", 1, "groups of C and N convolved independently", 1),
        AttributeSpec("kernel_shape", "ints", None, "(kh, kw); inferred from W when absent", [3, 3]),
        AttributeSpec("offset_group", "int", 1, "groups of C sharing one offset/mask field", 1),
        AttributeSpec("pads", "ints", [0, 0, 0, 0], "(top, left, bottom, right)", [1, 1, 1, 1]),
        AttributeSpec("strides", "ints", [1, 1], "stride along (h, w)", [1, 1]),
    ),
    fp16_policy="T is float32 or float16 (one type for all inputs and the output). With float16 storage the offsets "
                "and modulation are widened to float32 before use: sampling coordinates, bilinear weights, the "
                "sampled columns (fp32 workspace) and the products are float32; Y is rounded to float16 once. "
                "float16 offsets are themselves rounded (spacing 1/16 px near 100 px); keep the op in float32 if "
                "that matters.",
    semantics=(
        "Ho = (H + pad_top + pad_bottom - dil_h*(kh-1) - 1) / stride_h + 1 (floor), likewise Wo.",
        ("Sample point of tap t = a*kw + b at output (y, x), offset group g: "
         "h = y*stride_h - pad_top + a*dil_h + dy, w = x*stride_w - pad_left + b*dil_w + dx."),
        ("Bilinear sample in pixel-index coordinates (detectron2 modulated_deformable_im2col): 0 unless "
         "-1 < h < H and -1 < w < W; each of the 4 corners outside the image contributes 0."),
        ("column[c*T + t, y*Wo + x] = mask * bilinear(X[c], h, w); Y[o] = B[o] + W[o] (as [C/group*T]) @ "
         "columns[rows of o's group]."),
    ),
    notes=(
        "Reference: lapmask.ops.modulated_deform_conv_reference (float64); fast path lapmask.ops.deform_columns.",
        ("C kernels: lapmask_deform_conv_cpu / lapmask_deform_conv_cuda (CUDA workspace: C*kh*kw*Ho*Wo*4 bytes, "
         "rounded up to 256)."),
    ),
)

MATRIX_NMS = OpContract(
    name="MatrixNMS",
    version="1",
    summary="Matrix NMS score decay (spec 6 step 7, SOLOv2 utils.matrix_nms) on candidates sorted by descending "
            "score.",
    inputs=(
        TensorSpec("masks", ("float32", "float16", "uint8"), "[K, H, W]",
                   "binary masks (0/1; a pixel is set when non-zero) at stride 4, in score order"),
        TensorSpec("scores", ("float32",), "[K]", "scores sorted descending; invalid candidates carry -1"),
        TensorSpec("labels", ("int32",), "[K]", "class indices"),
    ),
    outputs=(TensorSpec("decayed_scores", ("float32",), "[K]",
                        "score * decay for valid entries; invalid entries (score < 0) returned unchanged (-1)"),),
    attributes=(
        AttributeSpec("kernel", "string", "gaussian", "decay kernel: 'gaussian' or 'linear' (C ABI codes "
                      + ", ".join(f"{k} = {v}" for k, v in MATRIX_NMS_KERNELS.items()) + ")", "gaussian"),
        AttributeSpec("sigma", "float", 2.0, "gaussian sigma, multiplies the exponent (the code, not the paper)",
                      2.0),
    ),
    fp16_policy="masks may be stored as float16 or uint8; scores and the output are always float32 and all "
                "arithmetic is float32 (areas at stride 4 reach 67,200 > the float16 maximum 65,504).",
    semantics=(
        ("inter_ij = |M_i and M_j| (the matrix product of the flattened binary masks, exact counts); "
         "a_i = |M_i| computed inside from the masks."),
        "IoU_ij = inter_ij / ((a_i + a_j) - inter_ij), 0 when both masks are empty.",
        "D_ij = IoU_ij if i < j, label_i == label_j and both are valid (score >= 0), else 0; c_i = max_k D_ki.",
        ("gaussian: decay_j = min over all i of exp(-sigma*D_ij^2) / exp(-sigma*c_i^2); "
         "linear: decay_j = min over all i of (1 - D_ij) / (1 - c_i)."),
        "decayed_j = score_j * decay_j; a nan ratio propagates (as torch.min in the official code).",
    ),
    includes=("areas from the masks", "IoU matrix (upper triangle, label-equal)", "compensation", "decay",
              "multiplication by the scores"),
    excludes=("sorting (inputs must already be sorted)", "score thresholds",
              "the final TopK to max_dets (stays in the graph)", "mask thresholding (inputs are already binary)"),
    notes=(
        ("Invalid candidates take part with D = 0, the same as leaving them out; sorted last (score -1) they "
         "cannot change any valid result."),
        "Reference: lapmask.ops.matrix_nms_reference (float64) and lapmask.ops.matrix_nms.",
        ("C kernels: lapmask_matrix_nms_cpu / lapmask_matrix_nms_cuda (CUDA workspace from "
         "lapmask_matrix_nms_cuda_workspace_size: bit-packed masks, K x K float32 D and two K vectors)."),
    ),
)

OPS: dict[str, OpContract] = {op.name: op for op in (DYNAMIC_DEFORM_CONV, MATRIX_NMS)}

_HEADER = """# Custom ops (the `plugins` flavour)

<!-- Generated by `python -m lapmask.ops.contract --write` from lapmask/ops/contract.py; do not edit by hand. -->

One contract for the ONNX symbolics (domain `{domain}`), the TensorRT plugins (plugin name = op name, plugin
namespace `{namespace}`), the shared C++/CUDA kernels in `trt_plugins/kernels/` (C ABI `lapmask_kernels.h`,
Python binding `lapmask.ops.clib`) and these docs. Tests check that this file, `lapmask/ops/contract.py` and the
C ABI's defaults agree.

**Versioning rule:** any change of semantics (inputs, outputs, attributes or their defaults, numerics policy) bumps
the op's version, which is both the ONNX opset version of the op in domain `{domain}` and the TensorRT plugin
version; the symbolic, the plugin, the kernels and this file change together.

| op | ONNX domain | version | TensorRT plugin | plugin version | plugin namespace |
|---|---|---|---|---|---|
"""


def _fmt(v: object) -> str:
    if v is None:
        return "-"
    if isinstance(v, str):
        return f'"{v}"'
    return str(v).replace(" ", "")


def _tensor_rows(tensors: tuple[TensorSpec, ...], with_index: bool) -> list[str]:
    rows = ["| # | name | dtypes | shape | optional | meaning |", "|---|---|---|---|---|---|"]
    for i, t in enumerate(tensors):
        rows.append(f"| {i if with_index else ''} | `{t.name}` | {', '.join(t.dtypes)} | `{t.shape}` | "
                    f"{'yes' if t.optional else 'no'} | {t.doc} |")
    return rows


def render_op(op: OpContract) -> str:
    """Markdown section of one op."""
    lines = [f"## {op.name} (domain `{op.domain}`, version {op.version})", "", op.summary, ""]
    if op.mirrors:
        lines += [f"Mirrors {op.mirrors}", ""]
    lines += ["**Inputs**", ""] + _tensor_rows(op.inputs, True) + ["", "**Outputs**", ""]
    lines += _tensor_rows(op.outputs, True) + ["", "**Attributes**", ""]
    lines += ["| name | type | default | LapMask value | meaning |", "|---|---|---|---|---|"]
    lines += [f"| `{a.name}` | {a.type} | {_fmt(a.default)} | {_fmt(a.lapmask_value)} | {a.doc} |"
              for a in op.attributes]
    lines += ["", f"**fp16 policy:** {op.fp16_policy}", "", "**Semantics**", ""]
    lines += [f"- {s}" for s in op.semantics]
    if op.includes:
        lines += ["", "**Includes:** " + "; ".join(op.includes) + ".", "",
                  "**Does not include:** " + "; ".join(op.excludes) + "."]
    if op.notes:
        lines += ["", "**Notes**", ""] + [f"- {n}" for n in op.notes]
    return "\n".join(lines) + "\n"


def render_markdown() -> str:
    """The whole OPS.md."""
    text = _HEADER.format(domain=DOMAIN, namespace=PLUGIN_NAMESPACE)
    text += "".join(f"| [{op.name}](#{op.name.lower()}-domain-{op.domain}-version-{op.version}) | `{op.domain}` | "
                    f"{op.version} | `{op.plugin_name}` | {op.plugin_version} | `{op.plugin_namespace}` |\n"
                    for op in OPS.values())
    return text + "".join("\n" + render_op(op) for op in OPS.values())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lapmask.ops.contract", description=__doc__.split("\n\n")[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--markdown", action="store_true", help="print OPS.md to stdout")
    g.add_argument("--write", action="store_true", help=f"write {OPS_MD}")
    g.add_argument("--check", action="store_true", help="exit 1 when OPS.md differs from the table")
    args = ap.parse_args(argv)
    text = render_markdown()
    if args.markdown:
        sys.stdout.write(text)
    elif args.write:
        OPS_MD.write_text(text)
        print(f"wrote {OPS_MD}")
    else:
        if not OPS_MD.is_file() or OPS_MD.read_text() != text:
            print(f"{OPS_MD} is out of date; run `python -m lapmask.ops.contract --write`", file=sys.stderr)
            return 1
        print(f"{OPS_MD} is up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
