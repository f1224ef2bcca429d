"""Benchmark core of ``lapmask bench``: latency (and mask AP) per backend and precision.

Modules (nothing heavy is imported here):

* ``export.bench.harness``    ``BenchSettings``, ``run_benchmark``: data, artefacts, one worker per backend, report.
* ``export.bench.backends``   backend registry: availability with a reason, the timed pre / infer / post stages.
* ``export.bench.artefacts``  the exported files the backends run (TorchScript, ONNX, TensorRT engines).
* ``export.bench.runner``     the per-backend worker, run in a fresh process (``python -m export.bench.runner``).
* ``export.bench.stats``      percentiles (numpy's linear rule) and latency summaries.
* ``export.bench.memory``     peak CPU (ru_maxrss) and GPU (cudaMemGetInfo delta) memory of a worker.
* ``export.bench.dataset``    synthetic / COCO val split, image loading, the mask-AP pass.
* ``export.bench.machine``    CPU model, GPU, library versions.
* ``export.bench.report``     JSON, Markdown table, PNG plot (latency vs mask AP).
"""
