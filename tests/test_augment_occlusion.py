"""IGO (area schedule, batch-shared region, fill range), NPO (stripe targets, geometry), corruption augmentation."""

import math

import pytest
import torch

from robustreid.transforms.augment import AugContext, build_batch_augment
from robustreid.transforms.augment.igo import IGO, igo_area_fraction, igo_rect_size
from robustreid.transforms.augment.npo import NPO, stripe_targets


def ctx(seed=0, **kw):
    return AugContext(generator=torch.Generator().manual_seed(seed), **kw)


# ---------------------------------------------------------------- IGO
def test_igo_area_schedule_matches_the_definition():
    for epoch in range(0, 121):
        expected = 0.1 + 0.4 * epoch / 90 if epoch <= 55 else 1 / 3
        assert igo_area_fraction(epoch) == pytest.approx(expected)
    assert igo_area_fraction(0) == pytest.approx(0.1)
    assert igo_area_fraction(55) == pytest.approx(0.1 + 22 / 90)
    assert igo_area_fraction(56) == pytest.approx(1 / 3)
    assert igo_area_fraction(30, epoch_scale=60, switch_epoch=20, final_area=0.25) == 0.25


@pytest.mark.parametrize("epoch", [0, 20, 55, 80])
def test_igo_region_is_shared_sized_and_filled(epoch):
    H, W = 96, 32
    x = torch.rand(5, 3, H, W)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    out = IGO()({"images": x, "pids": torch.arange(5)}, ctx(epoch, epoch=epoch, mean=mean, std=std))
    m = out["occ_mask"]
    assert torch.equal(m, m[:1].expand_as(m))  # same region for every image
    idx = torch.nonzero(m[0, 0])
    t, l_ = idx.min(0).values.tolist()
    h, w = (idx.max(0).values - idx.min(0).values + 1).tolist()
    assert int(m[0, 0].sum()) == h * w
    area = H * W * igo_area_fraction(epoch)
    if math.sqrt(area) <= W:  # rectangle with aspect h/w in [0.5, 1] (up to rounding)
        assert abs(h * w - area) <= h + w + 1
        assert 0.5 * (1 - 2 / w) <= h / w <= 1 * (1 + 2 / w)
    else:  # full-width band
        assert w == W and h == round(area / W)
    # one value per channel, in [mean, mean + std] (uniform in normalised space), same for all images
    fill = out["images"][:, :, t, l_]
    assert torch.equal(fill, fill[:1].expand_as(fill))
    for c in range(3):
        assert mean[c] - 1e-6 <= float(fill[0, c]) <= mean[c] + std[c] + 1e-6
        assert torch.all(out["images"][:, c][m[:, 0].bool()] == fill[0, c])
    assert torch.equal(out["images"][~m.bool().expand_as(x)], x[~m.bool().expand_as(x)])
    assert torch.equal(out["clean_images"], x)


def test_igo_redrawn_every_iteration_and_deterministic():
    x = torch.rand(2, 3, 64, 32)
    aug = IGO()
    a = aug({"images": x}, ctx(1, epoch=10))
    b = aug({"images": x}, ctx(2, epoch=10))
    c = aug({"images": x}, ctx(1, epoch=10))
    assert not torch.equal(a["occ_mask"], b["occ_mask"]) or not torch.equal(a["images"], b["images"])
    assert torch.equal(a["images"], c["images"])


def test_igo_band_when_too_wide_and_fixed_epoch():
    g = torch.Generator().manual_seed(0)
    # area 48*16*0.45 = 345.6 -> sqrt 18.6 > W = 16: full-width band of round(345.6/16) = 22 rows
    assert igo_rect_size(g, 48, 16, 48 * 16 * 0.45) == (22, 16)
    x = torch.rand(1, 3, 90, 30)
    out = IGO(fixed_epoch=-1)({"images": x}, ctx(0, epoch=50))
    assert out["aug_info"]["igo"]["area_fraction"] == pytest.approx(0.1 - 0.4 / 90)


# ---------------------------------------------------------------- NPO stripe targets (hand-made cases)
def _views(rows_changed, amounts, H=16, W=4):
    """Clean zeros; in the occluded view, rows of stripe s changed by amounts[s] over rows_changed[s] rows."""
    clean = torch.zeros(1, 3, H, W)
    occ = clean.clone()
    sh = H // 4
    for s, (rows, amt) in enumerate(zip(rows_changed, amounts)):
        occ[:, :, s * sh:s * sh + rows] = amt
    return clean, occ


