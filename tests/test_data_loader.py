"""build_loader / ImageDataset: batch format, resizing, native-size lists, cache, PK sampler, seeded shuffling."""

import os

import numpy as np
import pytest
import torch
from PIL import Image

from robustreid.data import ImageDataset, ImageReadError, PKSampler, Sample, build_loader


@pytest.fixture()
def samples(tmp_path):
    out = []
    rng = np.random.default_rng(0)
    for i in range(10):
        h, w = (20 + 2 * i, 10 + i)
        arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        p = os.path.join(tmp_path, f"{i}.png")
        Image.fromarray(arr).save(p)
        out.append(Sample(p, pid=i // 2, camid=i % 3))
    return out


def test_resized_batches(samples):
    dl = build_loader(samples, batch_size=4, size=(16, 8))
    batches = list(dl)
    assert [len(b["pids"]) for b in batches] == [4, 4, 2]
    b = batches[0]
    assert b["images"].dtype == torch.uint8 and b["images"].shape == (4, 3, 16, 8)
    assert b["pids"].tolist() == [0, 0, 1, 1] and b["camids"].tolist() == [0, 1, 2, 0]
    assert b["index"].tolist() == [0, 1, 2, 3]


def test_native_size_is_a_list(samples):
    b = next(iter(build_loader(samples, batch_size=3)))
    assert isinstance(b["images"], list)
    assert [tuple(t.shape) for t in b["images"]] == [(3, 20, 10), (3, 22, 11), (3, 24, 12)]
    arr = np.asarray(Image.open(samples[1].path))
    assert np.array_equal(b["images"][1].permute(1, 2, 0).numpy(), arr)


def test_cache_decodes_once(samples, monkeypatch):
    ds = ImageDataset(samples, size=(16, 8), cache=True)
    first = ds[3]["image"].clone()
    os.remove(samples[3].path)  # a cached image is served from memory
    assert torch.equal(ds[3]["image"], first)
    with pytest.raises(ImageReadError, match="4.png"):
        os.remove(samples[4].path)
        ds[4]
    ds2 = ImageDataset(samples[:3], cache=True)
    ds2.precompute()
    assert ds2[2]["image"].shape == (3, 24, 12)


def test_train_shuffle_is_seeded_and_pk_sampler(samples):
    order = lambda seed: torch.cat([b["index"] for b in build_loader(samples, batch_size=5, size=8, train=True, seed=seed)])
    assert torch.equal(order(1), order(1))
    assert sorted(order(1).tolist()) == list(range(10))
    sampler = PKSampler([s.pid for s in samples], p=2, k=2, seed=0)
    dl = build_loader(samples, batch_size=4, size=(16, 8), sampler=sampler, train=True)
    for b in dl:
        pids = b["pids"].tolist()
        assert pids[0] == pids[1] and pids[2] == pids[3] and pids[0] != pids[2]


def test_cache_with_a_worker_is_precomputed(samples):
    dl = build_loader(samples[:4], batch_size=2, size=(16, 8), num_workers=1, cache=True)
    assert bool(dl.dataset._filled.all())  # decoded once in this process, shared with the worker
    imgs = torch.cat([b["images"] for b in dl])
    ref = build_loader(samples[:4], batch_size=4, size=(16, 8))
    assert torch.equal(imgs, next(iter(ref))["images"])
