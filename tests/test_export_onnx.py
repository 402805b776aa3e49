"""ONNX export: every model family's exported graph gives the PyTorch embeddings (checked here with our own
onnxruntime call at a batch size the built-in check does not use), raw pixels in, BNNeck folded or constant,
training-only tensors absent; the BatchNorm fold on hand-made graphs; the parity check fails when it should;
fp16 and float input; the CLI."""

import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import onnx  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from serving_support import FAMILIES, save_checkpoint, tiny_model  # noqa: E402

from robustreid.export import (ExportError, check_parity, export_onnx, model_identity,  # noqa: E402
                               read_metadata, session)
from robustreid.export.graph import fold_batchnorm  # noqa: E402
from robustreid.export.parity import parity_images, present_in  # noqa: E402


def _images(n, size, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, *size), generator=g, dtype=torch.uint8)


def _own_parity(model, path, size, dtype="uint8"):
    """Our own comparison (not the exporter's report): 3 random-noise images, a batch size the check never uses."""
    x = _images(3, size, seed=7)
    with torch.no_grad():
        ref = model(x if dtype == "uint8" else x.float() / 255).numpy()
    sess = session(path)
    assert sess.get_inputs()[0].type == ("tensor(uint8)" if dtype == "uint8" else "tensor(float)")
    got = sess.run(None, {"images": x.numpy() if dtype == "uint8" else (x.float() / 255).numpy()})[0]
    assert got.shape == ref.shape
    cos = (ref * got).sum(1) / np.linalg.norm(ref, axis=1) / np.linalg.norm(got, axis=1)
    assert cos.min() > 0.9999 and np.abs(ref - got).max() < 1e-3 * max(1.0, np.abs(ref).max())
    return sess


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_family_exports_with_parity(tmp_path, family):
    model = tiny_model(family)
    size = tuple(model.input_size)
    out = tmp_path / f"{family}.onnx"
    res = export_onnx(model, out, check=False)  # the built-in check: test_fp16_and_float_input, test_cli_export
    assert res.ok and out.is_file()
    sess = _own_parity(model, out, size)
    assert sess.get_inputs()[0].shape[0] == "batch"  # dynamic batch
    graph = onnx.load(str(out)).graph
    ops = [n.op_type for n in graph.node]
    assert "Cast" in ops and "Sub" in ops and "Div" in ops  # uint8 -> float, (x - mean) / std inside the graph
    for n in graph.node:  # any BatchNormalization left is in inference mode
        if n.op_type == "BatchNormalization":
            assert all(a.i == 0 for a in n.attribute if a.name == "training_mode")
    # training-only tensors (classifiers, FED's bank and FDM) are found and none of them is in the graph
    assert any("classifier" in n for n in res.training_only)
    arrays = [numpy_helper.to_array(i) for i in graph.initializer]
    trained = dict(model.named_parameters())
    trained.update(dict(model.named_buffers()))
    for name in res.training_only:
        assert not present_in(arrays, trained[name]), name
    if family == "fed":
        assert "bank" in res.training_only and any(n.startswith("fdm.") for n in res.training_only)
    meta = read_metadata(out)
    assert meta["robustreid.model_identity"] == model_identity(model)
    assert json.loads(meta["robustreid.input_size"]) == list(size)


def _bn_graph(prev: str, rng):
    """x (N×4) -> MatMul or Gemm(transB=1, bias) with constant weights -> BatchNormalization -> y."""
    w = rng.standard_normal((4, 3)).astype(np.float32)
    stats = [rng.uniform(0.5, 1.5, 3), rng.standard_normal(3), rng.standard_normal(3), rng.uniform(0.2, 2, 3)]
    inits = [numpy_helper.from_array(a.astype(np.float32), n) for a, n in zip(stats, ["g", "b", "m", "v"])]
    if prev == "MatMul":
        nodes = [helper.make_node("MatMul", ["x", "w"], ["h"])]
        inits.append(numpy_helper.from_array(w, "w"))
    else:
        nodes = [helper.make_node("Gemm", ["x", "w", "c"], ["h"], transB=1, alpha=0.5, beta=2.0)]
        inits += [numpy_helper.from_array(w.T.copy(), "w"), numpy_helper.from_array(np.float32([1, -2, 3]), "c")]
    nodes.append(helper.make_node("BatchNormalization", ["h", "g", "b", "m", "v"], ["y"], epsilon=1e-3))
    graph = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("prev", ["MatMul", "Gemm"])
def test_fold_batchnorm_on_hand_made_graphs(prev):
    rng = np.random.default_rng(0)
    model = _bn_graph(prev, rng)
    x = rng.standard_normal((5, 4)).astype(np.float32)
    # the reference, from the definitions: Gemm = alpha·x·wᵀ + beta·c; BN = (h - m) / sqrt(v + eps) · g + b
    init = {i.name: numpy_helper.to_array(i).astype(np.float64) for i in model.graph.initializer}
    h = x @ init["w"] if prev == "MatMul" else 0.5 * x @ init["w"].T + 2.0 * init["c"]
    ref = (h - init["m"]) / np.sqrt(init["v"] + 1e-3) * init["g"] + init["b"]
    folded, n = fold_batchnorm(model)
    assert n == 1 and [nd.op_type for nd in folded.graph.node] == ["Gemm"]
    assert {i.name for i in folded.graph.initializer}.isdisjoint({"g", "b", "m", "v"})
    got = session(folded.SerializeToString()).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def test_fold_leaves_a_shared_linear_output_alone():
    model = _bn_graph("MatMul", np.random.default_rng(1))
    model.graph.output.append(helper.make_tensor_value_info("h", TensorProto.FLOAT, ["n", 3]))  # h read elsewhere
    _, n = fold_batchnorm(model)
    assert n == 0


