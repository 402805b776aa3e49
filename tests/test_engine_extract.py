"""Extraction: order, flip, the native-size transform hook, FeatureExtractor input kinds, the extract CLI."""

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from engine_support import INPUT, NATIVE, install_data_standins, make_dataset, tiny_config
from robustreid.engine import checkpoint as ckpt
from robustreid.engine.extract import FeatureExtractor, extract_dataset_features, extract_features
from robustreid.models import build_model


@pytest.fixture(autouse=True)
def _standins(monkeypatch):
    install_data_standins(monkeypatch)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("fake"), train_ids=2, test_ids=3)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    cfg = tiny_config()
    torch.manual_seed(0)
    model = build_model(cfg.model, 4)
    path = ckpt.save_weights(tmp_path_factory.mktemp("ckpt") / "model.safetensors", model, cfg.to_dict())
    return path, ckpt.load_model(path)


def _reference(model, samples, flip=False):
    """Per image: decode, resize with the library resize, forward one at a time."""
    from robustreid.data import read_image
    from robustreid.transforms.functional import resize

    rows = []
    with torch.no_grad():
        for s in samples:
            x = resize(read_image(s.path).unsqueeze(0), INPUT)
            f = model(x)
            if flip:
                f = (f + model(x.flip(-1))) / 2
            rows.append(f[0])
    return torch.stack(rows).numpy()


def test_features_in_sample_order_and_flip(saved, dataset):
    _, model = saved
    samples = list(reversed(dataset.gallery))
    f = extract_features(model, samples, batch_size=5, progress=False)
    assert f.dtype == np.float32 and f.shape == (len(samples), model.feat_dim)
    np.testing.assert_allclose(f, _reference(model, samples), rtol=1e-4, atol=1e-5)
    ff = extract_features(model, samples, batch_size=4, flip=True, progress=False)
    np.testing.assert_allclose(ff, _reference(model, samples, flip=True), rtol=1e-4, atol=1e-5)
    assert not np.allclose(f, ff)


def test_transform_hook_sees_native_size(saved, dataset):
    _, model = saved
    seen = []

    def blackout(images, samples):
        seen.extend((tuple(im.shape), im.dtype, s.path) for im, s in zip(images, samples))
        return [torch.zeros_like(im) for im in images]

    samples = dataset.query
    f = extract_features(model, samples, batch_size=3, transform=blackout, progress=False)
    assert [s[0] for s in seen] == [(3,) + NATIVE] * len(samples)
    assert {s[1] for s in seen} == {torch.uint8}
    assert [s[2] for s in seen] == [s.path for s in samples]
    with torch.no_grad():
        black = model(torch.zeros((1, 3) + INPUT, dtype=torch.uint8)).numpy()
    np.testing.assert_allclose(f, np.repeat(black, len(samples), 0), rtol=1e-4, atol=1e-5)


def test_feature_extractor_input_kinds_agree(saved, dataset):
    path, model = saved
    fx = FeatureExtractor(path, batch_size=2)
    files = [s.path for s in dataset.query[:3]]
    arrays = [np.asarray(Image.open(p).convert("RGB")) for p in files]
    tensors = torch.stack([torch.from_numpy(a.copy()).permute(2, 0, 1) for a in arrays])
    ref = fx(files)
    assert ref.shape == (3, model.feat_dim) and ref.dtype == torch.float32
    np.testing.assert_allclose(ref.numpy(), _reference(model, dataset.query[:3]), rtol=1e-4, atol=1e-5)
    variants = {
        "one path": fx(files[0]),
        "PIL": fx([Image.open(p) for p in files]),
        "numpy HWC": fx(arrays),
        "numpy NHWC": fx(np.stack(arrays)),
        "tensor 3HW": fx(tensors[0]),
        "tensor N3HW": fx(tensors),
        "mixed list": fx([files[0], arrays[1], tensors[2]]),
    }
    for name, got in variants.items():
        np.testing.assert_allclose(got.numpy(), ref[: len(got)].numpy(), rtol=1e-4, atol=1e-5, err_msg=name)
    # float input in [0, 1] is resized in float: close to, not bit-equal to, the uint8 path
    got = fx(tensors.float() / 255)
    assert torch.allclose(got, ref, atol=0.05 * ref.abs().max().item())
    normed = fx(files, normalize=True)
    assert torch.allclose(normed.norm(dim=1), torch.ones(3), atol=1e-5)
    with pytest.raises(ValueError, match="N×H×W×3"):
        fx(np.zeros((4, 4), dtype=np.uint8))
    with pytest.raises(TypeError, match="cannot make an image"):
        fx(42)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fx(torch.full((3, 8, 8), 2.0))


def test_extract_dataset_features_and_cli(saved, dataset, tmp_path, monkeypatch):
    path, model = saved
    fs = extract_dataset_features(path, dataset, splits=("query", "gallery"), progress=False)
    assert len(fs) == len(dataset.query) + len(dataset.gallery)
    assert list(fs.split) == [0] * len(dataset.query) + [1] * len(dataset.gallery)
    assert fs.paths[0] == dataset.query[0].path and list(fs.pids[: len(dataset.query)]) == [s.pid for s in dataset.query]
    np.testing.assert_allclose(fs.features[: len(dataset.query)], _reference(model, dataset.query), rtol=1e-4,
                               atol=1e-5)

    import robustreid.data as data
    from robustreid.cli.main import cli
    from robustreid.eval.features import load_features

    monkeypatch.setattr(data, "load_dataset", lambda name, root, **kw: dataset, raising=False)
    out = tmp_path / "feats.safetensors"
    r = CliRunner().invoke(cli, ["extract", "--checkpoint", str(path), "--dataset", "fake", "--root", str(tmp_path),
                                 "--out", str(out), "--splits", "query,gallery", "--flip"])
    assert r.exit_code == 0, r.output
    got = load_features(out)
    assert len(got) == len(fs) and got.meta["flip"] == "True"
    r = CliRunner().invoke(cli, ["extract", "--checkpoint", str(path), "--dataset", "fake", "--root", str(tmp_path),
                                 "--out", str(out), "--splits", "query,bogus"])
    assert r.exit_code != 0 and "--splits" in r.output
    r = CliRunner().invoke(cli, ["extract", "--checkpoint", str(tmp_path), "--dataset", "fake", "--root",
                                 str(tmp_path), "--out", str(out)])
    assert r.exit_code != 0 and "run directory without" in r.output
