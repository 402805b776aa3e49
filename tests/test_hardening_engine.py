"""Issue 17, engine and models: configs that cannot learn are refused, non-finite weights and outputs are caught,
FeatureExtractor input messages point the right way, checkpoint messages never advise unpickling, and interrupted
writes leave no temporaries behind."""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from engine_support import INPUT, install_data_standins, make_dataset, tiny_config
from robustreid.config import ConfigError
from robustreid.data.sample import ReidDataset
from robustreid.engine import checkpoint as ckpt
from robustreid.engine.extract import FeatureExtractor, extract_features
from robustreid.engine.trainer import Trainer
from robustreid.models import build_model
from robustreid.models.pretrained import CheckpointMismatchError, check_state_dict, read_state_dict
from robustreid.utils.io import atomic_path, remove_stale_temporaries


FAST = ("train.deterministic=false",)  # torch's deterministic mode imports the compiler stack (seconds)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("fake"), train_ids=3, test_ids=2)


def _model(num_classes=3):
    torch.manual_seed(0)
    return build_model(tiny_config().model, num_classes).eval()


# ------------------------------------------------------------------------------ configs that cannot learn
def test_triplet_without_positives_or_negatives_is_refused():
    with pytest.raises(ConfigError, match=r"data.k=1 with the triplet loss.*no positive pair"):
        tiny_config("data.k=1")
    with pytest.raises(ConfigError, match=r"data.p=1 with the triplet loss.*no negative"):
        tiny_config("data.p=1")
    # without a triplet loss (or with weight 0) one image per identity is a valid ID-loss batch
    assert tiny_config("data.k=1", "losses=[{name: ce}]").data.k == 1
    assert tiny_config("data.k=1", "losses=[{name: ce}, {name: triplet, weight: 0}]").data.k == 1


def test_one_identity_is_refused_before_training(dataset, tmp_path, monkeypatch):
    install_data_standins(monkeypatch)
    one = ReidDataset("one", [s.replace(pid=0) for s in dataset.train if s.orig_pid == 0], dataset.query,
                      dataset.gallery, dataset.root)
    with pytest.raises(ValueError, match="one identity"):
        Trainer(tiny_config("data.p=1", "losses=[{name: ce}]", *FAST), tmp_path / "run", dataset=one).setup()
    assert not (tmp_path / "run" / "model.safetensors").exists()


# ------------------------------------------------------------------------------ non-finite weights and outputs
def test_checkpoint_with_nan_weights_is_refused(tmp_path):
    model = _model()
    with torch.no_grad():
        model.backbone.conv1.weight[0, 0, 0, 0] = float("nan")
    path = ckpt.save_weights(tmp_path / "m.safetensors", model, tiny_config().to_dict())
    with pytest.raises(ckpt.CheckpointError, match=r"m.safetensors: 1 weight tensor holds NaN.*backbone.conv1.weight"):
        ckpt.load_model(path)


class _NaNModel(torch.nn.Module):
    input_size = INPUT

    def forward(self, x):
        f = x.float().mean(dim=(2, 3))
        f[-1, 0] = float("nan")
        return f


def test_non_finite_features_are_caught_where_they_are_made(dataset):
    samples = dataset.query + dataset.gallery[:2]  # one batch; the model spoils its last row
    with pytest.raises(ValueError, match=r"non-finite.*1 of 4 images.*" + os.path.basename(samples[-1].path)):
        extract_features(_NaNModel(), samples, batch_size=4, progress=False, device="cpu")
    fx = FeatureExtractor(_NaNModel())
    with pytest.raises(ValueError, match="non-finite"):
        fx(torch.rand(2, 3, 8, 4))