def test_parity_check_catches_a_wrong_graph_and_a_collapsed_model(tmp_path):
    a, b = tiny_model("bot_resnet", seed=0), tiny_model("bot_resnet", seed=1)
    export_onnx(a, tmp_path / "a.onnx", check=False)
    rep = check_parity(b, session(tmp_path / "a.onnx"), "uint8", (32, 16))
    assert not rep.ok and any("cosine" in p for p in rep.problems)

    class Collapsed:  # an onnxruntime stand-in whose every row is the same vector
        def get_inputs(self):
            return [type("I", (), {"name": "images"})()]

        def run(self, _, feeds):
            return [np.ones((len(feeds["images"]), 64), np.float32)]

    rep = check_parity(a, Collapsed(), "uint8", (32, 16))
    assert any("closer than the export error" in p for p in rep.problems)

    class Constant(torch.nn.Module):  # every image -> the same embedding
        input_size = (32, 16)

        def __init__(self):
            super().__init__()
            self.v = torch.nn.Parameter(torch.arange(8.0))

        def forward(self, x):
            return self.v.expand(x.shape[0], 8) + 0 * x.float().mean()

    with pytest.raises(ExportError, match="same embedding"):
        export_onnx(Constant(), tmp_path / "c.onnx")
    assert (tmp_path / "c.onnx").is_file()  # kept for inspection


def test_auto_falls_back_to_the_other_exporter(tmp_path, monkeypatch):
    from robustreid.export import onnx_export

    real, tried = onnx_export._trace, []

    def trace(wrapper, example, exporter, opset):  # TorchScript "cannot" export; the fallback does it
        tried.append(exporter)
        if exporter == "torchscript":
            raise RuntimeError("Unsupported: ONNX export of operator adaptive_avg_pool2d\nlong graph dump")
        return real(wrapper, example, "torchscript", opset)

    monkeypatch.setattr(onnx_export, "_trace", trace)
    res = export_onnx(tiny_model("vit"), tmp_path / "m.onnx", check=False)
    assert tried == ["torchscript", "dynamo"] and res.exporter == "dynamo"
    assert "adaptive_avg_pool2d; used dynamo" in res.lines()[0] and "graph dump" not in res.lines()[0]
    tried.clear()
    with pytest.raises(ExportError, match="torchscript: RuntimeError: Unsupported.*try --exporter dynamo"):
        export_onnx(tiny_model("vit"), tmp_path / "n.onnx", exporter="torchscript")


def test_present_in_finds_a_tensor_or_its_transpose():
    t = torch.arange(6.0).view(2, 3)
    assert present_in([np.zeros(3), t.numpy().T.copy()], t)
    assert not present_in([np.zeros((2, 3))], t)
    assert not present_in([np.zeros((2, 3))], torch.zeros(2, 3))  # constants carry nothing trained


def test_fp16_and_float_input(tmp_path):
    model = tiny_model("bot_resnet")
    res = export_onnx(model, tmp_path / "m.onnx", input_dtype="float32", fp16=True)
    _own_parity(model, tmp_path / "m.onnx", (32, 16), dtype="float32")
    half = onnx.load(str(res.fp16.path))
    assert res.fp16.path.name == "m.fp16.onnx" and read_metadata(res.fp16.path)["robustreid.precision"] == "fp16"
    kinds = {i.data_type for i in half.graph.initializer if len(i.dims) > 1}
    assert kinds == {TensorProto.FLOAT16}
    p = res.fp16.parity
    assert p.ok and p.min_cos >= 0.999 and p.max_abs > res.fp32.parity.max_abs  # really lower precision
    assert half.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT  # output type kept


def test_parity_images_are_distinct_and_seeded():
    a, b = parity_images(4, (32, 16), seed=3), parity_images(4, (32, 16), seed=3)
    assert a.dtype == torch.uint8 and torch.equal(a, b)
    assert all((a[i].int() - a[j].int()).abs().float().mean() > 10 for i in range(4) for j in range(i))


def test_cli_export_folds_the_bnneck_and_reports_parity(tmp_path):
    from click.testing import CliRunner

    from robustreid.cli.main import cli

    model = tiny_model("bot_resnet_embed")
    ckpt = save_checkpoint(model, tmp_path / "model.safetensors")
    r = CliRunner().invoke(cli, ["export", "onnx", "--checkpoint", str(ckpt), "--out", str(tmp_path / "m.onnx"),
                                 "--json", str(tmp_path / "r.json")])
    assert r.exit_code == 0, r.output
    assert "parity fp32: OK" in r.output and "| 32 |" in r.output and "classifier.weight -> all ABSENT" in r.output
    ops = [n.op_type for n in onnx.load(str(tmp_path / "m.onnx")).graph.node]
    assert "BatchNormalization" not in ops and ops[-1] == "Gemm"  # BNNeck folded into the embedding Linear
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["ok"] and rep["identity"] == model_identity(model)
    assert rep["graph"]["bn_folded"] == 1 and rep["graph"]["batchnorm_left"] == []
    p = rep["parity"]
    assert [b["batch"] for b in p["batches"]] == [1, 32] and min(b["min_cos"] for b in p["batches"]) >= 0.9999
    assert p["rankings_identical"] == p["queries"] == 8
    assert p["min_pair_difference"] > 100 * max(b["max_abs"] for b in p["batches"])
    r = CliRunner().invoke(cli, ["export", "onnx", "--checkpoint", str(tmp_path / "missing"), "--out",
                                 str(tmp_path / "x.onnx")])
    assert r.exit_code != 0 and "does not exist" in r.output
