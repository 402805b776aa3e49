"""Passes over an exported ONNX graph: fold a BatchNormalization into the linear op before it, drop unused
initializers, and describe what is left (ops, initializers, remaining BatchNormalization nodes).

Both torch exporters already fold every Conv→BatchNorm2d; the BNNeck (BatchNorm1d after the embedding Linear) is
folded by the dynamo exporter but kept by the TorchScript one, hence :func:`fold_batchnorm`. A BNNeck right after
global pooling has no linear op to go into and stays as an eval-mode BatchNormalization with constant statistics.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np


def _onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError("ONNX export needs the onnx package: pip install 'robustreid[onnx]'") from None
    return onnx


def _uses(graph) -> Counter:
    uses: Counter = Counter()
    for node in graph.node:
        uses.update(i for i in node.input if i)
    uses.update(o.name for o in graph.output)
    return uses


def _attr(node, name: str, default):
    onnx = _onnx()
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _rank(model, name: str) -> Optional[int]:
    """Rank of a tensor from ONNX shape inference (None if unknown)."""
    for vi in list(model.graph.value_info) + list(model.graph.output) + list(model.graph.input):
        if vi.name == name and vi.type.tensor_type.HasField("shape"):
            return len(vi.type.tensor_type.shape.dim)
    return None


def _const(name: str, inits: Dict[str, np.ndarray], producer: Dict[str, object]) -> Optional[np.ndarray]:
    """The value of a constant tensor: an initializer, possibly behind Identity nodes (the TorchScript exporter
    shares equal initializers that way)."""
    for _ in range(16):
        if name in inits:
            return inits[name]
        node = producer.get(name)
        if node is None or node.op_type != "Identity":
            return None
        name = node.input[0]
    return None


def _fold_one(model, bn, prev, inits: Dict[str, np.ndarray], producer, uses: Counter) -> bool:
    """Replace ``prev`` (MatMul/Gemm with a constant 2-D weight) + ``bn`` by one Gemm; True if done."""
    onnx = _onnx()
    from onnx import numpy_helper

    x = bn.input[0]
    if uses[x] != 1 or _rank(model, x) != 2 or any(uses[o] for o in bn.output[1:]):
        return False
    stats = [_const(n, inits, producer) for n in bn.input[1:5]]
    w = _const(prev.input[1], inits, producer)
    if w is None or w.ndim != 2 or any(a is None for a in stats):
        return False
    w = w.astype(np.float64)
    gamma, beta, mean, var = (a.astype(np.float64) for a in stats)
    s = gamma / np.sqrt(var + float(_attr(bn, "epsilon", 1e-5)))
    t = beta - mean * s
    if prev.op_type == "MatMul":
        alpha, trans_a, trans_b, bias = 1.0, 0, 0, np.zeros_like(s)
    else:
        alpha = float(_attr(prev, "alpha", 1.0))
        trans_a, trans_b = int(_attr(prev, "transA", 0)), int(_attr(prev, "transB", 0))
        bias = np.zeros_like(s)
        if len(prev.input) > 2 and prev.input[2]:
            c = _const(prev.input[2], inits, producer)
            if c is None:
                return False
            bias = float(_attr(prev, "beta", 1.0)) * c.astype(np.float64)
    out_dim = w.shape[0] if trans_b else w.shape[1]
    if out_dim != s.size or np.broadcast(bias, s).shape != s.shape:
        return False
    w_new = w * (s[:, None] if trans_b else s[None, :])
    b_new = bias * s + t
    base = bn.name or bn.output[0]
    w_name, b_name = f"{base}.folded_weight", f"{base}.folded_bias"
    model.graph.initializer.extend([numpy_helper.from_array(w_new.astype(np.float32), w_name),
                                    numpy_helper.from_array(b_new.astype(np.float32), b_name)])
    gemm = onnx.helper.make_node("Gemm", [prev.input[0], w_name, b_name], [bn.output[0]], name=f"{base}.folded",
                                 alpha=alpha, beta=1.0, transA=trans_a, transB=trans_b)
    nodes = list(model.graph.node)
    i = nodes.index(bn)
    nodes[i] = gemm
    nodes.remove(prev)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return True


def fold_batchnorm(model) -> Tuple[object, int]:
    """Fold every BatchNormalization whose input is produced by a MatMul/Gemm with constant weights (and used by
    nothing else) into that op. Returns (the model, modified in place; number of nodes folded)."""
    onnx = _onnx()
    from onnx import numpy_helper

    model = onnx.shape_inference.infer_shapes(model)
    folded = 0
    while True:
        inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
        producer = {o: n for n in model.graph.node for o in n.output}
        uses = _uses(model.graph)
        for bn in [n for n in model.graph.node if n.op_type == "BatchNormalization"]:
            prev = producer.get(bn.input[0])
            if prev is not None and prev.op_type in ("MatMul", "Gemm") and \
                    _fold_one(model, bn, prev, inits, producer, uses):
                folded += 1
                break
        else:
            break
    prune(model)
    return model, folded


def prune(model) -> int:
    """Remove nodes whose outputs nobody reads, then initializers no node reads (and their graph-input entries);
    returns how many initializers went."""
    while True:
        uses = _uses(model.graph)
        dead = [n for n in model.graph.node if not any(uses[o] for o in n.output)]
        if not dead:
            break
        for n in dead:
            model.graph.node.remove(n)
    used = {i for n in model.graph.node for i in n.input}
    used.update(o.name for o in model.graph.output)
    drop = [i for i in model.graph.initializer if i.name not in used]
    for i in drop:
        model.graph.initializer.remove(i)
    names = {i.name for i in drop}
    for gi in [gi for gi in model.graph.input if gi.name in names]:
        model.graph.input.remove(gi)
    return len(drop)


def toposort(model) -> None:
    """Order the nodes so that every input is produced before it is read (some converters append nodes)."""
    ready = {i.name for i in model.graph.input} | {i.name for i in model.graph.initializer} | {""}
    pending, ordered = list(model.graph.node), []
    while pending:
        rest = []
        for n in pending:
            if all(i in ready for i in n.input):
                ordered.append(n)
                ready.update(n.output)
            else:
                rest.append(n)
        if len(rest) == len(pending):
            raise ValueError(f"the graph has a cycle or a missing input at node {rest[0].name or rest[0].op_type}")
        pending = rest
    del model.graph.node[:]
    model.graph.node.extend(ordered)


@dataclass
class GraphSummary:
    ops: Dict[str, int]
    initializers: int
    initializer_values: int
    batchnorm_left: List[str] = field(default_factory=list)  # "after <op>: eval-mode constants" per remaining BN
    bn_folded: int = 0

    def lines(self) -> List[str]:
        top = ", ".join(f"{k} {v}" for k, v in sorted(self.ops.items(), key=lambda kv: (-kv[1], kv[0])))
        out = [f"graph: {sum(self.ops.values())} nodes ({top})",
               f"initializers: {self.initializers} tensors, {self.initializer_values:,} values"]
        if self.bn_folded:
            out.append(f"BatchNormalization folded into the preceding linear op: {self.bn_folded}")
        if self.batchnorm_left:
            out.append("BatchNormalization left: " + "; ".join(self.batchnorm_left))
        else:
            out.append("BatchNormalization left: none")
        return out


def summarize(model, bn_folded: int = 0) -> GraphSummary:
    from onnx import numpy_helper

    producer = {o: n for n in model.graph.node for o in n.output}
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    left = []
    for n in model.graph.node:
        if n.op_type != "BatchNormalization":
            continue
        prev = producer.get(n.input[0])
        const = all(_const(i, inits, producer) is not None for i in n.input[1:5]) and \
            int(_attr(n, "training_mode", 0)) == 0
        left.append(f"after {prev.op_type if prev is not None else 'the input'}: "
                    f"{'eval-mode constants' if const else 'NOT constant (training mode?)'}")
    values = sum(int(np.prod(i.dims)) if len(i.dims) else 1 for i in model.graph.initializer)
    return GraphSummary(dict(Counter(n.op_type for n in model.graph.node)), len(model.graph.initializer), values,
                        left, bn_folded)


def initializer_arrays(model) -> List[np.ndarray]:
    from onnx import numpy_helper

    return [numpy_helper.to_array(i) for i in model.graph.initializer]
