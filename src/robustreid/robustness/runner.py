"""The benchmark runner: every (model, protocol, corruption, severity, pass) cell, cached, resumable, reproducible.

    >>> from robustreid.robustness import run_benchmark
    >>> rows = run_benchmark({"bot": "runs/bot/best.safetensors"}, "market1501", "runs/bench", root="data/market",
    ...                      protocols="clean,query,gallery,both", modes="sweep", corruptions="all",
    ...                      severities="1-5", passes=1, seed=0)

How it works, per model:

1. the clean query and gallery features are extracted once and cached in ``DIR/cache/<model>/<split>.safetensors``
   (keyed by the checkpoint's hash, the dataset and the flip setting; a stale cache is recomputed);
2. the cells are grouped by (corruption, severity, pass): a group extracts the corrupted query features and/or the
   corrupted gallery features only when one of its unfinished protocols needs them, and evaluates
   query (corrupted q vs clean g), gallery (clean q vs corrupted g) and both from them;
3. each finished cell is appended atomically to ``DIR/results.csv`` and ``DIR/results.jsonl``; a re-run skips it.

Under ``torchrun`` the ranks share the work (:mod:`robustreid.robustness.distributed`): the clean extraction in
whole batches, the groups round-robin; rank 0 appends every rank's rows in the one-process order and alone writes
files.

Timing columns (``extract_s``, ``corrupt_s``, ``metrics_s``) are charged to the first cell of a group that needed
the work, so that their sums over a run are the time actually spent (the clean extraction is charged to the clean
cell when it is computed rather than read from the cache).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ..corruptions import family_of
from ..utils.io import atomic_write_text
from ..utils.progress import progress_bar
from .apply import CorruptionTransform
from .distributed import Team
from .protocols import (CORRUPTED_PROTOCOLS, MIX, NONE, SIDES, Cell, build_cells, parse_corruptions, parse_modes,
                        parse_protocols, parse_severities, relative_path)

log = logging.getLogger(__name__)

ModelLike = Union[str, Path, torch.nn.Module, Callable]


@dataclass
class BenchModel:
    """A model of the benchmark: its name, the callable, where it came from and what it saw in training."""

    name: str
    model: Callable
    checkpoint: Optional[str] = None
    fingerprint: Optional[str] = None
    info: Dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------------------- models
def file_fingerprint(path: Union[str, Path]) -> str:
    """sha256 of a checkpoint file, or of the *.safetensors files of a run directory."""
    path = Path(path)
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(path.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"checkpoint {path}: no such file, and no *.safetensors in it")
    for f in files:
        h.update(f.name.encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def module_fingerprint(model: torch.nn.Module) -> str:
    """sha256 of a module's state dict (names, shapes, bytes)."""
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        t = v.detach().cpu().contiguous().reshape(-1)
        h.update(str((tuple(t.shape), str(t.dtype))).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def default_model_name(checkpoint: Union[str, Path]) -> str:
    p = Path(checkpoint)
    if p.is_dir():
        return p.name or "model"
    if p.stem in ("model", "best", "last", "checkpoint") and p.parent.name:
        return p.parent.name
    return p.stem


def checkpoint_training_info(checkpoint: Union[str, Path]) -> Dict[str, Any]:
    """What the checkpoint's embedded config says about training: dataset, augmentations, corruptions seen.

    Reads the safetensors metadata only (no tensors, nothing unpickled). Corruptions seen = the ``corruptions``
    (minus ``holdout``) of every ``data.augs`` entry whose name mentions corruption; all 20 when it lists none.
    """
    from ..corruptions import CORRUPTIONS

    p = Path(checkpoint)
    files = [p] if p.is_file() else [f for f in (p / "best.safetensors", p / "model.safetensors") if f.exists()]
    info: Dict[str, Any] = {}
    if not files:
        return info
    try:
        from safetensors import safe_open

        with safe_open(str(files[0]), framework="pt") as f:
            meta = dict(f.metadata() or {})
    except Exception as e:  # noqa: BLE001 - report, never fail the benchmark on metadata
        return {"error": f"cannot read metadata of {files[0]}: {e}"}
    cfg = None
    for k in ("config", "train_config", "robustreid.config", "cfg"):
        if k in meta:
            try:
                cfg = json.loads(meta[k])
            except ValueError:
                try:
                    import yaml

                    cfg = yaml.safe_load(meta[k])
                except Exception:  # noqa: BLE001
                    cfg = None
            if isinstance(cfg, dict):
                break
    if not isinstance(cfg, dict):
        return info
    data = cfg.get("data") or {}
    info["train_dataset"] = data.get("dataset") or data.get("name")
    model = cfg.get("model") or {}
    info["architecture"] = model.get("name") or model.get("backbone")
    augs = data.get("augs") or cfg.get("augs") or []
    names, seen = [], []
    for a in augs if isinstance(augs, list) else []:
        if isinstance(a, str):
            a = {"name": a}
        if not isinstance(a, dict):
            continue
        n = str(a.get("name", ""))
        names.append(n)
        if "corrupt" in n:
            pool = a.get("corruptions") or list(CORRUPTIONS)
            hold = set(a.get("holdout") or [])
            for c in pool:
                if c not in hold and c not in seen:
                    seen.append(c)
    info["train_augs"] = names
    info["train_corruptions"] = seen
    return info


def resolve_models(models: Mapping[str, ModelLike] | Sequence[ModelLike], device) -> List[BenchModel]:
    """Load checkpoints (``robustreid.engine.checkpoint.load_model``) and name the models."""
    if not isinstance(models, Mapping):
        named: Dict[str, ModelLike] = {}
        for m in models:
            base = default_model_name(m) if isinstance(m, (str, Path)) else type(m).__name__
            name, k = base, 2
            while name in named:
                name, k = f"{base}_{k}", k + 1
            named[name] = m
        models = named
    out = []
    for name, m in models.items():
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"model name {name!r}: must be non-empty, without '/', not starting with '.'")
        if isinstance(m, (str, Path)):
            if not Path(m).exists():
                raise FileNotFoundError(f"checkpoint {m} (model {name!r}) does not exist")
            from ..engine.checkpoint import load_model  # type: ignore

            mod = load_model(str(m), device=device)
            out.append(BenchModel(name, mod, str(m), file_fingerprint(m), checkpoint_training_info(m)))
        elif isinstance(m, torch.nn.Module):
            m.eval()
            out.append(BenchModel(name, m, None, module_fingerprint(m), {}))
        elif callable(m):
            # a plain function has no weights to hash: its clean features are cached only if it declares a
            # ``fingerprint`` attribute (a string that changes whenever its output would)
            fp = getattr(m, "fingerprint", None)
            out.append(BenchModel(name, m, None, str(fp) if fp else None, {}))
        else:
            raise TypeError(f"model {name!r}: expected a checkpoint path, a torch module or a callable, "
                            f"got {type(m).__name__}")
    return out


