"""Random erasing (fill modes, areas, aspects), batch erasing, random patch pool, DropBlock."""

import math

import pytest
import torch
from hypothesis import given, settings, strategies as st

from robustreid.transforms.augment import AUGMENTATIONS, AugContext, BatchDropBlock, build_batch_augment
from robustreid.transforms.augment.erasing import RandomErasing, shifted
from robustreid.transforms.augment.patch import RandomPatch


def ctx(seed=0, **kw):
    return AugContext(generator=torch.Generator().manual_seed(seed), **kw)


def boxes(mask):
    """Per sample (top, left, h, w) of the single rectangle in a N×1×H×W mask, or None."""
    out = []
    for m in mask[:, 0]:
        idx = torch.nonzero(m)
        if len(idx) == 0:
            out.append(None)
            continue
        t, l_ = idx.min(0).values.tolist()
        b, r = idx.max(0).values.tolist()
        h, w = b - t + 1, r - l_ + 1
        assert int(m.sum()) == h * w, "mask is not a rectangle"
        out.append((t, l_, h, w))
    return out


def test_registered_names():
    for name in ["random_erasing", "soft_erasing", "self_erasing", "batch_random_erasing", "random_patch", "augmix",
                 "igo", "npo", "corruption_aug"]:
        assert name in AUGMENTATIONS


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), H=st.integers(16, 48), W=st.integers(8, 32))
def test_erasing_rectangles_within_bounds(seed, H, W):
    x = torch.rand(16, 3, H, W)
    out = RandomErasing(p=1.0, fill="mean")({"images": x}, ctx(seed))
    for b in boxes(out["occ_mask"]):
        if b is None:  # no attempt fitted: allowed, but then the image is untouched
            continue
        t, l_, h, w = b
        assert t + h <= H and l_ + w <= W and h < H and w < W
        # h = round(sqrt(a·r)), w = round(sqrt(a/r)) with a in [2 %, 40 %]·H·W and r in [0.3, 3.3]: each is within
        # 0.5 of its real value, so a = sqrt(a·r)·sqrt(a/r) and r = sqrt(a·r)/sqrt(a/r) lie in these intervals
        assert (h - 0.5) * (w - 0.5) <= 0.4 * H * W and (h + 0.5) * (w + 0.5) >= 0.02 * H * W
        assert (h - 0.5) / (w + 0.5) <= 3.3 and (h + 0.5) / (w - 0.5) >= 0.3


def test_erasing_fill_modes_and_no_mutation():
    torch.manual_seed(0)
    x = torch.rand(32, 3, 40, 20)
    keep = x.clone()
    mean = (0.1, 0.2, 0.3)
    for fill in ["mean", "random", "soft", "self"]:
        out = RandomErasing(p=1.0, fill=fill, mean=mean)({"images": x, "pids": torch.arange(32)}, ctx(1))
        assert torch.equal(x, keep)
        m = out["occ_mask"].bool().expand_as(x)
        y = out["images"]
        assert torch.equal(y[~m], x[~m])  # outside the rectangle: untouched
        assert 0 <= float(y.min()) and float(y.max()) <= 1
        inside = y[m].view(-1)
        if fill == "mean":
            expected = torch.tensor(mean).view(1, 3, 1, 1).expand_as(x)[m]
            assert torch.equal(inside, expected)
        else:
            assert not torch.equal(inside, x[m])
    assert int(out["occ_mask"].sum()) > 0


def test_soft_erasing_is_a_blend_with_beta_weight():
    # constant image: inside the rectangle (1-m)*c + m*noise, so the deviation from c ranges over [0, 1]*|noise-c|
    x = torch.full((400, 3, 32, 16), 0.5)
    out = RandomErasing(p=1.0, fill="soft")({"images": x}, ctx(3, mean=(0.5, 0.5, 0.5), std=(0.2, 0.2, 0.2)))
    m = out["occ_mask"][:, 0].bool()
    # estimate m per sample: E|noise - c| for N(0.5, 0.2) clipped is ~0.2*sqrt(2/pi)
    dev = torch.stack([(out["images"][i, :, m[i]] - 0.5).abs().mean() for i in range(400) if m[i].any()])
    mhat = dev / (0.2 * math.sqrt(2 / math.pi))
    # Beta(0.5, 1) has mean 1/3
    assert abs(float(mhat.mean()) - 1 / 3) < 0.05


def test_self_erasing_copies_from_same_image():
    # image whose pixel value encodes its (row, col): self-erasing with m = 1 would copy another rectangle
    H, W = 30, 20
    x = (torch.arange(H * W, dtype=torch.float32) / (H * W)).view(1, 1, H, W).expand(4, 3, H, W).clone()
    x[1] += 0.0  # same content for all samples
    mask = torch.zeros(1, 1, H, W)
    mask[..., 5:10, 3:8] = 1
    y = shifted(x[:1], torch.tensor([7]), torch.tensor([-2]), mask)
    assert torch.equal(y[0, :, 5:10, 3:8], x[0, :, 12:17, 1:6])
    assert torch.equal(y[0, :, 0:5], x[0, :, 0:5])


