"""Load ImageNet-pretrained weights into the bottom-up network (ResNet / VoVNet) of a ``build_backbone`` module.

Accepted files (the format is recognised from the content and the key names, not the file name):

* **MSRA / detectron2 ImageNet ``.pkl``** (caffe2 blob names: ``conv1_w``, ``res_conv1_bn_s``,
  ``res2_0_branch2a_w``, ``res2_0_branch1_bn_b``, ``fc1000_w`` ...), a flat dict or ``{"blobs": {...}}`` of
  float32/float64 numpy arrays. Names are converted like detectron2's ``c2_model_loading.py`` (ResNet subset).
  These files hold the folded affine ``_s``/``_b`` only; the FrozenBN running statistics are set to the identity
  (mean 0, var 1), which is what detectron2's FrozenBN does for caffe2 weights. Convention: stride_in_1x1=True.
* **torchvision ResNet ``.pth``** state dicts (``conv1.weight``, ``bn1.*``, ``layer1.0.conv1.weight``,
  ``downsample.0/1``, ``fc.*``): BN tensors go to the FrozenBN buffers. Bottleneck weights need
  ``backbone.stride_in_1x1=false`` (torchvision puts the stride in the 3x3 conv); BasicBlock (R18/34) has its
  stride in conv1 either way. They also expect RGB input normalised with ImageNet mean/std (see ``notes``).
* **detectron2-format** ``.pth`` / ``.pkl`` whose keys start with ``backbone.bottom_up.`` (e.g. centermask2's
  ``vovnet57_ese_detectron2.pth``) or ``bottom_up.``, or are bare bottom-up names (``stem.conv1.weight``,
  ``res2.0.conv1.weight``, as written by detectron2's ``convert-torchvision-to-d2.py``); ``{"model": ...}`` or
  ``{"state_dict": ...}`` wrappers are unwrapped.

Safety: zip / legacy torch files go through ``torch.load(weights_only=True)``; plain pickles go through a
restricted unpickler that only resolves the globals numpy arrays need. Nothing else is ever imported or called,
and every failure is a ``CheckpointFormatError`` with a message, never a raw pickle traceback.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from lapmask.safe_load import CheckpointFormatError, extract_tensors, read_weights_file

__all__ = ["CheckpointFormatError", "load_backbone_weights", "convert_c2_name", "convert_torchvision_name"]

# ----------------------------------------------------------------------------------------------------------------
# Name conversion to bottom-up names (ResNet: stem.conv1, res{2..5}.{b}.conv{n}/shortcut(.norm))

_C2_RULES: list[tuple[str, str]] = [  # applied in order after "_" -> "." (detectron2 convert_basic_c2_names)
    (r"\.b$", ".bias"), (r"\.w$", ".weight"),
    (r"bn\.s$", "norm.weight"), (r"bn\.bias$", "norm.bias"), (r"bn\.rm$", "norm.running_mean"),
    (r"bn\.running\.mean$", "norm.running_mean"), (r"bn\.riv$", "norm.running_var"),
    (r"bn\.running\.var$", "norm.running_var"), (r"bn\.gamma$", "norm.weight"), (r"bn\.beta$", "norm.bias"),
    (r"^res\.conv1\.norm\.", "conv1.norm."), (r"^conv1\.", "stem.conv1."),
    (r"\.branch1\.", ".shortcut."), (r"\.branch2a\.", ".conv1."), (r"\.branch2b\.", ".conv2."),
    (r"\.branch2c\.", ".conv3."),
]


def convert_c2_name(name: str) -> str:
    """caffe2 blob name -> detectron2 bottom-up name, e.g. ``res2_0_branch2a_bn_s`` -> ``res2.0.conv1.norm.weight``,
    ``res_conv1_bn_b`` -> ``stem.conv1.norm.bias``, ``conv1_w`` -> ``stem.conv1.weight`` (``fc1000_w`` ->
    ``fc1000.weight``, which matches nothing)."""
    n = name.replace("_", ".")
    for pattern, repl in _C2_RULES:
        n = re.sub(pattern, repl, n)
    return n


_TV_BLOCK = re.compile(r"^layer([1-4])\.(\d+)\.(.+)$")


def convert_torchvision_name(name: str) -> str:
    """torchvision ResNet name -> bottom-up name: ``conv1`` -> ``stem.conv1``, ``bn1`` -> ``stem.conv1.norm``,
    ``layer{k}.{b}.bn{n}`` -> ``res{k+1}.{b}.conv{n}.norm``, ``downsample.0/1`` -> ``shortcut(.norm)``."""
    m = _TV_BLOCK.match(name)
    if m is None:
        n = re.sub(r"^conv1\.", "stem.conv1.", name)
        return re.sub(r"^bn1\.", "stem.conv1.norm.", n)
    stage, block, rest = int(m.group(1)) + 1, m.group(2), m.group(3)
    rest = re.sub(r"^bn([1-3])\.", r"conv\1.norm.", rest)
    rest = re.sub(r"^downsample\.0\.", "shortcut.", rest)
    rest = re.sub(r"^downsample\.1\.", "shortcut.norm.", rest)
    return f"res{stage}.{block}.{rest}"


def _detect_format(keys: list[str]) -> str:
    if all("." not in k for k in keys) and any(re.match(r"^(res\d+_\d+_branch|res_conv1_|conv1_w$)", k)
                                               for k in keys):
        return "caffe2"
    if any(k.startswith("layer1.") for k in keys) and any(k.startswith("bn1.") for k in keys):
        return "torchvision"
    return "detectron2"


def _to_bottom_up_names(tensors: dict[str, Tensor], fmt: str) -> dict[str, tuple[str, Tensor]]:
    """Map each file key to (bottom-up name, tensor); bottom-up names may not exist in the model."""
    if fmt == "caffe2":
        conv = convert_c2_name
    elif fmt == "torchvision":
        conv = convert_torchvision_name
    else:
        def conv(k: str) -> str:
            for prefix in ("backbone.bottom_up.", "bottom_up."):
                if k.startswith(prefix):
                    return k[len(prefix):]
            return k
    mapped: dict[str, tuple[str, Tensor]] = {}
    for k, v in tensors.items():
        mapped[k] = (conv(k), v)
    return mapped


# ----------------------------------------------------------------------------------------------------------------
# Loading

def _backbone_cfg(cfg: Any) -> Any:
    return getattr(cfg, "backbone", cfg)


def load_backbone_weights(backbone: nn.Module, path: str | Path, cfg: Any) -> dict[str, Any]:
    """Copy pretrained weights from ``path`` into ``backbone.bottom_up`` (or ``backbone`` itself if it has none).

    Args:
        backbone: the module from ``build_backbone`` (an FPN with ``.bottom_up``) or a bare ResNet/VoVNet.
        path: checkpoint file (formats in the module docstring).
        cfg: the LapMaskConfig (or its BackboneConfig) the backbone was built from.
    Returns:
        dict report: ``format``; ``loaded`` (bottom-up keys written); ``missing`` (bottom-up keys the file did not
        provide, e.g. DCN ``conv2_offset`` which stays zero-initialised); ``unexpected`` (file keys with no
        bottom-up counterpart, e.g. ``fc1000_w``); ``defaulted`` (FrozenBN running stats set to the identity for
        caffe2 files); ``notes`` (advice, e.g. the input normalisation torchvision weights expect).
    Raises:
        CheckpointFormatError: unreadable/unsafe file, unknown key names, nothing matching, a shape mismatch
            (names the first mismatching keys), or torchvision bottleneck weights with ``stride_in_1x1=True``.
    """
    path = Path(path)
    bb = _backbone_cfg(cfg)
    body = getattr(backbone, "bottom_up", backbone)
    tensors = extract_tensors(read_weights_file(path), path)
    fmt = _detect_format(list(tensors))
    name = getattr(bb, "name", "resnet")
    depth = getattr(bb, "depth", None)
    notes: list[str] = []
    if fmt in ("caffe2", "torchvision") and name != "resnet":
        raise CheckpointFormatError(f"{path} holds {fmt} ResNet weights but the backbone is {name!r}; use "
                                    "a VoVNet checkpoint in detectron2 format (keys 'backbone.bottom_up.*')")
    if fmt == "torchvision":
        if depth is not None and depth >= 50 and getattr(bb, "stride_in_1x1", False):
            raise CheckpointFormatError(
                f"{path} holds torchvision ResNet weights, which put the stride-2 in the 3x3 conv; set "
                "backbone.stride_in_1x1=false in the config (the MSRA .pkl weights are the ones that need true)")
        notes.append("torchvision weights expect RGB input normalised with ImageNet mean/std: set input.format "
                     "'RGB', pixel_mean (123.675, 116.28, 103.53), pixel_std (58.395, 57.12, 57.375)")

    target = body.state_dict(keep_vars=True)
    mapped = _to_bottom_up_names(tensors, fmt)
    to_load: dict[str, Tensor] = {}
    unexpected: list[str] = []
    mismatched: list[str] = []
    source_of: dict[str, str] = {}
    for file_key, (key, value) in mapped.items():
        if key not in target:
            unexpected.append(file_key)
            continue
        if key in source_of:
            raise CheckpointFormatError(f"{path}: keys {source_of[key]!r} and {file_key!r} both map to {key!r}")
        source_of[key] = file_key
        if tuple(value.shape) != tuple(target[key].shape):
            mismatched.append(f"{file_key} {tuple(value.shape)} -> {key} {tuple(target[key].shape)}")
            continue
        to_load[key] = value
    if mismatched:
        raise CheckpointFormatError(
            f"{path}: {len(mismatched)} tensor(s) do not match the {name}-{depth} bottom-up network; first: "
            + "; ".join(mismatched[:5]) + ". Check backbone.name/depth (and res2_out_channels) against the file.")
    if not to_load:
        raise CheckpointFormatError(
            f"{path}: no tensor matches the {name}-{depth} bottom-up network (format {fmt}; first keys: "
            f"{list(tensors)[:5]}). Expected caffe2 blob names, torchvision ResNet names or 'backbone.bottom_up.*'.")

    defaulted: list[str] = []
    with torch.no_grad():
        for key, value in to_load.items():
            target[key].copy_(value.to(dtype=target[key].dtype))
        if fmt == "caffe2":
            # caffe2 stores the folded affine only: make the statistics the identity (mean 0, var 1) like
            # detectron2's FrozenBN does when a checkpoint lacks them.
            for key in to_load:
                if key.endswith("norm.weight"):
                    base = key[: -len("weight")]
                    for stat, fill in (("running_mean", 0.0), ("running_var", 1.0)):
                        if base + stat in target and base + stat not in to_load:
                            target[base + stat].fill_(fill)
                            defaulted.append(base + stat)
    done = set(to_load) | set(defaulted)
    # BatchNorm's num_batches_tracked (backbone.norm "BN") is a counter, not a weight: never "missing".
    missing = [k for k in target if k not in done and not k.endswith("num_batches_tracked")]
    return {"format": fmt, "path": str(path), "loaded": list(to_load), "missing": missing,
            "unexpected": unexpected, "defaulted": defaulted, "notes": notes}
