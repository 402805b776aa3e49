"""Issue 17, fuzzing: random malformed feature files, dataset folders and CSV lists through the CLI give a valid
result or a clear short error (exit status 1, a message naming the file) — never a traceback."""

from __future__ import annotations

import io
import json
import os
import tempfile

import numpy as np
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from safetensors.numpy import save_file

from robustreid.cli.main import cli

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _invoke(*args):
    r = CliRunner().invoke(cli, [str(a) for a in args])
    assert r.exception is None or isinstance(r.exception, SystemExit), \
        f"traceback for {args}: {r.exception!r}\n{r.output}"
    assert "Traceback" not in r.output
    return r


def _strict_json(text):
    def bad(name):
        raise AssertionError(f"invalid JSON constant {name}")

    return json.loads(text, parse_constant=bad)


# ---------------------------------------------------------------------------------------------- feature files
def _column(draw, n, kind):
    length = n + draw(st.sampled_from([0, 0, 0, -1, 1]))
    length = max(length, 0)
    dtype = draw(st.sampled_from([np.int64, np.int64, np.int32, np.float32, np.uint8]))
    hi = {"pid": 3, "cam": 2, "split": 3}[kind]
    lo = -1 if kind != "cam" else 0
    vals = draw(st.lists(st.integers(lo, hi), min_size=length, max_size=length))
    arr = np.asarray(vals).astype(dtype)
    return arr.reshape(-1, 1) if draw(st.integers(0, 9)) == 0 else arr


