"""Export the static deploy graph (contracts.md sections 2-3) to ONNX, then prove the file is right.

Exporter: the TorchScript-based ``torch.onnx.export(..., dynamo=False)``. With torch 2.14 it traces this graph
in ~12 s (lite_R18) and the result runs correctly at other input sizes; the dynamo exporter took ~140 s for the
same module and its graph failed in ONNX Runtime at a second input size (an ``Expand`` with a specialised shape).
Custom ``lapmask`` nodes come from ``torch.autograd.Function.symbolic`` (``export.flavours``).

Validation after writing (``validate=True``): ``export.checks.check_onnx_graph`` (checker, shape inference, op
and TopK audits, fp16 audit) and an ONNX Runtime run on a SECOND input -- another size for ``--dynamic``, another
image for a fixed size -- compared with the eager PyTorch module that was traced.
"""
from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from export.checks import check_export_args, check_onnx_graph
from export.flavours import DEFAULT_DCN_FORM, make_hooks
from export.metadata import build_metadata, to_props, write_sidecar
from lapmask.inference.deploy_module import DeployLapMask
from lapmask.inference.static import OUTPUT_NAMES

INPUT_NAMES = ("image", "image_size")
DEFAULT_OPSET = 19


@dataclass
class ExportOptions:
    """What to export. ``input_hw`` None = dynamic H and W (multiples of 32 at run time)."""

    flavour: str = "standard"
    dcn_form: str = DEFAULT_DCN_FORM
    fp16: bool = False
    input_hw: tuple[int, int] | None = None
    batch: int = 1
    k_pre: int | None = None
    max_dets: int | None = None
    opset: int = DEFAULT_OPSET

    def resolved(self, cfg: Any) -> ExportOptions:
        """Copy with k_pre / max_dets filled from the config."""
        ic = cfg.inference
        return ExportOptions(self.flavour, self.dcn_form, self.fp16, self.input_hw, self.batch,
                             ic.k_pre if self.k_pre is None else self.k_pre,
                             ic.max_per_img if self.max_dets is None else self.max_dets, self.opset)


@dataclass
class ExportResult:
    path: Path
    seconds: float
    bytes: int
    metadata: dict[str, Any]
    sidecar: Path | None = None
    checks: dict[str, Any] = field(default_factory=dict)
    validation: Any = None
    notes: list[str] = field(default_factory=list)  # e.g. why the ONNX Runtime comparison was skipped


class ExportValidationError(ValueError):
    """The exported graph disagrees with PyTorch; the message carries the comparison report."""


def build_deploy_module(model: nn.Module, cfg: Any, opts: ExportOptions) -> DeployLapMask:
    """The eager module that is traced (and is the reference): fp32 or fp16, with the flavour's hooks."""
    from export.fp16 import DeployLapMaskFp16, half_supported_here

    if opts.fp16 and not half_supported_here():
        raise ValueError("this torch build cannot run float16 Conv/GroupNorm on CPU, which tracing the fp16 graph "
                         "needs; upgrade torch (>= 2.1) or export fp32 and let TensorRT pick fp16")
    filter_fn, nms_fn = make_hooks(cfg, opts.flavour, opts.dcn_form, opts.fp16)
    kw = {"k_pre": opts.k_pre, "max_dets": opts.max_dets, "filter_fn": filter_fn, "nms_fn": nms_fn}
    if opts.fp16:
        return DeployLapMaskFp16.from_model(model, **kw).eval()
    return DeployLapMask(model, **kw).eval()


