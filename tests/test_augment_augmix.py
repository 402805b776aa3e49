"""AugMix: views differ from the input, stay in [0, 1], use only the allowed ops; the ops against references."""

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from robustreid.corruptions import CORRUPTIONS
from robustreid.transforms.augment import AugContext, build_batch_augment
from robustreid.transforms.augment.augmix import AUGMIX_OPS, AugMix, autocontrast, equalize, make_ops, posterize, solarize


def ctx(seed=0):
    return AugContext(generator=torch.Generator().manual_seed(seed))


def test_views_differ_in_range_and_input_untouched():
    torch.manual_seed(0)
    x = torch.rand(6, 3, 32, 16)
    keep = x.clone()
    aug = build_batch_augment([{"name": "augmix"}])
    out = aug({"images": x, "pids": torch.arange(6)}, ctx(1))
    assert torch.equal(x, keep) and torch.equal(out["images"], x)
    assert len(out["views"]) == 2
    v1, v2 = out["views"]
    for v in (v1, v2):
        assert v.shape == x.shape and float(v.min()) >= 0 and float(v.max()) <= 1
        assert (v - x).abs().flatten(1).amax(1).min() > 0  # every image changed
    assert not torch.equal(v1, v2)
    again = aug({"images": x}, ctx(1))
    assert all(torch.equal(a, b) for a, b in zip(out["views"], again["views"]))


def test_only_allowed_ops_and_none_overlaps_the_test_corruptions():
    overlap = {"brightness", "contrast", "color", "sharpness", "saturate"}
    assert not set(AUGMIX_OPS) & (set(CORRUPTIONS) | overlap)
    aug = AugMix()
    for s in range(3):
        aug.augment(torch.rand(16, 3, 16, 8), torch.Generator().manual_seed(s))
    assert aug.used_ops <= set(AUGMIX_OPS) and len(aug.used_ops) >= 6
    with pytest.raises(ValueError, match="not allowed"):
        AugMix(ops=["rotate", "brightness"])


def _pil(x):
    return Image.fromarray((x.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))


def _t(im):
    return torch.from_numpy(np.asarray(im).astype(np.float32) / 255).permute(2, 0, 1)


@pytest.mark.parametrize("seed", [0, 1])
def test_pixel_ops_match_pillow(seed):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(2, 3, 12, 9, generator=g) * 0.6 + 0.2)
    x = (x * 255).round() / 255
    lvl = torch.tensor([3.0, 3.0], dtype=torch.float64)
    for i in range(2):
        im = _pil(x[i])
        assert torch.allclose(equalize(x, lvl)[i], _t(ImageOps.equalize(im)), atol=1e-6)
        assert torch.allclose(autocontrast(x, lvl)[i], _t(ImageOps.autocontrast(im)), atol=1.5 / 255)
        # AugMix: posterize bits = 4 - int(3*4/10) = 3, solarize threshold = 256 - int(3*256/10) = 180
        assert torch.allclose(posterize(x, lvl)[i], _t(ImageOps.posterize(im, 3)), atol=1e-6)
        assert torch.allclose(solarize(x, lvl)[i], _t(ImageOps.solarize(im, 180)), atol=1e-6)


def test_affine_ops_geometry():
    H, W = 12, 8
    x = torch.zeros(1, 3, H, W)
    x[:, :, 5, 3] = 1.0
    ops = make_ops(H, W)
    one = torch.tensor([10.0], dtype=torch.float64)
    pos = torch.tensor([1.0], dtype=torch.float64)
    # translate_x at level 10 shifts by floor(W/3) = 2 pixels; the sampled source is x + 2, so content moves left
    y = ops["translate_x"](x, one, pos)
    assert torch.nonzero(y[0, 0] > 0.99).tolist() == [[5, 1]]
    y = ops["translate_y"](x, one, -pos)
    assert torch.nonzero(y[0, 0] > 0.99).tolist() == [[9, 3]]
    # rotation by 30° about the centre keeps the centre's value
    c = torch.zeros(1, 3, H, W)
    c[:, :, 5:7, 3:5] = 1.0
    r = ops["rotate"](c, one, pos)
    assert float(r[0, 0, 5:7, 3:5].mean()) > 0.5 and float(r.sum()) > 0
