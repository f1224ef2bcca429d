"""Inference: the official dynamic path (reference), the static fixed-size deploy path, pasting, the predictor."""
from lapmask.inference.deploy_module import DeployLapMask
from lapmask.inference.dynamic import dynamic_single
from lapmask.inference.predictor import Predictor
from lapmask.inference.static import OUTPUT_NAMES, static_inference

__all__ = ["DeployLapMask", "dynamic_single", "Predictor", "OUTPUT_NAMES", "static_inference"]
