"""Typed configuration: the one home of defaults, and named presets mirroring the official yamls.

Every number below cites the architecture spec (shared/design/lapmask-architecture.md, "spec" for short).
A config travels with checkpoints and exported models as a plain dict (``to_dict`` / ``from_dict``).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lapmask.classes import COCO_CATEGORY_IDS, COCO_CLASS_NAMES, SYNTH_CATEGORY_IDS, SYNTH_CLASS_NAMES

CONFIG_FORMAT_VERSION = 1


@dataclass
class BackboneConfig:
    """Backbone + FPN (spec 2)."""

    name: str = "resnet"  # "resnet" | "vovnet"
    depth: int = 50  # resnet: 18/34/50/101; vovnet: 57
    stride_in_1x1: bool = True  # MSRA/detectron2 convention (spec 2.1); False for torchvision weights
    freeze_at: int = 2  # detectron2 FREEZE_AT: stem and res2 frozen (0 = nothing frozen)
    deform_on_per_stage: tuple[bool, bool, bool, bool] = (False, False, False, False)  # res2..res5
    deform_modulated: bool = True
    res2_out_channels: int = 256  # 64 for the BasicBlock ResNets (18/34): equal to stem_out_channels there
    stem_out_channels: int = 64  # detectron2 STEM_OUT_CHANNELS (the lite presets may narrow a BasicBlock ResNet)
    fpn_out_channels: int = 256
    p6: str = "maxpool"  # "maxpool" (detectron2 LastLevelMaxPool) | "conv" (adet LastLevelP6, VoVNet/Swin)
    # "FrozenBN" (official, spec 2.1) | "BN" | "GN": trainable norms for from-scratch training of the lite presets
    # (lapmask/model/backbone/norms.py says why); convs frozen by freeze_at keep FrozenBN either way.
    norm: str = "FrozenBN"


@dataclass
class HeadConfig:
    """``MODEL.LAPMASK`` hyper-parameters (spec 7.1)."""

    num_classes: int = 80
    instance_in_channels: int = 256
    instance_channels: int = 512
    num_instance_convs: int = 4
    num_grids: tuple[int, ...] = (52, 44, 36, 24, 16, 12)
    fpn_instance_strides: tuple[int, ...] = (4, 8, 8, 16, 32, 32)
    scale_ranges: tuple[tuple[float, float], ...] = ((1, 48), (24, 96), (48, 192), (96, 384), (192, 768), (384, 2048))
    sigma: float = 0.2
    num_kernels: int = 64
    use_coord_conv: bool = True
    prior_prob: float = 0.01
    mask_in_channels: int = 256
    mask_channels: int = 128
    num_masks: int = 64


@dataclass
class InferenceConfig:
    """Test-time thresholds (spec 6 and 7.1). ``k_pre`` is the static path's candidate budget (spec 10)."""

    score_thr: float = 0.1
    mask_thr: float = 0.55
    maskness_thr: float = 0.2
    update_thr: float = 0.0
    nms_pre: int = 500
    max_per_img: int = 100
    nms_type: str = "matrix"  # "matrix" | "mask"
    nms_kernel: str = "gaussian"  # "gaussian" | "linear"
    nms_sigma: float = 2.0
    k_pre: int = 500


@dataclass
class LossConfig:
    """Loss weights (spec 5.3)."""

    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    focal_weight: float = 1.0
    dice_weight: float = 3.0


@dataclass
class InputConfig:
    """Pre-processing (spec 1.1, 5.1, 7.2)."""

    min_size_train: tuple[int, ...] = tuple(range(640, 801, 32))
    max_size_train: int = 1333
    min_size_test: int = 800
    max_size_test: int = 1333
    pixel_mean: tuple[float, float, float] = (103.530, 116.280, 123.675)  # BGR
    pixel_std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    format: str = "BGR"
    hflip_train: bool = True
    size_divisibility: int = 32
    # One training short side per batch, not per image (detectron2: per image). A batch is padded to its largest
    # image, so with per-image draws nearly every batch costs the largest size (8 images, 3 sizes: 96 %); the
    # lite presets set it (measured: lite_R18 step 0.70 s -> 0.61 s, see config._lite). Deviation on purpose.
    size_per_batch: bool = False


