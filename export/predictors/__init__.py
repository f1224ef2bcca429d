"""Predictors for exported models: ``load_predictor(backend, model_path)``.

Every predictor is a callable ``bgr uint8 [H, W, 3] -> {"scores", "labels", "masks" (bool, original size),
"boxes"}`` with attributes ``class_names``, ``category_ids`` and ``metadata``, plus the two halves used by
``lapmask compare``: ``prepare(bgr) -> (image uint8 [B, 3, H, W], (h, w))`` and ``infer(image, image_size) ->
[num_dets, scores, labels, masks, num_candidates]`` (numpy).

Backends are imported lazily: ``ort`` needs onnxruntime + numpy only; ``torchscript`` needs torch; ``trt``
(``export.predictors.trt``) needs TensorRT.
"""
from __future__ import annotations

import importlib.util
from typing import Any

BACKENDS = ("ort", "torchscript", "trt")


def load_predictor(backend: str, model_path: str, resize: bool = True, device: str | None = None,
                   **kwargs: Any) -> Any:
    """Build the predictor of ``backend`` for an exported model.

    Args:
        backend: "ort" (.onnx), "torchscript" (.pt) or "trt" (.engine).
        resize: official test-time resize (False = native size, padding only).
        device: "cpu" / "cuda" (default: cpu for ort and torchscript; trt is always cuda: "cuda" or "cuda:N").
    """
    if backend == "ort":
        from export.predictors.ort import OrtPredictor

        return OrtPredictor(model_path, resize=resize, device=device or "cpu", **kwargs)
    if backend == "torchscript":
        from export.torchscript import TorchScriptPredictor

        return TorchScriptPredictor(model_path, resize=resize, device=device or "cpu", **kwargs)
    if backend == "trt":
        if importlib.util.find_spec("export.predictors.trt") is None:
            raise ValueError("the TensorRT predictor (export.predictors.trt) is not part of this installation")
        from export.predictors import trt  # type: ignore[attr-defined]

        if device and device.startswith("cuda:"):
            kwargs.setdefault("device", int(device.split(":", 1)[1]))
        elif device not in (None, "cuda"):
            raise ValueError(f"--backend trt runs on a CUDA device ('cuda' or 'cuda:N'), not {device!r}")
        return trt.load_predictor(model_path, resize=resize, **kwargs)
    raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
