"""Running a TFJS graph (read by ``tfjs_reader``) as a PyTorch module, exportable to ONNX.

``graph_description`` keeps what one output needs (nodes in dependency order, the constants'
shapes), as plain JSON stored in the ``ModelSpec`` (``extra["graph"]``), so a checkpoint
rebuilds the module with no TFJS file at hand; ``TfjsGraphNet`` interprets it. TensorFlow's
conventions are followed where PyTorch differs: activations are NHWC there and NCHW here (the
constants are laid out again once, at conversion), SAME padding puts the odd pixel at the
bottom/right, kernels are HWIO (depthwise: HW x channels x multiplier). The ops are the ones
image networks converted to TFJS use; any other raises ``ModelError`` naming it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facemetric.errors import ModelError
from facemetric.models.registry import Backbone, register_spec_backbone
from facemetric.models.tfjs_reader import GraphNode, TfjsGraph

ELEMENTWISE: dict[str, Callable[..., torch.Tensor]] = {
    "Add": torch.add,
    "AddV2": torch.add,
    "Sub": torch.sub,
    "Mul": torch.mul,
    "RealDiv": torch.div,
    "Maximum": torch.maximum,
    "Minimum": torch.minimum,
}
UNARY: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "Relu": torch.relu,
    "Relu6": lambda x: torch.clamp(x, 0.0, 6.0),
    "Sigmoid": torch.sigmoid,
    "Tanh": torch.tanh,
    "Identity": lambda x: x,
}
CONVS = ("Conv2D", "DepthwiseConv2dNative")
SUPPORTED = {"Placeholder", "Const", "Mean", "MatMul", "_FusedMatMul", "BiasAdd", "Softmax"}
SUPPORTED |= set(ELEMENTWISE) | set(UNARY) | set(CONVS)
NHWC_TO_NCHW_AXIS = {0: 0, 1: 2, 2: 3, 3: 1}


def graph_description(
    graph: TfjsGraph, output: str, input_size: int, channels: str = "rgb"
) -> dict[str, Any]:
    """What ``TfjsGraphNet`` needs to compute ``output``: the nodes it depends on, in dependency
    order, with the integer constants (reduction axes) resolved; ``channels`` says which colour
    order the graph's input expects ("bgr" reverses the RGB crops facemetric feeds)."""
    by_name = {n.name: n for n in graph.nodes}
    if output not in by_name:
        raise ModelError(f"{graph.path}: the graph has no output {output!r}")
    order: list[GraphNode] = []
    state: dict[str, int] = {}  # 1 visiting, 2 done
    stack: list[tuple[str, bool]] = [(output, False)]
    while stack:
        name, expanded = stack.pop()
        if name not in by_name:
            raise ModelError(f"{graph.path}: node input {name!r} names no node")
        if expanded:
            state[name] = 2
            order.append(by_name[name])
            continue
        if state.get(name) == 2:
            continue
        if state.get(name) == 1:
            raise ModelError(f"{graph.path}: the graph has a cycle through {name!r}")
        state[name] = 1
        stack.append((name, True))
        stack.extend((i, False) for i in reversed(by_name[name].inputs) if state.get(i) != 2)
    nodes = []
    for n in order:
        if n.op not in SUPPORTED:
            raise ModelError(f"{graph.path}: op {n.op!r} (node {n.name!r}) is not supported")
        attrs = dict(n.attrs)
        if n.op == "Mean":
            attrs["axes"] = [int(a) for a in np.ravel(graph.weights[n.inputs[1]])]
            n = GraphNode(n.name, n.op, n.inputs[:1], attrs)
        nodes.append(n.to_dict())
    inputs = [n for n in order if n.op == "Placeholder"]
    if len(inputs) != 1:
        raise ModelError(f"{graph.path}: {output!r} needs {len(inputs)} inputs; one is supported")
    used = {i for n in nodes for i in n["inputs"]}
    consts = {
        n.name: list(graph.weights[n.name].shape)
        for n in order
        if n.op == "Const" and n.name in used
    }
    return {
        "input": inputs[0].name,
        "input_size": int(input_size),
        "output": output,
        "channels": channels,
        "nodes": nodes,
        "consts": consts,
    }


def _same_padding(size: int, k: int, s: int, d: int) -> tuple[int, int]:
    out = math.ceil(size / s)
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


