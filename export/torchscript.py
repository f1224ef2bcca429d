"""TorchScript export of the static deploy graph (``torch.jit.trace`` of ``DeployLapMask``) and its predictor.

Same inputs and outputs as the ONNX graph (contracts.md section 3). It is exactly ``DeployLapMask`` with its
default hooks (``lapmask.ops`` dynamic filter and ``matrix_nms``), i.e. what eager ``--static`` runs, and uses
only ATen ops, so the file loads with ``torch.jit.load`` in Python and ``torch::jit::load`` in C++
(libtorch) without torchvision's compiled ops and without Python functions (``export_torchscript`` refuses a
graph that contains either). Shapes are symbolic in the trace; ``validate`` proves it on a second input size.
The metadata travels as the extra file ``lapmask_metadata.json`` (``torch::jit::load(path, device, extra_files)``
in C++) and in the sidecar JSON. A trace records the device of tensors it creates: trace with ``device="cuda"``
for a GPU-side file.
"""
from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from export.checks import check_export_args
from export.metadata import TORCHSCRIPT_EXTRA_FILE, build_metadata, write_sidecar
from export.onnx_export import (
    ExportOptions,
    ExportResult,
    ExportValidationError,
    as_numpy,
    sample_inputs,
    second_hw_for,
    trace_hw_for,
)
from export.predictors.base import StaticGraphPredictor
from lapmask.inference.deploy_module import DeployLapMask

FORBIDDEN_KINDS = ("torchvision::", "prim::PythonOp")


def _module(model: nn.Module, cfg: Any, opts: ExportOptions) -> DeployLapMask:
    from export.fp16 import DeployLapMaskFp16

    kw = {"k_pre": opts.k_pre, "max_dets": opts.max_dets}  # the default hooks: grid-sample filter, ops.matrix_nms
    return (DeployLapMaskFp16.from_model(model, **kw) if opts.fp16 else DeployLapMask(model, **kw)).eval()


def graph_problems(traced: torch.jit.ScriptModule) -> list[str]:
    """Node kinds a plain libtorch cannot run (torchvision ops, Python functions)."""
    kinds = {n.kind() for n in traced.inlined_graph.nodes()}
    return sorted(k for k in kinds if k.startswith(FORBIDDEN_KINDS))


def export_torchscript(model: nn.Module, cfg: Any, path: str | Path, opts: ExportOptions | None = None,
                       validate: bool = True, device: str = "cpu", trace_hw: tuple[int, int] | None = None,
                       check_hw: tuple[int, int] | None = None) -> ExportResult:
    """Trace ``DeployLapMask`` and save it with metadata; validate against eager on a second input size.

    Args:
        opts: fp16, K_pre, max_dets, batch; ``input_hw`` only sets the tracing size (the trace is size-generic).
            The flavour must be "standard" (TorchScript has no plugins); the DCN form is always grid-sample.
    """
    opts = (opts or ExportOptions()).resolved(cfg)
    if opts.flavour != "standard":
        raise ValueError("TorchScript export has the standard flavour only (plugins are ONNX/TensorRT nodes)")
    check_export_args(cfg, flavour="standard", dcn_form="gridsample", opset=None, input_hw=opts.input_hw,
                      k_pre=opts.k_pre, max_dets=opts.max_dets, batch=opts.batch, fp16=opts.fp16)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    module = _module(model.eval(), cfg, opts).to(device)
    hw = trace_hw or trace_hw_for(cfg, opts)
    inputs = tuple(t.to(device) for t in sample_inputs(hw, opts.batch, seed=0, pad=min(hw) // 8))
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TracerWarnings: shape ints; the second-size check proves generality
        traced = torch.jit.trace(module, inputs, check_trace=False, strict=False)
    bad = graph_problems(traced)
    if bad:
        raise ValueError(f"the traced graph contains {', '.join(bad)}: libtorch could not load it")
    meta = build_metadata(cfg, precision="fp16" if opts.fp16 else "fp32", flavour="standard", dcn_form="gridsample",
                          k_pre=opts.k_pre, max_dets=opts.max_dets, opset=None, input_hw=None, batch=opts.batch,
                          exporter=f"torch.jit.trace torch {torch.__version__}", extra={"device": device})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "torch.jit.save is deprecated": TorchScript is the ask
        torch.jit.save(traced, str(path), _extra_files={TORCHSCRIPT_EXTRA_FILE: json.dumps(meta)})
    result = ExportResult(path, time.perf_counter() - t0, path.stat().st_size, meta)
    if validate:
        result.validation = validate_torchscript(module, path, cfg, opts, check_hw or second_hw_for(cfg, opts, hw),
                                                 device)
    result.sidecar = write_sidecar(path, meta)
    return result


def validate_torchscript(module: nn.Module, path: Path, cfg: Any, opts: ExportOptions, hw: tuple[int, int],
                         device: str = "cpu") -> Any:
    """Reload the saved file and compare it with eager on another input size (exact same ops: tight bar)."""
    from export.compare import Tolerances, compare_raw

    loaded, _ = load_torchscript(path, device)
    image, size = (t.to(device) for t in sample_inputs(hw, opts.batch, seed=1, pad=min(hw) // 5))
    with torch.no_grad():
        ref = as_numpy(tuple(t.cpu() for t in module(image, size)))
        got = as_numpy(tuple(t.cpu() for t in loaded(image, size)))
    report = compare_raw(ref, got, cfg.inference.mask_thr, Tolerances())  # same ATen ops: the strict bar
    if not report.ok:
        raise ExportValidationError(f"{path}: TorchScript disagrees with eager at {hw[0]}x{hw[1]}:\n{report.summary()}")
    return report


def load_torchscript(path: str | Path, device: str = "cpu") -> tuple[torch.jit.ScriptModule, dict[str, Any]]:
    """(module, metadata) of a lapmask TorchScript file."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"model not found: {path}")
    extra = {TORCHSCRIPT_EXTRA_FILE: ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        module = torch.jit.load(str(path), map_location=device, _extra_files=extra)
    meta = json.loads(extra[TORCHSCRIPT_EXTRA_FILE]) if extra[TORCHSCRIPT_EXTRA_FILE] else {}
    return module.eval(), meta


class TorchScriptPredictor(StaticGraphPredictor):
    """Run a lapmask TorchScript file on BGR images (same pre/post-processing as the ONNX Runtime predictor)."""

    def __init__(self, model_path: str | Path, resize: bool = True, device: str = "cpu") -> None:
        module, meta = load_torchscript(model_path, device)
        super().__init__(meta, str(model_path), resize)
        self.module = module
        self.device = torch.device(device)

    @torch.no_grad()
    def infer(self, image: np.ndarray, image_size: np.ndarray) -> list[np.ndarray]:
        out = self.module(torch.from_numpy(np.ascontiguousarray(image)).to(self.device),
                          torch.from_numpy(image_size.astype(np.int32)).to(self.device))
        return as_numpy(tuple(t.cpu() for t in out))
