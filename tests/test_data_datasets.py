"""Every dataset loader on small fabricated folders, and every bad-input path."""

import os

import numpy as np
import pytest
from PIL import Image

from robustreid.data import DatasetError, detect_dataset, load_dataset


def img(path, color=(10, 200, 30)):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new("RGB", (4, 8), color).save(path, quality=90)
    return str(path)


def market_tree(root, *, train=(), query=(), gallery=()):
    for folder, names in (("bounding_box_train", train), ("query", query), ("bounding_box_test", gallery)):
        os.makedirs(os.path.join(root, folder), exist_ok=True)
        for n in names:
            img(os.path.join(root, folder, n))
    return str(root)


MARKET = dict(
    train=["0002_c1s1_000451_03.jpg", "0002_c2s1_000551_01.jpg", "0007_c3s1_000001_00.jpg",
           "-1_c1s1_000001_00.jpg", "0005_c6s1_000123_02.jpg"],
    query=["0003_c1s1_000001_00.jpg", "0004_c2s2_000002_00.jpg"],
    gallery=["0003_c2s1_000001_00.jpg", "0004_c5s1_000002_00.jpg", "0000_c1s1_000003_00.jpg",
             "-1_c3s1_000004_00.jpg", "0003_c1s1_000009_00.jpg"],
)


def test_market_conventions(tmp_path):
    root = market_tree(tmp_path / "Market-1501-v15.09.15", **MARKET)
    ds = load_dataset("market1501", tmp_path)  # finds the versioned folder inside root
    assert ds.root == root
    # pid -1 dropped; train relabelled in sorted order of original ids 2, 5, 7
    assert sorted((os.path.basename(s.path), s.pid, s.orig_pid, s.camid) for s in ds.train) == [
        ("0002_c1s1_000451_03.jpg", 0, 2, 0), ("0002_c2s1_000551_01.jpg", 0, 2, 1),
        ("0005_c6s1_000123_02.jpg", 1, 5, 5), ("0007_c3s1_000001_00.jpg", 2, 7, 2)]
    assert ds.num_train_pids == 3 and ds.num_train_cams == 4
    assert [(s.pid, s.camid) for s in ds.query] == [(3, 0), (4, 1)]
    # distractor pid 0 kept in the gallery, junk dropped, test pids keep their original value
    assert sorted((s.pid, s.camid) for s in ds.gallery) == [(0, 0), (3, 0), (3, 1), (4, 4)]
    assert detect_dataset(str(tmp_path)) == "market1501"


def test_duke_and_occluded_duke(tmp_path):
    duke = market_tree(tmp_path / "DukeMTMC-reID", train=["0001_c2_f0046182.jpg", "0001_c8_f0000001.jpg"],
                       query=["0005_c1_f0000002.jpg"], gallery=["0005_c7_f0000003.jpg", "0009_c3_f0000004.jpg"])
    ds = load_dataset("dukemtmc", tmp_path)
    assert [s.camid for s in ds.train] == [1, 7] and ds.num_train_pids == 1
    assert detect_dataset(str(tmp_path)) == "dukemtmc"
    occ = tmp_path / "x" / "Occluded_Duke"
    market_tree(occ, train=["0001_c2_f0046182.jpg"], query=["0005_c1_f0000002.jpg"],
                gallery=["0005_c7_f0000003.jpg"])
    ds = load_dataset("occluded_duke", tmp_path / "x")
    assert all(s.occluded for s in ds.query) and not any(s.occluded for s in ds.gallery)
    assert detect_dataset(str(occ)) == "occluded_duke"
    assert os.path.isdir(duke)


def test_cuhk03_variants(tmp_path):
    base = tmp_path / "cuhk03-np"
    market_tree(base / "detected", train=["0001_c1_1.png", "0001_c2_2.png"], query=["0010_c1_1.png"],
                gallery=["0010_c2_1.png"])
    market_tree(base / "labeled", train=["0001_c1_1.png", "0002_c1_2.png", "0003_c2_1.png"],
                query=["0010_c1_1.png"], gallery=["0010_c2_1.png"])
    d = load_dataset("cuhk03", tmp_path)
    lab = load_dataset("cuhk03", tmp_path, variant="labeled")
    assert d.num_train_pids == 1 and lab.num_train_pids == 3
    assert lab.extra["variant"] == "labeled" and lab.root.endswith("labeled")
    with pytest.raises(DatasetError, match="variant"):
        load_dataset("cuhk03", tmp_path, variant="both")


