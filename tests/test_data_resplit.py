"""Occluded-Duke rebuilt from a Duke-like source and name lists: placement, refusal, resume, atomicity, CLI."""

import os

import pytest
from click.testing import CliRunner

from robustreid.cli.data import data as data_cli
from robustreid.data import DatasetError, load_dataset
from robustreid.data import resplit
from robustreid.data.resplit import build_occluded_duke, read_name_list

# a tiny Duke: (folder, name) -> bytes that identify the file
SOURCE = {
    ("bounding_box_train", "0001_c1_f0000001.jpg"): b"t1",
    ("bounding_box_train", "0001_c2_f0000002.jpg"): b"t2",
    ("bounding_box_train", "0003_c1_f0000003.jpg"): b"t3",
    ("query", "0005_c1_f0000010.jpg"): b"q1",
    ("query", "0006_c1_f0000011.jpg"): b"q2",
    ("bounding_box_test", "0005_c2_f0000020.jpg"): b"g1",
    ("bounding_box_test", "0006_c2_f0000021.jpg"): b"g2",
    ("bounding_box_test", "0006_c3_f0000022.jpg"): b"g3",  # moved into the new query
    ("bounding_box_test", "0000_c3_f0000023.jpg"): b"g4",  # not listed: dropped
}
LISTS = {
    "train": ["0001_c1_f0000001.jpg", "0001_c2_f0000002.jpg", "0003_c1_f0000003.jpg"],
    "query": ["0005_c1_f0000010.jpg", "0006_c3_f0000022.jpg"],
    "gallery": ["0005_c2_f0000020.jpg", "0006_c2_f0000021.jpg", "0006_c1_f0000011.jpg"],  # a Duke query moved too
}


def _source(tmp_path):
    root = tmp_path / "DukeMTMC-reID"
    for (folder, name), content in SOURCE.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / name).write_bytes(content)
    return tmp_path  # the parent: the builder finds DukeMTMC-reID/ inside


def _lists(tmp_path, lists=LISTS):
    d = tmp_path / "lists"
    d.mkdir(exist_ok=True)
    for split, names in lists.items():
        (d / f"{split}.list").write_text("".join(n + "\n" for n in names) + "\n")
    return d


def _content(out, folder):
    return {p.name: p.read_bytes() for p in (out / folder).iterdir()}


def test_each_split_holds_exactly_its_listed_images_with_the_source_bytes(tmp_path):
    out = tmp_path / "Occluded_Duke"
    s = build_occluded_duke(str(_source(tmp_path)), str(_lists(tmp_path)), str(out))
    by_name = {name: content for (_, name), content in SOURCE.items()}
    for split, folder in resplit.MARKET_FOLDERS.items():
        assert _content(out, folder) == {n: by_name[n] for n in LISTS[split]}
    assert s["moved_between_splits"] == {"gallery": 1, "query": 1, "train": 0}
    assert s["linked"] + s["copied"] == 8 and not s["reused"]
    ds = load_dataset("occluded_duke", str(out))
    assert (len(ds.train), len(ds.query), len(ds.gallery)) == (3, 2, 3)
    assert all(q.occluded for q in ds.query) and len({s.pid for s in ds.train}) == 2


def test_hard_links_by_default_and_copies_on_request(tmp_path):
    src, lists = _source(tmp_path), _lists(tmp_path)
    build_occluded_duke(str(src), str(lists), str(tmp_path / "linked"))
    s = build_occluded_duke(str(src), str(lists), str(tmp_path / "copied"), link=False)
    original = src / "DukeMTMC-reID" / "query" / "0005_c1_f0000010.jpg"
    assert os.path.samefile(original, tmp_path / "linked" / "query" / "0005_c1_f0000010.jpg")
    assert not os.path.samefile(original, tmp_path / "copied" / "query" / "0005_c1_f0000010.jpg")
    assert (s["linked"], s["copied"]) == (0, 8)


