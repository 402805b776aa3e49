"""Write corrupted copies of a dataset's query and gallery images, seeded, resumable, with a manifest.

Layout (``rel`` is an image's path relative to the dataset root, e.g. ``query/0001_c1s1_000151_00.jpg``):

* ``mode="sweep"``: ``OUT/<corruption>/<severity>/<rel>`` for every chosen corruption and severity;
* ``mode="mix"``: ``OUT/mix/<rel>``: the published protocol, each image one corruption drawn among the chosen
  ones and one severity among the chosen severities, both drawn from the image's own seed (the rule of
  :mod:`robustreid.corruptions.mix`, which the robustness benchmark uses too);
* with ``passes > 1`` every copy gets one more folder level ``pass<k>`` (k = 0..passes-1) before ``<rel>``.

Every copy root also gets symbolic links to the dataset root's other entries (the train folder, list files), so a
copy is a complete dataset: ``load_dataset(name, OUT/fog/3)`` reads it (``link_rest=False`` turns this off).

Seeds: image i uses ``image_seed(dataset.name, rel, corruption, severity, pass, seed)``; in mix mode the choice of
corruption and severity comes from ``derive_seed(dataset.name, rel, "mix", pass, seed)`` (see :func:`mix_choice`). The same dataset, seed
and options give byte-identical files on every machine (CPU; see docs/corruptions.md for CUDA).

Files keep their names and format: JPEG sources are written as JPEG (quality 95, 4:4:4 chroma, i.e. a small
re-encoding error on top of the corruption, documented), PNG/BMP/TIFF sources losslessly in their own format.
``image_format="png"`` writes lossless PNG instead (same stem, ``.png`` extension).

Atomicity and resume: every image is written to a temporary file and renamed; then its manifest row is appended
(one ``write`` of whole lines on an O_APPEND file; a torn last line from a crash is dropped at the next start).
A rerun skips the images already written and adds the manifest rows a crash may have lost. ``OUT/corrupt_run.json``
records the run's parameters; resuming with another dataset, seed, mode or pass count is refused.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import torch

from ..utils.io import atomic_path, atomic_write_text
from ..utils.progress import progress_bar
from .base import corrupt, image_seed
from .mix import mix_choice as _mix_rule
from .base import parse_corruptions as _parse_corruptions, parse_severities as _parse_severities

MANIFEST = "manifest.csv"
RUN_FILE = "corrupt_run.json"
MANIFEST_FIELDS = ("file", "corruption", "severity", "seed", "pass", "source")
JPEG_OPTIONS = {"quality": 95, "subsampling": 0}
_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF",
            ".webp": "WEBP", ".ppm": "PPM", ".pgm": "PPM"}


def _file_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_FILE_MODE = _file_mode()


class CorruptWriteError(ValueError):
    """Bad arguments or an output folder that does not match the run (the message says which)."""


# ------------------------------------------------------------------------------------------------- parsing


def parse_corruptions(spec: Union[str, Sequence[str]]) -> List[str]:
    """``'all'``, a family name (``'occlusion'``...) or a comma list of names, as
    :func:`robustreid.corruptions.base.parse_corruptions`; errors are :class:`CorruptWriteError`."""
    try:
        return list(_parse_corruptions(spec))
    except ValueError as e:
        raise CorruptWriteError(str(e)) from None


def parse_severities(spec: Union[str, Sequence[int]]) -> List[int]:
    """``'1-5'``, ``'3'``, ``'1,3,5'`` or ints, as :func:`robustreid.corruptions.base.parse_severities`."""
    try:
        return list(_parse_severities(spec))
    except ValueError as e:
        raise CorruptWriteError(str(e)) from None


# ------------------------------------------------------------------------------------------------- image IO


def read_image_rgb(path: Union[str, Path]) -> torch.Tensor:
    """Decode an image file as uint8 3×H×W RGB (:func:`robustreid.transforms.decode.read_image`)."""
    from ..transforms.decode import read_image

    try:
        return read_image(path)
    except ValueError as e:
        raise CorruptWriteError(str(e)) from None


def encode_image(image: torch.Tensor, suffix: str) -> bytes:
    """Encode uint8 3×H×W RGB for a file with this suffix (JPEG at quality 95 / 4:4:4, others lossless)."""
    from PIL import Image

    fmt = _FORMATS.get(suffix.lower())
    if fmt is None:
        raise CorruptWriteError(f"cannot write images with suffix {suffix!r}; supported: {', '.join(_FORMATS)}")
    im = Image.fromarray(image.permute(1, 2, 0).contiguous().cpu().numpy())
    buf = io.BytesIO()
    opts = dict(JPEG_OPTIONS) if fmt == "JPEG" else ({"lossless": True} if fmt == "WEBP" else {})
    im.save(buf, format=fmt, **opts)
    return buf.getvalue()


# ------------------------------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class Job:
    """One corrupted image to write."""

    source: str  # absolute path of the clean image
    rel: str  # its path relative to the dataset root (forward slashes)
    dest: str  # output path relative to OUT (forward slashes)
    corruption: str
    severity: int
    seed: int
    pass_index: int


def mix_choice(dataset: str, rel: str, corruptions: Sequence[str], severities: Sequence[int], pass_index: int = 0,
               seed: int = 0) -> Tuple[str, int]:
    """The (corruption, severity) the mix protocol gives image ``rel`` in pass ``pass_index``.

    The rule is :func:`robustreid.corruptions.mix.mix_choice`, which the robustness benchmark's mix protocol uses
    too, so a mix copy written here holds exactly the images the benchmark corrupts on the fly with the same seed.
    """
    return _mix_rule(dataset, rel, int(pass_index), int(seed), list(corruptions), list(severities))


def _rel(path: str, root: str) -> str:
    rel = os.path.relpath(path, root) if root else path
    if rel.startswith(".."):
        rel = os.path.basename(path)
    return rel.replace(os.sep, "/")


def plan_jobs(dataset, corruptions: Sequence[str], severities: Sequence[int], mode: str = "sweep", seed: int = 0,
              passes: int = 1, splits: Sequence[str] = ("query", "gallery"),
              image_format: str = "same") -> List[Job]:
    """Every image to write, in a deterministic order (corruption, severity, pass, split order, path)."""
    if mode not in ("sweep", "mix"):
        raise CorruptWriteError(f"mode {mode!r}: expected 'sweep' or 'mix'")
    if passes < 1:
        raise CorruptWriteError(f"passes must be >= 1, got {passes}")
    if image_format not in ("same", "png"):
        raise CorruptWriteError(f"image format {image_format!r}: expected 'same' or 'png'")
    samples = []
    seen = set()
    for split in splits:
        for smp in dataset.split(split):
            rel = _rel(smp.path, dataset.root)
            if rel not in seen:  # a file listed in two splits is written once
                seen.add(rel)
                samples.append((smp.path, rel))
    name = dataset.name

    def dest(prefix: str, p: int, rel: str) -> str:
        if image_format == "png":
            rel = str(Path(rel).with_suffix(".png")).replace(os.sep, "/")
        return f"{prefix}/pass{p}/{rel}" if passes > 1 else f"{prefix}/{rel}"

    jobs: List[Job] = []
    if mode == "sweep":
        for c in corruptions:
            for s in severities:
                for p in range(passes):
                    for src, rel in samples:
                        jobs.append(Job(src, rel, dest(f"{c}/{s}", p, rel), c, s, image_seed(name, rel, c, s, p, seed),
                                        p))
    else:
        for p in range(passes):
            for src, rel in samples:
                c, s = mix_choice(name, rel, corruptions, severities, p, seed)
                jobs.append(Job(src, rel, dest("mix", p, rel), c, s, image_seed(name, rel, c, s, p, seed), p))
    return jobs


# ------------------------------------------------------------------------------------------------- manifest


def read_manifest(path: Union[str, Path], repair: bool = False) -> List[Dict[str, str]]:
    """Rows of a manifest; a torn last line (a crash mid-append) is ignored, and removed when ``repair``."""
    path = Path(path)
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
        if repair:
            atomic_write_text(path, text)
    return list(csv.DictReader(io.StringIO(text)))


def _append_rows(path: Path, rows: Iterable[Sequence[object]]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if not path.exists() or path.stat().st_size == 0:
        w.writerow(MANIFEST_FIELDS)
    for r in rows:
        w.writerow(r)
    data = buf.getvalue().encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)  # whole lines in one write
        os.fsync(fd)
    finally:
        os.close(fd)


# ------------------------------------------------------------------------------------------------- writing


@dataclass
class WriteSummary:
    out: str
    written: int = 0
    skipped: int = 0
    manifest: str = ""
    counts: Dict[str, int] = field(default_factory=dict)  # corruption -> images written or present


def _check_run(out: Path, params: dict) -> None:
    f = out / RUN_FILE
    if f.exists():
        try:
            old = json.loads(f.read_text(encoding="utf-8"))
        except ValueError:
            raise CorruptWriteError(f"{f}: unreadable run record; remove it or choose another --out") from None
        for key in ("dataset", "seed", "mode", "passes", "image_format"):
            if old.get(key) != params.get(key):
                raise CorruptWriteError(
                    f"{out} holds a run with {key}={old.get(key)!r}, this one has {key}={params.get(key)!r}; "
                    f"choose another output folder")
        if params["mode"] == "mix" and (old.get("corruptions") != params["corruptions"]
                                        or old.get("severities") != params["severities"]):
            raise CorruptWriteError(f"{out} holds a mix run over other corruptions/severities; choose another output "
                                    f"folder")
        merged = dict(old)
        merged["corruptions"] = list(old.get("corruptions", [])) + [
            c for c in params["corruptions"] if c not in old.get("corruptions", [])]
        merged["severities"] = sorted(set(old.get("severities", [])) | set(params["severities"]))
        params = merged
    atomic_write_text(f, json.dumps(params, indent=2) + "\n")


def _link_rest(dataset_root: str, copy_root: Path, written_tops: set) -> None:
    if not dataset_root or not os.path.isdir(dataset_root):
        return
    for entry in sorted(os.listdir(dataset_root)):
        if entry in written_tops or entry.startswith("."):
            continue
        link = copy_root / entry
        if link.exists() or link.is_symlink():
            continue
        copy_root.mkdir(parents=True, exist_ok=True)
        try:
            os.symlink(os.path.abspath(os.path.join(dataset_root, entry)), link)
        except OSError:
            pass  # file systems without symlinks: the copy then holds query/gallery only


def corrupt_dataset(dataset, out: Union[str, Path], corruptions: Union[str, Sequence[str]] = "all",
                    severities: Union[str, Sequence[int]] = "1-5", mode: str = "sweep", seed: int = 0,
                    passes: int = 1, splits: Sequence[str] = ("query", "gallery"), batch_size: int = 64,
                    device: Union[str, torch.device] = "cpu", image_format: str = "same", link_rest: bool = True,
                    progress: bool = True, limit: Optional[int] = None) -> WriteSummary:
    """Write corrupted copies of ``dataset`` (a :class:`~robustreid.data.ReidDataset`) under ``out``.

    See the module docstring for the layout, seeding, formats and resume rules. ``limit`` stops after writing that
    many images (for tests of resume). Returns a :class:`WriteSummary`.
    """
    corruptions = parse_corruptions(corruptions)
    severities = parse_severities(severities)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = plan_jobs(dataset, corruptions, severities, mode, seed, passes, splits, image_format)
    params = {"dataset": dataset.name, "root": str(dataset.root), "seed": int(seed), "mode": mode,
              "passes": int(passes), "image_format": image_format, "corruptions": corruptions,
              "severities": severities, "splits": list(splits)}
    if "frost" in corruptions:  # which frost textures this run used (photographs or generated; see the docs)
        try:
            from .weather import frost_source

            params["frost_source"] = frost_source()
        except (ImportError, AttributeError):  # pragma: no cover - depends on the weather module
            pass
    _check_run(out, params)
    manifest = out / MANIFEST
    recorded = {r["file"] for r in read_manifest(manifest, repair=True)}
    summary = WriteSummary(out=str(out), manifest=str(manifest))

    todo: List[Job] = []
    lost_rows = []
    for j in jobs:
        if (out / j.dest).exists():
            summary.skipped += 1
            if j.dest not in recorded:  # written, but the crash came before its manifest row
                lost_rows.append(_row(j))
        else:
            todo.append(j)
    if lost_rows:
        _append_rows(manifest, lost_rows)

    bar = None
    if progress:
        bar = progress_bar(total=len(jobs), initial=summary.skipped, unit="img",
                           desc=f"corrupt {dataset.name} ({mode})")
    device = torch.device(device)
    try:
        # group by (corruption, severity) so every batch runs one corruption; keep the plan's order inside a group
        groups: Dict[Tuple[str, int], List[Job]] = {}
        for j in todo:
            groups.setdefault((j.corruption, j.severity), []).append(j)
        budget = limit if limit is not None else len(todo)
        for (c, s), group in groups.items():
            for k in range(0, len(group), batch_size):
                if budget <= 0:
                    return summary
                chunk = group[k:k + batch_size][:budget]
                _write_chunk(chunk, c, s, out, manifest, device)
                budget -= len(chunk)
                summary.written += len(chunk)
                if bar is not None:
                    bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
    if link_rest:
        tops = {}
        for j in jobs:
            copy_root = j.dest[: len(j.dest) - len(j.rel)].rstrip("/") if j.dest.endswith(j.rel) else None
            if copy_root:
                tops.setdefault(copy_root, set()).add(j.rel.split("/")[0])
        for copy_root, written in tops.items():
            _link_rest(str(dataset.root), out / copy_root, written)
    for j in jobs:
        summary.counts[j.corruption] = summary.counts.get(j.corruption, 0) + 1
    return summary


def _row(j: Job) -> Tuple[object, ...]:
    return (j.dest, j.corruption, j.severity, j.seed, j.pass_index, j.rel)


def _write_chunk(chunk: List[Job], corruption: str, severity: int, out: Path, manifest: Path, device) -> None:
    images = [read_image_rgb(j.source) for j in chunk]
    # images of one size are corrupted together (per-image results do not depend on the batch)
    by_size: Dict[Tuple[int, int], List[int]] = {}
    for i, im in enumerate(images):
        by_size.setdefault(tuple(im.shape[1:]), []).append(i)
    results: List[Optional[torch.Tensor]] = [None] * len(chunk)
    for idx in by_size.values():
        batch = torch.stack([images[i] for i in idx]).to(device)
        res = corrupt(batch, corruption, severity, seed=[chunk[i].seed for i in idx]).cpu()
        for r, i in zip(res, idx):
            results[i] = r
    for j, r in zip(chunk, results):
        dest = out / j.dest
        data = encode_image(r, dest.suffix)
        with atomic_path(dest) as tmp:
            with open(tmp, "wb") as f:
                f.write(data)
            os.chmod(tmp, _FILE_MODE)  # mkstemp makes 0600 files; corrupted copies are ordinary data files
    _append_rows(manifest, [_row(j) for j in chunk])


def run_record(out: Union[str, Path]) -> dict:
    """The parameters stored with a written copy (``OUT/corrupt_run.json``)."""
    return json.loads((Path(out) / RUN_FILE).read_text(encoding="utf-8"))


__all__ = ["CorruptWriteError", "Job", "WriteSummary", "corrupt_dataset", "encode_image", "mix_choice",
           "parse_corruptions", "parse_severities", "plan_jobs", "read_image_rgb", "read_manifest", "run_record",
           "MANIFEST", "MANIFEST_FIELDS", "RUN_FILE"]
