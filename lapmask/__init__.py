"""LapMask instance segmentation (Song et al., IEEE TMM 2022): model, training, ops and official conversion.

``import lapmask`` needs no compiler, no GPU and no TensorRT; optional pieces load lazily.
"""
__version__ = "0.1.0"

from lapmask.config import LapMaskConfig, get_preset, load_config  # noqa: E402

__all__ = ["LapMaskConfig", "get_preset", "load_config", "__version__"]
