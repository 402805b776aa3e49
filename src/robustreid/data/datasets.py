"""Dataset loaders by name: ``load_dataset(name, root, **options) -> ReidDataset``.

Conventions (see docs/datasets.md and shared/reference/datasets-and-metrics.md):

- pid -1 (junk) is dropped everywhere; pid 0 (Market distractors) is kept in the gallery only;
- train pids are relabelled 0..N-1 in sorted order of the original ids (``orig_pid`` keeps the original);
- camids are 0-based; sources without cameras get query camid 0 and gallery camid 1 (so same-camera filtering
  removes nothing) and train camid 0, with ``sample.extra["camera_known"] = False``;
- a missing folder, an empty split or a file name that does not parse raises :class:`DatasetError` naming the file
  (a folder named like an image inside a split folder too); ``skip_bad=True`` skips such files (and, after decoding
  every image, unreadable ones) and lists them in ``dataset.problems`` instead;
- test-only sets: a Market-style layout whose train folder is missing or empty loads with an empty train split,
  ``extra["test_only"] = True`` and a note in ``extra["note"]`` (only training needs train images).
"""

from __future__ import annotations

import csv as _csv
import json
import os
import re
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from ..registry import Registry
from .sample import ReidDataset, Sample

__all__ = [
    "DATASETS", "DatasetError", "load_dataset", "detect_dataset", "register_dataset", "IMAGE_EXTENSIONS",
    "list_images", "relabel",
]

#: name -> loader(root, **options) -> ReidDataset
DATASETS = Registry("dataset")

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")

MARKET_SPLITS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
_MARKET_RE = re.compile(r"^([-\d]+)_c(\d+)")


#: where a DukeMTMC-reID archive keeps its three folders, inside the given root
DUKE_FOLDERS = ("DukeMTMC-reID", "dukemtmc-reid", "dukemtmc", "DukeMTMC")


class DatasetError(ValueError):
    """A dataset folder, list or file name does not match the expected layout. The message names the path."""


def register_dataset(name: str, *, override: bool = False):
    return DATASETS.register(name, override=override)


def load_dataset(name: str, root: str, **options) -> ReidDataset:
    """Load dataset ``name`` (see ``DATASETS.names()``) found at ``root``.

    Common options: ``skip_bad`` (skip and list bad files instead of failing), ``verify`` (decode every image to
    find unreadable ones; implied by ``skip_bad``). Loader-specific options are documented in docs/datasets.md.
    ``name="auto"`` detects the layout (:func:`detect_dataset`).
    """
    root = os.fspath(root)
    if name in (None, "", "auto"):
        name = detect_dataset(root)
    try:
        loader = DATASETS.get(name)
    except KeyError as e:
        raise DatasetError(str(e.args[0])) from None
    try:
        return loader(root, **options)
    except TypeError as e:
        if "unexpected keyword" in str(e):
            raise DatasetError(f"dataset {name!r}: {e}") from None
        raise


# ---------------------------------------------------------------------------------------------------------------
# helpers


class _Problems:
    """Collects bad files: raises at once unless ``skip_bad``."""

    def __init__(self, skip_bad: bool):
        self.skip_bad = skip_bad
        self.items: List[str] = []

    def add(self, path: str, reason: str) -> None:
        if not self.skip_bad:
            raise DatasetError(f"{path}: {reason}")
        self.items.append(f"{path}: {reason}")


def _require_dir(path: str, what: str) -> str:
    if not os.path.isdir(path):
        if os.path.exists(path):
            raise DatasetError(f"{path}: expected a folder ({what}), found a file")
        raise DatasetError(f"{path}: folder not found (expected {what})")
    return path


def list_images(folder: str, recursive: bool = False) -> List[str]:
    """Image files of ``folder`` (sorted, full paths). Hidden files are ignored."""
    out: List[str] = []
    if recursive:
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            out.extend(os.path.join(dirpath, f) for f in filenames
                       if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS))
    else:
        with os.scandir(folder) as it:
            out = [e.path for e in it if e.is_file() and not e.name.startswith(".")
                   and e.name.lower().endswith(IMAGE_EXTENSIONS)]
    return sorted(out)


