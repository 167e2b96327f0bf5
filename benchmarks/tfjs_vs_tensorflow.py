"""Check facemetric's TFJS reader and interpreter against TensorFlow itself (not a dependency).

TensorFlow runs the same graph: the TFJS topology is GraphDef JSON, so it is parsed into a
``GraphDef`` whose constants get values decoded here independently of facemetric's reader
(float16 shards read with numpy), and imported with ``tf.graph_util.import_graph_def``. Both
embed the same inputs: photos of a folder (resized, preprocessed as the faceres spec says) and
random ones. Prints the largest relative error of the identity features.

TensorFlow lives in a scratch virtual environment outside the project:
    python3.11 -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install tensorflow-cpu
    PYTHONPATH=src .venv/bin/python benchmarks/tfjs_vs_tensorflow.py \
        --tf-python /tmp/tfvenv/bin/python --photos ../shared/data/cfp
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

OUTPUT = "global_pooling/Mean"


def tensorflow_side(model_json: Path, inputs: Path, out: Path) -> None:
    """Run in the TensorFlow venv: NHWC inputs (.npy) -> features (.npy)."""
    import tensorflow as tf
    from google.protobuf import json_format

    doc = json.loads(model_json.read_text())
    values: dict[str, np.ndarray] = {}
    for group in doc["weightsManifest"]:
        data = b"".join((model_json.parent / p).read_bytes() for p in group["paths"])
        pos = 0
        for w in group["weights"]:
            n = int(np.prod(w["shape"])) if w["shape"] else 1
            q = (w.get("quantization") or {}).get("dtype")
            dt = {"float16": np.float16, None: np.dtype(w["dtype"])}[q]
            values[w["name"]] = (
                np.frombuffer(data, dt, n, pos).astype(w["dtype"]).reshape(w["shape"])
            )
            pos += n * np.dtype(dt).itemsize
    gd = json_format.ParseDict(
        {"node": doc["modelTopology"]["node"]}, tf.compat.v1.GraphDef(), ignore_unknown_fields=True
    )
    for node in gd.node:
        node.device = ""
        if node.op == "Const":
            node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(values[node.name]))
    x = np.load(inputs)
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(gd, name="")
    with tf.compat.v1.Session(graph=graph) as sess:
        y = sess.run(f"{OUTPUT}:0", {"input_1:0": x})
    np.save(out, y)


def photos(folder: Path, n: int, size: int) -> np.ndarray:
    import cv2

    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".png"))[:n]
    imgs = []
    for f in files:
        img = cv2.imread(str(f))
        if img is not None:
            imgs.append(cv2.resize(img[:, :, ::-1], (size, size), interpolation=cv2.INTER_AREA))
    return np.stack(imgs) if imgs else np.zeros((0, size, size, 3), np.uint8)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model-json", type=Path, help="faceres.json (default: the installed one)")
    p.add_argument("--tf-python", default="/tmp/tfvenv/bin/python")
    p.add_argument("--photos", type=Path, help="a folder of photos to feed (else random only)")
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--tf-side", nargs=3, type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.tf_side:
        tensorflow_side(*args.tf_side)
        return 0
    import torch

    from facemetric.models.inference import preprocess
    from facemetric.models.pretrained import faceres
    from facemetric.models.tfjs_net import TfjsGraphNet, graph_description
    from facemetric.models.tfjs_reader import read_tfjs_graph

    model_json = args.model_json or faceres.locate()
    spec = faceres.FACERES.spec
    crops = np.random.default_rng(0).integers(0, 256, (4, 224, 224, 3), dtype=np.uint8)
    if args.photos:
        crops = np.concatenate([photos(args.photos, args.n, 224), crops])
    x = preprocess(crops, spec)  # NCHW, RGB order, means removed
    graph = read_tfjs_graph(model_json)
    net = TfjsGraphNet(graph_description(graph, OUTPUT, 224, "bgr"))
    net.load_tf_weights(graph.weights)
    with torch.inference_mode():
        ours = net.eval()(torch.from_numpy(x)).numpy()
    nhwc_bgr = np.ascontiguousarray(x.transpose(0, 2, 3, 1)[..., ::-1])
    with tempfile.TemporaryDirectory() as tmp:
        inp, out = Path(tmp) / "x.npy", Path(tmp) / "y.npy"
        np.save(inp, nhwc_bgr)
        cmd = [args.tf_python, __file__, "--tf-side", str(model_json), str(inp), str(out)]
        subprocess.run(cmd, check=True)
        theirs = np.load(out)
    rel = np.abs(ours - theirs).max(axis=1) / np.abs(theirs).max(axis=1)
    cos = (ours * theirs).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
    print(f"model: {model_json}")
    print(f"inputs: {len(x)} ({len(x) - 4} photos, 4 random)")
    print(f"max relative error (per vector, vs its largest value): {rel.max():.2e}")
    print(f"min cosine(ours, TensorFlow): {cos.min():.8f}")
    return 0 if rel.max() <= 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
