"""robustreid index build / add / info and robustreid search on a tiny on-disk set: rankings equal brute force on
features from FeatureExtractor (another code path), approximate kinds, the index's model identity (another model is
refused), an index built from the ONNX export, the HTML sheet, clear errors."""

import json
import re

import numpy as np
import pytest
import torch

pytest.importorskip("faiss")

from click.testing import CliRunner  # noqa: E402
from engine_support import make_dataset  # noqa: E402
from serving_support import save_checkpoint, tiny_model  # noqa: E402

from robustreid.cli.main import cli  # noqa: E402
from robustreid.engine import FeatureExtractor  # noqa: E402
from robustreid.eval.index import GalleryIndex  # noqa: E402
from robustreid.export import model_identity  # noqa: E402


def run(*args, ok=True):
    r = CliRunner().invoke(cli, [str(a) for a in args])
    if ok:
        assert r.exit_code == 0, r.output
    else:
        assert r.exit_code != 0, r.output
    return r


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("idx")
    ds = make_dataset(root / "data")  # gallery/ and query/ with Market-style names (pid_cCAM_...)
    model = tiny_model("bot_resnet")
    ckpt = save_checkpoint(model, root / "model.safetensors")
    return root, ds, model, ckpt


def brute_force(ckpt, queries, gallery, k):
    fx = FeatureExtractor(str(ckpt), normalize=True)
    s = fx(queries).numpy() @ fx(gallery).numpy().T
    return np.argsort(-s, axis=1, kind="stable")[:, :k], s


def test_build_info_search_add(setup, tmp_path):
    root, ds, model, ckpt = setup
    out = tmp_path / "g.index"
    run("index", "build", "--checkpoint", ckpt, "--images", root / "data" / "gallery", "--out", out)
    info = json.loads(run("index", "info", out, "--json").output)
    assert info["rows"] == len(ds.gallery) == 12 and info["kind"] == "flat" and info["identities"] == 4
    assert info["cameras"] == 2 and info["model_identity"] == model_identity(model)

    gallery = sorted(s.path for s in ds.gallery)
    queries = [ds.query[0].path, ds.query[3].path]
    res = json.loads(run("search", "--index", out, *queries, "--k", 5, "--json").output)
    ref_ids, ref_s = brute_force(ckpt, queries, gallery, 5)
    for q, r in enumerate(res["results"]):
        assert [m["path"] for m in r["matches"]] == [gallery[i] for i in ref_ids[q]]
        np.testing.assert_allclose([m["score"] for m in r["matches"]], ref_s[q, ref_ids[q]], atol=1e-4)
        # labels come from the Market-style names: 0006_c2_01.png -> person 6, camera index 1
        m0 = r["matches"][0]
        pid, cam = re.match(r"(\d+)_c(\d+)", m0["path"].rsplit("/", 1)[-1]).groups()
        assert (m0["pid"], m0["camid"]) == (int(pid), int(cam) - 1)

    text = run("search", "--index", out, queries[0], "--k", 3, "--html", tmp_path / "s.html").output
    assert text.count("  id ") == 3 and "wrote" in text
    sheet = (tmp_path / "s.html").read_text()
    assert sheet.count("<figure") == 4 and sheet.count("data:image/jpeg;base64,") == 4

    r = run("index", "add", "--index", out, "--images", root / "data" / "query")
    assert "added 4 crops (ids 12..15)" in r.output
    res = json.loads(run("search", "--index", out, ds.query[2].path, "--k", 1, "--json").output)
    top = res["results"][0]["matches"][0]
    assert top["path"] == ds.query[2].path and top["id"] >= 12 and top["score"] > 0.9999
    assert GalleryIndex.load(out).info["sources"].count("folder:") == 2


def test_dataset_source_and_approximate_kinds(setup, tmp_path):
    from robustreid.data.synthetic import generate

    root, ds, model, ckpt = setup
    data = tmp_path / "synth"
    generate(str(data), identities=6, cameras=2, images_per_id=4, size=(32, 16), seed=1)
    q = sorted((data / "query").iterdir())[:3]
    tops = {}
    for kind, extra in [("flat", []), ("ivf", ["--nlist", 4, "--nprobe", 4]), ("hnsw", ["--ef-search", 64])]:
        out = tmp_path / f"{kind}.index"
        run("index", "build", "--checkpoint", ckpt, "--dataset", "synthetic", "--root", data, "--out", out,
            "--kind", kind, *extra)
        idx = GalleryIndex.load(out)
        assert idx.kind == kind and (idx.pids >= 0).all() and idx.info["sources"].endswith(":gallery")
        res = json.loads(run("search", "--index", out, *q, "--k", 5, "--json").output)
        tops[kind] = [[m["id"] for m in r["matches"]] for r in res["results"]]
    assert tops["ivf"] == tops["flat"]  # probing every list is exact
    assert tops["hnsw"] == tops["flat"]  # a 12-row graph is searched exhaustively