def _find_root(root: str, required: Sequence[str], candidates: Sequence[str], what: str) -> str:
    """``root`` itself if it holds all ``required`` entries, else one of ``candidates`` inside it."""
    _require_dir(root, what)

    def ok(d: str) -> bool:
        return all(os.path.exists(os.path.join(d, r)) for r in required)

    if ok(root):
        return root
    for c in candidates:
        d = os.path.join(root, c)
        if os.path.isdir(d) and ok(d):
            return d
    # any single sub-folder holding the layout (e.g. an unusual archive name)
    subs = sorted(e.path for e in os.scandir(root) if e.is_dir() and ok(e.path))
    if len(subs) == 1:
        return subs[0]
    missing = [r for r in required if not os.path.exists(os.path.join(root, r))]
    raise DatasetError(f"{root}: not a {what} folder: missing {', '.join(missing)} "
                       f"(also looked inside {', '.join(candidates) or 'its sub-folders'})")


def relabel(samples: List[Sample]) -> List[Sample]:
    """Train relabelling: original pids in sorted order -> 0..N-1 (``orig_pid`` keeps the original)."""
    ids = sorted({s.orig_pid if s.orig_pid is not None else s.pid for s in samples})
    table = {p: i for i, p in enumerate(ids)}
    return [s.replace(pid=table[s.orig_pid if s.orig_pid is not None else s.pid],
                      orig_pid=s.orig_pid if s.orig_pid is not None else s.pid) for s in samples]


def _verify(samples: List[Sample], problems: _Problems) -> List[Sample]:
    from ..transforms.decode import ImageReadError, decode_to_array

    kept = []
    for s in samples:
        try:
            decode_to_array(s.path)
        except ImageReadError as e:
            problems.add(s.path, e.reason)
            continue
        kept.append(s)
    return kept


def _finish(name: str, root: str, train: List[Sample], query: List[Sample], gallery: List[Sample],
            problems: _Problems, verify: bool, extra: Optional[dict] = None,
            require: Sequence[str] = ("train", "query", "gallery")) -> ReidDataset:
    if verify or problems.skip_bad:
        train, query, gallery = (_verify(x, problems) for x in (train, query, gallery))
    for split, items in (("train", train), ("query", query), ("gallery", gallery)):
        if split in require and not items:
            raise DatasetError(f"{root}: the {split} split is empty after loading (no usable images)")
    return ReidDataset(name, relabel(train), query, gallery, root=root, problems=list(problems.items),
                       extra=dict(extra or {}))


def _image_named_folders(folder: str) -> List[str]:
    """Sub-folders of ``folder`` whose names end like an image file (``list_images`` skips them)."""
    with os.scandir(folder) as it:
        return sorted(e.path for e in it if e.is_dir() and not e.name.startswith(".")
                      and e.name.lower().endswith(IMAGE_EXTENSIONS))


def _parse_market_folder(folder: str, split: str, problems: _Problems, regex=_MARKET_RE,
                         relabel_later: bool = True, optional: bool = False) -> Optional[List[Sample]]:
    """Market/Duke/CUHK03-NP file names -> samples; pid -1 dropped, pid 0 kept in the gallery only.

    ``optional``: a missing folder or one without images gives None instead of an error."""
    if optional and not os.path.isdir(folder):
        return None
    _require_dir(folder, f"the {split} split, images named like 0002_c1s1_000451_03.jpg")
    files = list_images(folder)
    dirs = _image_named_folders(folder)
    if not files and not dirs and optional:
        return None
    if not files:
        raise DatasetError(f"{folder}: no images found for the {split} split "
                           f"(expected files like 0002_c1s1_000451_03.jpg)")
    for d in dirs:
        problems.add(d, "a folder named like an image (expected an image file)")
    out = []
    for f in files:
        m = regex.match(os.path.basename(f))
        if m is None:
            problems.add(f, "file name does not parse: expected '<pid>_c<camera>...' like 0002_c1s1_000451_03.jpg")
            continue
        pid, cam = int(m.group(1)), int(m.group(2))
        if pid == -1:
            continue  # junk
        if pid < -1:
            problems.add(f, f"invalid person id {pid} (expected -1, 0 or a positive id)")
            continue
        if cam < 1:
            problems.add(f, f"invalid camera c{cam} (cameras are numbered from 1)")
            continue
        if pid == 0 and split != "gallery":
            continue  # distractors belong to the gallery only
        out.append(Sample(f, pid, cam - 1, orig_pid=pid))
    return out


