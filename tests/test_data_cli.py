"""`robustreid synth` and `robustreid data info` through click's runner."""

import os

from click.testing import CliRunner

from robustreid.cli.main import cli


def test_synth_then_info(tmp_path):
    out = str(tmp_path / "syn")
    r = CliRunner().invoke(cli, ["synth", "--out", out, "--identities", "6", "--cameras", "3", "--images-per-id", "4",
                                 "--size", "64x32", "--distractors", "2", "--junk", "1"])
    assert r.exit_code == 0, r.output
    assert "train 12" in r.output
    r = CliRunner().invoke(cli, ["data", "info", out])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0].startswith("dataset synthetic")
    train = next(line.split() for line in lines if line.startswith("train"))
    assert train[:4] == ["train", "12", "3", "3"]
    gallery = next(line.split() for line in lines if line.startswith("gallery"))
    assert gallery[4] == "2"  # distractors
    assert os.path.isfile(os.path.join(out, "manifest.csv"))


def test_info_errors_are_clear(tmp_path):
    r = CliRunner().invoke(cli, ["data", "info", str(tmp_path / "nowhere")])
    assert r.exit_code != 0 and "nowhere" in r.output and "Traceback" not in r.output
    os.makedirs(tmp_path / "m" / "bounding_box_train")
    r = CliRunner().invoke(cli, ["data", "info", str(tmp_path / "m"), "--dataset", "market1501"])
    assert r.exit_code != 0 and "missing" in r.output
    r = CliRunner().invoke(cli, ["synth", "--out", str(tmp_path / "s"), "--size", "12"])
    assert r.exit_code != 0 and "size" in r.output
