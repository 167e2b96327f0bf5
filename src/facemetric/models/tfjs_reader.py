"""A small reader of TensorFlow.js graph models (``model.json`` + its ``.bin`` weight shards).

A TFJS graph model is a JSON file holding the graph's topology (``modelTopology.node``: name,
op, inputs, attributes, as TensorFlow's GraphDef writes them) and a ``weightsManifest``: groups
of weights whose raw bytes are the concatenation of the group's shard files, each weight stored
as float32/int32, or quantised (float16, or uint8/uint16 with a scale and minimum). This module
reads both into numpy, with no TensorFlow; ``facemetric.models.tfjs_net`` runs the graph.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facemetric.errors import ModelError

_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}
_QUANT = {"float16": np.float16, "uint8": np.uint8, "uint16": np.uint16}


@dataclass(frozen=True)
class GraphNode:
    """One node of the graph: its op, its data inputs (tensor names) and decoded attributes."""

    name: str
    op: str
    inputs: tuple[str, ...]
    attrs: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "op": self.op, "inputs": list(self.inputs), "attrs": self.attrs}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GraphNode:
        return cls(str(d["name"]), str(d["op"]), tuple(d["inputs"]), dict(d.get("attrs") or {}))


@dataclass
class TfjsGraph:
    """The nodes (file order), the constants' values, and the signature's inputs and outputs."""

    path: Path
    nodes: list[GraphNode]
    weights: dict[str, np.ndarray]
    inputs: dict[str, list[int]]  # placeholder name -> shape (-1 for a free batch)
    outputs: list[str]
    meta: dict[str, Any] = field(default_factory=dict)

    def node(self, name: str) -> GraphNode:
        for n in self.nodes:
            if n.name == name:
                return n
        raise ModelError(f"{self.path}: the graph has no node {name!r}")


def tensor_name(ref: str) -> str:
    """A node input (``name``, ``name:0``) -> the producing node's name (single-output ops)."""
    name, _, index = ref.partition(":")
    if index not in ("", "0"):
        raise ModelError(f"graph input {ref!r}: only first outputs of ops are supported")
    return name


def _attr_value(value: dict[str, Any]) -> Any:
    """A GraphDef AttrValue (as TFJS writes it in JSON) -> a plain Python value."""
    if "list" in value:
        lst = value["list"]
        if "i" in lst:
            return [int(v) for v in lst["i"]]
        if "s" in lst:
            return [base64.b64decode(v).decode() for v in lst["s"]]
        if "f" in lst:
            return [float(v) for v in lst["f"]]
        return []
    if "s" in value:
        return base64.b64decode(value["s"]).decode()
    if "i" in value:
        return int(value["i"])
    if "f" in value:
        return float(value["f"])
    if "b" in value:
        return bool(value["b"])
    if "type" in value:
        return str(value["type"])
    if "shape" in value:
        return [int(d.get("size", -1)) for d in value["shape"].get("dim", [])]
    return None  # tensors (Const values live in the weights manifest) and other kinds


def _decode_node(raw: dict[str, Any], where: Path) -> GraphNode:
    try:
        name, op = str(raw["name"]), str(raw["op"])
    except KeyError as exc:
        raise ModelError(f"{where}: a graph node has no {exc.args[0]!r}") from None
    inputs = tuple(tensor_name(i) for i in raw.get("input", []) if not str(i).startswith("^"))
    attrs = {
        k: _attr_value(v)
        for k, v in (raw.get("attr") or {}).items()
        if k not in ("value", "T", "device", "_output_shapes")
    }
    return GraphNode(name, op, inputs, {k: v for k, v in attrs.items() if v is not None})


def _read_weights(manifest: list[dict[str, Any]], folder: Path, where: Path) -> dict[str, Any]:
    out: dict[str, np.ndarray] = {}
    for group in manifest:
        blobs = []
        for rel in group.get("paths", []):
            shard = folder / rel
            if not shard.is_file():
                raise ModelError(f"{where}: weights file {shard} not found")
            blobs.append(shard.read_bytes())
        data = b"".join(blobs)
        pos = 0
        for w in group.get("weights", []):
            name, shape = str(w["name"]), [int(d) for d in w.get("shape", [])]
            count = int(np.prod(shape)) if shape else 1
            quant = w.get("quantization")
            dtype = str(w.get("dtype", "float32"))
            if dtype not in _DTYPES:
                raise ModelError(f"{where}: weight {name!r} has unsupported dtype {dtype!r}")
            stored = _QUANT.get(str(quant["dtype"])) if quant else _DTYPES[dtype]
            if stored is None:
                raise ModelError(f"{where}: weight {name!r}: unknown quantisation {quant!r}")
            size = count * np.dtype(stored).itemsize
            if pos + size > len(data):
                raise ModelError(
                    f"{where}: weights end at byte {len(data)} but {name!r} needs bytes "
                    f"{pos}..{pos + size}: the .bin file is truncated or of another model"
                )
            arr: np.ndarray = np.frombuffer(data, dtype=stored, count=count, offset=pos)
            pos += size
            if quant and stored in (np.uint8, np.uint16):
                arr = arr.astype(np.float32) * float(quant["scale"]) + float(quant["min"])
            out[name] = np.asarray(arr, dtype=_DTYPES[dtype]).reshape(shape).copy()
        if pos != len(data):
            raise ModelError(
                f"{where}: {len(data) - pos} bytes of weights are left unread: the .bin files "
                "do not match the manifest"
            )
    return out


def read_tfjs_graph(path: str | Path) -> TfjsGraph:
    """Read a TFJS graph model (``model.json`` and the shards it names, from its folder).

    ``ModelError`` names the file when it is missing, not JSON, not a graph model, or when its
    weights do not match the manifest.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: TFJS model file not found")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: not a readable JSON model file ({exc})") from exc
    topo = doc.get("modelTopology") if isinstance(doc, dict) else None
    if not isinstance(topo, dict) or not isinstance(topo.get("node"), list):
        raise ModelError(f"{path}: not a TFJS graph model (no modelTopology.node)")
    nodes = [_decode_node(n, path) for n in topo["node"]]
    weights = _read_weights(doc.get("weightsManifest") or [], path.parent, path)
    for n in nodes:
        if n.op == "Const" and n.name not in weights:
            raise ModelError(f"{path}: constant {n.name!r} has no weights in the manifest")
    sig = doc.get("signature") or {}
    inputs = {
        tensor_name(k): [int(d.get("size", -1)) for d in v.get("tensorShape", {}).get("dim", [])]
        for k, v in (sig.get("inputs") or {}).items()
    }
    if not inputs:
        inputs = {n.name: list(n.attrs.get("shape") or []) for n in nodes if n.op == "Placeholder"}
    outputs = [tensor_name(k) for k in (sig.get("outputs") or {})]
    meta = {k: doc.get(k) for k in ("format", "generatedBy", "convertedBy") if k in doc}
    return TfjsGraph(path, nodes, weights, inputs, outputs, meta)
