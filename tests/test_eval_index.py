"""GalleryIndex (FAISS): exact search equals brute force; IVF probing every list is exact; save/load; metadata."""

import sys

import numpy as np
import pytest

pytest.importorskip("faiss")

from robustreid.eval import GalleryIndex  # noqa: E402


def brute(q, g, k):
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    gn = g / np.linalg.norm(g, axis=1, keepdims=True)
    s = qn @ gn.T
    ids = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return ids, np.take_along_axis(s, ids, 1)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    g = rng.standard_normal((600, 16)).astype(np.float32)
    q = rng.standard_normal((25, 16)).astype(np.float32)
    return q, g, rng.integers(0, 50, 600), rng.integers(0, 6, 600)


def test_flat_equals_brute_force_and_metadata(data):
    q, g, pids, cams = data
    paths = [f"img_{i}.jpg" for i in range(len(g))]
    idx = GalleryIndex.build(g, pids, cams, paths, kind="flat")
    ids, scores, meta = idx.search(q, k=7)
    ref_ids, ref_scores = brute(q, g, 7)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-5)
    np.testing.assert_array_equal(meta["pid"], pids[ref_ids])
    np.testing.assert_array_equal(meta["camid"], cams[ref_ids])
    assert meta["path"][3] == [paths[i] for i in ref_ids[3]]


def test_add_continues_ids_and_short_gallery(data):
    q, g, pids, cams = data
    idx = GalleryIndex(16, "flat")
    idx.add(g[:300], pids[:300], cams[:300])
    idx.add(g[300:], pids[300:], cams[300:])
    assert len(idx) == 600
    np.testing.assert_array_equal(idx.search(q, 5)[0], brute(q, g, 5)[0])
    small = GalleryIndex.build(g[:3], kind="flat")
    ids, _, meta = small.search(q[:2], k=5)
    assert (ids[:, 3:] == -1).all() and (meta["pid"][:, 3:] == -1).all() and meta["path"][0][4] == ""


def test_ivf_all_lists_is_exact_and_hnsw_recall(data):
    q, g, pids, cams = data
    ivf = GalleryIndex.build(g, pids, cams, kind="ivf", nlist=8, nprobe=8)
    np.testing.assert_array_equal(ivf.search(q, 10)[0], brute(q, g, 10)[0])
    hnsw = GalleryIndex.build(g, kind="hnsw", hnsw_m=16, ef_search=128)
    ids = hnsw.search(q, 10)[0]
    ref = brute(q, g, 10)[0]
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, ref)])
    assert recall >= 0.9


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_save_load_roundtrip(tmp_path, data, kind):
    q, g, pids, cams = data
    idx = GalleryIndex.build(g, pids, cams, [str(i) for i in range(600)], kind=kind, nlist=8, nprobe=3)
    idx.save(tmp_path / "gal.index")
    back = GalleryIndex.load(tmp_path / "gal.index")
    assert back.kind == kind and len(back) == 600 and back.nprobe == 3
    a, b = idx.search(q, 5), back.search(q, 5)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[2]["pid"], b[2]["pid"])
    assert a[2]["path"] == b[2]["path"]


def test_clear_errors(tmp_path, data, monkeypatch):
    q, g, _, _ = data
    with pytest.raises(ValueError, match="kind"):
        GalleryIndex(16, "lsh")
    idx = GalleryIndex.build(g, kind="flat")
    with pytest.raises(ValueError, match="dimension 16"):
        idx.search(q[:, :8], 3)
    with pytest.raises(ValueError, match="pids has 2 entries"):
        idx.add(g[:3], pids=[1, 2])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        GalleryIndex.load(tmp_path / "missing.index")
    (tmp_path / "bad.index").write_bytes(b"junk")
    (tmp_path / "bad.index.meta.safetensors").write_bytes(b"junk")
    with pytest.raises(ValueError, match="cannot read"):
        GalleryIndex.load(tmp_path / "bad.index")
    monkeypatch.setitem(sys.modules, "faiss", None)
    with pytest.raises(ImportError, match="faiss-cpu"):
        GalleryIndex.build(g, kind="flat")
