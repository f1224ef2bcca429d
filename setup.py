"""Packaging for lapmask: the `lapmask` (model, training, ops) and `export` (deployment) packages.

Library requirements are ranges; exact pins for CI and the README live in constraints.txt.
The C++ kernel library (trt_plugins/) is optional and found lazily at run time, so installing
never needs a compiler (see lapmask/ops/clib.py for how it is located; build it with `python -m lapmask.ops.build_kernels`).
"""
from setuptools import find_packages, setup

setup(
    name="lapmask",
    version="0.1.0",
    description="LapMask instance segmentation: training, export and deployment on NVIDIA GPUs",
    python_requires=">=3.10",
    packages=find_packages(include=["lapmask", "lapmask.*", "export", "export.*"]),
    include_package_data=True,
    install_requires=[
        "torch>=2.4",
        "torchvision>=0.19",
        "numpy>=1.24",
        "pillow>=9.0",
        "tqdm>=4.60",
        "pycocotools>=2.0.6",
        "matplotlib>=3.6",
    ],
    extras_require={
        "onnx": ["onnx>=1.16", "onnxruntime>=1.18", "onnxscript>=0.1", "onnxruntime-extensions>=0.12"],
        "trt": ["tensorrt>=10.0", "cuda-python>=12.0"],
        "dev": ["pytest>=8", "pytest-timeout>=2.2", "onnx>=1.16", "onnxruntime>=1.18", "onnxscript>=0.1",
                "onnxruntime-extensions>=0.12"],
    },
    entry_points={"console_scripts": ["lapmask=lapmask.cli:main"]},
)
