"""lapmask deployment toolchain: ONNX / TorchScript export, fp16, graph checks, predictors, backend comparison.

Modules (import what you need; ``import export`` itself loads nothing heavy):

* ``export.onnx_export``   ``export_onnx``: the static deploy graph (contracts.md sections 2-3) to ONNX, checked.
* ``export.torchscript``   ``export_torchscript``: the same graph via ``torch.jit.trace``; TorchScript predictor.
* ``export.flavours``      the dynamic filter / Matrix NMS forms per flavour (standard ops or ``lapmask`` plugins).
* ``export.fp16``          the strongly typed fp16 deploy module and the fp32-island audit.
* ``export.checks``        argument validation, ONNX graph validation and op audits.
* ``export.metadata``      contracts.md section 5 metadata (ONNX ``metadata_props``, sidecar JSON).
* ``export.ort_ops``       ONNX Runtime CPU custom ops for the ``plugins`` flavour (onnxruntime-extensions).
* ``export.predictors``    ``load_predictor``: torch-free ONNX Runtime predictor (and the others, lazily).
* ``export.compare``       PyTorch (static path, eager) vs a deployed backend: per-output and per-instance.
"""