def _market_style(name: str, root: str, candidates: Sequence[str], skip_bad: bool = False, verify: bool = False,
                  splits: Dict[str, str] = MARKET_SPLITS, occluded_query: bool = False,
                  extra: Optional[dict] = None) -> ReidDataset:
    base = _find_root(root, [d for s, d in splits.items() if s != "train"], candidates,
                      f"{name} (Market-1501 layout)")
    problems = _Problems(skip_bad)
    parts = {s: _parse_market_folder(os.path.join(base, d), s, problems, optional=(s == "train"))
             for s, d in splits.items()}
    extra = dict(extra or {})
    require: Sequence[str] = ("train", "query", "gallery")
    if parts["train"] is None:
        parts["train"], require = [], ("query", "gallery")
        d = splits["train"]
        how = f"{d}/ is empty" if os.path.isdir(os.path.join(base, d)) else f"there is no {d}/"
        extra.update(test_only=True, note=f"test-only set: {how}, so no train images (eval, extract and bench "
                                          f"need only query and gallery; train needs train images)")
    if occluded_query:
        parts["query"] = [s.replace(occluded=True) for s in parts["query"]]
    return _finish(name, base, parts["train"], parts["query"], parts["gallery"], problems, verify, extra,
                   require=require)


# ---------------------------------------------------------------------------------------------------------------
# Market-1501, DukeMTMC-reID, Occluded-Duke, CUHK03-NP


@register_dataset("market1501")
def market1501(root: str, skip_bad: bool = False, verify: bool = False) -> ReidDataset:
    """Market-1501: ``bounding_box_train``, ``query``, ``bounding_box_test`` (also inside Market-1501-v15.09.15/)."""
    return _market_style("market1501", root, ["Market-1501-v15.09.15", "Market-1501", "market1501", "Market"],
                         skip_bad, verify)


@register_dataset("dukemtmc")
def dukemtmc(root: str, skip_bad: bool = False, verify: bool = False) -> ReidDataset:
    """DukeMTMC-reID: Market layout with names like ``0001_c2_f0046182.jpg`` (inside DukeMTMC-reID/)."""
    return _market_style("dukemtmc", root, DUKE_FOLDERS, skip_bad, verify)


@register_dataset("occluded_duke")
def occluded_duke(root: str, skip_bad: bool = False, verify: bool = False) -> ReidDataset:
    """Occluded-Duke: a re-split of DukeMTMC-reID in the Market layout; every query is occluded."""
    return _market_style("occluded_duke", root, ["Occluded_Duke", "occluded_duke", "Occluded-Duke"],
                         skip_bad, verify, occluded_query=True)


@register_dataset("cuhk03")
def cuhk03(root: str, variant: str = "detected", skip_bad: bool = False, verify: bool = False) -> ReidDataset:
    """CUHK03-NP (767/700 split): ``<root>/[cuhk03-np/]{detected|labeled}/{bounding_box_train,query,bounding_box_test}``."""
    if variant not in ("detected", "labeled"):
        raise DatasetError(f"cuhk03: variant must be 'detected' or 'labeled', got {variant!r}")
    base = _find_root(root, [variant], ["cuhk03-np", "CUHK03-NP", "cuhk03_np", "cuhk03"],
                      f"CUHK03-NP (with a {variant}/ folder)")
    return _market_style("cuhk03", os.path.join(base, variant), [], skip_bad, verify, extra={"variant": variant})


