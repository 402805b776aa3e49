"""Across processes: two Gloo processes share the benchmark's cells and the extraction's images through the real CLI
(`robustreid bench` / `robustreid extract` joining the process group as under torchrun); the merged results equal
a one-process run exactly (same rows, same order, same bits), and a resumed distributed run skips finished cells."""

from __future__ import annotations

import csv
import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from click.testing import CliRunner

from engine_support import make_dataset, tiny_config
from robustreid.cli.main import cli
from robustreid.engine import distributed as D
from robustreid.eval.features import load_features
from robustreid.robustness.results import COLUMNS

TIMING = ("extract_s", "corrupt_s", "metrics_s")
KEEP = 4  # rows left after the simulated interruption: the clean cell + the 3 cells of the first sweep group


def _free_ports(n: int):
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return tuple(s.getsockname()[1] for s in socks)
    finally:
        for s in socks:
            s.close()


def _bench_args(ckpt, root, out):
    # 7 groups (clean, 2 corruptions x 2 severities, 2 mix passes) over 2 ranks: 4 rounds, the last one incomplete;
    # query 4 images = 1 batch of 4 (rank 1 gets no clean query batch), gallery 12 = 3 batches
    return ["bench", "--checkpoint", f"tiny={ckpt}", "--dataset", "csv", "--root", str(root), "--out", str(out),
            "--corruptions", "gaussian_noise,pixelate", "--severities", "1,3", "--mode", "sweep,mix",
            "--mix-passes", "2", "--batch-size", "4", "--examples", "2", "--device", "cpu", "--no-progress"]


def _extract_args(ckpt, root, out):
    return ["extract", "--checkpoint", str(ckpt), "--dataset", "csv", "--root", str(root), "--out", str(out),
            "--splits", "query,gallery,train", "--batch-size", "3", "--device", "cpu"]


class _Counter:
    """Counts the images that reach the model (wraps robustreid.engine.extract.forward_features)."""

    def __init__(self):
        import robustreid.engine.extract as E

        self.n, self._E, self._orig = 0, E, E.forward_features

        def counting(model, images, flip=False):
            self.n += int(images.shape[0])
            return self._orig(model, images, flip=flip)

        E.forward_features = counting

    def close(self):
        self._E.forward_features = self._orig


def _cli(args):
    cli.main(args=[str(a) for a in args], prog_name="robustreid", standalone_mode=False)


