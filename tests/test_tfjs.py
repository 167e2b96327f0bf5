"""The TFJS graph reader and interpreter: a tiny graph written here, and the real faceres file."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from facemetric.errors import ModelError
from facemetric.models.tfjs_net import TfjsGraphNet, graph_description
from facemetric.models.tfjs_reader import read_tfjs_graph


def _s(text: str) -> dict:
    return {"s": base64.b64encode(text.encode()).decode()}


def _ints(*v: int) -> dict:
    return {"list": {"i": [str(i) for i in v]}}


def _conv_attrs(stride: int) -> dict:
    return {
        "strides": _ints(1, stride, stride, 1),
        "padding": _s("SAME"),
        "data_format": _s("NHWC"),
        "dilations": _ints(1, 1, 1, 1),
        "T": {"type": "DT_FLOAT"},
    }


def tiny_graph(folder: Path, seed: int = 0) -> tuple[Path, dict[str, np.ndarray]]:
    """A 9x9x3 -> 5-d graph using every op faceres uses (Conv2D with odd SAME padding,
    DepthwiseConv2dNative, Add, Mul, Relu, Minimum, Maximum, Mean, _FusedMatMul, plus a
    Sigmoid head that is not on the path), weights stored float16, uint8 and float32 over two
    shard files. Returns model.json and the weights as the file holds them (dequantised)."""
    rng = np.random.default_rng(seed)
    w = {
        "conv/kernel": rng.normal(0, 0.5, (3, 3, 3, 4)).astype(np.float32),
        "conv/bias": rng.normal(0, 0.1, (4,)).astype(np.float32),
        "six": np.array(6.0, np.float32),
        "zero": np.array(0.0, np.float32),
        "dw/kernel": rng.uniform(-1, 1, (3, 3, 4, 2)).astype(np.float32),
        "dw/scale": rng.uniform(0.5, 1.5, (8,)).astype(np.float32),
        "mean/axes": np.array([1, 2], np.int32),
        "fc/kernel": rng.normal(0, 0.3, (8, 5)).astype(np.float32),
        "fc/bias": rng.normal(0, 0.1, (5,)).astype(np.float32),
    }
    manifest, blobs = [], []
    for name, arr in w.items():
        entry: dict = {"name": name, "shape": list(arr.shape), "dtype": str(arr.dtype)}
        if name == "conv/kernel":  # float16, as faceres.bin stores every weight
            entry["quantization"] = {"dtype": "float16", "original_dtype": "float32"}
            raw = arr.astype(np.float16)
            w[name] = raw.astype(np.float32)
        elif name == "dw/kernel":  # uint8 affine quantisation
            lo, scale = float(arr.min()), float(arr.max() - arr.min()) / 255
            q = np.round((arr - lo) / scale).astype(np.uint8)
            entry["quantization"] = {"dtype": "uint8", "scale": scale, "min": lo}
            raw = q
            w[name] = (q.astype(np.float32) * np.float32(scale) + np.float32(lo)).astype(np.float32)
        else:
            raw = arr
        manifest.append(entry)
        blobs.append(raw.tobytes())
    data = b"".join(blobs)
    half = len(data) // 2
    (folder / "tiny.shard1of2.bin").write_bytes(data[:half])
    (folder / "tiny.shard2of2.bin").write_bytes(data[half:])
    f = {"T": {"type": "DT_FLOAT"}}
    nodes = [{"name": n, "op": "Const", "attr": {"dtype": {"type": "DT_FLOAT"}}} for n in w]
    nodes += [
        {"name": "head", "op": "Sigmoid", "input": ["fc"], "attr": f},  # out of order on purpose
        {"name": "input", "op": "Placeholder", "attr": {"dtype": {"type": "DT_FLOAT"}}},
        {"name": "conv", "op": "Conv2D", "input": ["input", "conv/kernel"], "attr": _conv_attrs(2)},
        {"name": "biased", "op": "Add", "input": ["conv:0", "conv/bias"], "attr": f},
        {"name": "relu", "op": "Relu", "input": ["biased"], "attr": f},
        {"name": "min6", "op": "Minimum", "input": ["relu", "six"], "attr": f},
        {"name": "clip", "op": "Maximum", "input": ["min6", "zero"], "attr": f},
        {
            "name": "dw",
            "op": "DepthwiseConv2dNative",
            "input": ["clip", "dw/kernel", "^conv"],
            "attr": _conv_attrs(1),
        },
        {"name": "scaled", "op": "Mul", "input": ["dw", "dw/scale"], "attr": f},
        {
            "name": "pool",
            "op": "Mean",
            "input": ["scaled", "mean/axes"],
            "attr": {"keep_dims": {"b": False}, "Tidx": {"type": "DT_INT32"}},
        },
        {
            "name": "fc",
            "op": "_FusedMatMul",
            "input": ["pool", "fc/kernel", "fc/bias"],
            "attr": {
                "transpose_a": {"b": False},
                "transpose_b": {"b": False},
                "fused_ops": {"list": {"s": [base64.b64encode(b"BiasAdd").decode()]}},
                "num_args": {"i": "1"},
            },
        },
    ]
    doc = {
        "format": "graph-model",
        "modelTopology": {"node": nodes},
        "weightsManifest": [
            {"paths": ["tiny.shard1of2.bin", "tiny.shard2of2.bin"], "weights": manifest}
        ],
        "signature": {
            "inputs": {
                "input:0": {
                    "name": "input:0",
                    "tensorShape": {
                        "dim": [{"size": "-1"}, {"size": "9"}, {"size": "9"}, {"size": "3"}]
                    },
                }
            },
            "outputs": {"fc": {"name": "fc"}, "head:0": {"name": "head:0"}},
        },
    }
    path = folder / "tiny.json"
    path.write_text(json.dumps(doc))
    return path, w


def _same_pad(x: np.ndarray, k: int, s: int) -> np.ndarray:
    size = x.shape[1]
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    lo, hi = total // 2, total - total // 2
    return np.pad(x, ((0, 0), (lo, hi), (lo, hi), (0, 0)))


def reference_forward(x: np.ndarray, w: dict[str, np.ndarray]) -> np.ndarray:
    """The tiny graph in plain loops, NHWC, as TensorFlow defines each op."""
    k, s = 3, 2
    xp = _same_pad(x, k, s)
    n, oh = x.shape[0], -(-x.shape[1] // s)
    conv = np.zeros((n, oh, oh, 4), np.float64)
    for i in range(oh):
        for j in range(oh):
            patch = xp[:, i * s : i * s + k, j * s : j * s + k, :]
            conv[:, i, j, :] = np.einsum("nhwc,hwco->no", patch, w["conv/kernel"])
    h = np.clip(np.maximum(conv + w["conv/bias"], 0), 0, 6)
    hp = _same_pad(h, 3, 1)
    dw = np.zeros((n, oh, oh, 8), np.float64)
    for i in range(oh):
        for j in range(oh):
            patch = hp[:, i : i + 3, j : j + 3, :]
            per = np.einsum("nhwc,hwcm->ncm", patch, w["dw/kernel"])
            dw[:, i, j, :] = per.reshape(n, 8)  # channel c * multiplier + m
    pooled = (dw * w["dw/scale"]).mean(axis=(1, 2))
    return pooled @ w["fc/kernel"] + w["fc/bias"]


def test_reader_decodes_tiny_graph(tmp_path: Path) -> None:
    path, w = tiny_graph(tmp_path)
    g = read_tfjs_graph(path)
    assert g.inputs == {"input": [-1, 9, 9, 3]}
    assert g.outputs == ["fc", "head"]
    for name, arr in w.items():
        np.testing.assert_allclose(g.weights[name], arr, rtol=0, atol=1e-6)
    assert g.weights["mean/axes"].dtype == np.int32
    dw = g.node("dw")
    assert dw.inputs == ("clip", "dw/kernel")  # the control input is dropped
    assert dw.attrs["strides"] == [1, 1, 1, 1] and dw.attrs["padding"] == "SAME"


def test_interpreter_matches_loops_and_onnx(tmp_path: Path) -> None:
    path, w = tiny_graph(tmp_path)
    g = read_tfjs_graph(path)
    desc = graph_description(g, "fc", 9)
    assert [n["name"] for n in desc["nodes"]][-1] == "fc"
    assert "head" not in {n["name"] for n in desc["nodes"]}  # not needed for the output
    net = TfjsGraphNet(json.loads(json.dumps(desc))).eval()  # the description is plain JSON
    net.load_tf_weights(g.weights)
    x = np.random.default_rng(1).normal(0, 1, (3, 9, 9, 3)).astype(np.float32)
    with torch.no_grad():
        got = net(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    want = reference_forward(x.astype(np.float64), {k: v.astype(np.float64) for k, v in w.items()})
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert np.abs(want).max() > 0.1  # not a vacuous all-zero comparison

    import onnxruntime as ort

    onnx_path = tmp_path / "tiny.onnx"
    torch.onnx.export(
        net,
        (torch.zeros(1, 3, 9, 9),),
        str(onnx_path),
        dynamo=False,
        opset_version=17,
        input_names=["x"],
        dynamic_axes={"x": {0: "n"}},
    )
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    onnx_out = sess.run(None, {"x": x.transpose(0, 3, 1, 2).copy()})[0]
    np.testing.assert_allclose(onnx_out, got, rtol=1e-5, atol=1e-5)


def test_reader_errors_name_the_file(tmp_path: Path) -> None:
    path, _ = tiny_graph(tmp_path)
    shard = tmp_path / "tiny.shard2of2.bin"
    shard.write_bytes(shard.read_bytes()[:-8])
    with pytest.raises(ModelError, match="truncated"):
        read_tfjs_graph(path)
    with pytest.raises(ModelError, match="not found"):
        read_tfjs_graph(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ModelError, match="bad.json"):
        read_tfjs_graph(bad)


def test_unsupported_op_is_named(tmp_path: Path) -> None:
    path, _ = tiny_graph(tmp_path)
    doc = json.loads(path.read_text())
    for node in doc["modelTopology"]["node"]:
        if node["name"] == "relu":
            node["op"] = "Erf"
    path.write_text(json.dumps(doc))
    with pytest.raises(ModelError, match="'Erf'"):
        graph_description(read_tfjs_graph(path), "fc", 9)


def _faceres_json() -> Path:
    from facemetric.models.pretrained import faceres

    try:
        return faceres.locate()
    except ModelError as exc:
        pytest.skip(f"faceres is not installed ({exc})")


def test_real_faceres_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The installed faceres.json: the graph, its conversion, the ONNX export, the embedding."""
    path = _faceres_json()
    g = read_tfjs_graph(path)
    assert g.inputs == {"input_1": [-1, 224, 224, 3]}
    assert "global_pooling/Mean" in g.outputs
    assert all(v.dtype in (np.float32, np.int32) for v in g.weights.values())
    monkeypatch.setenv("FACEMETRIC_HOME", str(tmp_path))
    from facemetric.models.loading import load_embedder

    onnx = load_embedder("faceres")
    torch_emb = load_embedder("faceres", engine="torch")
    assert type(onnx).__name__ == "OnnxEmbedder" and onnx.spec.embedding_dim == 1024
    faces = np.random.default_rng(0).integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    a, b = onnx.embed(faces), torch_emb.embed(faces)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(a, b, atol=1e-4)
    assert onnx.meta["pretrained"] == "faceres" and len(onnx.meta["source_sha256"]) == 64
