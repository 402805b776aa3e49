"""Issue 17, datasets: folders named like images are reported, `data info --check` fails when it finds problems,
test-only sets (no train images) load, CSV messages name the missing column and a listed folder."""

from __future__ import annotations

import os

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from robustreid.cli.main import cli
from robustreid.data import DatasetError, detect_dataset, load_dataset


def img(path, color=(10, 200, 30)):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new("RGB", (4, 8), color).save(path)
    return str(path)


def market(root, train=("0001_c1s1_000001_00.jpg", "0001_c2s1_000002_00.jpg"),
           query=("0002_c1s1_000001_00.jpg",), gallery=("0002_c2s1_000001_00.jpg", "0003_c2s1_000001_00.jpg")):
    for folder, names in (("bounding_box_train", train), ("query", query), ("bounding_box_test", gallery)):
        if names is None:
            continue
        os.makedirs(os.path.join(root, folder), exist_ok=True)
        for n in names:
            img(os.path.join(root, folder, n))
    return str(root)


def info(*args):
    r = CliRunner().invoke(cli, ["data", "info", *map(str, args)])
    assert r.exception is None or isinstance(r.exception, SystemExit), r.output
    return r


def test_folder_named_like_an_image_is_reported(tmp_path):
    root = market(tmp_path / "m")
    os.makedirs(os.path.join(root, "bounding_box_test", "0003_c3s1_000009_00.jpg"))
    with pytest.raises(DatasetError, match=r"0003_c3s1_000009_00.jpg: a folder named like an image"):
        load_dataset("market1501", root)
    ds = load_dataset("market1501", root, skip_bad=True)
    assert len(ds.gallery) == 2 and any("folder named like an image" in p for p in ds.problems)
    r = info(root, "--check")
    assert r.exit_code == 1 and "folder named like an image" in r.output


def test_info_check_fails_on_unreadable_images(tmp_path):
    root = market(tmp_path / "m")
    r = info(root, "--check")
    assert r.exit_code == 0 and "no problems found" in r.output
    with open(os.path.join(root, "bounding_box_test", "0003_c3s1_000002_00.jpg"), "wb") as f:
        f.write(b"\xff\xd8 not really a jpeg")
    r = info(root, "--check")
    assert r.exit_code == 1 and "0003_c3s1_000002_00.jpg" in r.output and "1 problem" in r.output


@pytest.mark.parametrize("train", [None, ()], ids=["missing", "empty"])
def test_test_only_market_layout_loads_with_a_note(tmp_path, train):
    root = market(tmp_path / "m", train=train)
    assert detect_dataset(root) == "market1501"
    ds = load_dataset("market1501", root)
    assert ds.train == [] and len(ds.query) == 1 and len(ds.gallery) == 2
    assert ds.extra.get("test_only") is True and "train" in ds.extra["note"]
    r = info(root)
    assert r.exit_code == 0 and "test-only" in r.output
    # every other split problem is still an error
    os.remove(os.path.join(root, "query", "0002_c1s1_000001_00.jpg"))
    with pytest.raises(DatasetError, match="no images found for the query split"):
        load_dataset("market1501", root)


def test_test_only_set_extracts_but_does_not_train(tmp_path):
    import torch

    from robustreid.engine.extract import extract_dataset_features
    from robustreid.engine.trainer import Trainer
    from engine_support import tiny_config

    root = market(tmp_path / "m", train=None)

    class Mean(torch.nn.Module):
        input_size = (8, 4)

        def forward(self, x):
            return x.float().mean(dim=(2, 3)) + torch.arange(3.0)

    fs = extract_dataset_features(Mean(), "market1501", root, device="cpu", progress=False)
    assert len(fs) == 3 and fs.features.shape == (3, 3)
    with pytest.raises(ValueError, match="no train images.*test-only"):
        Trainer(tiny_config(f"data.root={root}", "data.dataset=market1501", "train.deterministic=false"),
                tmp_path / "run").setup()


def test_csv_header_without_a_column_names_it(tmp_path):
    a = img(tmp_path / "a.png")
    (tmp_path / "l.csv").write_text(f"path,camid,split\n{a},0,query\n")
    with pytest.raises(DatasetError, match=r"l.csv: the CSV header has no 'pid' column \(it has path, camid, split\)"):
        load_dataset("csv", tmp_path / "l.csv")
    (tmp_path / "m.csv").write_text(f"pid,camid\n1,0\n")
    with pytest.raises(DatasetError, match="no 'path' column"):
        load_dataset("csv", tmp_path / "m.csv")
    (tmp_path / "n.csv").write_text(f"path,pid,cam\n{a},1,0\n")
    with pytest.raises(DatasetError, match=r"unknown CSV column\(s\) \['cam'\]"):
        load_dataset("csv", tmp_path / "n.csv")
    # a header-less file still reads, and a header in another order too
    (tmp_path / "o.csv").write_text(f"{a},1\n")
    assert len(load_dataset("csv", tmp_path / "o.csv").train) == 1
    (tmp_path / "p.csv").write_text(f"pid,path\n1,{a}\n")
    assert len(load_dataset("csv", tmp_path / "p.csv").train) == 1


def test_csv_row_naming_a_folder(tmp_path):
    os.makedirs(tmp_path / "d.jpg")
    (tmp_path / "l.csv").write_text("d.jpg,1\n")
    with pytest.raises(DatasetError, match=r"d.jpg: listed in .*l.csv:1 but it is a folder, not an image file"):
        load_dataset("csv", tmp_path / "l.csv")
    (tmp_path / "m.csv").write_text("missing.jpg,1\n")
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset("csv", tmp_path / "m.csv")


def test_folder_loader_reports_folders_named_like_images(tmp_path):
    img(tmp_path / "f" / "alice" / "1.jpg")
    img(tmp_path / "f" / "bob" / "1.jpg")
    os.makedirs(tmp_path / "f" / "stray.jpg" / "sub")  # an identity folder named like an image: still a folder
    img(tmp_path / "f" / "stray.jpg" / "sub" / "2.jpg")
    ds = load_dataset("folder", tmp_path / "f")
    assert len(ds.train) == 3  # a folder is a folder: its images are read, nothing is skipped silently
    assert np.unique([s.pid for s in ds.train]).size == 3
