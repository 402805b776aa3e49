"""Speed of the corruption suite: ours (torch, batched) vs the reference ``imagecorruptions`` 1.1.5 (per image).

Times every corruption on a batch of Market-size person crops (default 256 × 128×64), over the chosen severities,
ours and the reference side by side in one run, and prints a markdown table: images/s of each, the speed-up, and
the geometric-mean speed-up over the corruptions both implement (the 19 ImageNet-C ones; rain and the occlusion
family are ours only).

    .venv/bin/python benchmarks/corruption_speed.py --batch 256 --threads 1 --out docs/benchmarks/corruptions_table.md

With ``--root`` the batch is made of real crops: ``--crops`` query images of that dataset (evenly spaced over its
sorted query list, resized to ``--height``×``--width`` when they differ), repeated to fill ``--batch``:

    .venv/bin/python benchmarks/corruption_speed.py --root real/data/market1501 --crops 64 --batch 256 \
        --severities 3 --threads 2 --repeats 3

``--parity`` prints instead the parity table: for every shared corruption and severity, the mean PSNR against the
clean images of ours and of the reference, and their mean absolute difference (meaningful for the deterministic
ones), on the test images of tests/test_corruptions_parity_a.py (48 synthetic persons + 16 crops of scikit-image
photos, 128×64).

The reference needs ``pip install imagecorruptions-imaug==1.1.5`` (test-only dependency); without it only our
column is filled.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import warnings

import numpy as np
import torch


def synthetic_persons(n: int, h: int = 128, w: int = 64, seed: int = 0) -> np.ndarray:
    """Person-like crops (N×H×W×3 uint8): smooth colour background, a torso, legs and a head, with texture."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    out = np.empty((n, h, w, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    for i in range(n):
        bg = gaussian_filter(rng.random((h, w, 3)), (h / 8, w / 8, 0))
        bg = (bg - bg.min()) / (np.ptp(bg) + 1e-9) * rng.uniform(0.3, 0.9) + rng.uniform(0, 0.1)
        img = bg
        cx = w / 2 + rng.uniform(-w / 10, w / 10)
        head = (yy - 0.12 * h) ** 2 / (0.07 * h) ** 2 + (xx - cx) ** 2 / (0.12 * w) ** 2 <= 1
        torso = (yy > 0.2 * h) & (yy < 0.55 * h) & (np.abs(xx - cx) < 0.25 * w)
        legs = (yy >= 0.55 * h) & (yy < 0.95 * h) & (np.abs(np.abs(xx - cx) - 0.1 * w) < 0.08 * w)
        for mask, col in ((head, rng.uniform(0.5, 0.9, 3) * [1, .8, .7]), (torso, rng.random(3)),
                          (legs, rng.random(3))):
            img = np.where(mask[..., None], col, img)
        img = img + gaussian_filter(rng.normal(0, 0.04, (h, w, 3)), (1, 1, 0))
        out[i] = (np.clip(img, 0, 1) * 255).astype(np.uint8)
    return out


def real_crops(root: str, dataset: str, n: int, h: int, w: int) -> np.ndarray:
    """``n`` query crops of a real dataset (N×H×W×3 uint8): evenly spaced over the query list sorted by path, so
    that many identities and cameras are in; resized to h×w (bilinear, antialiased) when their size differs."""
    from robustreid.data import load_dataset
    from robustreid.transforms.decode import read_image
    from robustreid.transforms.functional import resize

    query = sorted(load_dataset(dataset, root).query, key=lambda s: s.path)
    if not query:
        raise SystemExit(f"{root}: no query images for dataset {dataset!r}")
    picks = [query[int(i)] for i in np.linspace(0, len(query) - 1, min(n, len(query))).round()]
    crops = torch.stack([resize(read_image(s.path), (h, w)) for s in picks])
    return crops.permute(0, 2, 3, 1).contiguous().numpy()


def _time_ours_once(name, x, severity, device):
    from robustreid.corruptions import corrupt

    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    corrupt(x, name, severity, seed=severity)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t


def _time_reference_once(name, images, severity):
    import imagecorruptions

    np.random.seed(severity)
    t = time.perf_counter()
    for im in images:
        imagecorruptions.corrupt(im, severity, name)
    return time.perf_counter() - t


def time_pair(name, batch, images, severities, device, repeats, with_reference):
    """images/s of ours and of the reference (None without it). Ours and the reference alternate batch by batch
    and each severity keeps its best time over ``repeats``, so that a shared machine's changing load hits both
    alike."""
    from robustreid.corruptions import corrupt

    x = batch.to(device)
    corrupt(x[:4], name, 1, seed=0)  # warm-up
    if with_reference:
        import imagecorruptions

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            imagecorruptions.corrupt(images[0], 1, name)  # warm-up (numba JIT for glass_blur)
    best_ours = {s: math.inf for s in severities}
    best_ref = {s: math.inf for s in severities}
    for _ in range(repeats):
        for s in severities:
            best_ours[s] = min(best_ours[s], _time_ours_once(name, x, s, device))
            if with_reference:
                best_ref[s] = min(best_ref[s], _time_reference_once(name, images, s))
    n = len(severities) * x.shape[0]
    ours = n / sum(best_ours.values())
    ref = n / sum(best_ref.values()) if with_reference else None
    return ours, ref


