"""Shared helpers of the engine tests: a tiny on-disk dataset and a tiny config (fast on 1 CPU thread)."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import List

import numpy as np
from PIL import Image

from robustreid.data.sample import ReidDataset, Sample
from robustreid.engine.config import TrainConfig, load_train_config

NATIVE = (40, 20)  # stored image size (H, W): differs from the model input so resizing is exercised
INPUT = (32, 16)


def _person(rng: np.random.Generator, pid: int, cam: int) -> np.ndarray:
    """A crude identity-coloured figure: top/bottom colours fixed per id, light per camera, noise per image."""
    h, w = NATIVE
    base = np.random.default_rng(1000 + pid)
    top, bottom = base.integers(30, 225, 3), base.integers(30, 225, 3)
    img = np.empty((h, w, 3), dtype=np.float32)
    img[: h // 2] = top
    img[h // 2:] = bottom
    img += (cam - 1) * 10 + rng.normal(0, 12, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_dataset(root: Path, train_ids: int = 6, test_ids: int = 4, per_cam: int = 2, cams: int = 2) -> ReidDataset:
    root = Path(root)
    rng = np.random.default_rng(0)
    train: List[Sample] = []
    query: List[Sample] = []
    gallery: List[Sample] = []
    for pid in range(train_ids + test_ids):
        for cam in range(cams):
            for j in range(per_cam):
                split = "train" if pid < train_ids else ("query" if cam == 0 and j == 0 else "gallery")
                folder = root / split
                folder.mkdir(parents=True, exist_ok=True)
                path = folder / f"{pid:04d}_c{cam + 1}_{j:02d}.png"
                Image.fromarray(_person(rng, pid, cam)).save(path)
                if split == "train":
                    train.append(Sample(str(path), pid, cam, orig_pid=pid))
                elif split == "query":
                    query.append(Sample(str(path), pid, cam, orig_pid=pid))
                else:
                    gallery.append(Sample(str(path), pid, cam, orig_pid=pid))
    return ReidDataset("fake", train, query, gallery, str(root))


def tiny_config(*overrides: str) -> TrainConfig:
    base = [
        "model.backbone=resnet18", "model.backbone_kwargs={width: 0.125}", f"model.input_size=[{INPUT[0]}, {INPUT[1]}]",
        "data.p=3", "data.k=2", "data.pad=2", "data.num_workers=0", "data.cache=false",
        "solver.optimizer=sgd", "solver.lr=0.05", "solver.epochs=2", "solver.warmup_epochs=1", "solver.steps=[1]",
        "train.device=cpu", "train.deterministic=true", "train.progress=false", "train.log_period=1",
        "eval.batch_size=8",
    ]
    return load_train_config("base", base + list(overrides))


# ---------------------------------------------------------------- stand-ins until robustreid.data lands
def _standin_read_image(path):
    import torch

    return torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).copy()).permute(2, 0, 1).contiguous()


class _StandinPKSampler:
    """P identities × K images per batch; identities of each epoch split across ranks; deterministic in (seed, epoch)."""

    def __init__(self, pids, p, k, seed=0, rank=0, world_size=1, repeats=1):
        self.pids, self.p, self.k, self.seed, self.rank, self.world = list(pids), p, k, seed, rank, world_size
        self.epoch = 0
        self.by_pid = {}
        for i, pid in enumerate(self.pids):
            self.by_pid.setdefault(pid, []).append(i)

    def set_epoch(self, e):
        self.epoch = e

    def state_dict(self):
        return {"epoch": self.epoch, "seed": self.seed}

    def load_state_dict(self, s):
        self.epoch = s["epoch"]

    def _batches(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        ids = sorted(self.by_pid)
        rng.shuffle(ids)
        mine = ids[self.rank::self.world]
        n = (len(ids) // self.world) // self.p
        out = []
        for b in range(n):
            for pid in mine[b * self.p:(b + 1) * self.p]:
                idx = self.by_pid[pid]
                out += list(rng.choice(idx, self.k, replace=len(idx) < self.k))
        return [int(i) for i in out]

    def __iter__(self):
        return iter(self._batches())

    def __len__(self):
        return ((len(self.by_pid) // self.world) // self.p) * self.p * self.k


def _standin_build_loader(samples, *, batch_size, size=None, train=False, sampler=None, num_workers=0, cache=False,
                          seed=0, drop_last=False):
    import torch

    from robustreid.transforms.functional import resize

    class DS(torch.utils.data.Dataset):
        def __len__(self):
            return len(samples)

        def __getitem__(self, i):
            img = _standin_read_image(samples[i].path)
            if size is not None:
                img = resize(img.unsqueeze(0), size)[0]
            return img, samples[i].pid, samples[i].camid, i

    def collate(items):
        imgs = [it[0] for it in items]
        return {"images": torch.stack(imgs) if size is not None else imgs,
                "pids": torch.tensor([it[1] for it in items]), "camids": torch.tensor([it[2] for it in items]),
                "index": torch.tensor([it[3] for it in items])}

    return torch.utils.data.DataLoader(DS(), batch_size=batch_size, sampler=sampler, shuffle=False,
                                       num_workers=num_workers, collate_fn=collate, drop_last=drop_last)


STANDINS = (("read_image", _standin_read_image), ("PKSampler", _StandinPKSampler),
            ("build_loader", _standin_build_loader))


def install_data_standins(monkeypatch) -> None:
    """Use the stand-ins only for what ``robustreid.data`` does not provide yet."""
    import robustreid.data as data

    for name, fn in STANDINS:
        if not provides(data, name):
            monkeypatch.setattr(data, name, fn, raising=False)


def provides(module, name: str) -> bool:
    try:
        getattr(module, name)
    except (AttributeError, ImportError):
        return False
    return True


def free_port() -> int:
    """A free TCP port on the loopback interface, for a test's Gloo process group."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def join_gloo_env(rank: int, world: int, port: int) -> None:
    """In a spawned test process: the torchrun-style environment of ``rank`` among ``world`` on ``port``, one torch
    thread, and the data stand-ins for what ``robustreid.data`` does not provide yet."""
    import torch

    import robustreid.data as data

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    for name, fn in STANDINS:
        if not provides(data, name):
            setattr(data, name, fn)