@dataclass
class SolverConfig:
    """Optimiser and schedule (spec 5.4, 7.3)."""

    optimizer: str = "SGD"  # "SGD" | "ADAMW"
    ims_per_batch: int = 8
    base_lr: float = 0.005
    momentum: float = 0.9
    weight_decay: float = 1e-4
    weight_decay_norm: float = 0.0
    steps: tuple[int, ...] = (420_000, 500_000)
    max_iter: int = 540_000
    gamma: float = 0.1
    lr_scheduler: str = "WarmupMultiStepLR"  # official; "WarmupLinearLR": warm-up, then linear to 0 at max_iter
    warmup_iters: int = 500
    warmup_factor: float = 0.001
    clip_value: float = 35.0  # element-wise clamp (CLIP_TYPE "value", spec 5.4)
    adamw_eps: float = 1e-3  # the official build_optimizer_AdamW hard-codes 1e-3 (spec 5.4)
    checkpoint_period: int = 5000


@dataclass
class LapMaskConfig:
    """A complete model + training configuration."""

    name: str = "R50_3x"
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    input: InputConfig = field(default_factory=InputConfig)
    solver: SolverConfig = field(default_factory=SolverConfig)
    class_names: tuple[str, ...] = COCO_CLASS_NAMES
    category_ids: tuple[int, ...] = COCO_CATEGORY_IDS
    init_weights: str = ""  # what the official config starts from (informational)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError on inconsistent settings (the official code asserts the same things)."""
        h = self.head
        if len(self.class_names) != h.num_classes or len(self.category_ids) != h.num_classes:
            raise ValueError(
                f"config {self.name!r}: {len(self.class_names)} class names and {len(self.category_ids)} category "
                f"ids for num_classes={h.num_classes}; they must agree"
            )
        if h.num_kernels != h.num_masks:
            raise ValueError(f"config {self.name!r}: num_kernels ({h.num_kernels}) must equal num_masks ({h.num_masks})")
        n = len(h.num_grids)
        if n != 6 or len(h.fpn_instance_strides) != n or len(h.scale_ranges) != n:
            raise ValueError(f"config {self.name!r}: LapMask uses exactly 6 instance levels (num_grids, strides, ranges)")
        if h.instance_in_channels != self.backbone.fpn_out_channels:
            raise ValueError(f"config {self.name!r}: instance_in_channels must equal the FPN width")
        if h.mask_in_channels != self.backbone.fpn_out_channels:
            raise ValueError(f"config {self.name!r}: mask_in_channels must equal the FPN width")
        for what, c in (("instance_channels", h.instance_channels), ("mask_channels", h.mask_channels),
                        ("instance_channels/2", h.instance_channels // 2), ("4*num_masks", 4 * h.num_masks),
                        ("2*num_masks", 2 * h.num_masks)):
            if c % 32:
                raise ValueError(f"config {self.name!r}: {what}={c} must be a multiple of 32 (GroupNorm(32, C))")
        if h.num_masks % 16:
            raise ValueError(f"config {self.name!r}: num_masks must be a multiple of 16 (GroupNorm(16, C))")
        if self.backbone.norm not in ("FrozenBN", "BN", "GN"):
            raise ValueError(f"config {self.name!r}: backbone.norm must be 'FrozenBN', 'BN' or 'GN', "
                             f"got {self.backbone.norm!r}")
        if self.input.size_divisibility % 32:
            raise ValueError("size_divisibility must be a multiple of 32 (the mask branch halves stride-4 maps twice)")

    @property
    def num_cells(self) -> int:
        """Total grid cells over the 6 levels (6912 for the default grids, spec 1.2)."""
        return sum(s * s for s in self.head.num_grids)

    def to_dict(self) -> dict[str, Any]:
        return {"format_version": CONFIG_FORMAT_VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "LapMaskConfig":
        """Inverse of ``to_dict``; a dict may also be ``{"base": PRESET, ...overrides}`` (nested sections merge)."""
        d = dict(d)
        d.pop("format_version", None)
        base = d.pop("base", None)
        merged = get_preset(base).to_dict() if base else {}
        merged.pop("format_version", None)
        for k, v in d.items():
            if isinstance(v, dict) and isinstance(merged.get(k), dict):
                merged[k] = {**merged[k], **v}
            else:
                merged[k] = v
        return _build(cls, merged)

    def replace(self, **sections: Any) -> "LapMaskConfig":
        """Return a copy with whole sections or fields replaced (validated)."""
        return dataclasses.replace(self, **sections)


def _tuplify(v: Any) -> Any:
    return tuple(_tuplify(x) for x in v) if isinstance(v, (list, tuple)) else v


def _build(cls: type, d: dict[str, Any]) -> Any:
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(d) - set(names)
    if unknown:
        raise ValueError(f"unknown config keys for {cls.__name__}: {sorted(unknown)}")
    kwargs = {}
    for k, v in d.items():
        ftype = names[k].type
        sub = _SECTIONS.get(ftype if isinstance(ftype, str) else getattr(ftype, "__name__", ""))
        kwargs[k] = _build(sub, v) if sub is not None and isinstance(v, dict) else _tuplify(v)
    return cls(**kwargs)


_SECTIONS = {c.__name__: c for c in (BackboneConfig, HeadConfig, InferenceConfig, LossConfig, InputConfig,
                                       SolverConfig)}

# ----------------------------------------------------------------------------------------------------------------
# Presets (spec 7.3). Each function returns a fresh config.


def _resnet(depth: int, **bb: Any) -> BackboneConfig:
    return BackboneConfig(name="resnet", depth=depth, **bb)


def _r50_3x() -> LapMaskConfig:
    return LapMaskConfig(name="R50_3x", backbone=_resnet(50), init_weights="detectron2://ImageNetPretrained/MSRA/R-50.pkl")


def _r101_3x() -> LapMaskConfig:
    return LapMaskConfig(name="R101_3x", backbone=_resnet(101),
                         init_weights="detectron2://ImageNetPretrained/MSRA/R-101.pkl")


def _r101_dcn_3x() -> LapMaskConfig:
    # DCN in res3, res4 and res5 (DEFORM_ON_PER_STAGE [F, T, T, T]; the yaml comment is wrong, spec 9.5).
    return LapMaskConfig(
        name="R101_DCN_3x",
        backbone=_resnet(101, deform_on_per_stage=(False, True, True, True)),
        head=HeadConfig(instance_channels=768, num_grids=(56, 48, 36, 24, 16, 12), num_kernels=96, num_masks=96),
        input=InputConfig(min_size_train=tuple(range(576, 801, 32))),
        init_weights="detectron2://ImageNetPretrained/MSRA/R-101.pkl",
    )


def _small_r50(name: str, max_train: int, min_test: int, max_test: int) -> LapMaskConfig:
    return LapMaskConfig(
        name=name,
        backbone=_resnet(50),
        head=HeadConfig(instance_channels=384, num_kernels=32, num_masks=32, num_instance_convs=3),
        input=InputConfig(min_size_train=tuple(range(256, 609, 32)), max_size_train=max_train,
                          min_size_test=min_test, max_size_test=max_test),
        solver=SolverConfig(ims_per_batch=16, base_lr=0.01, steps=(300_000, 340_000), max_iter=360_000),
        init_weights="detectron2://ImageNetPretrained/MSRA/R-50.pkl",
    )


def _v57_3x() -> LapMaskConfig:
    return LapMaskConfig(
        name="V_57_3x",
        backbone=BackboneConfig(name="vovnet", depth=57, freeze_at=0, p6="conv"),
        solver=SolverConfig(steps=(450_000, 510_000)),
        init_weights="vovnet57_ese_detectron2.pth",
    )


def _lite(depth: int) -> LapMaskConfig:
    """CPU-sized preset: BasicBlock ResNet, narrower FPN and heads, smaller input; same architecture in kind.

    Deviation on purpose (not an official config), sized so that from-scratch training shows results within
    minutes on 2 CPU cores (the demo):
    - widths divided by 2-8 (FPN 128, instance head 64 with 2 convs, NK = NM = 16) and the input ~3x smaller;
      levels, strides and the 2x-overlapping scale ranges keep the official structure (ranges halved);
    - grids (24, 20, 16, 12, 8, 6): the instance head runs on S x S cells whatever the image size, so the
      official-proportioned (40, 36, 24, 16, 12, 8) made it 3/4 of the training step; measured fwd + bwd,
      batch 8 at 192 px, 1 thread: backbone 0.49 s, head 1.88 s -> 0.33 s with these grids and 64 channels;
    - backbone.norm "BN": trainable BatchNorm (FrozenBN at its identity start leaves a from-scratch ResNet
      unnormalised, and its activations reached 3.6e6, beyond fp16);
    - AdamW (lr 1e-3, the official Swin recipe's wd 0.01 and eps 1e-3) and a short warm-up: faster from scratch
      than SGD (loss 1.44 vs 1.90 after 150 iterations, measured). eps 1e-8 was not better (5-min demo: AP 6.5
      at lr 1e-3, 6.4 at 3e-4, vs 8.4 with 1e-3), nor was WarmupLinearLR (5.4; 5.7 at lr 2e-3);
    - ``size_per_batch``: one short side per batch, so no batch is padded to 256 for one image; the trainer's
      step went from 0.70 s to 0.61 s (median, 2 threads, bf16). Smaller sizes (160, 192, 224) ran 1,516
      iterations in the 15-min demo instead of 1,278 but reached AP 32.8 instead of 33.3, so 192-256 stay.
    """
    return LapMaskConfig(
        name=f"lite_R{depth}",
        backbone=_resnet(depth, res2_out_channels=64, fpn_out_channels=128, freeze_at=0, norm="BN"),
        head=HeadConfig(num_classes=len(SYNTH_CLASS_NAMES), instance_in_channels=128, instance_channels=64,
                        num_instance_convs=2, num_grids=(24, 20, 16, 12, 8, 6), num_kernels=16, num_masks=16,
                        mask_in_channels=128, mask_channels=64,
                        scale_ranges=((1, 32), (16, 64), (32, 128), (64, 256), (128, 512), (256, 2048))),
        input=InputConfig(min_size_train=(192, 224, 256), max_size_train=512, min_size_test=256,
                          max_size_test=512, size_per_batch=True),
        solver=SolverConfig(optimizer="ADAMW", ims_per_batch=8, base_lr=1e-3,
                            steps=(10_000_000,), max_iter=10_000_000, warmup_iters=30, checkpoint_period=500),
        class_names=SYNTH_CLASS_NAMES,
        category_ids=SYNTH_CATEGORY_IDS,
    )


def _tiny_r18() -> LapMaskConfig:
    """The demo's preset: ``lite_R18`` cut down to what reaches the highest mask AP in 15 minutes on a small CPU;
    same architecture in kind. Deviation on purpose (not an official config).

    Each cut, measured on the 2-core CPU (batch 8, bf16, 224 px, forward + backward, 2 threads):
    - ResNet-18 at half width (``stem_out_channels`` 32: stages 32/64/128/256) and FPN 64: backbone + FPN
      0.54 s -> 0.16-0.19 s;
    - one grid size for the six instance levels, (12,) * 6: levels of equal grid share one pass through the
      towers (``LapMaskInsHead.forward``), and on a CPU a tower pass costs about the same whatever the number of
      cells: instance head 0.38-0.44 s (lite grids) -> 0.22 s (all 16) -> 0.17 s (all 12). A cell is then 16-21 px
      at the 192-256 px training sizes;
    - one instance conv (``num_instance_convs`` 1) and mask_channels 32: about -0.1 s.
    A narrower model learns less per iteration, so the choice is by the demo itself (15 minutes, 2 data-parallel
    processes, same machine; mask AP on the 200 val images): this preset 1,485 iterations, AP 20.7; the same with
    the full-width ResNet-18 953, 17.1; lite_R18 with grids (16,) * 6, 668, 10.7; half-width ResNet-18 and
    FPN 64 with lite's head (one process), 842, 15.5, and with grids (16,) * 6, 956, 17.7. AdamW lr 1e-3 stays
    (training loss at 200 iterations: 1.36; lr 2e-3 1.41, 4e-3 1.55; 6e-4 slower from the start).
    Tried later without a gain, so not used (2026-12-02; 600 iterations of batch 8 with the lr steps at 75 % and
    90 %, 1 thread each, two runs side by side; mask AP on the 200 val images; the same recipe twice with
    seeds 0 and 1 gave 9.5 and 8.1, so differences below ~1.5 are noise): this preset 9.0; zero-initialised
    last BatchNorm of each residual block 9.5 (seed 1: 8.1), the same with lr 2e-3 8.4; 1,200 or 2,000 training
    images instead of 600 7.9 and 8.1, and in the 15-minute demo 2,000 images gave 18.8 against 20.8 (the model
    scores 26.9 on 200 of its own training images against 20.8 on val, but more distinct images did not close
    that gap). Channels-last weights and inputs made the step slower (0.68 against 0.56 s, batch 4, 1 thread,
    bf16), and ``torch.compile`` had not finished compiling the training step after 10 minutes on this CPU.
    Deeper or wider instance towers, to cut the class confusion (class-agnostic AP was ~9 points above AP), did
    not help either (2026-12-02, same 600-iteration recipe): ``num_instance_convs`` 2 gave 7.8, and 2 with
    ``instance_channels`` 128 7.3, against 9.0; they also made the step slower (1.04 and 1.29 s side by side).
    """
    cfg = _lite(18)
    return cfg.replace(
        name="tiny_R18",
        backbone=dataclasses.replace(cfg.backbone, stem_out_channels=32, res2_out_channels=32, fpn_out_channels=64),
        head=dataclasses.replace(cfg.head, instance_in_channels=64, mask_in_channels=64, mask_channels=32,
                                 num_instance_convs=1, num_grids=(12,) * 6),
    )


PRESETS = {
    "R50_3x": _r50_3x,
    "R101_3x": _r101_3x,
    "R101_DCN_3x": _r101_dcn_3x,
    "R50_448_4x": lambda: _small_r50("R50_448_4x", 816, 416, 608),
    "R50_512_4x": lambda: _small_r50("R50_512_4x", 900, 512, 852),
    "V_57_3x": _v57_3x,
    "lite_R18": lambda: _lite(18),
    "lite_R34": lambda: _lite(34),
    "tiny_R18": _tiny_r18,
}


def get_preset(name: str) -> LapMaskConfig:
    """Return a fresh preset config by name; raises with the list of names otherwise."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)} (or pass a .json config file)")
    return PRESETS[name]()


def load_config(spec: str | dict | LapMaskConfig) -> LapMaskConfig:
    """Resolve ``--config``: a preset name, a JSON file (full dict or ``{"base": PRESET, ...}``), or a dict."""
    if isinstance(spec, LapMaskConfig):
        return spec
    if isinstance(spec, dict):
        return LapMaskConfig.from_dict(spec)
    if spec in PRESETS:
        return get_preset(spec)
    p = Path(spec)
    if p.suffix == ".json" and p.is_file():
        try:
            return LapMaskConfig.from_dict(json.loads(p.read_text()))
        except json.JSONDecodeError as e:
            raise ValueError(f"config file {p} is not valid JSON: {e}") from e
    raise ValueError(f"--config {spec!r} is neither a preset ({', '.join(PRESETS)}) nor an existing .json file")