# ---------------------------------------------------------------------------------------------------------------
# MSMT17


def _read_msmt_list(list_path: str, img_dir: str, split: str, problems: _Problems) -> List[Sample]:
    if not os.path.isfile(list_path):
        raise DatasetError(f"{list_path}: list file not found (expected MSMT17 list lines like "
                           f"'0000/0000_000_01_0303morning_0015_0.jpg 0')")
    out = []
    with open(list_path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            where = f"{list_path}:{lineno}"
            fields = line.split()
            if len(fields) != 2:
                problems.add(where, f"expected '<relative path> <pid>', got {line!r}")
                continue
            rel, pid_s = fields
            try:
                pid = int(pid_s)
            except ValueError:
                problems.add(where, f"pid {pid_s!r} is not an integer")
                continue
            toks = os.path.basename(rel).split("_")
            try:
                cam = int(toks[2]) - 1
            except (IndexError, ValueError):
                problems.add(where, f"file name {rel!r} does not parse: expected "
                                    f"'<pid>_<n>_<camera 01-15>_<...>.jpg' like 0000_000_01_0303morning_0015_0.jpg")
                continue
            if pid == -1:
                continue
            out.append(Sample(os.path.join(img_dir, rel), pid, cam, orig_pid=pid, extra={"msmt_split": split}))
    if not out:
        raise DatasetError(f"{list_path}: the {split} list has no usable lines")
    return out


@register_dataset("msmt17")
def msmt17(root: str, version: str = "auto", merge_val: bool = True, skip_bad: bool = False,
           verify: bool = False) -> ReidDataset:
    """MSMT17 V1 (``train/``, ``test/``) or V2 (``mask_train_v2/``, ``mask_test_v2/``) with the four list files.

    ``merge_val=True`` (the usual protocol: 32,621 train images of 1,041 ids) adds ``list_val.txt`` to train.
    """
    layouts = {"v1": ("train", "test"), "v2": ("mask_train_v2", "mask_test_v2")}
    if version not in ("auto", "v1", "v2"):
        raise DatasetError(f"msmt17: version must be auto, v1 or v2, got {version!r}")
    candidates = ["MSMT17_V2", "MSMT17_V1", "MSMT17", "msmt17"]
    base = None
    for v in (["v2", "v1"] if version == "auto" else [version]):
        try:
            base = _find_root(root, list(layouts[v]) + ["list_train.txt"], candidates, f"MSMT17 {v.upper()}")
            version = v
            break
        except DatasetError as e:
            err = e
    if base is None:
        raise err
    tr_dir, te_dir = (os.path.join(base, d) for d in layouts[version])
    problems = _Problems(skip_bad)
    train = _read_msmt_list(os.path.join(base, "list_train.txt"), tr_dir, "train", problems)
    if merge_val:
        train += _read_msmt_list(os.path.join(base, "list_val.txt"), tr_dir, "val", problems)
    query = _read_msmt_list(os.path.join(base, "list_query.txt"), te_dir, "query", problems)
    gallery = _read_msmt_list(os.path.join(base, "list_gallery.txt"), te_dir, "gallery", problems)
    return _finish("msmt17", base, train, query, gallery, problems, verify,
                   {"version": version, "merge_val": merge_val})


# ---------------------------------------------------------------------------------------------------------------
# Occluded-REID, Partial-REID (test only)


def _prefix_pid(path: str, problems: _Problems) -> Optional[int]:
    stem = os.path.basename(path).split("_")[0]
    stem = os.path.splitext(stem)[0]
    try:
        return int(stem)
    except ValueError:
        problems.add(path, "file name does not parse: expected '<pid>_<n>.<ext>' like 001_01.tif")
        return None


def _test_only(name: str, root: str, query_dir: str, gallery_dir: str, candidates: Sequence[str],
               recursive: bool, skip_bad: bool, verify: bool) -> ReidDataset:
    base = _find_root(root, [query_dir, gallery_dir], candidates, f"{name} ({query_dir}/ and {gallery_dir}/)")
    problems = _Problems(skip_bad)
    splits = {}
    for split, d, cam in (("query", query_dir, 0), ("gallery", gallery_dir, 1)):
        folder = os.path.join(base, d)
        files = list_images(folder, recursive=recursive)
        if not files:
            raise DatasetError(f"{folder}: no images found for the {split} split")
        items = []
        for f in files:
            pid = _prefix_pid(f, problems)
            if pid is None or pid == -1:
                continue
            items.append(Sample(f, pid, cam, orig_pid=pid, occluded=(split == "query")))
        splits[split] = items
    return _finish(name, base, [], splits["query"], splits["gallery"], problems, verify,
                   {"query_dir": query_dir, "gallery_dir": gallery_dir, "test_only": True},
                   require=("query", "gallery"))


@register_dataset("occluded_reid")
def occluded_reid(root: str, query_dir: str = "occluded_body_images", gallery_dir: str = "whole_body_images",
                  skip_bad: bool = False, verify: bool = False) -> ReidDataset:
    """Occluded-REID (test only): ``occluded_body_images/<pid>/*`` (query, camid 0), ``whole_body_images/<pid>/*``
    (gallery, camid 1)."""
    return _test_only("occluded_reid", root, query_dir, gallery_dir, ["Occluded_REID", "OccludedREID", "occluded_reid"],
                      True, skip_bad, verify)


@register_dataset("partial_reid")
def partial_reid(root: str, query_dir: Optional[str] = None, gallery_dir: str = "whole_body_images",
                 skip_bad: bool = False, verify: bool = False) -> ReidDataset:
    """Partial-REID (test only). Loaders in the field disagree on the query folder, so it is explicit: ``query_dir``
    is ``partial_body_images`` or ``occluded_body_images``; when not given, the one that exists is used and it is an
    error if both exist."""
    cands = ["Partial_REID", "Partial-REID", "PartialREID", "partial_reid"]
    if query_dir is None:
        base = _find_root(root, [gallery_dir], cands, f"partial_reid ({gallery_dir}/)")
        found = [d for d in ("partial_body_images", "occluded_body_images") if os.path.isdir(os.path.join(base, d))]
        if len(found) != 1:
            raise DatasetError(f"{base}: partial_reid needs query_dir= (partial_body_images or occluded_body_images); "
                               f"found {found or 'neither'}")
        query_dir, root = found[0], base
    return _test_only("partial_reid", root, query_dir, gallery_dir, cands, True, skip_bad, verify)


# ---------------------------------------------------------------------------------------------------------------
# generic: folder per identity, CSV


def _camera_less(split: str) -> int:
    return {"train": 0, "query": 0, "gallery": 1}[split]


def _assign_test_pids(names: Iterable[str]) -> Dict[str, int]:
    """Identity names -> positive ints: numeric names keep their value, others are numbered after the largest."""
    names = sorted(set(names))
    table: Dict[str, int] = {}
    numeric = {n: int(n) for n in names if re.fullmatch(r"\d+", n)}
    table.update(numeric)
    nxt = max([v for v in numeric.values()] + [0]) + 1
    for n in names:
        if n not in table:
            table[n] = nxt
            nxt += 1
    return table


@register_dataset("folder")
def folder(root: str, camera_pattern: Optional[str] = None, test_split: bool = False, skip_bad: bool = False,
           verify: bool = False) -> ReidDataset:
    """A folder-per-identity tree: ``root/<identity>/*.jpg``, or with split folders ``root/{train,query,gallery}/<identity>/*``.

    Without split folders every image is a train image, unless ``test_split=True``: then the first image (sorted)
    of each identity is its query and the others are its gallery. ``camera_pattern`` is a regex with one group
    applied to the file name (e.g. ``r"_c(\\d+)"``, cameras numbered from 1); without it cameras are unknown.
    """
    _require_dir(root, "a folder-per-identity tree")
    problems = _Problems(skip_bad)
    cam_re = re.compile(camera_pattern) if camera_pattern else None
    split_dirs = {s: os.path.join(root, s) for s in ("train", "query", "gallery")}
    have = {s: os.path.isdir(d) for s, d in split_dirs.items()}
    if any(have.values()):
        layout = {s: d for s, d in split_dirs.items() if have[s]}
        if have["query"] != have["gallery"]:
            raise DatasetError(f"{root}: found {'query' if have['query'] else 'gallery'}/ without "
                               f"{'gallery' if have['query'] else 'query'}/; both are needed for a test split")
    else:
        layout = {"train": root}

    def scan(folder_: str) -> List[Tuple[str, str]]:
        ids = sorted(e.name for e in os.scandir(folder_) if e.is_dir() and not e.name.startswith("."))
        out = []
        for ident in ids:
            for f in list_images(os.path.join(folder_, ident), recursive=True):
                out.append((ident, f))
        loose = list_images(folder_)
        for f in loose:
            problems.add(f, "image outside an identity folder (expected <split>/<identity>/<image>)")
        return out

    scanned = {s: scan(d) for s, d in layout.items()}
    for s, items in scanned.items():
        if not items:
            raise DatasetError(f"{layout[s]}: no images found in identity sub-folders for the {s} split")
    if test_split and list(layout) == ["train"]:
        by_id: Dict[str, List[str]] = {}
        for ident, f in scanned.pop("train"):
            by_id.setdefault(ident, []).append(f)
        scanned = {"query": [(i, fs[0]) for i, fs in sorted(by_id.items())],
                   "gallery": [(i, f) for i, fs in sorted(by_id.items()) for f in fs[1:]]}
    test_ids = _assign_test_pids(i for s in ("query", "gallery") for i, _ in scanned.get(s, []))
    train_ids = _assign_test_pids(i for i, _ in scanned.get("train", []))
    splits: Dict[str, List[Sample]] = {"train": [], "query": [], "gallery": []}
    for s, items in scanned.items():
        table = train_ids if s == "train" else test_ids
        for ident, f in items:
            known = False
            cam = _camera_less(s)
            if cam_re is not None:
                m = cam_re.search(os.path.basename(f))
                if m is None:
                    problems.add(f, f"camera pattern {camera_pattern!r} does not match the file name")
                    continue
                cam, known = int(m.group(1)) - 1, True
            pid = table[ident]
            splits[s].append(Sample(f, pid, cam, orig_pid=pid, extra={"identity": ident, "camera_known": known}))
    require = [s for s in ("train", "query", "gallery") if s in scanned]
    return _finish("folder", root, splits["train"], splits["query"], splits["gallery"], problems, verify,
                   {"camera_known": cam_re is not None}, require=require)


def _is_csv_header(head: List[str], cols: Sequence[str]) -> bool:
    """Is the first row column names? It is when it names a known column, or when every cell is a plain word
    (an image path holds a '.' or a '/')."""
    if any(c in cols for c in head):
        return True
    return all(re.fullmatch(r"[a-z_][a-z0-9_ ]*", c) for c in head)


_SPLIT_ALIASES = {"train": "train", "query": "query", "gallery": "gallery", "test": "gallery",
                  "bounding_box_train": "train", "bounding_box_test": "gallery"}


@register_dataset("csv")
def csv(root: str, file: Optional[str] = None, skip_bad: bool = False, verify: bool = False) -> ReidDataset:
    """A CSV list ``path,pid[,camid][,split]`` (header optional; with a header the columns may come in any order).

    ``root`` is the CSV file, or a folder holding ``file`` (default: the only ``*.csv`` in it). Relative paths are
    relative to the CSV's folder. camid is taken as given (0-based); an empty, missing or -1 camid means "unknown
    camera": such rows get query camid 0 / gallery camid 1 / train camid 0, so same-camera filtering removes nothing.
    split is train, query or gallery (``test`` = gallery); without a split column every row is train.
    pid -1 rows are dropped (junk); every other integer is an identity.
    """
    if os.path.isdir(root):
        if file is None:
            found = sorted(f for f in os.listdir(root) if f.lower().endswith(".csv"))
            if len(found) != 1:
                raise DatasetError(f"{root}: expected exactly one .csv file (or pass file=NAME), found {found or 'none'}")
            file = found[0]
        path = os.path.join(root, file)
    else:
        path = root
    if not os.path.isfile(path):
        raise DatasetError(f"{path}: CSV file not found (expected lines 'path,pid[,camid][,split]')")
    base = os.path.dirname(os.path.abspath(path))
    problems = _Problems(skip_bad)
    with open(path, newline="", encoding="utf-8") as fh:
        rows = [r for r in _csv.reader(fh) if r and any(c.strip() for c in r)]
    if not rows:
        raise DatasetError(f"{path}: the CSV file is empty (expected lines 'path,pid[,camid][,split]')")
    cols = ["path", "pid", "camid", "split"]
    start = 0
    head = [c.strip().lower() for c in rows[0]]
    if _is_csv_header(head, cols):
        unknown = [c for c in head if c not in cols]
        if unknown:
            raise DatasetError(f"{path}: unknown CSV column(s) {unknown}; expected path, pid, camid, split")
        missing = [c for c in ("path", "pid") if c not in head]
        if missing:
            raise DatasetError(f"{path}: the CSV header has no {' or '.join(repr(c) for c in missing)} column"
                               f"{'s' if len(missing) > 1 else ''} (it has {', '.join(head)}); "
                               f"expected path, pid[, camid][, split]")
        cols, start = head, 1
    splits: Dict[str, List[Sample]] = {"train": [], "query": [], "gallery": []}
    for lineno, row in enumerate(rows[start:], start + 1):
        where = f"{path}:{lineno}"
        if len(row) < 2 or len(row) > len(cols):
            problems.add(where, f"expected 2 to {len(cols)} fields ({','.join(cols)}), got {len(row)}")
            continue
        rec = {c: v.strip() for c, v in zip(cols, row)}
        try:
            pid = int(rec["pid"])
        except (KeyError, ValueError):
            problems.add(where, f"pid {rec.get('pid')!r} is not an integer")
            continue
        split = _SPLIT_ALIASES.get(rec.get("split", "train").lower() or "train")
        if split is None:
            problems.add(where, f"split {rec.get('split')!r} is not train, query or gallery")
            continue
        cam_s = rec.get("camid", "")
        if cam_s == "" or cam_s == "-1":
            cam, known = _camera_less(split), False
        else:
            try:
                cam, known = int(cam_s), True
            except ValueError:
                problems.add(where, f"camid {cam_s!r} is not an integer")
                continue
            if cam < 0:
                problems.add(where, f"camid {cam} is negative (use an empty field for an unknown camera)")
                continue
        if pid == -1:
            continue
        if pid < -1:
            problems.add(where, f"invalid pid {pid}")
            continue
        p = rec["path"]
        full = p if os.path.isabs(p) else os.path.join(base, p)
        if not os.path.isfile(full):
            problems.add(full, f"listed in {where} but " + ("it is a folder, not an image file" if os.path.isdir(full)
                                                           else "the file does not exist"))
            continue
        splits[split].append(Sample(full, pid, cam, orig_pid=pid, extra={"camera_known": known}))
    # without cameras, a query image must not also be its own gallery match
    qpaths = {os.path.normpath(s.path) for s in splits["query"]}
    dup = [s for s in splits["gallery"] if os.path.normpath(s.path) in qpaths]
    if dup:
        splits["gallery"] = [s for s in splits["gallery"] if os.path.normpath(s.path) not in qpaths]
        problems.items.extend(f"{s.path}: listed in both query and gallery; removed from the gallery" for s in dup)
    has_test = bool(splits["query"] or splits["gallery"])
    require = ["train"] if not has_test else (["query", "gallery"] + (["train"] if splits["train"] else []))
    return _finish("csv", path, splits["train"], splits["query"], splits["gallery"], problems, verify,
                   {"csv": path}, require=require)


# ---------------------------------------------------------------------------------------------------------------
# synthetic: Market layout + the generator's manifest


@register_dataset("synthetic")
def synthetic(root: str, skip_bad: bool = False, verify: bool = False) -> ReidDataset:
    """The built-in synthetic set (``robustreid synth``): Market layout + ``manifest.csv`` (occluded, mask_path)."""
    ds = _market_style("synthetic", root, ["synthetic"], skip_bad, verify)
    man = os.path.join(ds.root, "manifest.csv")
    if not os.path.isfile(man):
        raise DatasetError(f"{man}: manifest not found (expected the output folder of `robustreid synth`)")
    info: Dict[str, dict] = {}
    with open(man, newline="", encoding="utf-8") as fh:
        for row in _csv.DictReader(fh):
            info[os.path.normpath(row["path"])] = row

    def enrich(s: Sample) -> Sample:
        rel = os.path.normpath(os.path.relpath(s.path, ds.root))
        row = info.get(rel)
        if row is None:
            return s
        mask = row.get("mask_path") or None
        extra = {k: row[k] for k in ("viewpoint", "occluder", "occ_frac") if row.get(k) not in (None, "")}
        return s.replace(occluded=row.get("occluded") == "1",
                         mask_path=os.path.join(ds.root, mask) if mask else None, extra=extra)

    ds.train, ds.query, ds.gallery = ([enrich(s) for s in x] for x in (ds.train, ds.query, ds.gallery))
    jpath = os.path.join(ds.root, "manifest.json")
    if os.path.isfile(jpath):
        with open(jpath, encoding="utf-8") as fh:
            ds.extra["generator"] = json.load(fh).get("args", {})
    return ds


# ---------------------------------------------------------------------------------------------------------------


def detect_dataset(root: str) -> str:
    """Guess the loader for ``root`` from its layout (used by ``robustreid data info`` without --dataset)."""
    root = os.fspath(root)
    if os.path.isfile(root):
        if root.lower().endswith(".csv"):
            return "csv"
        raise DatasetError(f"{root}: a file; expected a dataset folder or a .csv list")
    _require_dir(root, "a dataset folder")
    checks: List[Tuple[str, Callable[[str], bool]]] = []

    def has(*names: str) -> Callable[[str], bool]:
        return lambda d: all(os.path.exists(os.path.join(d, n)) for n in names)

    market = has(MARKET_SPLITS["query"], MARKET_SPLITS["gallery"])  # train optional (test-only sets)
    checks = [
        ("msmt17", has("list_train.txt")),
        ("cuhk03", lambda d: has("detected")(d) or has("labeled")(d)),
        ("occluded_reid", has("occluded_body_images", "whole_body_images")),
        ("partial_reid", has("partial_body_images", "whole_body_images")),
        ("market", market),
    ]
    dirs = [root] + sorted(e.path for e in os.scandir(root) if e.is_dir())
    for d in dirs:
        for name, fn in checks:
            if not fn(d):
                continue
            if name != "market":
                return name
            if os.path.isfile(os.path.join(d, "manifest.csv")):
                return "synthetic"
            low = os.path.basename(os.path.abspath(d)).lower()
            if "occluded" in low and "duke" in low:
                return "occluded_duke"
            probe = list_images(os.path.join(d, "query"))[:20]
            if any(re.match(r"^[-\d]+_c\d+_f\d+", os.path.basename(p)) for p in probe):
                return "dukemtmc"
            return "market1501"
    csvs = [f for f in os.listdir(root) if f.lower().endswith(".csv")]
    if len(csvs) == 1:
        return "csv"
    return "folder"