@st.composite
def feature_files(draw):
    n, d = draw(st.integers(0, 7)), draw(st.integers(0, 4))
    style = draw(st.sampled_from(["random", "random", "random", "constant", "zero", "nan", "duplicates"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    feats = {"random": lambda: rng.standard_normal((n, d)), "constant": lambda: np.full((n, d), 0.5),
             "zero": lambda: np.zeros((n, d)), "duplicates": lambda: rng.integers(0, 2, (n, d)),
             "nan": lambda: np.where(rng.random((n, d)) < 0.3, np.nan, 1.0)}[style]()
    dtype = draw(st.sampled_from([np.float32, np.float32, np.float16, np.float64, np.int64]))
    feats = (np.nan_to_num(feats) if dtype == np.int64 else feats).astype(dtype)
    if draw(st.integers(0, 9)) == 0:
        feats = feats.reshape(-1)
    tensors = {"features": feats, "pids": _column(draw, n, "pid"), "camids": _column(draw, n, "cam"),
               "split": _column(draw, n, "split")}
    for k in draw(st.sets(st.sampled_from(sorted(tensors)), max_size=1)):
        del tensors[k]
    paths = draw(st.sampled_from(["ok", "ok", "ok", "short", "notjson", "dict", "missing"]))
    meta = {"ok": json.dumps([f"{i}.jpg" for i in range(n)]), "short": json.dumps(["a.jpg"] * max(n - 1, 0)),
            "notjson": "[broken", "dict": json.dumps({"a": 1}), "missing": None}[paths]
    return tensors, ({"paths": meta} if meta is not None else {}), draw(st.booleans())


@SETTINGS
@given(feature_files(), st.sampled_from([[], ["--metric", "euclidean"], ["--rerank", "--k1", "2", "--k2", "1"],
                                         ["--tpr"]]))
def test_fuzzed_feature_files(spec, options):
    tensors, meta, garbage = spec
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "f.safetensors")
        if garbage and not tensors.get("features", np.zeros(1)).size:
            with open(path, "wb") as fh:
                fh.write(b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header")
        else:
            save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, path, metadata=meta)
        out = os.path.join(d, "m.json")
        r = _invoke("eval", "--features", path, "--json", out, *options)
        if r.exit_code == 0:
            m = _strict_json(open(out).read())
            assert m["num_valid_queries"] > 0
            for k in ("R1", "R5", "R10", "mAP", "mINP"):
                assert 0.0 <= m[k] <= 1.0
        else:
            assert r.exit_code == 1 and "f.safetensors" in r.output and not os.path.exists(out)


# ---------------------------------------------------------------------------------------------- dataset folders
NAMES = st.sampled_from(["0001_c1s1_000001_00", "0002_c2s1_000002_00", "0001_c3s2_000003_01", "0000_c2s1_000004_00",
                         "-1_c1s1_000005_00", "0003_c0s1_000006_00", "-2_c1s1_000007_00", "IMG_0001", "0002_x",
                         "0004_c1s1_000008_00"])
VALID = {"bounding_box_train": ("0005_c1s1_000001_00", ".jpg", "image"),  # often one good image per folder
         "query": ("0001_c1s1_000009_00", ".jpg", "image"), "bounding_box_test": ("0001_c2s1_000009_00", ".jpg", "image")}
ENTRY = st.tuples(NAMES, st.sampled_from([".jpg", ".png", ".JPG", ".txt"]),
                  st.sampled_from(["image", "image", "image", "garbage", "empty", "folder", "tiny"]))


def _write_entry(folder, name, ext, kind):
    path = os.path.join(folder, name + ext)
    if os.path.exists(path):
        return
    if kind == "folder":
        os.makedirs(path)
    elif kind in ("image", "tiny"):
        size = (1, 1) if kind == "tiny" else (8, 4)
        buf = io.BytesIO()
        Image.new("RGB", size, (hash(name) % 256, 90, 30)).save(buf, format="PNG")
        open(path, "wb").write(buf.getvalue())
    else:
        open(path, "wb").write(b"" if kind == "empty" else b"\xff\xd8\xff garbage")


def _is_bad(split, name, ext, kind):
    """Would --check report this entry? (junk pid -1, and pid 0 outside the gallery, are dropped unread)"""
    if ext == ".txt":
        return False
    if kind == "folder" or name in ("IMG_0001", "0002_x", "-2_c1s1_000007_00", "0003_c0s1_000006_00"):
        return True
    dropped = name.startswith("-1_") or (name.startswith("0000_") and split != "bounding_box_test")
    return kind in ("garbage", "empty") and not dropped


@SETTINGS
@given(st.fixed_dictionaries({s: st.one_of(st.none(), *[st.lists(ENTRY, max_size=5).map(
    lambda es, s=s: ([VALID[s]] if es and es[0][2] != "folder" else []) + es)] * 4)
    for s in ("bounding_box_train", "query", "bounding_box_test")}), st.booleans())
def test_fuzzed_market_folders(layout, check):
    with tempfile.TemporaryDirectory() as root:
        for split, entries in layout.items():
            if entries is None:
                continue
            os.makedirs(os.path.join(root, split))
            for e in entries:
                _write_entry(os.path.join(root, split), *e)
        r = _invoke("data", "info", root, "--dataset", "market1501", *(["--check"] if check else []))
        assert r.exit_code in (0, 1)
        if r.exit_code == 0:
            assert r.output.startswith("dataset market1501")
            assert not (check and any(_is_bad(split, *e) for split, es in layout.items() for e in es or ()))
        elif not r.output.startswith("dataset market1501"):  # refused before any table: one clear message
            assert r.output.startswith("Error: ") and root in r.output and len(r.output.strip().splitlines()) <= 2
        else:
            assert check and "problem" in r.output


CELL = st.sampled_from(["path", "pid", "camid", "split", "cam", "a.png", "d", "missing.png", "1", "0", "-1", "x",
                        "query", "gallery", "test", "", " 2 "])


@SETTINGS
@given(st.lists(st.lists(CELL, min_size=1, max_size=5), max_size=5))
def test_fuzzed_csv_lists(rows):
    with tempfile.TemporaryDirectory() as d:
        Image.new("RGB", (4, 8), (1, 2, 3)).save(os.path.join(d, "a.png"))
        os.makedirs(os.path.join(d, "d"))
        path = os.path.join(d, "list.csv")
        with open(path, "w") as fh:
            fh.write("".join(",".join(r) + "\n" for r in rows))
        r = _invoke("data", "info", path, "--dataset", "csv")
        assert r.exit_code in (0, 1)
        if r.exit_code == 1:  # the message names the list or the file it lists
            assert r.output.startswith("Error: ")
            assert any(x in r.output for x in ("list.csv", "a.png", os.path.join(d, "d"), "missing.png"))