def parity_images(n_synth: int = 48, n_photo: int = 16):
    """The parity test's images (imported from the test module so both use the same ones)."""
    import importlib.util
    from pathlib import Path

    import sys

    tests = Path(__file__).resolve().parents[1] / "tests"
    if str(tests) not in sys.path:
        sys.path.insert(0, str(tests))  # the test module imports tests/corruption_images.py
    path = tests / "test_corruptions_parity_a.py"
    spec = importlib.util.spec_from_file_location("_parity_a", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rng = np.random.default_rng(2024)
    return np.stack(mod._synthetic_persons(n_synth, rng) + mod._photo_crops(n_photo, rng)), mod


def parity_table(names) -> str:
    from robustreid.corruptions import corrupt

    arr, mod = parity_images()
    t = torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()
    lines = ["| corruption | kind | " + " | ".join(f"s{s} PSNR ours / ref (MAD)" for s in range(1, 6)) + " |",
             "|---|---|" + "---|" * 5]
    for name in names:
        kind = "deterministic" if name in mod.DETERMINISTIC else "random"
        cells = []
        for s in range(1, 6):
            ours = corrupt(t, name, s, seed=s).permute(0, 2, 3, 1).numpy()
            ref = mod._reference(arr, name, s)
            mad = np.abs(ours.astype(np.float64) - ref).mean()
            cells.append(f"{mod._psnr(ours, arr):.2f} / {mod._psnr(ref, arr):.2f} ({mad:.2f})")
        lines.append(f"| {name} | {kind} | " + " | ".join(cells) + " |")
        print(lines[-1], file=sys.stderr, flush=True)
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--height", type=int, default=128)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--severities", default="1-5", help="e.g. 1-5 or 3")
    ap.add_argument("--corruptions", default="all", help="all or a comma list")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (reference is single-threaded)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=3,
                    help="best of N per severity, ours and reference alternated batch by batch")
    ap.add_argument("--no-reference", action="store_true")
    ap.add_argument("--out", default=None, help="also write the markdown table to this file")
    ap.add_argument("--parity", action="store_true", help="print the parity table (PSNR ours vs reference) instead")
    ap.add_argument("--root", default=None, help="time on real query crops of the dataset at this root")
    ap.add_argument("--dataset", default="market1501", help="dataset name for --root (default market1501)")
    ap.add_argument("--crops", type=int, default=64, help="real crops taken with --root, repeated to fill --batch")
    args = ap.parse_args(argv)

    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")
    from robustreid.corruptions import CORRUPTIONS, OCCLUSIONS, CORRUPTION_REGISTRY

    lo, _, hi = args.severities.partition("-")
    severities = list(range(int(lo), int(hi or lo) + 1))
    names = list(CORRUPTIONS) if args.corruptions == "all" else args.corruptions.split(",")
    if args.corruptions == "all":
        names += [n for n in OCCLUSIONS if n in CORRUPTION_REGISTRY]
    names = [n for n in names if n in CORRUPTION_REGISTRY]
    have_ref = not args.no_reference
    ref_names = set()
    if have_ref:
        try:
            import imagecorruptions

            ref_names = set(imagecorruptions.get_corruption_names("all"))
        except ImportError:
            print("imagecorruptions not installed: reference column skipped", file=sys.stderr)
            have_ref = False

    if args.parity:
        table = parity_table([n for n in names if n in ref_names])
        print(table)
        if args.out:
            from robustreid.utils.io import atomic_write_text

            atomic_write_text(args.out, table + "\n")
        return 0

    if args.root:
        crops = real_crops(args.root, args.dataset, args.crops, args.height, args.width)
        images = np.concatenate([crops] * -(-args.batch // len(crops)))[: args.batch]
        source = f"{len(crops)} real {args.dataset} query crops ×{args.batch / len(crops):g}"
    else:
        images = synthetic_persons(args.batch, args.height, args.width)
        source = "synthetic person crops"
    batch = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    device = torch.device(args.device)
    rows, speedups = [], []
    for name in names:
        ours, ref = time_pair(name, batch, images, severities, device, args.repeats,
                              have_ref and name in ref_names)
        sp = ours / ref if ref else None
        if sp:
            speedups.append(sp)
        rows.append((name, ours, ref, sp))
        print(f"{name}: ours {ours:.0f} img/s" + (f", reference {ref:.0f} img/s, x{sp:.2f}" if ref else ""),
              file=sys.stderr, flush=True)

    lines = ["| corruption | ours (img/s) | reference (img/s) | speed-up |", "|---|---:|---:|---:|"]
    for name, ours, ref, sp in rows:
        lines.append(f"| {name} | {ours:,.0f} | {f'{ref:,.0f}' if ref else '—'} | {f'{sp:.2f}×' if sp else '—'} |")
    if speedups:
        geo = math.exp(sum(math.log(s) for s in speedups) / len(speedups))
        lines.append(f"| **geometric mean ({len(speedups)} shared)** | | | **{geo:.2f}×** |")
        lines.append("")
        lines.append(f"slowest relative to the reference: {min(speedups):.2f}×")
    head = (f"batch {args.batch} × {args.height}×{args.width} ({source}), severities {args.severities}, "
            f"device {args.device}, torch threads {args.threads}, best of {args.repeats}, torch {torch.__version__}")
    table = head + "\n\n" + "\n".join(lines)
    print(table)
    if args.out:
        from robustreid.utils.io import atomic_write_text

        atomic_write_text(args.out, table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
