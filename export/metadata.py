"""Deploy metadata (contracts.md section 5): what a predictor, an engine builder and a person need to know.

Stored twice: in the ONNX model's ``metadata_props`` (string -> string; every value JSON-encoded, so ints, lists
and the config dict round-trip) and in a sidecar JSON next to the artefact (``<file>.json``, e.g.
``model.onnx.json``), which also carries the file's size and SHA-256. TorchScript files carry the same dict as
the extra file ``lapmask_metadata.json``. ``.onnx``/``.pt`` bytes are exactly what the exporters write otherwise.

Torch-free (json/hashlib only): the ONNX Runtime predictor reads it.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

METADATA_FORMAT_VERSION = 1
TORCHSCRIPT_EXTRA_FILE = "lapmask_metadata.json"

# Keys every lapmask export carries (contracts.md section 5), checked by ``validate_metadata``.
REQUIRED_KEYS = (
    "format", "format_version", "lapmask_version", "preset", "config", "class_names", "category_ids",
    "min_size_test", "max_size_test", "mask_thr", "precision", "flavour", "k_pre", "max_dets", "opset",
)


class MetadataError(ValueError):
    """A model file without usable lapmask metadata; the message says how to fix it."""


def build_metadata(cfg: Any, *, precision: str, flavour: str, dcn_form: str | None, k_pre: int, max_dets: int,
                   opset: int | None, input_hw: tuple[int, int] | None, batch: int, exporter: str,
                   extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The metadata dict of one export.

    Args:
        cfg: the LapMaskConfig the model was built with (classes, test sizes, thresholds).
        precision: "fp32" | "fp16"; flavour: "standard" | "plugins"; dcn_form: "gridsample" | "deformconv" | None.
        opset: ONNX opset (None for TorchScript); input_hw: fixed (H, W) or None for dynamic sizes.
    """
    from lapmask import __version__

    ic, inp = cfg.inference, cfg.input
    meta: dict[str, Any] = {
        "format": "lapmask-deploy", "format_version": METADATA_FORMAT_VERSION, "lapmask_version": __version__,
        "preset": cfg.name, "config": cfg.to_dict(), "class_names": list(cfg.class_names),
        "category_ids": [int(c) for c in cfg.category_ids], "min_size_test": int(inp.min_size_test),
        "max_size_test": int(inp.max_size_test), "size_divisibility": int(inp.size_divisibility),
        "mask_thr": float(ic.mask_thr), "score_thr": float(ic.score_thr), "precision": precision,
        "flavour": flavour, "dcn_form": dcn_form, "k_pre": int(k_pre), "max_dets": int(max_dets),
        "opset": opset, "input_height": input_hw[0] if input_hw else None,
        "input_width": input_hw[1] if input_hw else None, "dynamic_shape": input_hw is None, "batch": int(batch),
        "input_names": ["image", "image_size"],
        "output_names": ["num_dets", "scores", "labels", "masks", "num_candidates"], "exporter": exporter,
    }
    if extra:
        meta.update(extra)
    return meta


def to_props(meta: Mapping[str, Any]) -> dict[str, str]:
    """metadata dict -> ONNX ``metadata_props`` (JSON-encoded values)."""
    return {k: json.dumps(v, sort_keys=True) for k, v in meta.items()}


def from_props(props: Mapping[str, str]) -> dict[str, Any]:
    """ONNX ``metadata_props`` (or ORT's ``custom_metadata_map``) -> metadata dict; non-JSON values kept as text."""
    out: dict[str, Any] = {}
    for k, v in props.items():
        try:
            out[k] = json.loads(v)
        except (TypeError, json.JSONDecodeError):
            out[k] = v
    return out


def validate_metadata(meta: Mapping[str, Any], source: str) -> None:
    """Raise MetadataError unless ``meta`` is lapmask deploy metadata this version can read."""
    if meta.get("format") != "lapmask-deploy":
        raise MetadataError(f"{source} has no lapmask metadata; export it with `lapmask export` (metadata_props "
                            "or the sidecar <file>.json carry class names, test sizes and thresholds)")
    if int(meta.get("format_version", 0)) > METADATA_FORMAT_VERSION:
        raise MetadataError(f"{source} has metadata format {meta['format_version']}, newer than this lapmask "
                            f"({METADATA_FORMAT_VERSION}); upgrade lapmask")
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise MetadataError(f"{source} metadata lacks {', '.join(missing)}; re-export the model")


def file_digest(path: str | Path) -> str:
    """SHA-256 hex digest of a file (streamed)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sidecar_path(artefact: str | Path) -> Path:
    """``model.onnx`` -> ``model.onnx.json`` (so ``model.onnx`` and ``model.engine`` never share a sidecar)."""
    p = Path(artefact)
    return p.with_name(p.name + ".json")


def write_sidecar(artefact: str | Path, meta: Mapping[str, Any]) -> Path:
    """Write the sidecar JSON (metadata + file size and SHA-256 of the artefact); returns its path."""
    p = Path(artefact)
    doc = {**meta, "file": p.name, "file_bytes": p.stat().st_size, "file_sha256": file_digest(p)}
    out = sidecar_path(p)
    out.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return out


def read_sidecar(artefact: str | Path) -> dict[str, Any] | None:
    """The sidecar of ``artefact`` or None when there is none."""
    p = sidecar_path(artefact)
    return json.loads(p.read_text()) if p.is_file() else None


def read_onnx_metadata(path: str | Path) -> dict[str, Any]:
    """Metadata of an exported ONNX file (weights are not loaded). Raises MetadataError when absent."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    meta = from_props({p.key: p.value for p in model.metadata_props})
    validate_metadata(meta, str(path))
    return meta