@pytest.mark.parametrize("rows,amounts,expected", [
    ((0, 0, 0, 0), (0, 0, 0, 0), [1, 1, 1, 1]),          # untouched: all visible
    ((4, 4, 4, 4), (1, 1, 1, 1), [1, 1, 1, 1]),          # all 4 touched: all visible (FED's rule)
    ((0, 0, 2, 0), (0, 0, 1, 0), [1, 1, 0, 1]),          # one touched: that one 0
    ((4, 1, 0, 0), (1, 1, 0, 0), [0, 1, 1, 1]),          # two touched, largest 4x the second: only it is 0
    ((4, 2, 0, 0), (1, 1, 0, 0), [0, 0, 1, 1]),          # two touched, 2x: both 0
    ((0, 3, 4, 1), (0, 1, 1, 1), [1, 0, 0, 0]),          # three touched, 4/3 ratio: all three 0
    ((0, 1, 4, 1), (0, 1, 1, 1), [1, 1, 0, 1]),          # three touched, 4x: only the largest 0
    ((0, 1, 3, 0), (0, 1, 1, 0), [1, 0, 0, 1]),          # exactly 3x is not "more than 3x": both 0
])
def test_npo_stripe_targets_hand_cases(rows, amounts, expected):
    clean, occ = _views(rows, amounts)
    assert stripe_targets(clean, occ).tolist() == [expected]


def test_npo_views_geometry_and_targets():
    H, W = 64, 32
    aug = NPO(source="batch")
    x0 = torch.rand(8, 3, H, W)
    first = aug({"images": x0}, ctx(0))  # pool empty: clean batch, all targets 1
    assert torch.equal(first["images"], x0) and torch.all(first["stripe_targets"] == 1)
    x = torch.zeros(8, 3, H, W)
    out = aug({"images": x}, ctx(1))
    assert torch.equal(out["clean_images"], x)
    for i in range(8):
        m = out["occ_mask"][i, 0]
        idx = torch.nonzero(m)
        t, l_ = idx.min(0).values.tolist()
        b, r = idx.max(0).values.tolist()
        h, w = b - t + 1, r - l_ + 1
        assert (h == H and W // 4 - 1 <= w <= W // 2 + 1) or (w == W and H // 4 - 1 <= h <= H // 2 + 1)
        assert (t == 0 or b == H - 1) and (l_ == 0 or r == W - 1)  # at a corner
    expected = stripe_targets(out["clean_images"], out["images"])
    assert torch.equal(out["stripe_targets"], expected)


def test_npo_folder_pool_tall_patch(tmp_path):
    from PIL import Image

    Image.new("RGB", (10, 40), (255, 0, 0)).save(tmp_path / "tall.png")  # h/w = 4 > 2
    aug = NPO(source="folder", folder=str(tmp_path))
    x = torch.zeros(4, 3, 64, 32)
    out = aug({"images": x}, ctx(0))
    for i in range(4):
        m = out["occ_mask"][i, 0]
        cols = m.any(dim=0)
        assert bool(m[:, cols].all())  # full height
        assert 8 <= int(cols.sum()) <= 16
    assert torch.all(out["stripe_targets"] == 1)  # tall occluder touches all 4 stripes -> all visible
    with pytest.raises(ValueError, match="not a directory"):
        NPO(source="folder", folder=str(tmp_path / "missing"))


def test_npo_uses_occluder_masks_exactly():
    H, W = 32, 16
    aug = NPO(source="batch")
    x = torch.zeros(1, 3, H, W)
    x[:, 1, 4:10, 2:6] = 1.0  # a green object
    masks = torch.zeros(1, 1, H, W)
    masks[:, :, 4:10, 2:6] = 1
    aug({"images": x, "occluder_masks": masks}, ctx(0))
    patch = aug.pool[0]
    assert patch.shape == (4, 6, 4) and torch.all(patch[1] == 1) and torch.all(patch[3] == 1)


# ---------------------------------------------------------------- corruption augmentation
def test_corruption_aug_holdout_seen_and_info(monkeypatch):
    from robustreid.corruptions import CORRUPTION_REGISTRY, FAMILIES

    # a corruption with a known result, registered for this test only (removed afterwards)
    monkeypatch.setitem(CORRUPTION_REGISTRY._items, "test_aug_invert", lambda images, severity, seeds: 255 - images)

    aug = build_batch_augment([{"name": "corruption_aug", "p": 1.0, "corruptions": ["test_aug_invert", "noise"],
                                "holdout": ["noise"]}]).augs[0]
    assert aug.seen_corruptions == ("test_aug_invert",)
    assert aug.held_out == tuple(FAMILIES["noise"])
    x = torch.rand(6, 3, 16, 8)
    out = aug({"images": x, "pids": torch.arange(6)}, ctx(0))
    expected = 1.0 - (x * 255).round() / 255
    assert torch.allclose(out["images"], expected, atol=1e-6)
    info = out["aug_info"]["corruption"]
    assert info["seen"] == ["test_aug_invert"] and info["applied"][0][0] == "test_aug_invert"
    assert all(1 <= a[1] <= 5 for a in info["applied"])
    # p = 0: images bit-identical
    out0 = build_batch_augment([{"name": "corruption_aug", "p": 0.0}])({"images": x}, ctx(0))
    assert torch.equal(out0["images"], x)
    with pytest.raises(ValueError, match="unknown corruption or family"):
        build_batch_augment([{"name": "corruption_aug", "holdout": ["fgo"]}])
