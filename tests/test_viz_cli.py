"""`robustreid viz actmap | gradcam | embed | ranks` end to end on tiny checkpoints of every model family."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from robustreid.cli.main import cli
from robustreid.engine.checkpoint import load_model
from robustreid.models import MODELS
from robustreid.viz.layers import default_layers
from viz_support import make_checkpoint, make_market

FAMILIES = {
    "resnet": ["model.input_size=[32,16]"],
    "lite": ["model.backbone=efficientnet_lite0", "model.backbone_kwargs={}", "model.input_size=[64,32]"],
    "vit": ["model.backbone=vit_tiny_patch16", "model.pooling=cls", "model.input_size=[64,32]",
            "model.backbone_kwargs={depth: 1, embed_dim: 32, num_heads: 2}"],
    "igoas": ["model.name=igoas", "model.input_size=[32,16]", "model.method_kwargs={dim: 16, cbam_reduction: 4}"],
    "fed": ["model.name=fed", "model.input_size=[64,32]", "model.method_kwargs={stripe_dim: 16, heads: 2}"],
}


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    return make_market(tmp_path_factory.mktemp("market"))


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    base = tmp_path_factory.mktemp("ckpt")
    out = {}
    for name, over in FAMILIES.items():
        method = next((o.split("=")[1] for o in over if o.startswith("model.name=")), "bot")
        if method in MODELS:  # a method model that has not landed yet is skipped
            out[name] = make_checkpoint(base / name / "model.safetensors", over)
    return out


def _run(*args):
    res = CliRunner().invoke(cli, ["viz", *map(str, args)])
    assert res.exit_code == 0, res.output
    return res.output


def _ckpt_args(checkpoints):
    return [x for n, p in checkpoints.items() for x in ("--checkpoint", f"{n}={p}")]


def _pngs_ok(out: Path, stems):
    for s in stems:
        with Image.open(out / f"{s}.png") as im:
            assert im.size[0] > 200 and im.size[1] > 100


def _sheet_images(html: Path) -> int:
    return len(re.findall(r'<img alt="[^"]+" src="data:image/png;base64,', html.read_text()))


def test_actmap_and_gradcam_on_every_family(market, checkpoints, tmp_path):
    common = [*_ckpt_args(checkpoints), "--dataset", "market1501", "--root", market, "--device", "cpu"]
    _run("actmap", *common, "--out", tmp_path, "--queries", "2", "--corruptions", "fog:2,occlusion_solid")
    _pngs_ok(tmp_path, [f"actmap_{n}" for n in checkpoints])
    assert _sheet_images(tmp_path / "actmap.html") == len(checkpoints)
    assert "robustreid viz actmap --checkpoint" in (tmp_path / "actmap.html").read_text()
    _run("gradcam", *common, "--out", tmp_path, "--queries", "0001_c1s1_000000_00.jpg,3", "--corruptions",
         "gaussian_noise:4", "--method", "gradcam++")
    _pngs_ok(tmp_path, [f"gradcam_{n}" for n in checkpoints])
    assert _sheet_images(tmp_path / "gradcam.html") == len(checkpoints)


def test_default_layers_per_family(checkpoints):
    expect = {"resnet": {"last stage": "backbone.layer4"}, "lite": {"last stage": "backbone.head"},
              "vit": {"last block": "backbone.blocks.0"},
              "igoas": {"global branch": "global_block", "suppression branch": "occ_att_out"},
              "fed": {"last stage": "backbone.layer4", "stripe scores (OEM)": "oem"}}
    for name, path in checkpoints.items():
        if name in expect:
            assert default_layers(load_model(path)) == expect[name], name
    if "vit" in checkpoints:
        assert default_layers(load_model(checkpoints["vit"]), "gradcam") == {
            "last block (attention input)": "backbone.blocks.0.norm1"}


def test_embed_and_ranks(market, checkpoints, tmp_path):
    common = ["--dataset", "market1501", "--root", market, "--device", "cpu", "--out", tmp_path]
    out = _run("embed", *_ckpt_args(checkpoints), *common, "--ids", "3", "--crops-per-id", "2",
               "--corruptions", "fog:3,gaussian_noise:5")
    _pngs_ok(tmp_path, [f"embed_{n}" for n in checkpoints])
    lines = (tmp_path / "embed_resnet.csv").read_text().splitlines()
    assert lines[0] == "crop,pid,version,x,y,cosine_displacement" and len(lines) == 1 + 3 * 6
    assert "mean cosine displacement" in out
    pair = {k: checkpoints[k] for k in ("resnet", "vit")}  # model A vs model B
    _run("ranks", *_ckpt_args(pair), *common, "--queries", "worst:2", "--corruption", "gaussian_noise:5",
         "--top", "5", "--no-progress")
    a, b = (json.loads((tmp_path / f"ranks_{n}.json").read_text()) for n in pair)
    assert a["queries"] == b["queries"] and len(a["queries"]) == 2 and len({p for p in a["query_pids"]}) == 2
    for rec in (a, b):
        for part in (rec["clean"], rec["corrupted"]["lists"]):
            for q, lst in zip(rec["queries"], part):
                pid = Path(q).name[:4]
                assert len(lst["gallery"]) == 5
                assert lst["match"] == [Path(g).name[:4] == pid for g in lst["gallery"]]
    assert _sheet_images(tmp_path / "ranks.html") == 1


def test_viz_errors_are_readable(market, checkpoints, tmp_path):
    ck = ["--checkpoint", str(next(iter(checkpoints.values())))]
    common = ["--dataset", "market1501", "--root", str(market), "--out", str(tmp_path), "--device", "cpu"]
    for args, msg in [(["actmap", *ck, *common, "--corruptions", "fogg:3"], "corruption 'fogg' is not registered"),
                      (["actmap", *ck, *common, "--layer", "backbone.layer9"], "closest: backbone.layer"),
                      (["gradcam", *ck, *common, "--queries", "99,0"], "query index 99 out of range"),
                      (["ranks", *ck, *common, "--corruption", "fog:7"], "severity must be 1..5"),
                      (["embed", "--checkpoint", str(tmp_path / "none"), *common], "does not exist")]:
        res = CliRunner().invoke(cli, ["viz", *args])
        assert res.exit_code != 0 and msg in res.output, (args, res.output)
        assert "Traceback" not in res.output
    res = CliRunner().invoke(cli, ["viz", "actmap", *ck, *common, "--list-layers"])
    assert res.exit_code == 0 and "backbone.layer4\t" in res.output