# ---------------------------------------------------------------------------------------------------------- helpers
def _versions() -> Dict[str, str]:
    from .. import __version__

    v = {"robustreid": __version__, "python": platform.python_version(), "torch": torch.__version__,
         "numpy": np.__version__, "platform": platform.platform()}
    return v


def _device(device) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _eval_row(evaluator, qf, gf, q_pids, g_pids, q_cams, g_cams, max_rank) -> Dict[str, float]:
    res = evaluator(qf, gf, q_pids, g_pids, q_cams, g_cams, metric="cosine", max_rank=max_rank)
    cmc = np.asarray(res.cmc, dtype=np.float64)

    def at(k):
        return float(cmc[min(k, len(cmc)) - 1]) if len(cmc) else float("nan")

    return {"R1": at(1), "R5": at(5), "R10": at(10), "mAP": float(res.mAP), "mINP": float(res.mINP),
            **{col: (None if getattr(res, attr, None) is None else int(getattr(res, attr)))
               for col, attr in (("num_valid", "num_valid_queries"), ("num_skipped", "num_skipped_queries"),
                                 ("num_tied", "num_tied_queries"))}}


def topk_ranking(qf: np.ndarray, gf: np.ndarray, q_pids, g_pids, q_cams, g_cams, k: int = 10):
    """For each query: indices of its ``k`` nearest valid gallery items (cosine; same pid & camera and pid -1
    removed; ties by gallery index) and whether each is a match. Used for the report's ranked lists."""
    q = qf / np.maximum(np.linalg.norm(qf, axis=1, keepdims=True), 1e-12)
    g = gf / np.maximum(np.linalg.norm(gf, axis=1, keepdims=True), 1e-12)
    sim = q @ g.T
    out = []
    for i in range(len(q)):
        valid = ~(((g_pids == q_pids[i]) & (g_cams == q_cams[i])) | (g_pids == -1))
        idx = np.nonzero(valid)[0]
        order = idx[np.argsort(-sim[i, idx], kind="stable")][:k]
        out.append(([int(j) for j in order], [bool(g_pids[j] == q_pids[i]) for j in order]))
    return out


