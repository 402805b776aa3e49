"""ONNX export of any ReidModel's eval graph, with the parity check run after every export.

The graph takes raw images, ``images`` B×3×H×W (uint8 0..255 by default, or float32 in [0, 1]) with a dynamic
batch, and returns ``embeddings`` B×D: the model's own normalisation is inside the graph (nobody normalises twice),
the BNNeck is folded (:mod:`robustreid.export.graph`), and only what the eval forward reaches is exported, so
classifiers and training-only branches are absent (checked against the graph's initializers).

Exporters: ``torchscript`` (``torch.onnx.export(dynamo=False)``: ~1 s for ``cpu_small``) and ``dynamo``
(``torch.export``-based, torch's default since 2.9: ~35 s for the same model here); ``auto`` (the default) tries
TorchScript and falls back to dynamo when an op has no TorchScript symbolic. The same checks run on both.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from ..engine.checkpoint import unwrap
from ..utils.io import atomic_path
from .graph import GraphSummary, fold_batchnorm, initializer_arrays, summarize, toposort
from .identity import load_with_identity, short_id
from .parity import ParityReport, as_input, check_parity, parity_images, present_in, training_only_parameters

log = logging.getLogger(__name__)

FORMAT = "robustreid.onnx/1"
EXPORTERS = ("torchscript", "dynamo")
INPUT_DTYPES = ("uint8", "float32")


class ExportError(RuntimeError):
    """The export failed or produced a graph that does not match the model; the message says which check."""


class EmbeddingGraph(nn.Module):
    """What is exported: the model's eval forward (images -> N×D embedding)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)


@dataclass
class PrecisionResult:
    path: Path
    graph: GraphSummary
    parity: Optional[ParityReport]
    seconds: float
    note: str = ""


@dataclass
class ExportResult:
    identity: str
    source: str
    input_dtype: str
    input_size: Tuple[int, int]
    feat_dim: int
    exporter: str
    fp32: PrecisionResult
    training_only: List[str] = field(default_factory=list)
    leaked: List[str] = field(default_factory=list)
    fp16: Optional[PrecisionResult] = None

    @property
    def ok(self) -> bool:
        results = [self.fp32] + ([self.fp16] if self.fp16 else [])
        return not self.leaked and all(r.parity is None or r.parity.ok for r in results)

    def lines(self) -> List[str]:
        h, w = self.input_size
        out = [f"exported {self.source} -> {self.fp32.path} ({self.exporter} exporter, {self.fp32.seconds:.1f} s)"
               + self.fp32.note,
               f"model identity {short_id(self.identity)}; input images B×3×{h}×{w} {self.input_dtype} "
               f"(normalisation inside the graph, dynamic batch) -> embeddings B×{self.feat_dim}"]
        out += self.fp32.graph.lines()
        if self.training_only:
            state = "all ABSENT from the graph" if not self.leaked else f"PRESENT: {', '.join(self.leaked)}"
            out.append(f"training-only tensors (never read by the eval forward): {_grouped(self.training_only)}"
                       f" -> {state}")
        else:
            out.append("training-only tensors: none in this model")
        if self.fp32.parity is not None:
            out += self.fp32.parity.lines()
        if self.fp16 is not None:
            out.append(f"fp16 copy -> {self.fp16.path} ({self.fp16.seconds:.1f} s){self.fp16.note}")
            if self.fp16.parity is not None:
                out += self.fp16.parity.lines()
        return out

    def as_dict(self) -> Dict[str, object]:
        d: Dict[str, object] = {"path": str(self.fp32.path), "identity": self.identity, "source": self.source,
                                "input_dtype": self.input_dtype, "input_size": list(self.input_size),
                                "feat_dim": self.feat_dim, "exporter": self.exporter,
                                "training_only": self.training_only, "leaked": self.leaked, "ok": self.ok,
                                "graph": self.fp32.graph.__dict__,
                                "parity": self.fp32.parity.as_dict() if self.fp32.parity else None}
        if self.fp16 is not None:
            d["fp16"] = {"path": str(self.fp16.path), "graph": self.fp16.graph.__dict__,
                         "parity": self.fp16.parity.as_dict() if self.fp16.parity else None}
        return d


def _onnx_modules():
    try:
        import onnx
        import onnxruntime
    except ImportError as e:
        raise ImportError(f"ONNX export needs onnx and onnxruntime ({e}): pip install 'robustreid[onnx]'") from None
    return onnx, onnxruntime