def test_erasing_probability_and_determinism():
    x = torch.rand(400, 3, 32, 16)
    aug = RandomErasing(p=0.5)
    a = aug({"images": x}, ctx(7))
    b = aug({"images": x}, ctx(7))
    c = aug({"images": x}, ctx(8))
    assert torch.equal(a["images"], b["images"]) and not torch.equal(a["images"], c["images"])
    frac = float((a["occ_mask"].flatten(1).sum(1) > 0).float().mean())
    assert 0.4 < frac < 0.6


def test_batch_random_erasing_same_region_for_all():
    x = torch.rand(6, 3, 48, 24)
    out = build_batch_augment([{"name": "batch_random_erasing"}])({"images": x}, ctx(2, mean=(0.4, 0.5, 0.6)))
    bs = boxes(out["occ_mask"])
    assert bs[0] is not None and all(b == bs[0] for b in bs)
    t, l_, h, w = bs[0]
    assert 0.25 * 0.8 <= h * w / (48 * 24) <= 0.5 * 1.2
    assert torch.allclose(out["images"][:, :, t, l_], torch.tensor([0.4, 0.5, 0.6]).expand(6, 3))


def test_random_patch_pool_is_shared_across_batches_and_deterministic():
    H, W = 32, 16

    def run(seed):
        aug = RandomPatch(p=1.0, min_pool=1, flip=0.0, pool_size=64)
        red = torch.zeros(4, 3, H, W)
        red[:, 0] = 1.0
        first = aug({"images": red}, ctx(seed))
        # batch t: pool was empty, nothing pasted; its patches are now in the shared pool
        assert torch.equal(first["images"], red) and int(first["occ_mask"].sum()) == 0
        assert len(aug.pool) == 4
        black = torch.zeros(4, 3, H, W)
        second = aug({"images": black}, ctx(seed + 1))
        return second

    s = run(0)
    m = s["occ_mask"].bool()
    assert m.flatten(1).any(1).all()  # every image of batch t+1 got a patch (p = 1) ...
    pasted = s["images"].permute(0, 2, 3, 1)[m[:, 0]]
    assert torch.equal(pasted, torch.tensor([1.0, 0.0, 0.0]).expand_as(pasted))  # ... cut from batch t
    s2 = run(0)
    assert torch.equal(s["images"], s2["images"])


def test_random_patch_ring_buffer_and_state():
    aug = RandomPatch(p=0.0, pool_size=5, min_pool=1)
    for i in range(3):
        aug({"images": torch.full((2, 3, 16, 8), float(i) / 3)}, ctx(i))
    assert len(aug.pool) == 5 and aug.pool.pushed == 6
    # 6 pushes into 5 slots: the oldest (batch 0's first patch, slot 0) was replaced by the newest
    values = [round(float(p.mean()), 4) for p in aug.pool.items]
    assert values == [0.6667, 0.0, 0.3333, 0.3333, 0.6667]
    clone = RandomPatch(p=0.0, pool_size=5)
    clone.load_state_dict(aug.state_dict())
    assert [torch.equal(a, b) for a, b in zip(clone.pool.items, aug.pool.items)] == [True] * 5


def test_batch_dropblock_train_only_and_shared():
    torch.manual_seed(0)
    blk = BatchDropBlock(h_ratio=0.25, w_ratio=1.0, generator=torch.Generator().manual_seed(0))
    x = torch.rand(5, 8, 16, 8) + 0.1
    y = blk.train()(x)
    zero = (y == 0).all(dim=1)  # N×H×W: dropped positions (all channels)
    assert torch.equal(zero, zero[:1].expand_as(zero))  # same region for the whole batch
    rows = zero[0].all(dim=1)
    assert int(rows.sum()) == 4 and int(zero[0].sum()) == 4 * 8
    idx = torch.nonzero(rows).flatten()
    assert int(idx[-1] - idx[0]) == 3  # contiguous band
    assert blk.eval()(x) is x


@pytest.mark.parametrize("bad", [{"name": "random_erasing", "fill": "zeros"}, {"name": "random_erasing", "p": 2},
                                 {"name": "random_patch", "area": [0.5, 0.1]}])
def test_bad_arguments_are_clear(bad):
    with pytest.raises(ValueError) as e:
        build_batch_augment([bad])
    assert bad["name"].split("_")[0] in str(e.value) or "expected" in str(e.value)


def test_bad_batch_is_clear():
    with pytest.raises(ValueError, match="N×3×H×W"):
        RandomErasing()({"images": torch.zeros(2, 1, 8, 8)}, ctx())