@pytest.mark.parametrize("version,dirs", [("v1", ("train", "test")), ("v2", ("mask_train_v2", "mask_test_v2"))])
def test_msmt17_lists(tmp_path, version, dirs):
    root = tmp_path / f"MSMT17_{version.upper()}"
    tr, te = dirs
    lists = {
        "list_train.txt": [(tr, "0000/0000_000_01_0303morning_0015_0.jpg", 0), (tr, "0000/0000_001_05_0303noon_0016_0.jpg", 0),
                           (tr, "0003/0003_000_15_0303morning_0020_1.jpg", 3)],
        "list_val.txt": [(tr, "0007/0007_000_02_0303morning_0001_0.jpg", 7)],
        "list_query.txt": [(te, "0000/0000_000_03_0303morning_0001_0.jpg", 0)],
        "list_gallery.txt": [(te, "0000/0000_001_04_0303morning_0002_0.jpg", 0),
                             (te, "0001/0001_001_04_0303morning_0003_0.jpg", 1)],
    }
    for name, rows in lists.items():
        lines = []
        for d, rel, pid in rows:
            img(root / d / rel)
            lines.append(f"{rel} {pid}")
        (root / name).write_text("\n".join(lines) + "\n")
    ds = load_dataset("msmt17", tmp_path)
    assert ds.extra["version"] == version
    assert sorted((s.orig_pid, s.pid, s.camid) for s in ds.train) == [(0, 0, 0), (0, 0, 4), (3, 1, 14), (7, 2, 1)]
    assert [(s.pid, s.camid) for s in ds.query] == [(0, 2)]
    assert sorted(s.pid for s in ds.gallery) == [0, 1]
    assert os.path.isfile(ds.query[0].path)
    assert len(load_dataset("msmt17", root, merge_val=False).train) == 3
    assert detect_dataset(str(tmp_path)) == "msmt17"
    (root / "list_query.txt").write_text("0000/0000_000_03_0303morning_0001_0.jpg zero\n")
    with pytest.raises(DatasetError, match=r"list_query.txt:1.*not an integer"):
        load_dataset("msmt17", root)


def test_occluded_and_partial_reid(tmp_path):
    o = tmp_path / "Occluded_REID"
    for pid in ("001", "002"):
        img(o / "occluded_body_images" / pid / f"{pid}_01.tif")
        img(o / "whole_body_images" / pid / f"{pid}_01.tif")
        img(o / "whole_body_images" / pid / f"{pid}_02.tif")
    ds = load_dataset("occluded_reid", tmp_path)
    assert ds.train == [] and {s.camid for s in ds.query} == {0} and {s.camid for s in ds.gallery} == {1}
    assert sorted({s.pid for s in ds.gallery}) == [1, 2] and all(s.occluded for s in ds.query)

    p = tmp_path / "Partial_REID"
    for pid in ("001", "002"):
        img(p / "partial_body_images" / f"{pid}_01.jpg")
        img(p / "whole_body_images" / f"{pid}_01.jpg")
    ds = load_dataset("partial_reid", p)
    assert ds.extra["query_dir"] == "partial_body_images" and len(ds.query) == 2
    img(p / "occluded_body_images" / "001_05.jpg")
    with pytest.raises(DatasetError, match="query_dir"):
        load_dataset("partial_reid", p)  # both candidate query folders exist: must be explicit
    ds = load_dataset("partial_reid", p, query_dir="occluded_body_images")
    assert [s.pid for s in ds.query] == [1]


def test_folder_tree_with_and_without_splits(tmp_path):
    flat = tmp_path / "flat"
    for ident in ("alice", "bob", "0042"):
        for k in range(3):
            img(flat / ident / f"frame {k}.jpg")  # awkward name with a space
    ds = load_dataset("folder", flat)
    assert len(ds.train) == 9 and ds.num_train_pids == 3 and ds.query == []
    assert {s.extra["identity"] for s in ds.train if s.orig_pid == 42} == {"0042"}
    test = load_dataset("folder", flat, test_split=True)
    assert len(test.query) == 3 and len(test.gallery) == 6
    assert {s.camid for s in test.query} == {0} and {s.camid for s in test.gallery} == {1}
    assert not {s.path for s in test.query} & {s.path for s in test.gallery}

    split = tmp_path / "split"
    img(split / "train" / "a" / "x_c1.jpg")
    img(split / "query" / "7" / "q_c2.jpg")
    img(split / "gallery" / "7" / "g_c3.jpg")
    img(split / "gallery" / "8" / "g_c1.jpg")
    ds = load_dataset("folder", split, camera_pattern=r"_c(\d+)")
    assert [(s.pid, s.camid) for s in ds.query] == [(7, 1)]
    assert sorted((s.pid, s.camid) for s in ds.gallery) == [(7, 2), (8, 0)]
    with pytest.raises(DatasetError, match="camera pattern"):
        img(split / "gallery" / "8" / "nocam.jpg")
        load_dataset("folder", split, camera_pattern=r"_c(\d+)")