def session(path_or_bytes: Union[str, Path, bytes], threads: int = 1):
    """An onnxruntime CPU session (``threads`` intra-op threads)."""
    _, ort = _onnx_modules()
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    src = path_or_bytes if isinstance(path_or_bytes, bytes) else str(path_or_bytes)
    return ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])


def _trace(wrapper: nn.Module, example: torch.Tensor, exporter: str, opset: int):
    """torch -> onnx.ModelProto with a dynamic batch axis."""
    onnx, _ = _onnx_modules()
    names = dict(input_names=["images"], output_names=["embeddings"])
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        if exporter == "torchscript":
            buf = io.BytesIO()
            torch.onnx.export(wrapper, (example,), buf, dynamo=False, opset_version=opset, do_constant_folding=True,
                              dynamic_axes={"images": {0: "batch"}, "embeddings": {0: "batch"}}, **names)
            return onnx.load_from_string(buf.getvalue())
        prog = torch.onnx.export(wrapper, (example,), dynamo=True, opset_version=max(opset, 18), verbose=False,
                                 dynamic_shapes=({0: torch.export.Dim("batch", min=1)},), **names)
        return prog.model_proto


def _trace_any(wrapper: nn.Module, example: torch.Tensor, exporter: str, opset: int, source: str):
    """(proto, the exporter used, a note); ``auto`` tries TorchScript, then dynamo (e.g. PCB's adaptive pooling to
    6 stripes of an 8-row map has no TorchScript-ONNX symbolic)."""
    failures = []
    for name in (("torchscript", "dynamo") if exporter == "auto" else (exporter,)):
        try:
            proto = _trace(wrapper, example, name, opset)
        except Exception as e:
            failures.append(f"{name}: {type(e).__name__}: {str(e).strip().splitlines()[0][:300]}")
            continue
        return proto, name, (f" ({failures[0]}; used dynamo)" if failures else "")
    hint = {"torchscript": " (try --exporter dynamo)", "dynamo": " (try --exporter torchscript)"}.get(exporter, "")
    raise ExportError(f"export of {source} failed: " + "; ".join(failures) + hint)


def _set_metadata(model, meta: Dict[str, str]) -> None:
    del model.metadata_props[:]
    for k, v in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, str(v)


def read_metadata(path: Union[str, Path]) -> Dict[str, str]:
    """The robustreid metadata of an exported file (identity, input size and dtype, feat_dim, ...)."""
    onnx, _ = _onnx_modules()
    try:
        m = onnx.load(str(path), load_external_data=False)
    except Exception as e:
        raise ValueError(f"{path}: cannot read as an ONNX model ({e})") from None
    meta = {p.key: p.value for p in m.metadata_props}
    if meta.get("robustreid.format") != FORMAT:
        raise ValueError(f"{path}: not an ONNX model exported by robustreid (no robustreid.format metadata)")
    return meta


def _save(model, path: Path) -> None:
    onnx, _ = _onnx_modules()
    onnx.checker.check_model(model)
    with atomic_path(path) as tmp:
        onnx.save(model, str(tmp))


