"""Dynamic range of the tensors an fp16 export stores in float16, measured in the fp32 graph on real images.

float16 overflows at 65,504 (and loses integer precision far below); the fp16 deploy graph (``export/fp16.py``)
keeps scores, areas, sums and Matrix NMS in float32, and runs the network in float16. This script checks that the
float16 part is safe on data: it exports the model twice (fp32 and ``--fp16``), lists every tensor the fp16 graph
types as float16, exposes the same-named tensors of the fp32 graph as extra graph outputs (a copy of the graph),
runs ONNX Runtime on the synthetic val images and records each tensor's largest |x|. Reported: the global max,
the top tensors, and whether all stay below 2^15 = 32,768 (a 2x margin to the float16 maximum).

    python benchmarks/fp16_range.py --weights out/model_final.pth --data /tmp/synth --images 10 \\
        --out benchmarks/results/fp16_range_lite_R18.json
    python benchmarks/fp16_range.py            # random-init lite_R18 (warned): ranges of an untrained network

Tensor names are those the exporter gives module outputs (``/backbone/.../Conv_output_0``); both exports come from
the same modules. Tensors are matched structurally (op type + Cast-transparent matched inputs, ``match_tensors``),
since anonymous names are renumbered between the exports; anything unmatched is counted and listed.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere inside the checkout

LIMIT = 2.0 ** 15


def constant_values(model) -> set[str]:
    """Initialisers, Constant outputs and outputs of nodes computed from constants only (weight folding the
    exporter left in the graph: Identity/Mul/Add of frozen-BN parameters); these do not depend on the image."""
    g = model.graph
    consts = {t.name for t in g.initializer}
    for n in g.node:  # nodes are topologically sorted
        if n.op_type == "Constant" or all(i in consts for i in n.input if i):
            consts.update(o for o in n.output if o)
    return consts


def fp16_tensor_names(fp16_model) -> list[str]:
    """Names of image-dependent node outputs the fp16 graph types as float16 (constants excluded)."""
    from export.fp16 import _value_types

    types = _value_types(fp16_model)
    consts = constant_values(fp16_model)
    outs = [o for n in fp16_model.graph.node for o in n.output if o and o not in consts]
    return [o for o in outs if types.get(o) == 10]


def _through_casts(model):
    """Name -> the tensor it was Cast from (repeatedly): Casts only change the type, not the magnitude."""
    cast_src = {n.output[0]: n.input[0] for n in model.graph.node if n.op_type == "Cast"}

    def through(name: str) -> str:
        while name in cast_src:
            name = cast_src[name]
        return name

    return through


def _value_key(v: np.ndarray) -> tuple:
    """Floats at float16 precision (the fp16 export stores some constants, e.g. the pixel mean, in float16)."""
    v = v.ravel()
    vals = v.astype(np.float16).astype(np.float64) if v.dtype.kind == "f" else v.astype(np.int64)
    return ("c", tuple(vals.tolist()))


def _constant_keys(model) -> dict[str, tuple]:
    """Small constants (<= 16 values: indices, axes, shapes, scalars) -> a dtype-free value key, so that e.g.
    Gather(x, 0) and Gather(x, 1) differ; Identity chains are followed. Larger constants (weights) are "C"."""
    from onnx import numpy_helper

    vals = {t.name: t for t in model.graph.initializer}
    keys: dict[str, tuple] = {}
    for name, t in vals.items():
        if np.prod(t.dims, dtype=np.int64) <= 16:
            keys[name] = _value_key(numpy_helper.to_array(t))
    for n in model.graph.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value" and np.prod(a.t.dims, dtype=np.int64) <= 16:
                    keys[n.output[0]] = _value_key(numpy_helper.to_array(a.t))
        elif n.op_type == "Identity" and n.input[0] in keys:
            keys[n.output[0]] = keys[n.input[0]]
    return keys


def match_tensors(fp32_model, fp16_model) -> tuple[dict[str, str], list[str]]:
    """Map each float16 tensor of the fp16 graph to its float32 twin in the fp32 graph; returns (map, unmatched).

    Structural match in topological order: a node matches when its op type, output slot and (Cast-transparent,
    already mapped) non-constant inputs equal a unique fp32 node's. Names alone are not enough: auto-numbered
    names (``/Gather_48_output_0``) shift between the exports because the fp16 graph has extra Casts.
    """
    from export.fp16 import _value_types

    t32 = _value_types(fp32_model)
    c32, c16 = constant_values(fp32_model), constant_values(fp16_model)
    th32, th16 = _through_casts(fp32_model), _through_casts(fp16_model)
    k32, k16 = _constant_keys(fp32_model), _constant_keys(fp16_model)
    index: dict[tuple, list[str]] = {}
    for n in fp32_model.graph.node:
        ins = tuple(k32.get(i, "C") if i in c32 else th32(i) for i in n.input if i)
        for k, o in enumerate(n.output):
            index.setdefault((n.op_type, k, ins), []).append(o)
    ops32 = {o: (n.op_type, k) for n in fp32_model.graph.node for k, o in enumerate(n.output)}
    graph_inputs = {i.name for i in fp16_model.graph.input}
    mapping: dict[str, str] = {i: i for i in graph_inputs}
    for n in fp16_model.graph.node:
        if n.op_type == "Cast":
            continue
        ins = tuple(k16.get(i, "C") if i in c16 else mapping.get(th16(i), "?" + i) for i in n.input if i)
        for k, o in enumerate(n.output):
            hit = index.get((n.op_type, k, ins), [])
            if len(hit) == 1 or o in hit:  # ambiguous: the same-named candidate
                mapping[o] = o if o in hit else hit[0]
            elif not hit and ops32.get(o) == (n.op_type, k):
                # fallback by name: integer shape arithmetic (Shape -> Gather -> Unsqueeze) collides structurally
                # when two Gathers read equal-looking inputs; its names are stable between the exports
                mapping[o] = o
    twins, unmatched = {}, []
    for name in fp16_tensor_names(fp16_model):
        src = mapping.get(th16(name))
        if src is not None and t32.get(src) == 1:
            twins[name] = src
        else:
            unmatched.append(name)
    return twins, unmatched


def instrument(fp32_model, names: list[str]):
    """A copy of the fp32 model with ``names`` added as graph outputs (float, shape left open)."""
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(fp32_model)
    have = {o.name for o in m.graph.output}
    for name in names:
        if name not in have:
            m.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    return m


def measure(model_path: Path, names: list[str], images: list[np.ndarray], threads: int) -> dict[str, dict]:
    """Run the instrumented graph on every image; per tensor: max |x|, shape, non-finite count."""
    import onnx
    import onnxruntime as ort

    from export.predictors.ort import OrtPredictor

    pre = OrtPredictor(model_path, threads=threads)  # pre-processing (resize, pad) as deployment does it
    inst = model_path.with_name(model_path.stem + "_all_outputs.onnx")
    onnx.save(instrument(onnx.load(str(model_path)), names), str(inst))
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(inst), so, providers=["CPUExecutionProvider"])
    stats: dict[str, dict] = {n: {"max_abs": 0.0, "nonfinite": 0, "shape": None} for n in names}
    for bgr in images:
        image, hw = pre.prepare(bgr)
        outs = sess.run(names, {"image": image, "image_size": np.array([hw], dtype=np.int32)})
        for n, v in zip(names, outs):
            v = np.asarray(v, dtype=np.float32)
            fin = np.isfinite(v)
            s = stats[n]
            s["nonfinite"] += int((~fin).sum())
            if v.size and fin.any():
                s["max_abs"] = max(s["max_abs"], float(np.abs(v[fin]).max()))
            s["shape"] = list(v.shape)
    return stats


def detections_fp32_vs_fp16(f32: Path, f16: Path, images: list[np.ndarray], threads: int) -> dict[str, list]:
    """Instances per image from the fp32 and the fp16 graph (ORT CPU): the consequence of an overflow."""
    from export.predictors.ort import OrtPredictor

    out = {}
    for key, path in (("fp32", f32), ("fp16", f16)):
        pred = OrtPredictor(path, threads=threads)
        out[key] = [int(len(pred(im)["scores"])) for im in images]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", help="lapmask checkpoint (default: random-init --config, with a warning)")
    p.add_argument("--config", default="lite_R18", help="preset when no --weights (default lite_R18)")
    p.add_argument("--data", help="synthetic dataset folder (made/reused by ensure_synthetic; default a tmp dir)")
    p.add_argument("--size", type=int, default=None, help="synthetic image side (default: the config's test size)")
    p.add_argument("--images", type=int, default=10, help="val images measured (default 10)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--top", type=int, default=10)
    p.add_argument("--out", default="fp16_range.json")
    p.add_argument("--note", default=None, help="free text stored in the JSON (where the weights come from)")
    args = p.parse_args(argv)

    import onnx
    import torch

    from export.fp16 import half_supported_here
    from export.onnx_export import ExportOptions, export_onnx
    from lapmask.data.coco import read_image_bgr
    from lapmask.data.synth import ensure_synthetic
    from lapmask.engine.inference_loop import SplitPaths, load_split_records

    if not half_supported_here():
        raise SystemExit("this torch build cannot trace the fp16 graph on CPU (needs torch >= 2.1)")
    torch.set_num_threads(args.threads)
    if args.weights:
        from lapmask.engine.checkpoint import load_model

        model, cfg = load_model(args.weights)
        weights = str(args.weights)
    else:
        from lapmask.config import load_config
        from lapmask.model.lapmask import build_model

        warnings.warn("no --weights: measuring a RANDOMLY initialised model; trained activations differ",
                      stacklevel=1)
        cfg = load_config(args.config)
        torch.manual_seed(0)
        model, weights = build_model(cfg), None
    model.eval()
    size = args.size or cfg.input.min_size_test
    tmp = Path(tempfile.mkdtemp(prefix="fp16_range_"))
    data = Path(args.data) if args.data else tmp / "data"
    if not (data / "annotations" / "instances_val.json").is_file():
        ensure_synthetic(data, 0, max(args.images, 1), size, seed=0)
    records, _, _ = load_split_records(SplitPaths.from_data_dir(data, "val"), args.images)
    images = [read_image_bgr(r["file_name"], r["height"], r["width"]) for r in records]

    t0 = time.perf_counter()
    f32, f16 = tmp / "fp32.onnx", tmp / "fp16.onnx"
    hw = (size, size)
    export_onnx(model, cfg, f32, ExportOptions(), validate=False, trace_hw=hw)
    export_onnx(model, cfg, f16, ExportOptions(fp16=True), validate=False, trace_hw=hw)
    m32, m16 = onnx.load(str(f32)), onnx.load(str(f16))
    names16 = fp16_tensor_names(m16)
    twins, unmatched = match_tensors(m32, m16)
    matched = sorted(set(twins.values()))  # a Cast pair maps two fp16 names onto one fp32 tensor
    stats = measure(f32, matched, images, args.threads)
    ranked = sorted(stats.items(), key=lambda kv: -kv[1]["max_abs"])
    fp16_names: dict[str, list[str]] = {}
    for n16, n32 in twins.items():
        fp16_names.setdefault(n32, []).append(n16)
    gmax = ranked[0][1]["max_abs"] if ranked else 0.0
    nonfinite = sum(s["nonfinite"] for s in stats.values())
    by_part: dict[str, float] = {}
    for n, st in stats.items():
        part = "/".join(n.split("/")[:4]) if n.startswith("/model/") else "(post-processing)"
        by_part[part] = max(by_part.get(part, 0.0), st["max_abs"])
    dets = detections_fp32_vs_fp16(f32, f16, images, args.threads)
    result = {
        "config": cfg.name, "weights": weights, "trained": weights is not None,
        "note": args.note or (None if weights else "random-init weights: ranges of an untrained network"),
        "data": str(data), "num_images": len(images), "image_sizes": sorted({(r["height"], r["width"])
                                                                             for r in records}),
        "fp16_tensors": len(names16), "fp16_tensors_matched": len(twins), "fp32_tensors_measured": len(matched), "unmatched_fp16_only": len(unmatched),
        "unmatched_examples": unmatched[:10],
        "check_instance_kernel_matmul": {n: stats[n]["max_abs"] for n in matched
                                         if n.split("/")[-1].startswith("MatMul")},
        "global_max_abs": gmax, "limit": LIMIT, "all_below_limit": bool(gmax < LIMIT and nonfinite == 0),
        "nonfinite_values": nonfinite, "margin_to_fp16_max": 65504.0 / gmax if gmax > 0 else None,
        "top": [{"tensor": n, "fp16_names": fp16_names[n], "max_abs": s["max_abs"], "shape": s["shape"]}
                for n, s in ranked[:args.top]],
        "max_abs_by_part": dict(sorted(by_part.items(), key=lambda kv: -kv[1])),
        "detections_per_image_fp32_vs_fp16": dets,
        "seconds": time.perf_counter() - t0, "torch": torch.__version__,
        "onnxruntime": __import__("onnxruntime").__version__,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"{len(matched)} float16 tensors measured on {len(images)} images: global max |x| {gmax:.1f} "
          f"({'below' if result['all_below_limit'] else 'NOT below'} 2^15); top: "
          + ", ".join(f"{t['tensor']} {t['max_abs']:.1f}" for t in result["top"][:3]))
    return 0 if result["all_below_limit"] else 1


if __name__ == "__main__":
    sys.exit(main())
