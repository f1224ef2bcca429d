"""Exported files the benchmark backends run, built once per run in the parent process (export time and peak
memory are not part of the measured rows; the workers only load them).

Keys (``BackendSpec.artefact``): ``torchscript-cpu`` / ``torchscript-cuda`` (``export.torchscript``; a trace
records the device it ran on), ``onnx-<flavour>-<precision>`` (``export.onnx_export``) and
``engine-<flavour>-<precision>`` (``export.trt_engine.build_engine`` from the matching ONNX). Exports are not
re-validated here (``lapmask export`` and ``lapmask compare`` do that); a wrong export shows up as a wrong AP.
With a fixed ``--size`` the ONNX and the engine are exported for that padded size (static shapes), otherwise
with dynamic H and W and TensorRT's default profile from the preset's test sizes.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Artefact:
    key: str
    path: Path | None
    seconds: float
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        size = self.path.stat().st_size if self.path is not None and self.path.is_file() else None
        return {"key": self.key, "path": str(self.path) if self.path else None, "bytes": size,
                "export_s": round(self.seconds, 2), "error": self.error}


class ArtefactBuilder:
    """Builds (and caches) the artefacts of one benchmark run.

    Args:
        model: the LapMask model (eval mode, CPU) the weights were loaded into; cfg its config.
        folder: where files go. fixed_hw: the padded input size of a fixed ``--size`` run, else None.
        gpu: CUDA device index for CUDA traces and TensorRT builds.
    """

    def __init__(self, model: Any, cfg: Any, folder: Path, fixed_hw: tuple[int, int] | None, gpu: int = 0) -> None:
        self.model, self.cfg, self.folder, self.fixed_hw, self.gpu = model, cfg, Path(folder), fixed_hw, gpu
        self.built: dict[str, Artefact] = {}

    def get(self, key: str) -> Artefact:
        """The artefact ``key``, building it (and what it depends on) on first use; errors are kept, not raised."""
        if key not in self.built:
            t0 = time.perf_counter()
            try:
                path = self._build(key)
                self.built[key] = Artefact(key, path, time.perf_counter() - t0)
            except Exception as e:  # noqa: BLE001 - one failed export fails its rows, not the benchmark
                self.built[key] = Artefact(key, None, time.perf_counter() - t0, f"{type(e).__name__}: {e}")
        return self.built[key]

    def _build(self, key: str) -> Path:
        from export.onnx_export import ExportOptions

        self.folder.mkdir(parents=True, exist_ok=True)
        kind, _, rest = key.partition("-")
        if kind == "torchscript":
            return self._torchscript(rest)
        flavour, precision = rest.split("-")
        opts = ExportOptions(flavour=flavour, fp16=precision == "fp16", input_hw=self.fixed_hw)
        if kind == "onnx":
            from export.onnx_export import export_onnx

            path = self.folder / f"model_{flavour}_{precision}.onnx"
            export_onnx(self.model, self.cfg, path, opts, validate=False, trace_hw=self.fixed_hw)
            return path
        if kind == "engine":
            onnx = self.get(f"onnx-{rest}")
            if onnx.error:
                raise RuntimeError(f"its ONNX export failed: {onnx.error}")
            from export.trt_engine import BuildOptions, build_engine

            path = self.folder / f"model_{flavour}_{precision}.engine"
            build_engine(onnx.path, path, BuildOptions(timing_cache=str(self.folder / "trt_timing.cache"),
                                                       device=self.gpu))
            return path
        raise ValueError(f"unknown artefact {key!r}")

    def _torchscript(self, device: str) -> Path:
        from export.onnx_export import ExportOptions
        from export.torchscript import export_torchscript

        dev = f"cuda:{self.gpu}" if device == "cuda" else "cpu"
        model = copy.deepcopy(self.model) if device == "cuda" else self.model  # export moves the module
        path = self.folder / f"model_{device}.ts.pt"
        export_torchscript(model, self.cfg, path, ExportOptions(input_hw=self.fixed_hw), validate=False, device=dev,
                           trace_hw=self.fixed_hw)
        return path
