"""DDP on the CPU: two Gloo processes train a tiny model; replicas stay identical, ranks see disjoint identities,
evaluation gathers every feature to rank 0, only rank 0 writes files."""

import os

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from engine_support import free_port, join_gloo_env, make_dataset, tiny_config


def _worker(rank, world, port, dataset, out, result_dir):
    join_gloo_env(rank, world, port)
    from robustreid.engine import distributed as D
    from robustreid.engine.trainer import Trainer

    seen = []

    class Recording(Trainer):
        def train_step(self, batch, epoch, it):
            seen.append((epoch, it, [int(i) for i in batch["index"]], [int(p) for p in batch["pids"]]))
            return super().train_step(batch, epoch, it)

    cfg = tiny_config("solver.epochs=2", "solver.warmup_epochs=0", "train.max_iters_per_epoch=2",
                      "train.deterministic=false", "data.p=2")
    t = Recording(cfg, out, dataset=dataset)
    try:
        res = t.train()
    finally:
        t.close()
    flat = torch.cat([p.detach().reshape(-1) for p in t.model.parameters()])
    bufs = torch.cat([b.detach().float().reshape(-1) for b in t.model.buffers()])
    torch.save({"seen": seen, "params": flat, "buffers": bufs, "final": res["final"], "world": t.dist.world_size},
               os.path.join(result_dir, f"rank{rank}.pt"))
    D.cleanup()


@pytest.mark.timeout(120)
def test_two_gloo_processes(tmp_path):
    dataset = make_dataset(tmp_path / "data", train_ids=8, test_ids=3)
    out, res_dir = tmp_path / "run", tmp_path / "res"
    res_dir.mkdir()
    # fork: the workers start from this process's imports (a spawned worker imports torch and the package again,
    # the larger part of this test's time); each sets one thread before any parallel work
    mp.start_processes(_worker, args=(2, free_port(), dataset, str(out), str(res_dir)), nprocs=2, join=True,
                       start_method="fork")
    r0 = torch.load(res_dir / "rank0.pt", weights_only=True)
    r1 = torch.load(res_dir / "rank1.pt", weights_only=True)
    assert r0["world"] == r1["world"] == 2
    # replicas identical (parameters by DDP's all-reduce; buffers synchronised before evaluation)
    assert torch.equal(r0["params"], r1["params"])
    assert torch.equal(r0["buffers"], r1["buffers"])
    # same number of steps, and at every step the two ranks saw disjoint identities (hence disjoint images)
    assert [s[:2] for s in r0["seen"]] == [s[:2] for s in r1["seen"]] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    for a, b in zip(r0["seen"], r1["seen"]):
        assert not set(a[3]) & set(b[3])
        assert not set(a[2]) & set(b[2])
    for e in (0, 1):  # within an epoch too
        ids0 = {p for s in r0["seen"] if s[0] == e for p in s[3]}
        ids1 = {p for s in r1["seen"] if s[0] == e for p in s[3]}
        assert not ids0 & ids1
    # evaluation: rank 0 gathered all features; its result equals evaluating the saved model in one process
    assert r1["final"] == {}
    from robustreid.engine.checkpoint import load_model
    from robustreid.engine.extract import extract_features
    from robustreid.eval import evaluate
    import robustreid.data as data
    from engine_support import _standin_build_loader, provides

    if not provides(data, "build_loader"):
        data.build_loader = _standin_build_loader
        added = True
    else:
        added = False
    try:
        model = load_model(out / "model.safetensors")
        qf = extract_features(model, dataset.query, progress=False)
        gf = extract_features(model, dataset.gallery, progress=False)
    finally:
        if added:
            del data.build_loader
    ev = evaluate(qf, gf, np.array([s.pid for s in dataset.query]), np.array([s.pid for s in dataset.gallery]),
                  np.array([s.camid for s in dataset.query]), np.array([s.camid for s in dataset.gallery]))
    assert r0["final"]["mAP"] == pytest.approx(ev.mAP, abs=1e-6)
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "best.safetensors", "config.yaml", "metrics.jsonl", "model.safetensors", "state.pt", "train.log"]