def test_csv_with_and_without_cameras(tmp_path):
    for n in ("a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg"):
        img(tmp_path / "imgs" / n)
    (tmp_path / "list.csv").write_text(
        "path,pid,camid,split\nimgs/a.jpg,1,0,train\nimgs/b.jpg,1,2,train\nimgs/c.jpg,5,,query\n"
        "imgs/d.jpg,5,,gallery\nimgs/e.jpg,-1,1,gallery\n")
    ds = load_dataset("csv", tmp_path / "list.csv")
    assert [(s.pid, s.camid) for s in ds.train] == [(0, 0), (0, 2)]
    # unknown cameras: query camid 0, gallery camid 1, so same-camera filtering removes nothing
    assert [(s.pid, s.camid, s.extra["camera_known"]) for s in ds.query] == [(5, 0, False)]
    assert [(s.pid, s.camid) for s in ds.gallery] == [(5, 1)]
    # no header, two columns: everything is train with unknown cameras
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "only.csv").write_text(f"{tmp_path}/imgs/a.jpg,3\n{tmp_path}/imgs/b.jpg,4\n")
    ds = load_dataset("csv", tmp_path / "sub")
    assert [(s.pid, s.orig_pid, s.camid) for s in ds.train] == [(0, 3, 0), (1, 4, 0)]
    # the same file in query and gallery is removed from the gallery (no cameras to filter it)
    (tmp_path / "dup.csv").write_text("imgs/c.jpg,5,,query\nimgs/c.jpg,5,,gallery\nimgs/d.jpg,5,,gallery\n")
    ds = load_dataset("csv", tmp_path / "dup.csv")
    assert [os.path.basename(s.path) for s in ds.gallery] == ["d.jpg"] and ds.problems


def test_bad_inputs_name_the_file(tmp_path):
    with pytest.raises(DatasetError, match="folder not found"):
        load_dataset("market1501", tmp_path / "missing")
    root = market_tree(tmp_path / "m", train=["0001_c1s1_000001_00.jpg"], query=["0002_c1s1_000001_00.jpg"],
                       gallery=[])
    with pytest.raises(DatasetError, match="bounding_box_test.*no images"):
        load_dataset("market1501", root)
    img(os.path.join(root, "bounding_box_test", "0002_c2s1_000001_00.jpg"))
    img(os.path.join(root, "bounding_box_test", "IMG_1234.jpg"))
    with pytest.raises(DatasetError, match="IMG_1234.jpg.*does not parse"):
        load_dataset("market1501", root)
    # skip_bad: the unparseable name and a truncated JPEG are skipped and listed
    trunc = os.path.join(root, "bounding_box_test", "0002_c3s1_000002_00.jpg")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 32, 3), dtype=np.uint8)).save(trunc, quality=95)
    data = open(trunc, "rb").read()
    open(trunc, "wb").write(data[: len(data) // 3])
    ds = load_dataset("market1501", root, skip_bad=True)
    assert len(ds.gallery) == 1 and len(ds.problems) == 2
    assert any("IMG_1234.jpg" in p for p in ds.problems) and any("0002_c3s1_000002_00.jpg" in p for p in ds.problems)
    with pytest.raises(DatasetError, match="unknown dataset"):
        load_dataset("imagenet", root)
    with pytest.raises(DatasetError, match="CSV file not found"):
        load_dataset("csv", tmp_path / "none.csv")
    (tmp_path / "bad.csv").write_text("a.jpg,notanumber\n")
    with pytest.raises(DatasetError, match=r"bad.csv:1.*pid"):
        load_dataset("csv", tmp_path / "bad.csv")