def _to_fp16(model):
    """fp16 weights and activations; uint8/float32 input and float32 output kept (onnxruntime's converter)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        half = convert_float_to_float16(copy.deepcopy(model), keep_io_types=True)
    toposort(half)
    return half


def export_onnx(checkpoint: Union[str, Path, nn.Module], out: Union[str, Path], *, input_dtype: str = "uint8",
                exporter: str = "auto", opset: int = 17, fp16: bool = False,
                fp16_out: Union[str, Path, None] = None, check: bool = True,
                images: Union[torch.Tensor, Sequence[Union[str, Path]], None] = None,
                strict: bool = True) -> ExportResult:
    """Export ``checkpoint`` (run dir, ``.safetensors`` or a model) to ``out``; run the parity check.

    With ``strict`` a failed check raises :class:`ExportError` after writing the file and printing (logging) the
    report (the file is kept for inspection). ``images`` (>= 40 image files, or uint8 N×3×H×W at the model's
    input size) replace the synthetic parity images."""
    if exporter not in EXPORTERS + ("auto",):
        raise ValueError(f"exporter: expected auto or one of {EXPORTERS}, got {exporter!r}")
    if input_dtype not in INPUT_DTYPES:
        raise ValueError(f"input dtype: expected one of {INPUT_DTYPES}, got {input_dtype!r}")
    _onnx_modules()  # a clear ImportError before any work
    model, identity, source = load_with_identity(checkpoint)
    model = model.float().cpu().eval()
    core = unwrap(model)
    size = tuple(int(v) for v in getattr(core, "input_size"))
    if images is not None and not torch.is_tensor(images):
        images = load_parity_images(list(images), size)
    out = Path(out)
    example = as_input(parity_images(2, size, seed=123), input_dtype)
    t0 = time.perf_counter()
    wrapper = EmbeddingGraph(copy.deepcopy(model)).eval()
    proto, exporter, note = _trace_any(wrapper, example, exporter, opset, source)
    n_bn_before = sum(n.op_type == "BatchNormalization" for n in proto.graph.node)
    proto, folded = fold_batchnorm(proto)
    feat_dim = int(proto.graph.output[0].type.tensor_type.shape.dim[1].dim_value) or \
        int(session(proto.SerializeToString()).run(None, {"images": example.numpy()})[0].shape[1])
    meta = {"robustreid.format": FORMAT, "robustreid.model_identity": identity, "robustreid.source": source,
            "robustreid.input_size": json.dumps(list(size)), "robustreid.input_dtype": input_dtype,
            "robustreid.feat_dim": str(feat_dim), "robustreid.exporter": exporter, "robustreid.precision": "fp32",
            "robustreid.model": json.dumps(_model_name(core))}
    _set_metadata(proto, meta)
    _save(proto, out)
    secs = time.perf_counter() - t0
    log.info("exported %s (%d BatchNormalization before folding, %d folded)", out, n_bn_before, folded)
    train_only = training_only_parameters(model, example)
    arrays = initializer_arrays(proto)
    leaked = [n for n, t in train_only.items() if present_in(arrays, t)]
    result = ExportResult(identity, source, input_dtype, size, feat_dim, exporter,
                          PrecisionResult(out, summarize(proto, folded), None, secs, note),
                          sorted(train_only), leaked)
    if check:
        result.fp32.parity = check_parity(model, session(out), input_dtype, size, images=images)
    if fp16:
        result.fp16 = _export_fp16(proto, meta, Path(fp16_out) if fp16_out else _fp16_path(out), model,
                                   input_dtype, size, check, images)
    if strict and not result.ok:
        raise ExportError("\n".join(result.lines() + [f"export check FAILED (the file {out} is kept for inspection)"]))
    return result


def _export_fp16(proto, meta, path: Path, model, input_dtype, size, check, images) -> PrecisionResult:
    t0 = time.perf_counter()
    half = _to_fp16(proto)
    _set_metadata(half, {**meta, "robustreid.precision": "fp16"})
    _save(half, path)
    res = PrecisionResult(path, summarize(half), None, time.perf_counter() - t0,
                          " (weights and activations fp16; input and output types kept)")
    if check:
        res.parity = check_parity(model, session(path), input_dtype, size, precision="fp16", images=images)
    return res


def _grouped(names: Sequence[str]) -> str:
    """``classifier.weight, fdm.a.weight, fdm.b.bias`` -> ``classifier.weight, fdm.* (2 tensors)``."""
    groups: Dict[str, List[str]] = {}
    for n in names:
        groups.setdefault(n.split(".")[0], []).append(n)
    return ", ".join(v[0] if len(v) == 1 else f"{k}.* ({len(v)} tensors)" for k, v in groups.items())


def _fp16_path(out: Path) -> Path:
    return out.with_name(out.stem + ".fp16" + (out.suffix or ".onnx"))


def _model_name(core: nn.Module) -> Dict[str, str]:
    cfg = getattr(core, "config", None)
    return {"class": type(core).__name__, "name": str(getattr(cfg, "name", "")),
            "backbone": str(getattr(cfg, "backbone", ""))}


def load_parity_images(paths: Sequence[Union[str, Path]], size: Tuple[int, int]) -> torch.Tensor:
    """Real crops for the parity check: decoded and resized like extraction does (uint8 N×3×H×W)."""
    from ..engine.extract import resize_batch
    from ..transforms.decode import read_image

    return resize_batch([read_image(p) for p in paths], size)
