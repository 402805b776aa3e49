"""Rebuild a re-split dataset (Occluded-Duke) from its source dataset and the public name lists.

Occluded-Duke (Miao et al., ICCV 2019) is DukeMTMC-reID re-split so that every query is occluded: the authors publish
three lists of file names (``train.list``, ``query.list``, ``gallery.list``) and a script that copies the named images
out of DukeMTMC-reID; some query images come from Duke's gallery. :func:`build_resplit` does that job for any Market
layout source: every listed name is looked up in its own split first, then in the source's other splits; nothing is
written unless every name is found; the new set is assembled in a temporary folder next to ``out`` and renamed into
place, so an interrupted run leaves no half-built dataset; a ``resplit.json`` records the lists' digests, so running
again with the same lists is a no-op and with other lists is refused (unless ``overwrite``). Images are hard-linked
when source and output share a file system (no extra disk), else copied.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from .datasets import DUKE_FOLDERS, DatasetError, _find_root

__all__ = ["OCCLUDED_DUKE_LISTS", "MARKET_FOLDERS", "read_name_list", "build_resplit", "build_occluded_duke"]

#: split -> the Market-layout folder it fills
MARKET_FOLDERS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
#: split -> list file name, as published with Occluded-Duke
OCCLUDED_DUKE_LISTS = {"train": "train.list", "query": "query.list", "gallery": "gallery.list"}
_NAME_RE = re.compile(r"^-?\d+_c\d+[^/\\]*\.(jpg|jpeg|png)$", re.IGNORECASE)
_MANIFEST = "resplit.json"


def read_name_list(path: str) -> List[str]:
    """The file names of one list (one per line; blank lines skipped); a bad or repeated name is an error."""
    if not os.path.isfile(path):
        raise DatasetError(f"{path}: list file not found")
    names: List[str] = []
    seen = set()
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            name = line.strip()
            if not name:
                continue
            if not _NAME_RE.match(name):
                raise DatasetError(f"{path}:{i}: {name!r} is not an image name like 0019_c1_f0051230.jpg")
            if name in seen:
                raise DatasetError(f"{path}:{i}: {name!r} is listed twice")
            seen.add(name)
            names.append(name)
    if not names:
        raise DatasetError(f"{path}: the list is empty")
    return names


def _locate(src: str, split: str, names: Sequence[str]) -> Tuple[Dict[str, str], List[str]]:
    """name -> source path (own split first, then the others in train/query/gallery order); and the missing names."""
    order = [MARKET_FOLDERS[split]] + [f for s, f in MARKET_FOLDERS.items() if s != split]
    found: Dict[str, str] = {}
    missing: List[str] = []
    for name in names:
        for folder in order:
            p = os.path.join(src, folder, name)
            if os.path.isfile(p):
                found[name] = p
                break
        else:
            missing.append(name)
    return found, missing


def _digest(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _place(src: str, dst: str, link: bool) -> bool:
    """Hard-link ``src`` to ``dst`` when asked and possible, else copy; True when linked."""
    if link:
        try:
            os.link(src, dst)
            return True
        except OSError:
            pass
    shutil.copyfile(src, dst)
    return False


def _existing(out: str, manifest: Mapping[str, object], overwrite: bool) -> Optional[dict]:
    """The summary of an ``out`` already built from the same lists; None when ``out`` is free (or may go)."""
    if not os.path.exists(out):
        return None
    path = os.path.join(out, _MANIFEST)
    old = None
    if os.path.isfile(path):
        try:
            with open(path, encoding="utf-8") as f:
                old = json.load(f)
        except (OSError, ValueError):
            old = None
    if old is not None and old.get("lists") == manifest["lists"] and not overwrite:
        return dict(old, reused=True)
    if not overwrite:
        what = "was built from other lists" if old is not None else "exists and was not built by this command"
        raise FileExistsError(f"{out} {what}; choose another --out or pass --overwrite to replace it")
    return None


def build_resplit(source: str, lists: Mapping[str, str], out: str, link: bool = True,
                  overwrite: bool = False) -> dict:
    """Build the Market-layout dataset ``out`` from ``source`` and ``lists`` (split -> list file).

    Returns a summary: images per split, how many came from another split of the source, linked or copied, and
    ``reused=True`` when ``out`` was already built from the same lists."""
    unknown = sorted(set(lists) - set(MARKET_FOLDERS))
    if unknown:
        raise ValueError(f"unknown split(s) {unknown}; expected {sorted(MARKET_FOLDERS)}")
    src = _find_root(source, list(MARKET_FOLDERS.values()), DUKE_FOLDERS, "Market-layout dataset")
    names = {split: read_name_list(path) for split, path in lists.items()}
    manifest = {"source": os.path.abspath(src),
                "lists": {s: {"file": os.path.basename(p), "sha256": _digest(p), "images": len(names[s])}
                          for s, p in sorted(lists.items())}}
    reused = _existing(out, manifest, overwrite)
    if reused is not None:
        return reused
    located = {}
    for split, ns in names.items():
        found, missing = _locate(src, split, ns)
        if missing:
            raise DatasetError(f"{lists[split]}: {len(missing)} of {len(ns)} listed images are not in {src} "
                               f"(first: {', '.join(missing[:3])}); is it the original DukeMTMC-reID?")
        located[split] = found
    return _write(out, located, manifest, link)


def _write(out: str, located: Mapping[str, Mapping[str, str]], manifest: dict, link: bool) -> dict:
    parent = os.path.dirname(os.path.abspath(out))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".resplit-", dir=parent)
    linked = copied = 0
    moved = {}
    try:
        for split, found in located.items():
            folder = os.path.join(tmp, MARKET_FOLDERS[split])
            os.makedirs(folder)
            moved[split] = sum(1 for p in found.values()
                               if os.path.basename(os.path.dirname(p)) != MARKET_FOLDERS[split])
            for name, p in found.items():
                if _place(p, os.path.join(folder, name), link):
                    linked += 1
                else:
                    copied += 1
        summary = dict(manifest, moved_between_splits=moved, linked=linked, copied=copied)
        with open(os.path.join(tmp, _MANIFEST), "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=1)
        if os.path.exists(out):
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dict(summary, reused=False)


def build_occluded_duke(duke_root: str, lists_dir: str, out: str, link: bool = True, overwrite: bool = False) -> dict:
    """Occluded-Duke from DukeMTMC-reID and the folder holding ``train.list``, ``query.list``, ``gallery.list``
    (``Occluded_Duke/`` of github.com/lightas/Occluded-DukeMTMC-Dataset)."""
    if not os.path.isdir(lists_dir):
        raise DatasetError(f"{lists_dir}: folder of the Occluded-Duke lists not found")
    lists = {s: os.path.join(lists_dir, f) for s, f in OCCLUDED_DUKE_LISTS.items()}
    return build_resplit(duke_root, lists, out, link=link, overwrite=overwrite)