def test_another_model_is_refused(setup, tmp_path):
    root, ds, model, ckpt = setup
    out = tmp_path / "g.index"
    run("index", "build", "--checkpoint", ckpt, "--images", root / "data" / "gallery", "--out", out)
    other = save_checkpoint(tiny_model("bot_resnet", seed=5), tmp_path / "other.safetensors")
    r = run("search", "--index", out, ds.query[0].path, "--checkpoint", other, ok=False)
    assert "was built with model" in r.output and model_identity(model)[:12] in r.output
    r = run("index", "add", "--index", out, "--images", root / "data" / "query", "--checkpoint", other, ok=False)
    assert "was built with model" in r.output and len(GalleryIndex.load(out)) == 12
    # a checkpoint re-saved with the same weights keeps its identity, so it is accepted
    same = save_checkpoint(tiny_model("bot_resnet"), tmp_path / "copy.safetensors")
    run("search", "--index", out, ds.query[0].path, "--checkpoint", same)


def test_index_built_from_the_onnx_export(setup, tmp_path):
    root, ds, model, ckpt = setup
    run("export", "onnx", "--checkpoint", ckpt, "--out", tmp_path / "m.onnx", "--no-check")
    out = tmp_path / "o.index"
    run("index", "build", "--onnx", tmp_path / "m.onnx", "--images", root / "data" / "gallery", "--out", out)
    assert GalleryIndex.load(out).info["backend"] == "onnx"
    queries = [s.path for s in ds.query]
    by_onnx = json.loads(run("search", "--index", out, *queries, "--k", 5, "--json").output)
    by_torch = json.loads(run("search", "--index", out, *queries, "--k", 5, "--json", "--checkpoint", ckpt).output)
    for a, b in zip(by_onnx["results"], by_torch["results"]):
        assert [m["id"] for m in a["matches"]] == [m["id"] for m in b["matches"]]
        np.testing.assert_allclose([m["score"] for m in a["matches"]], [m["score"] for m in b["matches"]], atol=1e-4)


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_index_keeps_features_info_and_paths(tmp_path, kind):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 8)).astype(np.float32)
    paths = [f"crops/é_{i}.jpg" if i % 3 else "" for i in range(40)]
    idx = GalleryIndex.build(x, np.arange(40), np.zeros(40), paths, kind=kind, nlist=4)
    idx.info = {"model_identity": "abc", "note": "x"}
    idx.save(tmp_path / "i.index")
    back = GalleryIndex.load(tmp_path / "i.index")
    assert back.paths == paths and back.info == idx.info
    np.testing.assert_allclose(back.features(), x / np.linalg.norm(x, axis=1, keepdims=True), atol=1e-6)
    np.testing.assert_allclose(back.features(10, 12), back.features()[10:12])


def test_clear_errors(setup, tmp_path):
    root, ds, model, ckpt = setup
    r = run("index", "build", "--checkpoint", ckpt, "--images", tmp_path / "nope", "--out", tmp_path / "x", ok=False)
    assert "not a folder" in r.output
    r = run("index", "build", "--checkpoint", ckpt, "--images", root, "--dataset", "market1501", "--out",
            tmp_path / "x", ok=False)
    assert "either --dataset" in r.output
    (tmp_path / "empty").mkdir()
    r = run("index", "build", "--checkpoint", ckpt, "--images", tmp_path / "empty", "--out", tmp_path / "x", ok=False)
    assert "no image files" in r.output
    out = tmp_path / "g.index"
    run("index", "build", "--checkpoint", ckpt, "--images", root / "data" / "gallery", "--out", out)
    r = run("index", "build", "--checkpoint", ckpt, "--images", root / "data" / "gallery", "--out", out, ok=False)
    assert "exists" in r.output
    (tmp_path / "bad.png").write_bytes(b"not an image")
    r = run("search", "--index", out, tmp_path / "bad.png", ok=False)
    assert "bad.png" in r.output
    idx = GalleryIndex.load(out)
    idx.info["model_source"] = str(tmp_path / "moved.safetensors")
    idx.save(out)
    r = run("search", "--index", out, ds.query[0].path, ok=False)
    assert "pass --checkpoint or --onnx" in r.output
    torch.set_num_threads(1)


def test_interrupted_embedding_resumes(setup, tmp_path):
    from robustreid.serve import open_embedder
    from robustreid.serve.gallery import embed_resumable

    root, ds, model, ckpt = setup
    paths = sorted(s.path for s in ds.gallery)
    emb = open_embedder(model)
    whole = emb.embed_paths(paths, progress=False)
    calls, inner = [], emb.embed_paths

    def failing(p, **kw):  # the second chunk dies, like a killed job
        calls.append(len(p))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return inner(p, **kw)

    emb.embed_paths = failing
    with pytest.raises(KeyboardInterrupt):
        embed_resumable(emb, paths, tmp_path / "parts", chunk=5, progress=False)
    calls.clear()
    emb.embed_paths = lambda p, **kw: (calls.append(len(p)), inner(p, **kw))[1]
    again = embed_resumable(emb, paths, tmp_path / "parts", chunk=5, progress=False)
    assert calls == [5, 2]  # the first chunk of 5 was reused; chunks 2 and 3 embedded now
    np.testing.assert_allclose(again, whole, atol=1e-6)
    calls.clear()
    embed_resumable(emb, paths[::-1], tmp_path / "parts", chunk=5, progress=False)  # another job: starts over
    assert calls == [5, 5, 2]
