"""Read weight files without executing code: torch zip files via ``weights_only=True``, plain pickles via a
restricted unpickler that resolves only what numpy arrays and plain containers need.

Every failure is a ``CheckpointFormatError`` with a message saying what to do, never a raw pickle traceback.
Used by backbone pretraining (``lapmask.model.backbone.pretrained``) and official conversion (``lapmask.convert``).
"""
from __future__ import annotations

import _codecs
import collections
import importlib
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

_TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # first pickled object of a pre-1.6 (non-zip) torch.save file


class CheckpointFormatError(ValueError):
    """The file is not a usable (or not a safe) backbone checkpoint; the message says what to do."""


# ----------------------------------------------------------------------------------------------------------------
# Reading files safely

def _numpy_multiarray() -> Any:
    try:  # numpy >= 2 keeps the implementation in numpy._core; numpy.core is a deprecated alias there
        return importlib.import_module("numpy._core.multiarray")
    except ImportError:  # pragma: no cover - numpy 1.x
        return importlib.import_module("numpy.core.multiarray")


_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): lambda: _numpy_multiarray()._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): lambda: _numpy_multiarray()._reconstruct,
    ("numpy.core.multiarray", "scalar"): lambda: _numpy_multiarray().scalar,
    ("numpy._core.multiarray", "scalar"): lambda: _numpy_multiarray().scalar,
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("_codecs", "encode"): lambda: _codecs.encode,  # how Python 3 pickles bytes at protocol 2
    ("collections", "OrderedDict"): lambda: collections.OrderedDict,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler for plain containers of numpy arrays: any other global is refused before it can be called."""

    def find_class(self, module: str, name: str) -> Any:
        factory = _ALLOWED_GLOBALS.get((module, name))
        if factory is None:
            raise CheckpointFormatError(
                f"refusing to unpickle the global '{module}.{name}': this loader only accepts plain dicts of numpy "
                "arrays or tensors (a pickle that names other globals can execute code). If you trust the file, "
                "re-save its state_dict with torch.save(state_dict, 'weights.pth') and load that instead.")
        return factory()


def read_weights_file(path: Path) -> Any:
    """Return the top-level object of a checkpoint file, loaded without executing code."""
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:2] == b"PK":  # torch.save zip container
        return _torch_load(path)
    try:
        with open(path, "rb") as f:
            obj = RestrictedUnpickler(f, encoding="latin1").load()
    except CheckpointFormatError as e:
        raise CheckpointFormatError(f"{path}: {e}") from None
    except Exception as e:  # noqa: BLE001 - any unpickling failure means "not a checkpoint"
        raise CheckpointFormatError(
            f"{path} is not a checkpoint this loader understands ({type(e).__name__}: {e}); expected a torch .pth "
            "(torch.save of a state_dict) or a detectron2/MSRA .pkl (dict of numpy arrays)") from None
    if isinstance(obj, int) and obj == _TORCH_LEGACY_MAGIC:
        return _torch_load(path)
    return obj


def _torch_load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointFormatError(
            f"{path} holds objects other than tensors and plain containers, so it is not loaded (weights_only "
            f"safety). Re-save only the state_dict with torch.save. Detail: {str(e).splitlines()[0]}") from None
    except Exception as e:  # noqa: BLE001
        raise CheckpointFormatError(f"{path} could not be read as a torch checkpoint ({type(e).__name__}: {e})") \
            from None


def extract_tensors(obj: Any, path: Path) -> dict[str, Tensor]:
    """Unwrap ``{"model"|"state_dict"|"blobs": ...}`` and keep the array entries as CPU tensors."""
    if not isinstance(obj, Mapping):
        raise CheckpointFormatError(f"{path} contains a {type(obj).__name__}, expected a dict of weights")
    for key in ("model", "state_dict", "blobs"):
        if isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    out: dict[str, Tensor] = {}
    for k, v in obj.items():
        if not isinstance(k, str) or k.endswith("_momentum") or k.endswith("num_batches_tracked"):
            continue  # caffe2 optimizer state / BN counters: never weights
        if isinstance(v, np.ndarray) and v.dtype.kind in "fiub":
            out[k] = torch.from_numpy(np.ascontiguousarray(v))
        elif isinstance(v, Tensor):
            out[k] = v
    if not out:
        raise CheckpointFormatError(f"{path} contains no arrays or tensors (keys: {list(obj)[:8]})")
    if all(k.startswith("module.") for k in out):  # saved from DataParallel / DDP
        out = {k[len("module."):]: v for k, v in out.items()}
    return out