def subset_identities(ds, n: int):
    """The dataset restricted to ``n`` query identities spread evenly over the sorted query pids (deterministic):
    their query images and their gallery images, plus the gallery's distractors (pid 0) and junk (pid -1) thinned
    in the same proportion (every k-th one)."""
    from ..data.sample import ReidDataset

    pids = sorted({s.pid for s in ds.query})
    if n <= 0 or n >= len(pids):
        return ds
    step = len(pids) / n
    keep = {pids[int(i * step)] for i in range(n)}
    every = max(1, round(len(pids) / n))
    extra = [s for s in ds.gallery if s.pid in (0, -1)][::every]
    extra_set = {id(s) for s in extra}
    gallery = [s for s in ds.gallery if s.pid in keep or id(s) in extra_set]
    return ReidDataset(ds.name, ds.train, [s for s in ds.query if s.pid in keep], gallery, ds.root)


def _pick_example_queries(q_pids: np.ndarray, n: int) -> List[int]:
    """n queries of n different identities spread over the query list (deterministic)."""
    first: Dict[int, int] = {}
    for i, p in enumerate(q_pids.tolist()):
        first.setdefault(p, i)
    cand = list(first.values())
    if not cand:
        return []
    step = max(1, len(cand) // max(1, n))
    return cand[::step][:n]


# ----------------------------------------------------------------------------------------------------------- runner
def run_benchmark(models: Mapping[str, ModelLike] | Sequence[ModelLike], dataset, out_dir: Union[str, Path], *,
                  root: Optional[str] = None,
                  protocols: Union[str, Sequence[str]] = ("clean", "query", "gallery", "both"),
                  modes: Union[str, Sequence[str]] = ("sweep",), corruptions: Union[str, Sequence[str], None] = "all",
                  severities: Union[str, Sequence[int], int] = (1, 2, 3, 4, 5), passes: int = 1,
                  mix_passes: Optional[int] = None, mix_corruptions: Union[str, Sequence[str], None] = None,
                  mix_severities: Union[str, Sequence[int], int] = (1, 2, 3, 4, 5), seed: int = 0,
                  batch_size: int = 128, device=None, flip: bool = False, num_workers: int = 0,
                  reference_model: Optional[str] = None, max_rank: int = 50, examples: int = 6,
                  evaluator: Optional[Callable] = None, extractor: Optional[Callable] = None,
                  command: Optional[str] = None, progress: bool = True, mode: Optional[str] = None,
                  max_ids: int = 0) -> List[Dict]:
    """Run (or resume) a robustness benchmark into ``out_dir``; returns all rows of ``out_dir/results.csv``.

    ``models``: name -> checkpoint path / torch module / callable (uint8 N×3×H×W -> N×D), or a list (named after
    the checkpoints). ``dataset``: a ``ReidDataset`` or a dataset name loaded with
    ``robustreid.data.load_dataset(dataset, root)``. ``modes``: "sweep", "mix" or both. ``mix_corruptions``
    defaults to the chosen ``corruptions``; ``mix_passes`` to ``passes``. ``evaluator`` defaults to
    ``robustreid.eval.evaluate``; ``extractor`` to the engine's ``extract_features`` (plain callables use
    :func:`robustreid.robustness.extract.simple_extract`). ``max_ids`` > 0 evaluates on that many query identities
    only (:func:`subset_identities`; for quick looks — the numbers are then not comparable with full runs).
    """
    prots = parse_protocols(protocols)
    mds = parse_modes(mode if mode is not None else modes)
    corrs = parse_corruptions(corruptions)
    sevs = parse_severities(severities)
    mix_corrs = parse_corruptions(mix_corruptions) if mix_corruptions is not None else corrs
    mix_sevs = parse_severities(mix_severities)
    passes = int(passes)
    mix_passes = int(mix_passes) if mix_passes is not None else passes
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    dev = _device(device)
    if evaluator is None:
        from ..eval import evaluate as evaluator  # type: ignore[attr-defined,no-redef]
    ds, ds_root = _bench_dataset(dataset, root, max_ids)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bms = resolve_models(models, dev)
    if reference_model is not None and reference_model not in [b.name for b in bms]:
        log.info("reference model %s is not in this run; the mCE ratio needs its rows in one of the report's runs",
                 reference_model)
    config = {
        "dataset": ds.name, "root": str(ds_root) if ds_root else None, "protocols": list(prots), "modes": list(mds),
        "corruptions": list(corrs), "severities": list(sevs), "passes": passes, "mix_passes": mix_passes,
        "mix_corruptions": list(mix_corrs), "mix_severities": list(mix_sevs), "seed": int(seed),
        "batch_size": int(batch_size), "device": str(dev), "flip": bool(flip), "num_workers": int(num_workers),
        "reference_model": reference_model, "max_rank": int(max_rank), "max_ids": int(max_ids or 0),
        "dataset_root": os.path.realpath(str(ds_root)) if ds_root else None,
        "dataset_files": dataset_fingerprint(list(ds.query) + list(ds.gallery), ds_root),
    }
    team = Team.current()  # one process, or the ranks of a torchrun launch
    team.on_main(lambda: _write_run_json(out, config, bms, command, len(ds.query), len(ds.gallery)))

    run = _Run(out=out, ds_name=ds.name, ds_root=ds_root, query=ds.query, gallery=ds.gallery,
               cells=build_cells(prots, mds, corrs, sevs, passes, mix_passes), store=team.store(out), team=team,
               evaluator=evaluator, extractor=extractor, device=dev, seed=int(seed), batch_size=batch_size,
               flip=flip, num_workers=num_workers, max_rank=max_rank, examples=examples, progress=progress,
               mix_corruptions=list(mix_corrs), mix_severities=list(mix_sevs))
    for bm in bms:
        _bench_model(run, bm)
    return team.rows(run.store)


def _bench_dataset(dataset, root: Optional[str], max_ids: int):
    """The benchmarked dataset (a ``ReidDataset``, or a name loaded from ``root``; ``max_ids`` > 0 keeps that many
    query identities) and its root folder; refuses one with an empty split or no query with a true match."""
    if isinstance(dataset, str):
        from ..data import load_dataset  # type: ignore[attr-defined]

        if root is None:
            raise ValueError(f"dataset {dataset!r} given by name: pass its root folder too")
        ds = load_dataset(dataset, root)
    else:
        ds = dataset
    ds_root = root if root is not None else (ds.root or None)
    if max_ids:
        ds = subset_identities(ds, int(max_ids))
    if not ds.query or not ds.gallery:
        raise ValueError(f"dataset {ds.name}: query ({len(ds.query)}) and gallery ({len(ds.gallery)}) must not be "
                         f"empty")
    _check_valid_queries(ds.name, ds.query, ds.gallery)
    return ds, ds_root


@dataclass
class _Run:
    """What every model of one benchmark run shares: the dataset and its labels, the settings, the results store."""

    out: Path
    ds_name: str
    ds_root: Any
    query: Sequence
    gallery: Sequence
    cells: List[Cell]
    store: Any
    team: Team
    evaluator: Callable
    extractor: Optional[Callable]
    device: torch.device
    seed: int
    batch_size: int
    flip: bool
    num_workers: int
    max_rank: int
    examples: int
    progress: bool
    mix_corruptions: List[str]
    mix_severities: List[int]
    labels: Tuple[np.ndarray, ...] = field(init=False)  # query pids, gallery pids, query cams, gallery cams

    def __post_init__(self) -> None:
        self.labels = tuple(np.asarray([getattr(s, a) for s in split], dtype=np.int64)
                            for a in ("pid", "camid") for split in (self.query, self.gallery))

    def evaluate(self, qf: np.ndarray, gf: np.ndarray) -> Tuple[Dict[str, float], float]:
        """The metrics of one cell and the seconds they took."""
        t0 = time.perf_counter()
        m = _eval_row(self.evaluator, qf, gf, *self.labels, self.max_rank)
        return m, time.perf_counter() - t0

    def ranking(self, qf: np.ndarray, gf: np.ndarray, qi: np.ndarray) -> List[Dict[str, Any]]:
        """The report's ranked lists of the queries ``qi`` (gallery paths relative to the root, match flags)."""
        q_pids, g_pids, q_cams, g_cams = self.labels
        rk = topk_ranking(qf[qi], gf, q_pids[qi], g_pids, q_cams[qi], g_cams)
        return [{"gallery": [relative_path(self.gallery[j].path, self.ds_root) for j in r], "match": m}
                for r, m in rk]


def _model_extractor(run: _Run, bm: BenchModel) -> Callable:
    """samples[, transform] -> (float32 N×D features, seconds) for one model."""
    ext = run.extractor or _default_extractor(bm.model)

    def extract(samples, transform=None):
        _sync(run.device)
        t0 = time.perf_counter()
        with torch.no_grad():
            f = ext(bm.model, samples, batch_size=run.batch_size, device=run.device, flip=run.flip,
                    transform=transform, num_workers=run.num_workers, progress=False)
        _sync(run.device)
        f = np.asarray(f.detach().cpu().numpy() if isinstance(f, torch.Tensor) else f, dtype=np.float32)
        if f.shape[0] != len(samples):
            raise RuntimeError(f"model {bm.name}: extractor returned {f.shape[0]} features for "
                               f"{len(samples)} images")
        return f, time.perf_counter() - t0

    return extract


def _bench_model(run: _Run, bm: BenchModel) -> None:
    """Every unfinished cell of one model, group by group, and its ranked lists for the report."""
    todo = [c for c in run.cells
            if (bm.name, run.ds_name, c.protocol, c.corruption, c.severity, c.pass_index) not in run.store]
    examples_path = run.out / "examples" / f"{bm.name}.json"
    ex_group = _example_group(run.cells) if run.examples > 0 else None
    need_examples = run.team.agree(run.examples > 0 and _examples_missing(examples_path, ex_group is not None))
    if not todo and not need_examples:
        log.info("%s: all %d cells already done", bm.name, len(run.cells))
        return
    extract = _model_extractor(run, bm)
    clean: Dict[str, np.ndarray] = {}
    clean_time = 0.0
    for split, samples in (("query", run.query), ("gallery", run.gallery)):
        clean[split], t = _cached_clean(run.out, bm, run.ds_name, run.ds_root, split, samples, run.flip,
                                        run.team.sharded(extract, run.batch_size), run.team)
        clean_time += t

    ex_group = ex_group if need_examples else None
    examples_data = _clean_examples(run, bm, clean) if need_examples else {}
    groups: Dict[Tuple[str, int, int], List[Cell]] = {}
    for c in todo:
        groups.setdefault(c.group, []).append(c)
    if ex_group is not None and ex_group not in groups:
        groups[ex_group] = []  # recompute the example group's features once (resumed run)

    base = {"model": bm.name, "dataset": run.ds_name, "seed": run.seed, "num_query": len(run.query),
            "num_gallery": len(run.gallery)}
    bar = None
    if run.progress and run.team.is_main:
        bar = progress_bar(total=run.team.count_mine(len(groups)), desc=f"bench {bm.name}", unit="group",
                           leave=False)
    for key, group_cells in run.team.share(groups.items(), run.store):
        if key[0] == NONE:
            for _ in group_cells:
                _append_row(run, base, "clean", key, run.evaluate(clean["query"], clean["gallery"]),
                            (clean_time, 0.0))
                clean_time = 0.0  # charged once, to the cell that computed it
        else:
            feats = _corrupted_group(run, base, key, group_cells, clean, extract, with_both=key == ex_group)
            if key == ex_group and examples_data:
                examples_data["corrupted"] = _corrupted_examples(run, feats, key)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    if examples_data:
        examples_data = run.team.merged(examples_data)  # the corrupted lists come from their group's rank
        if run.team.is_main:
            atomic_write_text(examples_path, json.dumps(examples_data, indent=1))


def _examples_missing(path: Path, want_corrupted: bool) -> bool:
    """Whether the report's ranked lists must be (re)made: no file yet, an unreadable one, or one without corrupted
    lists where this run has a corrupted group (a clean-only run resumed with corruptions)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return True
    except ValueError:
        log.warning("%s: unreadable, writing it again", path)
        return True
    return want_corrupted and not data.get("corrupted")


def _append_row(run: _Run, base: Dict, protocol: str, key: Tuple[str, int, int], metrics: Tuple[Dict, float],
                cost: Tuple[float, float]) -> None:
    """One finished cell into the store: its metrics, and the extraction and corruption seconds charged to it."""
    (corr, sev, pas), (m, metrics_s) = key, metrics
    family = "clean" if corr == NONE else ("mix" if corr == MIX else family_of(corr))
    run.store.append(dict(base, protocol=protocol, corruption=corr, family=family, severity=sev, **{"pass": pas}, **m,
                          extract_s=cost[0], corrupt_s=cost[1], metrics_s=metrics_s))


def _corrupted_group(run: _Run, base: Dict, key: Tuple[str, int, int], group_cells: Sequence[Cell],
                     clean: Dict[str, np.ndarray], extract: Callable, with_both: bool) -> Dict[str, np.ndarray]:
    """One (corruption, severity, pass) group: the corrupted features of the sides its unfinished protocols need
    (both when ``with_both``: the report's example group), a row per cell; returns the corrupted features."""
    corr, sev, pas = key
    needed = {side for c in group_cells for side in SIDES[c.protocol]} | ({"query", "gallery"} if with_both else set())
    feats: Dict[str, np.ndarray] = {}
    cost: Dict[str, Tuple[float, float]] = {}
    for side, samples in (("query", run.query), ("gallery", run.gallery)):
        if side in needed:
            tr = CorruptionTransform(run.ds_name, run.ds_root, corr, sev, pas, run.seed, device=run.device,
                                     mix_corruptions=run.mix_corruptions, mix_severities=run.mix_severities)
            feats[side], t = extract(samples, tr)
            cost[side] = (max(t - tr.seconds, 0.0), tr.seconds)
    for c in sorted(group_cells, key=lambda c: CORRUPTED_PROTOCOLS.index(c.protocol)):
        sides = SIDES[c.protocol]
        qf = feats["query"] if "query" in sides else clean["query"]
        gf = feats["gallery"] if "gallery" in sides else clean["gallery"]
        charged = [cost.pop(side) for side in sides if side in cost]  # each side's work to its first cell
        _append_row(run, base, c.protocol, key, run.evaluate(qf, gf),
                    (sum(e for e, _ in charged), sum(k for _, k in charged)))
    return feats


def _example_queries(run: _Run) -> np.ndarray:
    """The indices of the report's example queries (one per identity, spread over the list; deterministic)."""
    return np.asarray(_pick_example_queries(run.labels[0], run.examples), dtype=np.int64)


def _clean_examples(run: _Run, bm: BenchModel, clean: Dict[str, np.ndarray]) -> Dict[str, Any]:
    """The report's example queries and their clean ranked lists."""
    q_pids, qi = run.labels[0], _example_queries(run)
    return {"model": bm.name, "dataset": run.ds_name, "root": str(run.ds_root) if run.ds_root else None,
            "seed": run.seed, "queries": [relative_path(run.query[i].path, run.ds_root) for i in qi.tolist()],
            "query_pids": q_pids[qi].tolist(), "clean": run.ranking(clean["query"], clean["gallery"], qi)}


def _corrupted_examples(run: _Run, feats: Dict[str, np.ndarray], key: Tuple[str, int, int]) -> Dict[str, Any]:
    """The example queries' ranked lists with both sides corrupted by the example group."""
    corr, sev, pas = key
    return {"protocol": "both", "corruption": corr, "severity": sev, "pass": pas,
            "mix_corruptions": list(run.mix_corruptions), "mix_severities": list(run.mix_severities),
            "lists": run.ranking(feats["query"], feats["gallery"], _example_queries(run))}


def _default_extractor(model):
    from .extract import default_extractor

    return default_extractor(model)


def _example_group(cells: Sequence[Cell]) -> Optional[Tuple[str, int, int]]:
    """The group whose corrupted ranked lists the report shows: mix pass 0, else the sweep group of the middle
    chosen severity (3 when swept) of the first corruption."""
    groups = [c.group for c in cells if c.corruption != NONE]
    if not groups:
        return None
    for grp in groups:
        if grp[0] == MIX and grp[2] == 0:
            return grp
    sevs = sorted({grp[1] for grp in groups})
    mid = 3 if 3 in sevs else sevs[len(sevs) // 2]
    for grp in groups:
        if grp[1] == mid and grp[2] == 0:
            return grp
    return groups[0]


def _cache_key(bm: BenchModel, ds_name: str, split: str, samples, flip: bool, root) -> Optional[str]:
    if bm.fingerprint is None:
        return None
    h = hashlib.sha256()
    h.update(json.dumps([bm.fingerprint, ds_name, split, bool(flip)]).encode())
    for s in samples:
        h.update(relative_path(s.path, root).encode())
        h.update(b"\0")
    return h.hexdigest()[:24]


def _cached_clean(out: Path, bm: BenchModel, ds_name: str, root, split: str, samples, flip: bool,
                  extract, team: Optional[Team] = None) -> Tuple[np.ndarray, float]:
    """Clean features of one split: from DIR/cache/<model>/<split>.safetensors when its key matches (read and
    written by rank 0 of a distributed run, the features sent to every rank)."""
    from ..eval.features import load_features, save_features

    team = team or Team()
    key = _cache_key(bm, ds_name, split, samples, flip, root)
    path = out / "cache" / bm.name / f"{split}.safetensors"

    def read_cache() -> Optional[np.ndarray]:
        if key is None or not path.exists():
            return None
        try:
            fs = load_features(path)
            if fs.meta.get("cache_key") == key and len(fs) == len(samples):
                return np.asarray(fs.features, dtype=np.float32)
            log.info("%s: cache key changed, re-extracting", path)
        except ValueError as e:
            log.warning("%s: unreadable cache (%s), re-extracting", path, e)
        return None

    cached = team.array_from_main(read_cache)
    if cached is not None:
        return cached, 0.0
    f, t = extract(samples)
    if key is not None:
        team.on_main(lambda: save_features(
            path, f, [s.pid for s in samples], [s.camid for s in samples], [split] * len(samples),
            [relative_path(s.path, root) for s in samples],
            meta={"cache_key": key, "model": bm.name, "dataset": ds_name, "fingerprint": bm.fingerprint,
                  "flip": str(bool(flip))}))
    return f, t


_PINNED = ("dataset", "seed", "flip", "mix_corruptions", "mix_severities", "max_rank", "max_ids")


def dataset_fingerprint(samples, root) -> str:
    """A cheap fingerprint of the evaluated files: sha256 of every (relative path, size) in order, no reading."""
    h = hashlib.sha256()
    prefix = os.path.join(str(root), "") if root else None
    for s in samples:
        try:
            size = os.stat(s.path).st_size
        except OSError:
            size = -1
        p = str(s.path)  # relative to the root: a plain prefix cut when it is one (relpath is slow at 20k files)
        rel = p[len(prefix):].replace("\\", "/") if prefix and p.startswith(prefix) else relative_path(p, root)
        h.update(f"{rel}\0{size}\0{s.pid}\0{s.camid}\n".encode())
    return h.hexdigest()[:16]


def _check_valid_queries(ds_name: str, query, gallery) -> None:
    """Refuse a dataset where no query has a true match (every cell would be NaN); warn when some have none."""
    cams: Dict[int, set] = {}
    for s in gallery:
        if s.pid != -1:
            cams.setdefault(s.pid, set()).add(s.camid)
    valid = sum(1 for s in query if s.pid != -1 and cams.get(s.pid, set()) - {s.camid})
    if valid == 0:
        raise ValueError(f"dataset {ds_name}: no query has a true match in the gallery (a gallery image of the same "
                         f"person from another camera) among {len(query)} queries; nothing to evaluate")
    if valid < len(query):
        log.warning("dataset %s: %d of %d queries have no true match in the gallery and are skipped by every cell",
                    ds_name, len(query) - valid, len(query))


def _check_dataset_pin(out: Path, oc: Dict, config: Dict) -> None:
    """The cells of a run directory hold one dataset: the same root folder and the same files."""
    new_root = config.get("dataset_root")
    old_root = oc.get("dataset_root") or (os.path.realpath(oc["root"]) if oc.get("root") else None)
    how = f"start a new run with another --out directory (or delete {out} to redo this one)"
    if old_root and new_root and old_root != new_root:
        raise ValueError(f"{out} holds a run on the dataset at {old_root}; this one is at {new_root}: resuming would "
                         f"mix results of two datasets — {how}")
    old_files = oc.get("dataset_files")
    if old_files and config.get("dataset_files") and old_files != config["dataset_files"]:
        raise ValueError(f"{out} holds a run on other files: the query/gallery files under {new_root or 'the root'} "
                         f"(names, sizes, labels) have changed since (fingerprint {old_files} -> "
                         f"{config['dataset_files']}) — {how}")


def _write_run_json(out: Path, config: Dict, bms: List[BenchModel], command: Optional[str], nq: int, ng: int) -> None:
    """DIR/run.json: command(s), config, seeds, versions, models. Refuses to mix incompatible settings in one DIR."""
    path = out / "run.json"
    old: Dict[str, Any] = {}
    if path.exists():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            old = {}
    oc = old.get("config") or {}
    _check_dataset_pin(out, oc, config)
    for k in _PINNED:
        if k in oc and oc[k] != config[k]:
            raise ValueError(f"{out} holds a run with {k}={oc[k]!r}, this one has {k}={config[k]!r}; results would "
                             f"mix — start a new run with another --out directory")
    old_models = old.get("models") or {}
    for bm in bms:
        om = old_models.get(bm.name)
        if om and om.get("fingerprint") and bm.fingerprint and om["fingerprint"] != bm.fingerprint:
            raise ValueError(f"{out}: model {bm.name!r} was benchmarked from another checkpoint "
                             f"({om.get('checkpoint')}); name this one differently or use another --out")
    models = dict(old_models)
    for bm in bms:
        models[bm.name] = {"checkpoint": bm.checkpoint, "fingerprint": bm.fingerprint, **bm.info}
    merged = dict(oc)
    for k, v in config.items():
        if isinstance(v, list) and isinstance(merged.get(k), list) and k not in _PINNED:
            merged[k] = list(dict.fromkeys(list(merged[k]) + v))
        else:
            merged[k] = v
    cmd = command if command is not None else " ".join(sys.argv)
    commands = list(old.get("commands") or [])
    commands.append(cmd)
    meta = {
        "format": "robustreid.bench/1",
        "command": cmd,
        "commands": commands,
        "config": merged,
        "seeds": {"seed": config["seed"], "rule": "per image: image_seed(dataset, relpath, corruption, severity, "
                  "pass, seed); mix choice: derive_seed(dataset, relpath, 'mix', pass, seed)"},
        "versions": _versions(),
        "models": models,
        "num_query": nq,
        "num_gallery": ng,
        "started": old.get("started") or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    atomic_write_text(path, json.dumps(meta, indent=1))
