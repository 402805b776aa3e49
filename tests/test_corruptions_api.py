"""API contract of robustreid.corruptions: every registered corruption (all families, iterated from the registry)
returns a new uint8 tensor of the same shape, leaves its input alone, is deterministic per image whatever the
batch or thread count, and bad input gives a clear error."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from robustreid.corruptions import CORRUPTION_REGISTRY, CORRUPTIONS, FAMILIES, OCCLUSIONS, corrupt, image_seed
from robustreid.corruptions.base import resolve_seeds
from robustreid.utils.seed import derive_seed

NAMES = sorted(CORRUPTION_REGISTRY.names())
DETERMINISTIC = {"brightness", "contrast", "saturate", "pixelate", "jpeg_compression", "defocus_blur",
                 "gaussian_blur", "zoom_blur"}


def _images(n=6, h=72, w=36, seed=0):
    """Smooth random images with some structure (a bright block), uint8 N×3×H×W."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(n, 3, h // 6, w // 6, generator=g)
    x = torch.nn.functional.interpolate(base, size=(h, w), mode="bilinear", align_corners=False)
    x[:, :, h // 4:h // 2, w // 4:w // 2] = 0.9
    return (x * 255).to(torch.uint8)


@pytest.fixture(scope="module")
def batch():
    return _images()


def test_benchmark_names_are_registered():
    part_a = ["gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "defocus_blur", "glass_blur",
              "motion_blur", "zoom_blur", "gaussian_blur", "brightness", "contrast", "elastic_transform",
              "pixelate", "jpeg_compression", "saturate"]
    for name in part_a:
        assert name in CORRUPTION_REGISTRY
    assert len(CORRUPTIONS) == 20 and CORRUPTIONS[-1] == "rain"
    assert set(sum(FAMILIES.values(), ())) >= set(CORRUPTIONS) | set(OCCLUSIONS)


@pytest.mark.parametrize("name", NAMES)
def test_contract_shape_dtype_input_untouched_batch_independence(batch, name):
    x = batch.clone()
    seeds = [derive_seed("api", i) for i in range(x.shape[0])]
    for s in (1, 3, 5):
        out = corrupt(x, name, s, seed=seeds)
        assert out.dtype == torch.uint8 and out.shape == x.shape
        assert out.data_ptr() != x.data_ptr()
        assert torch.equal(x, batch), f"{name} modified its input"
        again = corrupt(x, name, s, seed=seeds)
        assert torch.equal(out, again), f"{name} severity {s} is not deterministic"
        if getattr(CORRUPTION_REGISTRY.get(name), "batch_dependent", False):
            continue  # documented exception (occlusion_pedestrian takes its donors from the batch)
        for i in (0, 3, 5):  # each image alone, with its own seed, gives the same result as inside the batch
            single = corrupt(x[i:i + 1], name, s, seed=[seeds[i]])
            assert torch.equal(single[0], out[i]), f"{name} severity {s}: image {i} depends on its batch"
        sub = corrupt(x[2:5], name, s, seed=seeds[2:5])
        assert torch.equal(sub, out[2:5])


@pytest.mark.parametrize("name", NAMES)
def test_seeds_matter_only_for_random_corruptions(batch, name):
    a = corrupt(batch, name, 3, seed=1)
    b = corrupt(batch, name, 3, seed=2)
    if name in DETERMINISTIC:
        assert torch.equal(a, b)
    else:
        assert not torch.equal(a, b), f"{name}: different seeds gave identical outputs"


@pytest.mark.parametrize("name", NAMES)
def test_thread_count_independence(name):
    x = _images(n=20, h=64, w=32, seed=3)  # more than one CPU chunk
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        a = corrupt(x, name, 4, seed=11)
        torch.set_num_threads(2)
        b = corrupt(x, name, 4, seed=11)
    finally:
        torch.set_num_threads(old)
    assert torch.equal(a, b)


def test_corruptions_change_the_image(batch):
    for name in NAMES:
        out = corrupt(batch, name, 5, seed=0)
        assert not torch.equal(out, batch), f"{name} at severity 5 left the images unchanged"


def test_severity_increases_damage_for_blur_and_noise():
    x = _images(n=8, h=96, w=48, seed=4)
    for name in ("gaussian_noise", "shot_noise", "impulse_noise", "gaussian_blur", "defocus_blur", "contrast"):
        err = [(corrupt(x, name, s, seed=0).float() - x.float()).abs().mean().item() for s in range(1, 6)]
        assert err == sorted(err), f"{name}: damage per severity {err}"


def test_bad_inputs_give_clear_errors(batch):
    with pytest.raises(ValueError, match="uint8"):
        corrupt(batch.float(), "gaussian_noise", 1)
    with pytest.raises(ValueError, match="N×3×H×W"):
        corrupt(batch[:, :1], "gaussian_noise", 1)
    with pytest.raises(ValueError, match="N×3×H×W"):
        corrupt(batch[0], "gaussian_noise", 1)
    with pytest.raises(TypeError, match="torch tensor"):
        corrupt(batch.numpy(), "gaussian_noise", 1)
    for sev in (0, 6, 2.0, "3"):
        with pytest.raises(ValueError, match="severity"):
            corrupt(batch, "gaussian_noise", sev)
    with pytest.raises(KeyError, match="no_such_corruption"):
        corrupt(batch, "no_such_corruption", 1)
    with pytest.raises(ValueError, match="seeds"):
        corrupt(batch, "gaussian_noise", 1, seed=[1, 2])


@pytest.mark.parametrize("size", [(1, 1), (5, 3), (8, 8)])
def test_tiny_images(size):
    x = _images(n=2, h=12, w=12)[:, :, :size[0], :size[1]].contiguous()
    for name in NAMES:
        for s in (1, 5):
            out = corrupt(x, name, s, seed=0)
            assert out.shape == x.shape and out.dtype == torch.uint8


def test_empty_batch():
    x = torch.zeros(0, 3, 16, 16, dtype=torch.uint8)
    assert corrupt(x, "gaussian_noise", 1).shape == x.shape


def test_int_seed_rule():
    assert resolve_seeds(7, 3) == [derive_seed(7, i) for i in range(3)]
    x = _images(n=3)
    a = corrupt(x, "gaussian_noise", 2, seed=7)
    b = corrupt(x, "gaussian_noise", 2, seed=[derive_seed(7, i) for i in range(3)])
    assert torch.equal(a, b)


def test_image_seed_stable_and_distinct():
    ref = derive_seed("robustreid.corrupt", "market1501", "query/0001_c1s1_000151_00.jpg", "fog", 3, 0, 0)
    assert image_seed("market1501", "query/0001_c1s1_000151_00.jpg", "fog", 3) == ref
    assert image_seed("market1501", "query\\0001_c1s1_000151_00.jpg", "fog", 3) == ref  # Windows separators
    base = ("market1501", "query/a.jpg", "fog", 3, 0, 0)
    seen = {image_seed(*base)}
    for i, other in enumerate(["msmt17", "query/b.jpg", "snow", 4, 1, 9]):
        args = list(base)
        args[i] = other
        seen.add(image_seed(*args))
    assert len(seen) == 7
    assert 0 <= ref < 2 ** 63
    # the same in a fresh process with another hash seed
    code = ("from robustreid.corruptions import image_seed;"
            "print(image_seed('market1501', 'query/0001_c1s1_000151_00.jpg', 'fog', 3))")
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert int(out.stdout.strip()) == ref


def test_noise_statistics_follow_definition():
    """Gaussian noise on a mid-gray image: the std of the noise is σ·255 (before clipping, which mid-gray avoids
    at severity 1); impulse noise hits about ``amount`` of the values, half 0, half 255."""
    x = torch.full((4, 3, 64, 64), 128, dtype=torch.uint8)
    out = corrupt(x, "gaussian_noise", 1, seed=0).float()
    assert abs((out - 128).std().item() - 0.08 * 255) < 0.5
    out = corrupt(x, "impulse_noise", 5, seed=0)
    hit = (out != 128).float().mean().item()
    assert abs(hit - 0.27) < 0.01
    assert abs((out == 255).float().mean().item() - 0.135) < 0.01


def test_shot_noise_is_poisson():
    from scipy import stats

    from robustreid.corruptions.noise import poisson_uint8

    v = torch.full((1, 100000), 128, dtype=torch.uint8)
    k = poisson_uint8(v, 60.0, [3]).numpy().ravel()
    r = 128 / 255 * 60
    ks = np.arange(int(r - 4 * r ** 0.5), int(r + 4 * r ** 0.5))
    obs = np.array([(k == i).sum() for i in ks])
    exp = stats.poisson.pmf(ks, r)
    exp = exp / exp.sum() * obs.sum()
    assert stats.chisquare(obs, exp).pvalue > 1e-3
    assert abs(k.mean() - r) < 0.1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("name", NAMES)
def test_cpu_cuda_agree(batch, name):
    a = corrupt(batch, name, 3, seed=5)
    b = corrupt(batch.cuda(), name, 3, seed=5).cpu()
    if name == "jpeg_compression":
        assert torch.equal(a, b)
    else:
        assert (a.int() - b.int()).abs().float().mean() < 0.5


# ------------------------------------------------------------------------------------------------- writer + CLI

def _fake_market(root, n_query=3, n_gallery=4, n_train=2, h=64, w=32):
    """A tiny dataset in Market layout (JPEG, plus one PNG in the gallery)."""
    from PIL import Image

    g = torch.Generator().manual_seed(7)
    for split, n in (("bounding_box_train", n_train), ("query", n_query), ("bounding_box_test", n_gallery)):
        d = root / split
        d.mkdir(parents=True)
        for i in range(n):
            img = _images(1, h, w, seed=int(torch.randint(1000, (1,), generator=g)))[0]
            ext = "png" if (split == "bounding_box_test" and i == 0) else "jpg"
            Image.fromarray(img.permute(1, 2, 0).numpy()).save(d / f"{i % 3 + 1:04d}_c{i % 2 + 1}s1_{i:06d}_00.{ext}")
    return root


def _load(root):
    from robustreid.data.datasets import load_dataset

    return load_dataset("market1501", str(root))


def _tree_bytes(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.is_symlink() and p.parent.name != "bounding_box_train"}


def test_writer_sweep_layout_manifest_and_content(tmp_path):
    from PIL import Image

    from robustreid.corruptions.writer import corrupt_dataset, read_image_rgb, read_manifest

    ds = _load(_fake_market(tmp_path / "mk"))
    out = tmp_path / "out"
    summ = corrupt_dataset(ds, out, "gaussian_noise,contrast", "1,4", seed=3, progress=False)
    assert summ.written == 2 * 2 * 7 and summ.skipped == 0
    rows = read_manifest(out / "manifest.csv")
    assert len(rows) == 28 and len({r["file"] for r in rows}) == 28
    for r in rows:
        f = out / r["file"]
        assert f.exists()
        src = r["source"]
        assert r["file"] == f"{r['corruption']}/{r['severity']}/{src}"  # original layout and names
        assert int(r["seed"]) == image_seed("market1501", src, r["corruption"], int(r["severity"]), 0, 3)
        if src.endswith(".png"):  # lossless: exactly corrupt() of the source with that seed
            clean = read_image_rgb(tmp_path / "mk" / src)[None]
            expect = corrupt(clean, r["corruption"], int(r["severity"]), seed=[int(r["seed"])])[0]
            assert torch.equal(read_image_rgb(f), expect)
        else:
            assert Image.open(f).format == "JPEG"
    # a copy is a loadable dataset (train linked in), with the same samples
    copy = _load(out / "contrast" / "4")
    assert len(copy.query) == 3 and len(copy.gallery) == 4 and len(copy.train) == 2


def test_writer_byte_identical_and_resume(tmp_path):
    from robustreid.corruptions.writer import corrupt_dataset, read_manifest

    ds = _load(_fake_market(tmp_path / "mk"))
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    corrupt_dataset(ds, a, "motion_blur,glass_blur,brightness", "2", seed=5, progress=False)
    corrupt_dataset(ds, b, "motion_blur,glass_blur,brightness", "2", seed=5, progress=False)
    ta = _tree_bytes(a)
    assert ta == _tree_bytes(b) and len(ta) == 3 * 7 + 2
    # interrupted run: 8 images, a lost manifest row and a torn line, then resume
    s1 = corrupt_dataset(ds, c, "motion_blur,glass_blur,brightness", "2", seed=5, progress=False, limit=8,
                         batch_size=3)
    assert s1.written == 8
    man = c / "manifest.csv"
    lines = man.read_text().splitlines(keepends=True)
    man.write_text("".join(lines[:-1]) + "motion_blur/2/query/00")  # drop the last row, add a torn line
    s2 = corrupt_dataset(ds, c, "motion_blur,glass_blur,brightness", "2", seed=5, progress=False)
    assert s2.skipped == 8 and s2.written == 13
    rows = read_manifest(man)
    assert sorted(r["file"] for r in rows) == sorted(r["file"] for r in read_manifest(a / "manifest.csv"))
    assert {k: v for k, v in _tree_bytes(c).items() if k != "manifest.csv"} == \
        {k: v for k, v in ta.items() if k != "manifest.csv"}


def test_writer_mix_protocol(tmp_path):
    from robustreid.corruptions.writer import corrupt_dataset, mix_choice, read_manifest

    ds = _load(_fake_market(tmp_path / "mk", n_query=6, n_gallery=6))
    names = ["gaussian_noise", "contrast", "pixelate"]
    corrupt_dataset(ds, tmp_path / "m", names, "1-5", mode="mix", seed=9, passes=2, progress=False)
    rows = read_manifest(tmp_path / "m" / "manifest.csv")
    assert len(rows) == 2 * 12
    for r in rows:
        p = int(r["pass"])
        assert r["file"] == f"mix/pass{p}/{r['source']}"
        assert (r["corruption"], int(r["severity"])) == mix_choice("market1501", r["source"], names,
                                                                  [1, 2, 3, 4, 5], p, 9)
        assert int(r["seed"]) == image_seed("market1501", r["source"], r["corruption"], int(r["severity"]), p, 9)
    # the same rule as the robustness runner's on-the-fly mix protocol
    from robustreid.robustness.protocols import mix_choice as runner_choice

    for r in rows:
        assert runner_choice("market1501", r["source"], int(r["pass"]), 9, names, [1, 2, 3, 4, 5]) == \
            (r["corruption"], int(r["severity"]))
    # draws vary over images and passes
    assert len({(r["corruption"], r["severity"]) for r in rows}) > 3
    # the choice is uniform over corruptions and severities (checked on many names, from the definition)
    picks = [mix_choice("d", f"q/{i}.jpg", names, [1, 2, 3, 4, 5]) for i in range(3000)]
    for n in names:
        assert abs(sum(p[0] == n for p in picks) / 3000 - 1 / 3) < 0.04
    for s in range(1, 6):
        assert abs(sum(p[1] == s for p in picks) / 3000 - 0.2) < 0.03


def test_writer_rejects_bad_arguments(tmp_path):
    from robustreid.corruptions.writer import CorruptWriteError, corrupt_dataset, parse_corruptions, \
        parse_severities

    assert parse_severities("1-3") == [1, 2, 3] and parse_severities("5,1") == [1, 5]
    assert parse_corruptions("all") == list(CORRUPTIONS)
    assert parse_corruptions("noise,contrast") == list(FAMILIES["noise"]) + ["contrast"]
    for bad in ("0-2", "x", "6", ""):
        with pytest.raises(CorruptWriteError, match="severities"):
            parse_severities(bad)
    with pytest.raises(CorruptWriteError, match="unknown corruption 'fogg'"):
        parse_corruptions("fog,fogg")
    ds = _load(_fake_market(tmp_path / "mk"))
    corrupt_dataset(ds, tmp_path / "o", "contrast", "1", seed=1, progress=False)
    with pytest.raises(CorruptWriteError, match="seed"):
        corrupt_dataset(ds, tmp_path / "o", "contrast", "1", seed=2, progress=False)
    with pytest.raises(CorruptWriteError, match="mode"):
        corrupt_dataset(ds, tmp_path / "o2", "contrast", "1", mode="random", progress=False)


def test_cli_sweep_and_preview(tmp_path):
    from click.testing import CliRunner
    from PIL import Image

    from robustreid.cli.main import cli

    root = _fake_market(tmp_path / "mk")
    runner = CliRunner()
    args = ["corrupt", "--dataset", "market1501", "--root", str(root), "--out", str(tmp_path / "o"),
            "--corruptions", "pixelate,gaussian_blur", "--severities", "2-3", "--seed", "4", "--no-progress"]
    res = runner.invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "wrote 28 images" in res.output
    assert (tmp_path / "o" / "pixelate" / "3" / "query" / "0001_c1s1_000000_00.jpg").exists()
    res = runner.invoke(cli, args)
    assert res.exit_code == 0 and "wrote 0 images, 28 already present" in res.output
    res = runner.invoke(cli, args[:-3] + ["--severities", "7"])
    assert res.exit_code != 0 and "severities" in res.output and "Traceback" not in res.output
    res = runner.invoke(cli, ["corrupt", "--dataset", "market1501", "--root", str(tmp_path / "missing"),
                              "--out", str(tmp_path / "x")])
    assert res.exit_code != 0 and "missing" in res.output
    res = runner.invoke(cli, args[:-1] + ["--device", "tpu:x"])
    assert res.exit_code != 0 and "torch device" in res.output
    img = root / "query" / "0001_c1s1_000000_00.jpg"
    res = runner.invoke(cli, ["corrupt", "preview", str(img), "--out", str(tmp_path / "g.png"),
                              "--corruptions", "contrast,shot_noise,fog"])
    assert res.exit_code == 0, res.output
    g = Image.open(tmp_path / "g.png")
    assert g.size[1] > 3 * 64 and g.size[0] > 6 * 32


def test_writer_png_format_and_sweep_passes(tmp_path):
    from robustreid.corruptions.writer import corrupt_dataset, read_image_rgb, read_manifest

    ds = _load(_fake_market(tmp_path / "mk", n_query=2, n_gallery=2))
    out = tmp_path / "o"
    corrupt_dataset(ds, out, "shot_noise", "2", seed=1, passes=2, image_format="png", progress=False)
    rows = read_manifest(out / "manifest.csv")
    assert len(rows) == 2 * 4
    for r in rows:
        p = int(r["pass"])
        stem = r["source"].rsplit(".", 1)[0]
        assert r["file"] == f"shot_noise/2/pass{p}/{stem}.png"
        clean = read_image_rgb(tmp_path / "mk" / r["source"])[None]
        expect = corrupt(clean, "shot_noise", 2, seed=[image_seed("market1501", r["source"], "shot_noise", 2, p, 1)])
        assert torch.equal(read_image_rgb(out / r["file"]), expect[0])  # lossless
    a = read_image_rgb(out / "shot_noise/2/pass0/query/0001_c1s1_000000_00.png")
    b = read_image_rgb(out / "shot_noise/2/pass1/query/0001_c1s1_000000_00.png")
    assert not torch.equal(a, b)  # passes are independent draws
    assert len(_load(out / "shot_noise" / "2" / "pass1").query) == 2


def test_mix_rule_lives_with_the_corruptions_and_matches_its_definition():
    """The corruption suite must not know the benchmark: no module of robustreid.corruptions imports
    robustreid.robustness (or models, engine, eval); the writer and the benchmark share corruptions.mix."""
    import ast
    import random
    from pathlib import Path

    import robustreid.corruptions as pkg
    from robustreid.corruptions import mix, writer
    from robustreid.robustness import protocols

    forbidden = ("robustreid.robustness", "robustreid.models", "robustreid.engine", "robustreid.eval")
    for f in Path(pkg.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom):
                target = "robustreid." + "corruptions." * (node.level == 1) + (node.module or "") \
                    if node.level else node.module or ""
            elif isinstance(node, ast.Import):
                target = " ".join(a.name for a in node.names)
            else:
                continue
            assert not any(t in target for t in forbidden), f"{f.name} imports {target}"
    assert protocols.mix_choice is mix.mix_choice and protocols.MIX == mix.MIX == "mix"
    names, sevs = ["fog", "contrast", "pixelate"], [1, 2, 3, 4, 5]
    for i in range(50):
        rel = f"query/{i:04d}_c1s1_000000_00.jpg"
        rng = random.Random(derive_seed("market1501", rel, "mix", 1, 7))  # the definition, written out
        expect = (names[rng.randrange(3)], sevs[rng.randrange(5)])
        assert mix.mix_choice("market1501", rel, 1, 7, names, sevs) == expect
        assert writer.mix_choice("market1501", rel, names, sevs, 1, 7) == expect
    with pytest.raises(ValueError, match="at least one corruption"):
        mix.mix_choice("d", "q/a.jpg", 0, 0, [], sevs)


@pytest.mark.parametrize("size", [(128, 64), (37, 21), (1, 1)])
def test_jpeg_is_pils_encode_and_decode_bit_for_bit(size):
    """The fast decode (PIL's JPEG decoder on the bytes) gives exactly what Image.open gives, at every quality."""
    import io

    from PIL import Image

    x = torch.randint(0, 256, (2, 3) + size, generator=torch.Generator().manual_seed(3), dtype=torch.uint8)
    for s, quality in enumerate((25, 18, 15, 10, 7), 1):
        out = corrupt(x, "jpeg_compression", s, seed=0)
        for i in range(2):
            buf = io.BytesIO()
            Image.fromarray(x[i].permute(1, 2, 0).numpy()).save(buf, "JPEG", quality=quality)
            buf.seek(0)
            with Image.open(buf) as im:
                assert torch.equal(out[i], torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1)), (size, s)