def test_a_missing_image_names_the_list_and_writes_nothing(tmp_path):
    lists = dict(LISTS, gallery=LISTS["gallery"] + ["0009_c1_f0000099.jpg"])
    out = tmp_path / "Occluded_Duke"
    with pytest.raises(DatasetError, match=r"gallery\.list: 1 of 4 listed images .*0009_c1_f0000099\.jpg"):
        build_occluded_duke(str(_source(tmp_path)), str(_lists(tmp_path, lists)), str(out))
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".resplit-")]


def test_same_lists_again_is_a_no_op_other_lists_are_refused_unless_overwrite(tmp_path):
    src, out = _source(tmp_path), tmp_path / "Occluded_Duke"
    build_occluded_duke(str(src), str(_lists(tmp_path)), str(out))
    marker = out / "query" / "0005_c1_f0000010.jpg"
    mtime = marker.stat().st_mtime_ns
    assert build_occluded_duke(str(src), str(_lists(tmp_path)), str(out))["reused"]
    assert marker.stat().st_mtime_ns == mtime
    changed = dict(LISTS, train=LISTS["train"][:2])
    with pytest.raises(FileExistsError, match="other lists"):
        build_occluded_duke(str(src), str(_lists(tmp_path, changed)), str(out))
    s = build_occluded_duke(str(src), str(_lists(tmp_path, changed)), str(out), overwrite=True)
    assert not s["reused"] and sorted(_content(out, "bounding_box_train")) == sorted(changed["train"])


def test_an_existing_folder_not_built_by_the_command_is_not_replaced(tmp_path):
    out = tmp_path / "Occluded_Duke"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not built by this command"):
        build_occluded_duke(str(_source(tmp_path)), str(_lists(tmp_path)), str(out))
    assert (out / "keep.txt").read_text() == "mine"


def test_an_interrupted_build_leaves_neither_the_dataset_nor_its_temporary_folder(tmp_path, monkeypatch):
    calls = []

    def failing_place(src, dst, link):
        calls.append(dst)
        if len(calls) == 4:
            raise KeyboardInterrupt
        resplit.shutil.copyfile(src, dst)
        return False

    monkeypatch.setattr(resplit, "_place", failing_place)
    out = tmp_path / "Occluded_Duke"
    with pytest.raises(KeyboardInterrupt):
        build_occluded_duke(str(_source(tmp_path)), str(_lists(tmp_path)), str(out))
    assert len(calls) == 4 and not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".resplit-")]


@pytest.mark.parametrize("line, message", [("0001_c1.txt", "not an image name"),
                                           ("0001_c1_f0000001.jpg", "listed twice")])
def test_a_bad_list_line_is_named_with_its_line_number(tmp_path, line, message):
    p = tmp_path / "train.list"
    p.write_text("0001_c1_f0000001.jpg\n\n" + line + "\n")
    with pytest.raises(DatasetError, match=rf"train\.list:3: .*{message}"):
        read_name_list(str(p))


def test_a_source_without_the_market_layout_is_named(tmp_path):
    (tmp_path / "duke" / "query").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"duke: not a Market-layout dataset folder: missing bounding_box_train, bounding_box_test"):
        build_occluded_duke(str(tmp_path / "duke"), str(_lists(tmp_path)), str(tmp_path / "out"))


def test_cli_builds_then_reports_the_reuse_and_gives_one_line_errors(tmp_path):
    src, lists, out = _source(tmp_path), _lists(tmp_path), tmp_path / "Occluded_Duke"
    args = ["occluded-duke", "--duke", str(src), "--lists", str(lists), "--out", str(out)]
    r = CliRunner().invoke(data_cli, args)
    assert r.exit_code == 0, r.output
    assert "query 2  train 3" in r.output and "2 images taken from another Duke split" in r.output
    r = CliRunner().invoke(data_cli, args)
    assert r.exit_code == 0 and "already built" in r.output
    r = CliRunner().invoke(data_cli, ["occluded-duke", "--duke", str(src), "--lists", str(tmp_path / "nope"),
                                      "--out", str(tmp_path / "o2")])
    assert r.exit_code == 1 and "nope: folder of the Occluded-Duke lists not found" in r.output
    assert "Traceback" not in r.output