# ------------------------------------------------------------------------------ FeatureExtractor inputs
def test_feature_extractor_input_messages():
    fx = FeatureExtractor(_model())
    x = torch.rand(1, 3, 8, 4)
    x[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        fx(x)
    with pytest.raises(ValueError, match=r"integer image arrays must be uint8.*int64"):
        fx(np.full((8, 4, 3), 100, dtype=np.int64))
    with pytest.raises(ValueError, match=r"integer image tensors must be uint8.*int32"):
        fx(torch.full((3, 8, 4), 100, dtype=torch.int32))
    with pytest.raises(ValueError, match=r"empty image \(0×0\)"):
        fx(np.zeros((0, 0, 3), np.uint8))
    with pytest.raises(ValueError, match=r"empty image \(8×0\)"):
        fx(torch.zeros(3, 8, 0, dtype=torch.uint8))
    assert fx(np.full((8, 4, 3), 100, dtype=np.uint8)).shape[0] == 1


def test_tiny_image_file_reaches_torch_as_a_writable_array(tmp_path, monkeypatch):
    path = tmp_path / "one.png"
    Image.fromarray(np.full((1, 1, 3), 200, np.uint8)).save(path)
    seen = []
    real = torch.from_numpy

    def spy(a):
        seen.append(a.flags.writeable)
        return real(a)

    monkeypatch.setattr(torch, "from_numpy", spy)
    fx = FeatureExtractor(_model())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        f = fx(str(path))
    assert f.shape[0] == 1 and seen and all(seen)


# ------------------------------------------------------------------------------ messages that point the wrong way
def test_classifier_hint_names_no_missing_option():
    model = build_model(tiny_config().model, 4)
    other = build_model(tiny_config().model, 7)
    with pytest.raises(CheckpointMismatchError) as e:
        check_state_dict(model, other.state_dict())
    msg = str(e.value)
    assert "classifier" in msg and "--num-classes" not in msg and "model.pretrained=" in msg


def test_pickle_refusal_never_suggests_unpickling(tmp_path):
    evil = tmp_path / "evil.pth"
    torch.save({"w": torch.zeros(2), "args": argparse.Namespace(lr=1)}, evil)
    for call in (read_state_dict, ckpt.load_state):
        with pytest.raises(ValueError) as e:
            call(evil)
        msg = str(e.value)
        assert "evil.pth" in msg and "argparse.Namespace" in msg
        assert "weights_only=False" not in msg and "add_safe_globals" not in msg and "\x1b[" not in msg
        assert len(msg.splitlines()) <= 2


# ------------------------------------------------------------------------------ leftovers
def _stale(folder, name):
    """A temporary left by an interrupted write of an older version (no writer id in its name), an hour old."""
    p = folder / f".{name}.k2j3h4_x.tmp{os.path.splitext(name)[1]}"
    p.write_bytes(b"")
    old = time.time() - 3600
    os.utime(p, (old, old))
    return p


def test_temporaries_of_dead_writers_are_removed_live_ones_kept(tmp_path):
    with atomic_path(tmp_path / "a.txt") as tmp:
        assert str(os.getpid()) in tmp.name  # the writer's id is in the name
        remove_stale_temporaries(tmp_path)
        assert tmp.exists()  # ours: kept
        tmp.write_text("x")
    assert (tmp_path / "a.txt").read_text() == "x"
    dead = tmp_path / ".b.txt.999999999-abc.tmp.txt"  # no such process
    dead.write_bytes(b"")
    young = tmp_path / ".c.txt.abcdefgh.tmp.txt"  # old-style name, just written: may be in use
    young.write_bytes(b"")
    stale = _stale(tmp_path, "d.txt")
    keep = tmp_path / ".hidden.txt"
    keep.write_bytes(b"")
    assert remove_stale_temporaries(tmp_path) == 2
    assert not dead.exists() and not stale.exists() and young.exists() and keep.exists()


def test_a_run_removes_leftover_temporaries(dataset, tmp_path, monkeypatch):
    from robustreid.robustness.results import ResultStore

    install_data_standins(monkeypatch)
    out = tmp_path / "run"
    out.mkdir()
    stale = _stale(out, "model.safetensors")
    young = _stale(out, "state.pt")
    os.utime(young)  # just written: may belong to a writer of an older version still running
    # the trainer cleans its directory first thing (this run then stops on the one-identity check, before the
    # optimiser: torch's optimisers import its compiler stack, seconds)
    one = ReidDataset("one", [s.replace(pid=0) for s in dataset.train if s.orig_pid == 0], dataset.query,
                      dataset.gallery, dataset.root)
    with pytest.raises(ValueError, match="one identity"):
        Trainer(tiny_config("losses=[{name: ce}]", *FAST), out, resume=True, dataset=one).setup()
    assert not stale.exists() and young.exists()
    bench = tmp_path / "bench"
    bench.mkdir()
    stale = _stale(bench, "results.jsonl")
    ResultStore(bench)
    assert not stale.exists()
