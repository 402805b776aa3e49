"""Stand-ins shared by the robustness and report tests: a tiny dataset on disk, a deterministic "model", test
corruptions and a reference evaluator written from the metric definitions (per query, the textbook way)."""

from __future__ import annotations

import contextlib
import types
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from robustreid.corruptions import CORRUPTION_REGISTRY
from robustreid.corruptions.base import rand_per_image
from robustreid.data.sample import ReidDataset, Sample

BOOM = {"armed": True}


def _identity(images, severity, seeds):
    return images.clone()


def _noise(images, severity, seeds):
    n = rand_per_image("randn", images.shape[1:], seeds, device=images.device)
    return (images.float() + n * 40.0 * severity).round().clamp(0, 255).to(torch.uint8)


def _boom(images, severity, seeds):
    if BOOM["armed"]:
        raise RuntimeError("boom inside a cell")
    return images.clone()


TEST_CORRUPTIONS = {"test_identity": _identity, "test_noise": _noise, "test_boom": _boom}


@contextlib.contextmanager
def registered_test_corruptions():
    """Register the test corruptions for the duration of a test module only (so that other test modules that
    iterate over the registry never see them)."""
    for name, fn in TEST_CORRUPTIONS.items():
        CORRUPTION_REGISTRY.add(name, fn, override=True)
    try:
        yield
    finally:
        for name in TEST_CORRUPTIONS:
            CORRUPTION_REGISTRY._items.pop(name, None)


class StripeModel:
    """Mean colour of 4 horizontal stripes (12-d), after resizing to input_size: per-image, batch-independent."""

    input_size = (16, 8)
    fingerprint = "stripes-v1"

    def __init__(self):
        self.calls = 0
        self.images = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.images += x.shape[0]
        x = x.float() / 255.0
        n, c, h, w = x.shape
        return x.reshape(n, c, 4, h // 4, w).mean(dim=(3, 4)).reshape(n, c * 4)


def make_dataset(root: Path, n_ids: int = 6, per_cam: int = 2, cams: int = 2, name: str = "tiny",
                 odd_shape_every: int = 4) -> ReidDataset:
    """Identities = a colour layout of stripes plus per-image noise; some crops have another native size."""
    rng = np.random.default_rng(123)
    root.mkdir(parents=True, exist_ok=True)
    query, gallery = [], []
    k = 0
    for pid in range(1, n_ids + 1):
        base = rng.integers(30, 225, size=(4, 3))
        for cam in range(cams):
            for j in range(per_cam):
                h, w = (20, 10) if k % odd_shape_every == 0 else (16, 8)
                img = np.repeat(base, h // 4, axis=0)[:, None, :].repeat(w, axis=1)
                if img.shape[0] < h:
                    img = np.concatenate([img, img[-1:].repeat(h - img.shape[0], axis=0)])
                cast = np.array([40.0, 0.0, -40.0]) * (1 if cam else -1)  # per-camera colour cast
                img = np.clip(img + cast + rng.normal(0, 45, size=img.shape), 0, 255).astype(np.uint8)
                rel = f"{'query' if j == 0 and cam == 0 else 'gallery'}/{pid:04d}_c{cam + 1}_{j}.png"
                p = root / rel
                p.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(img).save(p)
                s = Sample(str(p), pid, cam)
                (query if j == 0 and cam == 0 else gallery).append(s)
                k += 1
    return ReidDataset(name, [], query, gallery, str(root))


def reference_evaluate(qf, gf, q_pids, g_pids, q_camids, g_camids, metric="cosine", max_rank=50):
    """Per-query textbook CMC / non-interpolated AP / mINP (ties: stable by gallery index)."""
    qf = np.asarray(qf, dtype=np.float64)
    gf = np.asarray(gf, dtype=np.float64)
    qf = qf / np.maximum(np.linalg.norm(qf, axis=1, keepdims=True), 1e-12)
    gf = gf / np.maximum(np.linalg.norm(gf, axis=1, keepdims=True), 1e-12)
    dist = 1 - qf @ gf.T
    cmc_sum = np.zeros(max_rank)
    aps, inps = [], []
    for i in range(len(qf)):
        order = np.argsort(dist[i], kind="stable")
        keep = [j for j in order if not ((g_pids[j] == q_pids[i] and g_camids[j] == q_camids[i]) or g_pids[j] == -1)]
        matches = np.array([g_pids[j] == q_pids[i] for j in keep], dtype=float)
        if matches.sum() == 0:
            continue
        first = int(np.argmax(matches))
        cmc = np.zeros(max_rank)
        cmc[first:] = 1 if first < max_rank else 0
        cmc_sum += cmc
        hits = np.nonzero(matches)[0]
        aps.append(np.mean([(k + 1) / (r + 1) for k, r in enumerate(hits)]))
        inps.append(len(hits) / (hits[-1] + 1))
    n = len(aps)
    return types.SimpleNamespace(mAP=float(np.mean(aps)), mINP=float(np.mean(inps)), cmc=cmc_sum / n,
                                 num_valid_queries=n)


def corrupted_features(model, samples, dataset, corruption, severity, pass_index, seed, root):
    """Features computed image by image, straight from the seeding rule (independent of the runner)."""
    from robustreid.corruptions import corrupt, image_seed
    from robustreid.robustness.extract import _resize, read_image_any

    out = []
    for s in samples:
        rel = str(Path(s.path).relative_to(root)).replace("\\", "/")
        img = read_image_any(s.path)[None]
        img = corrupt(img, corruption, severity, [image_seed(dataset, rel, corruption, severity, pass_index, seed)])
        out.append(model(_resize(img, model.input_size))[0].numpy())
    return np.stack(out)


def test_helpers_reference_evaluator_hand_case():
    # one query, gallery ranks: [wrong, right, wrong, right] -> AP = (1/2 + 2/4)/2 = 0.5, R1 = 0, mINP = 2/4
    qf = np.array([[1.0, 0.0]])
    gf = np.array([[1.0, 0.01], [1.0, 0.1], [1.0, 0.3], [1.0, 0.5]])
    res = reference_evaluate(qf, gf, np.array([1]), np.array([2, 1, 3, 1]), np.array([0]), np.array([1, 1, 1, 1]),
                             max_rank=4)
    assert res.mAP == 0.5 and res.mINP == 0.5
    assert list(res.cmc) == [0, 1, 1, 1]