def trace_hw_for(cfg: Any, opts: ExportOptions) -> tuple[int, int]:
    """Tracing size: the fixed size, else the preset's test size as a landscape image (multiples of 32)."""
    if opts.input_hw is not None:
        return opts.input_hw
    d = cfg.input.size_divisibility
    short = cfg.input.min_size_test
    return -(-short // d) * d, -(-(short * 4 // 3) // d) * d


def second_hw_for(cfg: Any, opts: ExportOptions, trace_hw: tuple[int, int]) -> tuple[int, int]:
    """Validation size: the fixed size again (another image), else a different, portrait size."""
    if opts.input_hw is not None:
        return opts.input_hw
    h, w = trace_hw
    return (w, h) if w != h else (h + cfg.input.size_divisibility, w)


def sample_inputs(hw: tuple[int, int], batch: int, seed: int, pad: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A smooth random BGR image batch [B, 3, H, W] uint8 and image_size [B, 2] int32 ((H - pad, W - pad)).

    Smooth (upsampled low-resolution noise) rather than white noise so a trained model sees structure.
    """
    g = torch.Generator().manual_seed(seed)
    h, w = hw
    low = torch.rand((batch, 3, max(h // 16, 2), max(w // 16, 2)), generator=g)
    img = torch.nn.functional.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)
    img = (img * 255).round().clamp(0, 255).to(torch.uint8)
    size = torch.tensor([[h - pad, w - pad]] * batch, dtype=torch.int32)
    img[:, :, h - pad:, :] = 0
    img[:, :, :, w - pad:] = 0
    return img, size


def _linspace_keeping_dtype(g, start, end, steps, dtype, layout, device, pin_memory):
    """``aten::linspace`` as torch's opset-9 symbolic, plus the Cast to the requested dtype it forgets.

    Without it, the CoordConv ramps (``torch.linspace(..., dtype=x.dtype)``) come out float32 in an fp16 graph and
    the exporter's type promotion silently widens everything after the coordinate Concat to float32.
    """
    from torch.onnx import symbolic_helper, symbolic_opset9

    out = symbolic_opset9.linspace(g, start, end, steps, dtype, layout, device, pin_memory)
    if symbolic_helper._is_none(dtype):
        return out
    from torch.onnx._internal.torchscript_exporter import _type_utils

    onnx_type = _type_utils.JitScalarType(symbolic_helper._get_const(dtype, "i", "dtype")).onnx_type()
    return g.op("Cast", out, to_i=onnx_type)


@contextmanager
def _symbolic_overrides(opset: int) -> Iterator[None]:
    torch.onnx.register_custom_op_symbolic("aten::linspace", _linspace_keeping_dtype, opset)
    try:
        yield
    finally:
        torch.onnx.unregister_custom_op_symbolic("aten::linspace", opset)


def _export_call(module: nn.Module, inputs: tuple, path: Path, opts: ExportOptions) -> None:
    dynamic_axes = None
    if opts.input_hw is None:
        dynamic_axes = {"image": {2: "height", 3: "width"}, "masks": {2: "height_4", 3: "width_4"}}
    custom = {"lapmask": 1} if opts.flavour == "plugins" else None
    with warnings.catch_warnings():
        # Expected: TracerWarnings for Python ints taken from shapes (K_pre, level sizes); the validation run at a
        # second size is what proves the trace generalises.
        warnings.simplefilter("ignore")
        with torch.no_grad(), _symbolic_overrides(opts.opset):
            torch.onnx.export(module, inputs, str(path), dynamo=False, opset_version=opts.opset,
                              input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES),
                              dynamic_axes=dynamic_axes, custom_opsets=custom, do_constant_folding=True,
                              # our autograd.Functions carry symbolics; inlining their traced forward (the
                              # sampling math) trips the exporter's peephole pass on torch 2.14
                              autograd_inlining=False)


def _write_metadata(path: Path, meta: dict[str, Any]) -> None:
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    for k, v in to_props(meta).items():
        model.metadata_props.add(key=k, value=v)
    model.producer_name = "lapmask"
    onnx.save(model, str(path))


def export_onnx(model: nn.Module, cfg: Any, path: str | Path, opts: ExportOptions | None = None,
                validate: bool = True, trace_hw: tuple[int, int] | None = None,
                check_hw: tuple[int, int] | None = None) -> ExportResult:
    """Export ``model`` (a LapMask in eval mode) to ``path``.

    Args:
        opts: flavour, DCN form, fp16, fixed size or dynamic, K_pre, max_dets, opset.
        validate: run the graph checks and the ONNX Runtime comparison on a second input.
        trace_hw / check_hw: tracing / validation sizes of a dynamic export (tests use small ones); a fixed-size
            export always traces at its size.
    Returns:
        ExportResult (path, seconds, size, metadata, sidecar, checks, validation report).
    Raises:
        ExportArgumentError (bad arguments), GraphCheckError (invalid graph), ExportValidationError (mismatch).
    """
    opts = (opts or ExportOptions()).resolved(cfg)
    check_export_args(cfg, flavour=opts.flavour, dcn_form=opts.dcn_form, opset=opts.opset, input_hw=opts.input_hw,
                      k_pre=opts.k_pre, max_dets=opts.max_dets, batch=opts.batch, fp16=opts.fp16)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    module = build_deploy_module(model.eval(), cfg, opts)
    hw = trace_hw_for(cfg, opts) if opts.input_hw is not None or trace_hw is None else trace_hw
    _export_call(module, sample_inputs(hw, opts.batch, seed=0, pad=min(hw) // 8), path, opts)
    meta = build_metadata(cfg, precision="fp16" if opts.fp16 else "fp32", flavour=opts.flavour,
                          dcn_form=opts.dcn_form if opts.flavour == "standard" else "plugin", k_pre=opts.k_pre,
                          max_dets=opts.max_dets, opset=opts.opset, input_hw=opts.input_hw, batch=opts.batch,
                          exporter=f"torch.onnx.export(dynamo=False) torch {torch.__version__}")
    _write_metadata(path, meta)
    seconds = time.perf_counter() - t0
    result = ExportResult(path, seconds, path.stat().st_size, meta)
    if validate:
        result.checks = check_onnx_graph(path, flavour=opts.flavour, dcn_form=opts.dcn_form, opset=opts.opset,
                                         fp16=opts.fp16)
        skip = _plugins_unavailable() if opts.flavour == "plugins" else None
        if skip:
            result.notes.append(f"ONNX Runtime comparison skipped (graph checks passed): {skip}")
        else:
            # fp16 graphs are compared with the fp32 module (the real reference; CPU half kernels are slow).
            ref = build_deploy_module(model, cfg, replace(opts, fp16=False)) if opts.fp16 else module
            result.validation = validate_against_torch(ref, path, cfg, opts, check_hw or second_hw_for(cfg, opts, hw))
    result.sidecar = write_sidecar(path, meta)
    return result


def _plugins_unavailable() -> str | None:
    """Why the plugins flavour cannot run in ONNX Runtime here (None when it can)."""
    from export.ort_ops import CustomOpsNotAvailableError, register

    try:
        register()
    except (CustomOpsNotAvailableError, ImportError) as e:
        return str(e)
    return None


def validate_against_torch(module: nn.Module, path: Path, cfg: Any, opts: ExportOptions,
                           hw: tuple[int, int]) -> Any:
    """ONNX Runtime (CPU) vs the eager fp32 module on a second input; raises ExportValidationError on mismatch."""
    from export.compare import Tolerances, compare_raw
    from export.predictors.ort import make_session

    image, size = sample_inputs(hw, opts.batch, seed=1, pad=min(hw) // 5)
    with torch.no_grad():
        ref = as_numpy(module(image, size))
    session = make_session(str(path), opts.flavour, device="cpu")
    got = session.run(None, {"image": image.numpy(), "image_size": size.numpy()})
    report = compare_raw(ref, got, cfg.inference.mask_thr, Tolerances.for_precision("fp16" if opts.fp16 else "fp32"))
    if not report.ok:
        raise ExportValidationError(f"{path} (kept for inspection): ONNX Runtime disagrees with PyTorch at "
                                    f"{hw[0]}x{hw[1]}:\n" + report.summary())
    return report


def as_numpy(outputs: tuple[torch.Tensor, ...]) -> list[np.ndarray]:
    """Deploy outputs as numpy (float outputs as float32)."""
    return [t.float().numpy() if t.is_floating_point() else t.numpy() for t in outputs]