def _worker(rank, world, ports, ckpt, root, work):
    # torchrun's environment: the first command joins the group from it (init_distributed) and leaves it after
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(ports[0]), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    import torch.distributed as dist

    counts = {}
    out = Path(work) / "dist"
    c = _Counter()
    _cli(_bench_args(ckpt, root, out))
    assert not dist.is_initialized()
    counts["bench"], c.n = c.n, 0
    os.environ["MASTER_PORT"] = str(ports[1])
    dist.init_process_group("gloo")  # from here on the commands join this group and leave it up
    _cli(_extract_args(ckpt, root, Path(work) / "dist.safetensors"))
    assert dist.is_initialized()
    counts["extract"], c.n = c.n, 0
    if rank == 0:  # an interruption: keep the first KEEP rows (each row is written whole, so any prefix can remain)
        (Path(work) / "dist_full.csv").write_text((out / "results.csv").read_text())
        lines = (out / "results.csv").read_text().splitlines(keepends=True)
        (out / "results.csv").write_text("".join(lines[:1 + KEEP]))
    dist.barrier()
    _cli(_bench_args(ckpt, root, out))
    counts["resume"] = c.n
    c.close()
    (Path(work) / f"counts{rank}.json").write_text(json.dumps(counts))
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from robustreid.engine import checkpoint as ckpt
    from robustreid.models import build_model

    work = tmp_path_factory.mktemp("dist")
    ds = make_dataset(work / "data", train_ids=2, test_ids=4)
    with open(work / "data" / "list.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "pid", "camid", "split"])
        for split in ("train", "query", "gallery"):
            for s in ds.split(split):
                w.writerow([os.path.relpath(s.path, work / "data"), s.pid, s.camid, split])
    cfg = tiny_config()
    torch.manual_seed(0)
    path = ckpt.save_weights(work / "ckpt" / "model.safetensors", build_model(cfg.model, 2), cfg.to_dict())
    return path, work / "data", work


@pytest.fixture(scope="module")
def runs(setup):
    """The one-process reference (same thread count as the workers), then the two-process run."""
    ckpt, root, work = setup
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    c = _Counter()
    try:
        res = CliRunner().invoke(cli, [str(a) for a in _bench_args(ckpt, root, work / "ref")])
        assert res.exit_code == 0, res.output
        single_images = c.n
        res = CliRunner().invoke(cli, [str(a) for a in _extract_args(ckpt, root, work / "ref.safetensors")])
        assert res.exit_code == 0, res.output
    finally:
        c.close()
        torch.set_num_threads(threads)
    mp.spawn(_worker, args=(2, _free_ports(2), str(ckpt), str(root), str(work)), nprocs=2, join=True)
    counts = [json.loads((work / f"counts{r}.json").read_text()) for r in range(2)]
    return work, single_images, counts


def _rows(path):
    with open(path, newline="") as f:
        return [{k: v for k, v in r.items() if k not in TIMING} for r in csv.DictReader(f)]


def test_merged_bench_results_equal_one_process_exactly(runs):
    work, single_images, counts = runs
    ref = _rows(work / "ref" / "results.csv")
    assert len(ref) == 1 + 4 * 3 + 2 * 3
    assert _rows(work / "dist_full.csv") == ref  # same rows, same order, metrics to the last bit (repr floats)
    jl = lambda d: [{k: v for k, v in json.loads(x).items() if k not in TIMING}  # noqa: E731
                    for x in (d / "results.jsonl").read_text().splitlines()]
    assert jl(work / "dist") == jl(work / "ref")
    assert list(json.loads((work / "dist" / "results.jsonl").read_text().splitlines()[0])) == list(COLUMNS)
    for split in ("query", "gallery"):  # the clean cache: sharded extraction, gathered, written by rank 0
        a = load_features(work / "ref" / "cache" / "tiny" / f"{split}.safetensors")
        b = load_features(work / "dist" / "cache" / "tiny" / f"{split}.safetensors")
        assert np.array_equal(a.features, b.features) and a.paths == b.paths and a.meta == b.meta
    ex_ref = json.loads((work / "ref" / "examples" / "tiny.json").read_text())
    assert "corrupted" in ex_ref  # the rank that owned the example group sent its ranked lists to rank 0
    assert json.loads((work / "dist" / "examples" / "tiny.json").read_text()) == ex_ref
    # the work was split, not repeated: both ranks worked and together saw exactly the one-process images
    assert counts[0]["bench"] > 0 and counts[1]["bench"] > 0
    assert counts[0]["bench"] + counts[1]["bench"] == single_images == 4 + 12 + 6 * (4 + 12)


def test_extract_across_processes_equals_one_process(runs):
    work, _, counts = runs
    a, b = load_features(work / "ref.safetensors"), load_features(work / "dist.safetensors")
    assert len(a) == 24 and a.features.dtype == np.float32
    assert np.array_equal(a.features, b.features)  # bit-identical: each image in a batch of the same composition
    assert a.paths == b.paths and a.meta == b.meta
    for k in ("pids", "camids", "split"):
        assert np.array_equal(getattr(a, k), getattr(b, k))
    assert counts[0]["extract"] > 0 and counts[1]["extract"] > 0
    assert counts[0]["extract"] + counts[1]["extract"] == 24


def test_resumed_distributed_run_skips_done_cells(runs):
    work, _, counts = runs
    # after the interruption the results are whole again and equal the one-process run
    assert _rows(work / "dist" / "results.csv") == _rows(work / "ref" / "results.csv")
    # only the 5 unfinished groups ran (clean from the cache, examples kept): 5 x (4 query + 12 gallery) images
    assert counts[0]["resume"] + counts[1]["resume"] == 5 * 16
    assert counts[0]["resume"] > 0 and counts[1]["resume"] > 0


@pytest.mark.parametrize("n,bs,world", [(0, 4, 2), (4, 4, 2), (12, 4, 2), (13, 4, 3), (100, 7, 4), (5, 1, 8)])
def test_batch_shard_whole_batches_in_order(n, bs, world):
    shares = [D.batch_shard(n, bs, r, world) for r in range(world)]
    assert [i for s in shares for i in s] == list(range(n))  # disjoint, complete, in rank order
    for s in shares:
        if len(s):
            assert s.start % bs == 0 and (s.stop % bs == 0 or s.stop == n)  # batch boundaries as in one process
    batches = [-(-len(s) // bs) for s in shares]
    assert max(batches) - min(batches) <= 1  # balanced by batch count


def test_team_of_one_process_is_the_plain_runner(tmp_path):
    from robustreid.robustness.distributed import SOLO, Team
    from robustreid.robustness.results import ResultStore

    t = Team.current()
    assert (t.rank, t.world, t.enabled) == (0, 1, False)
    store = SOLO.store(tmp_path)
    assert isinstance(store, ResultStore)
    assert list(SOLO.share(["a", "b", "c"], store)) == ["a", "b", "c"]
    assert SOLO.on_main(lambda: 5) == 5 and SOLO.agree("x") == "x"
