"""Test images shared by the corruption parity tests and benchmarks: person-like crops and scikit-image photo crops.

Both are uint8 H×W×3 numpy arrays at Market-1501 size (128×64 by default), drawn from a numpy Generator.
"""

import numpy as np


def synthetic_persons(n, rng, h=128, w=64):
    """Person-like crops: smooth random colour field, a head, torso and legs, fine texture."""
    from scipy import ndimage as ndi

    yy, xx = np.mgrid[0:h, 0:w]
    out = []
    for _ in range(n):
        bg = ndi.gaussian_filter(rng.random((h, w, 3)), (h / 8, w / 8, 0))
        img = (bg - bg.min()) / (np.ptp(bg) + 1e-9) * rng.uniform(0.3, 0.9) + rng.uniform(0, 0.1)
        cx = w / 2 + rng.uniform(-w / 10, w / 10)
        head = (yy - 0.12 * h) ** 2 / (0.07 * h) ** 2 + (xx - cx) ** 2 / (0.12 * w) ** 2 <= 1
        torso = (yy > 0.2 * h) & (yy < 0.55 * h) & (np.abs(xx - cx) < 0.25 * w)
        legs = (yy >= 0.55 * h) & (yy < 0.95 * h) & (np.abs(np.abs(xx - cx) - 0.1 * w) < 0.08 * w)
        for mask in (head, torso, legs):
            img = np.where(mask[..., None], rng.random(3), img)
        img = img + ndi.gaussian_filter(rng.normal(0, 0.04, (h, w, 3)), (1, 1, 0))
        out.append((np.clip(img, 0, 1) * 255).astype(np.uint8))
    return out


def photo_crops(n, rng, h=128, w=64):
    """Crops of scikit-image's photos (astronaut, chelsea, coffee), resized to person-crop size."""
    from skimage import data
    from skimage.transform import resize

    photos = [data.astronaut(), data.chelsea(), data.coffee()]
    out = []
    for i in range(n):
        p = photos[i % 3]
        ch = int(rng.integers(p.shape[0] // 3, p.shape[0]))
        cw = min(ch // 2, p.shape[1])
        y0 = int(rng.integers(0, p.shape[0] - ch + 1))
        x0 = int(rng.integers(0, p.shape[1] - cw + 1))
        crop = resize(p[y0:y0 + ch, x0:x0 + cw], (h, w), anti_aliasing=True)
        out.append((crop * 255).astype(np.uint8))
    return out
