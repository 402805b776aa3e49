"""The synthetic person generator: determinism, counts, camera coverage, disjoint splits, occlusion masks."""

import csv
import json
import os
from collections import defaultdict

import numpy as np
import pytest
from PIL import Image

from robustreid.data import load_dataset
from robustreid.data.synthetic import generate

SMALL = dict(identities=8, cameras=3, images_per_id=5, size=(64, 32))


def _files(root):
    out = {}
    for d, _, fs in os.walk(root):
        for f in fs:
            p = os.path.join(d, f)
            out[os.path.relpath(p, root)] = open(p, "rb").read()
    return out


@pytest.fixture(scope="module")
def occ_set(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("synth") / "occ")
    summary = generate(out, occluded=True, distractors=3, junk=2, seed=5, **SMALL)
    return out, summary


def test_deterministic_byte_identical_and_seed_dependent(tmp_path):
    a = _files_of(tmp_path / "a", seed=1)
    b = _files_of(tmp_path / "b", seed=1)
    c = _files_of(tmp_path / "c", seed=2)
    assert a.keys() == b.keys() and all(a[k] == b[k] for k in a)
    same = [k for k in a if k.endswith(".jpg") and c.get(k) == a[k]]
    assert not same, "another seed must give other images"


def _files_of(path, seed):
    generate(str(path), seed=seed, **SMALL)
    return _files(str(path))


def test_counts_cameras_and_disjoint_splits(occ_set):
    out, s = occ_set
    ds = load_dataset("synthetic", out)
    n_id = SMALL["identities"] * SMALL["images_per_id"]
    assert len(ds.train) + len(ds.query) + len(ds.gallery) == n_id + 3  # + distractors; junk (pid -1) dropped
    assert s["images"] == n_id + 3 + 2 and s["train_ids"] == 4 and s["test_ids"] == 4
    assert ds.num_train_pids == 4
    train_ids = {x.orig_pid for x in ds.train}
    test_ids = {x.pid for x in ds.query} | {x.pid for x in ds.gallery if x.pid > 0}
    assert not train_ids & test_ids and len(test_ids) == 4
    cams = defaultdict(set)
    for x in ds.train + ds.query + ds.gallery:
        cams[x.orig_pid].add(x.camid)
        assert 0 <= x.camid < SMALL["cameras"]
        w, h = Image.open(x.path).size
        assert (h, w) == SMALL["size"]
    assert all(len(v) >= 2 for pid, v in cams.items() if pid > 0), "every identity seen by >= 2 cameras"
    # every query has a positive from another camera in the gallery
    gal = defaultdict(set)
    for g in ds.gallery:
        gal[g.pid].add(g.camid)
    assert all(gal[q.pid] - {q.camid} for q in ds.query)
    assert sum(1 for g in ds.gallery if g.pid == 0) == 3
    junk = [f for f in os.listdir(os.path.join(out, "bounding_box_test")) if f.startswith("-1_")]
    assert len(junk) == 2
    names = os.listdir(os.path.join(out, "bounding_box_train"))
    assert all(len(n) == len("0001_c1s1_000001_00.jpg") for n in names)


def test_occlusion_masks(occ_set):
    out, _ = occ_set
    ds = load_dataset("synthetic", out)
    with open(os.path.join(out, "manifest.csv"), newline="") as fh:
        rows = {r["path"]: r for r in csv.DictReader(fh)}
    assert ds.query and all(q.occluded for q in ds.query)
    for x in ds.train + ds.query + ds.gallery:
        assert x.mask_path and os.path.isfile(x.mask_path)
        m = np.asarray(Image.open(x.mask_path))
        assert m.shape == SMALL["size"] and set(np.unique(m)) <= {0, 255}
        row = rows[os.path.relpath(x.path, out)]
        if x.occluded:
            assert 0.1 <= float(row["occ_frac"]) <= 0.6  # share of the body covered
            assert m.any() and row["occluder"]
        else:
            assert not m.any()
    holistic = sum(1 for g in ds.gallery if not g.occluded) / len(ds.gallery)
    assert holistic > 0.5


def test_reuse_and_argument_mismatch(occ_set, tmp_path):
    out, _ = occ_set
    again = generate(out, occluded=True, distractors=3, junk=2, seed=5, **SMALL)
    assert again["reused"]
    with pytest.raises(FileExistsError, match="other arguments"):
        generate(out, occluded=False, seed=5, **SMALL)
    meta = json.load(open(os.path.join(out, "manifest.json")))
    assert meta["args"]["seed"] == 5 and len(meta["identities"]) == SMALL["identities"]
    with pytest.raises(ValueError, match="cameras"):
        generate(str(tmp_path / "x"), identities=4, cameras=1)
    # a folder holding other images (no manifest) is never mixed with ours
    os.makedirs(tmp_path / "real" / "query")
    (tmp_path / "real" / "query" / "0001_c1s1_000001_00.jpg").write_bytes(b"x")
    with pytest.raises(FileExistsError, match="would not write"):
        generate(str(tmp_path / "real"), **SMALL)


def test_palettes_are_shared_between_identities():
    from robustreid.data.synthetic import make_identity

    ids = [make_identity(0, "id", i) for i in range(8)]
    for g in (0, 4):
        group = ids[g:g + 4]
        # group members share garment colours (up to a small jitter) but all wear different upper patterns
        assert max(np.abs(a.upper - group[0].upper).max() for a in group) <= 24
        assert len({a.upper_pattern for a in group}) == 4