class TfjsGraphNet(nn.Module):
    """The graph of ``graph_description`` as a module: (N, 3, S, S) float -> the output tensor.

    Constants are buffers (``k0``, ``k1``, ...) laid out for the op that reads them;
    ``load_tf_weights`` fills them from the TFJS file's arrays.
    """

    def __init__(self, desc: dict[str, Any]) -> None:
        super().__init__()
        self.desc = desc
        self.nodes = [GraphNode.from_dict(n) for n in desc["nodes"]]
        self.channels = str(desc.get("channels", "rgb"))
        tf_shapes: dict[str, list[int]] = {k: list(v) for k, v in desc["consts"].items()}
        size = int(desc["input_size"])
        tf_shapes[desc["input"]] = [-1, size, size, 3]
        self.slots: list[tuple[str, str]] = []  # buffer k<i>: (constant, layout)
        self.plan: list[tuple[GraphNode, list[tuple[str, Any]], dict[str, Any]]] = []
        for node in self.nodes:
            if node.op in ("Placeholder", "Const"):
                continue
            refs, extra, shape = self._plan_node(node, tf_shapes)
            tf_shapes[node.name] = shape
            self.plan.append((node, refs, extra))
        for i, (const, layout) in enumerate(self.slots):
            shape = _torch_shape(desc["consts"][const], layout)
            self.register_buffer(f"k{i}", torch.zeros(shape))
        self.out_shape = tf_shapes[desc["output"]]

    def _slot(self, const: str, layout: str) -> tuple[str, int]:
        key = (const, layout)
        if key not in self.slots:
            self.slots.append(key)
        return ("k", self.slots.index(key))

    def _ref(self, name: str, layout: str) -> tuple[str, Any]:
        if name in self.desc["consts"]:
            return self._slot(name, layout)
        return ("t", name)

    def _plan_node(
        self, node: GraphNode, shapes: dict[str, list[int]]
    ) -> tuple[list[tuple[str, Any]], dict[str, Any], list[int]]:
        a = node.attrs
        ins = node.inputs
        if node.op in CONVS:
            x, k = shapes[ins[0]], shapes[ins[1]]
            if a.get("data_format", "NHWC") != "NHWC":
                raise ModelError(f"node {node.name!r}: only NHWC convolutions are supported")
            strides, dil = a.get("strides", [1, 1, 1, 1]), a.get("dilations", [1, 1, 1, 1])
            pads = [0, 0, 0, 0]
            if a.get("padding", "VALID") == "SAME":
                top, bottom = _same_padding(x[1], k[0], strides[1], dil[1])
                left, right = _same_padding(x[2], k[1], strides[2], dil[2])
                pads = [left, right, top, bottom]
            elif a.get("padding") != "VALID":
                raise ModelError(f"node {node.name!r}: padding {a.get('padding')!r} unsupported")
            h = (x[1] + pads[2] + pads[3] - (k[0] - 1) * dil[1] - 1) // strides[1] + 1
            w = (x[2] + pads[0] + pads[1] - (k[1] - 1) * dil[2] - 1) // strides[2] + 1
            depthwise = node.op == "DepthwiseConv2dNative"
            cout = x[3] * k[3] if depthwise else k[3]
            layout = "dw" if depthwise else "conv"
            extra = {
                "stride": (strides[1], strides[2]),
                "dilation": (dil[1], dil[2]),
                "pads": pads,
                "groups": x[3] if depthwise else 1,
            }
            return [self._ref(ins[0], ""), self._ref(ins[1], layout)], extra, [-1, h, w, cout]
        if node.op in ELEMENTWISE:
            rank = max(len(shapes[i]) for i in ins)
            refs = [self._ref(i, f"bcast{rank}") for i in ins]
            shape = max((shapes[i] for i in ins), key=len)
            return refs, {}, list(shape)
        if node.op == "BiasAdd":
            rank = len(shapes[ins[0]])
            return [self._ref(ins[0], ""), self._ref(ins[1], f"bcast{rank}")], {}, shapes[ins[0]]
        if node.op in UNARY or node.op == "Softmax":
            return [self._ref(ins[0], "")], {"rank": len(shapes[ins[0]])}, shapes[ins[0]]
        if node.op == "Mean":
            x = shapes[ins[0]]
            axes = sorted(int(v) % len(x) for v in a["axes"])
            keep = bool(a.get("keep_dims", False))
            if len(x) == 4 and not keep and 3 not in axes and axes != [1, 2] and axes:
                raise ModelError(f"node {node.name!r}: Mean over axes {axes} is not supported")
            dims = [NHWC_TO_NCHW_AXIS[v] for v in axes] if len(x) == 4 else axes
            shape = (
                [1 if i in axes else d for i, d in enumerate(x)]
                if keep
                else [d for i, d in enumerate(x) if i not in axes]
            )
            return [self._ref(ins[0], "")], {"dims": dims, "keep": keep}, shape
        if node.op in ("MatMul", "_FusedMatMul"):
            ta, tb = bool(a.get("transpose_a", False)), bool(a.get("transpose_b", False))
            xa, xb = shapes[ins[0]], shapes[ins[1]]
            fused = list(a.get("fused_ops", []))
            bad = [f for f in fused if f not in ("BiasAdd", "Relu", "Relu6")]
            if bad or len(xa) != 2:
                raise ModelError(f"node {node.name!r}: MatMul with {bad or xa} unsupported")
            refs = [self._ref(i, "") for i in ins]
            out = [xa[1] if ta else xa[0], xb[0] if tb else xb[1]]
            return refs, {"ta": ta, "tb": tb, "fused": fused}, out
        raise ModelError(f"node {node.name!r}: op {node.op!r} is not supported")

    def load_tf_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Fill the buffers from the TFJS arrays (TF layouts), laid out for PyTorch."""
        for i, (const, layout) in enumerate(self.slots):
            arr = np.asarray(weights[const], dtype=np.float32)
            getattr(self, f"k{i}").copy_(torch.from_numpy(_to_torch(arr, layout)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels == "bgr":
            x = x[:, [2, 1, 0]]
        env: dict[str, torch.Tensor] = {self.desc["input"]: x}
        for node, refs, extra in self.plan:
            args = [env[r] if kind == "t" else getattr(self, f"k{r}") for kind, r in refs]
            env[node.name] = self._run_op(node.op, args, extra)
        return env[self.desc["output"]]

    @staticmethod
    def _run_op(op: str, args: list[torch.Tensor], extra: dict[str, Any]) -> torch.Tensor:
        if op in CONVS:
            x = args[0]
            pads = extra["pads"]
            if pads[0] == pads[1] and pads[2] == pads[3]:
                padding: tuple[int, int] = (pads[2], pads[0])
            else:
                x, padding = F.pad(x, pads), (0, 0)
            return F.conv2d(
                x,
                args[1],
                stride=extra["stride"],
                padding=padding,
                dilation=extra["dilation"],
                groups=extra["groups"],
            )
        if op in ELEMENTWISE:
            return ELEMENTWISE[op](args[0], args[1])
        if op == "BiasAdd":
            return args[0] + args[1]
        if op in UNARY:
            return UNARY[op](args[0])
        if op == "Softmax":
            return torch.softmax(args[0], dim=1 if extra["rank"] == 4 else -1)
        if op == "Mean":
            return args[0].mean(dim=extra["dims"], keepdim=extra["keep"])
        # MatMul / _FusedMatMul
        a = args[0].t() if extra["ta"] else args[0]
        b = args[1].t() if extra["tb"] else args[1]
        y = a @ b
        for f in extra["fused"]:
            if f == "BiasAdd":
                y = y + args[2]
            elif f == "Relu":
                y = torch.relu(y)
            else:
                y = torch.clamp(y, 0.0, 6.0)
        return y


def _torch_shape(tf_shape: list[int], layout: str) -> list[int]:
    return list(_to_torch(np.zeros(tf_shape, np.float32), layout).shape)


def _to_torch(arr: np.ndarray, layout: str) -> np.ndarray:
    """A TF-layout constant -> the layout its op reads in PyTorch."""
    if layout == "conv":  # HWIO -> OIHW
        return np.ascontiguousarray(arr.transpose(3, 2, 0, 1))
    if layout == "dw":  # H W C M -> (C*M) 1 H W, output channel c*M + m as TF orders them
        kh, kw, c, m = arr.shape
        return np.ascontiguousarray(arr.transpose(2, 3, 0, 1).reshape(c * m, 1, kh, kw))
    if layout == "bcast4" and arr.ndim >= 1:  # NHWC broadcasting -> NCHW broadcasting
        full = arr.reshape((1,) * (4 - arr.ndim) + arr.shape)
        return np.ascontiguousarray(full.transpose(0, 3, 1, 2))
    return arr


@register_spec_backbone("tfjs_graph")
def tfjs_graph(spec: Any) -> Backbone:
    """A TFJS graph kept in ``spec.extra["graph"]`` (see ``graph_description``)."""
    desc = spec.extra.get("graph")
    if not isinstance(desc, dict):
        raise ModelError("backbone tfjs_graph: the spec carries no graph (extra['graph'])")
    net = TfjsGraphNet(desc)
    if len(net.out_shape) != 2:
        raise ModelError(f"backbone tfjs_graph: output {desc['output']!r} is not a vector")
    return Backbone(net, int(net.out_shape[1]))
