"""Speed of the synthetic person generator on one core (target: >= 500 images/s at 128x64).

Reports, for the plain and the occluded variant: rendering only (draw + camera + JPEG encode, in memory), and the
whole ``generate`` call (plus writing files, masks and the manifest), as wall-clock and process-CPU images/s.
CPU time is the fairer number on a shared machine; wall-clock includes waiting for the disk and other processes.

    python benchmarks/synth_speed.py                  # 1,200 images per row, 128x64
    python benchmarks/synth_speed.py --images 3000 --size 256x128
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=1200, help="approximate images per measurement")
    ap.add_argument("--size", default="128x64")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from robustreid.data import synthetic as S
    from robustreid.transforms.functional import parse_size
    from robustreid.utils.seed import derive_seed

    h, w = parse_size(args.size)
    per_id = 12
    ids = max(2, args.images // per_id)
    print(f"synthetic generator, {args.size}, one thread, {ids * per_id} images per row\n")
    print("| variant | stage | images | wall s | img/s (wall) | CPU s | img/s (CPU) |")
    print("|---|---|---|---|---|---|---|")
    for occluded in (False, True):
        name = "occluded" if occluded else "plain"
        # rendering only
        canvas = S._Canvas(h, w)
        cams = [S.make_camera(args.seed, k, (h, w)) for k in range(6)]
        idents = [S.make_identity(args.seed, "id", i) for i in range(ids)]
        n = ids * per_id
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(n):
            rng = np.random.default_rng(derive_seed("bench", i))
            S.render_identity_image(idents[i // per_id], cams[i % 6], canvas, rng, args.seed,
                                    occluded=occluded and i % 4 == 0)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(f"| {name} | render (25 % occluded)" if occluded else f"| {name} | render", end="")
        print(f" | {n} | {wall:.2f} | {n / wall:.0f} | {cpu:.2f} | {n / cpu:.0f} |")
        out = tempfile.mkdtemp(prefix="synth-speed-")
        try:
            t0, c0 = time.perf_counter(), time.process_time()
            s = S.generate(out, identities=ids, cameras=6, images_per_id=per_id, seed=args.seed, occluded=occluded,
                           size=(h, w))
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            print(f"| {name} | generate (files) | {s['images']} | {wall:.2f} | {s['images'] / wall:.0f} | "
                  f"{cpu:.2f} | {s['images'] / cpu:.0f} |")
        finally:
            shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
