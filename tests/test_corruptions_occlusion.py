"""The occlusion family: covered area per severity, mask correctness, determinism, untouched input, sources."""

import numpy as np
import pytest
import torch

from robustreid.corruptions import CORRUPTION_REGISTRY, OCCLUSIONS, corrupt
from robustreid.corruptions import occlusion as occ
from robustreid.corruptions.occlusion import OCCLUSION_AREAS, occlude, set_occluder_source


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    return torch.randint(30, 220, (12, 3, 128, 64), generator=g, dtype=torch.uint8)


@pytest.fixture(autouse=True)
def _reset_source():
    yield
    set_occluder_source(None)


@pytest.mark.parametrize("name", OCCLUSIONS)
@pytest.mark.parametrize("size", [(128, 64), (96, 96), (64, 160)])
def test_covered_area_matches_severity(name, size):
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 256, (6, 3) + size, generator=g, dtype=torch.uint8)
    for s in range(1, 6):
        _, mask = occlude(x, name, s, seed=s)
        cov = mask.mean(dim=(1, 2, 3))
        target = OCCLUSION_AREAS[s]
        assert target == pytest.approx(0.1 * s)
        assert (cov - target).abs().max() <= 0.015, f"{name} {size} severity {s}: coverage {cov.tolist()}"


@pytest.mark.parametrize("name", OCCLUSIONS)
def test_mask_marks_exactly_the_changed_region(batch, name):
    before = batch.clone()
    out, mask = occlude(batch, name, 3, seed=5)
    assert torch.equal(batch, before)  # input untouched
    assert out.dtype == torch.uint8 and out.shape == batch.shape
    assert mask.dtype == torch.float32 and mask.shape == (12, 1, 128, 64)
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    outside = (mask == 0).expand_as(batch)
    assert torch.equal(out[outside], batch[outside])  # nothing outside the mask changes
    changed = (out != batch).any(dim=1, keepdim=True)
    # inside the mask the occluder shows: nearly every occluded pixel differs from the (random) original
    assert changed[mask.bool()].float().mean() > 0.9


def test_solid_is_one_coloured_rectangle(batch):
    out, mask = occlude(batch, "occlusion_solid", 4, seed=2)
    for i in range(len(batch)):
        m = mask[i, 0].bool()
        rows, cols = m.any(1).nonzero().flatten(), m.any(0).nonzero().flatten()
        box = m[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
        assert box.all()  # the mask fills its bounding box
        px = out[i].permute(1, 2, 0)[m]
        assert (px == px[0]).all()  # one flat colour


def test_noise_fill_is_noisy(batch):
    out, mask = occlude(batch, "occlusion_noise", 5, seed=2)
    px = out[0].permute(1, 2, 0)[mask[0, 0].bool()].float()
    assert px.std(0).min() > 50  # uniform 0..255 noise has std ~74


@pytest.mark.parametrize("name", ["occlusion_solid", "occlusion_noise", "occlusion_object"])
def test_determinism_across_batch_sizes(batch, name):
    seeds = list(range(100, 112))
    full, mfull = occlude(batch, name, 2, seed=seeds)
    parts = [occlude(batch[i:i + k], name, 2, seed=seeds[i:i + k]) for i, k in ((0, 1), (1, 5), (6, 6))]
    assert torch.equal(full, torch.cat([p[0] for p in parts]))
    assert torch.equal(mfull, torch.cat([p[1] for p in parts]))
    other, _ = occlude(batch, name, 2, seed=[s + 1000 for s in seeds])
    assert not torch.equal(full, other)


def test_registered_corruption_returns_images_only(batch):
    for name in OCCLUSIONS:
        assert name in CORRUPTION_REGISTRY
        y = corrupt(batch, name, 3, seed=9)
        assert torch.equal(y, occlude(batch, name, 3, seed=9)[0])
        assert torch.equal(y, occlude(batch, name, 3, seed=9, return_mask=False))
    assert CORRUPTION_REGISTRY.get("occlusion_pedestrian").batch_dependent is True
    assert CORRUPTION_REGISTRY.get("occlusion_solid").batch_dependent is False


def test_pedestrian_comes_from_another_image_of_the_batch():
    colours = torch.tensor([[200, 10, 10], [10, 200, 10], [10, 10, 200]], dtype=torch.uint8)
    x = colours.view(3, 3, 1, 1).expand(3, 3, 128, 64).contiguous()
    out, mask = occlude(x, "occlusion_pedestrian", 4, seed=[1, 2, 3])
    for i in range(3):
        px = out[i].permute(1, 2, 0)[mask[i, 0].bool()]
        donors = [j for j in range(3) if (px == colours[j]).all(dim=1).float().mean() > 0.95]
        assert donors and donors[0] != i
    # the same batch and seeds give the same result
    assert torch.equal(out, occlude(x, "occlusion_pedestrian", 4, seed=[1, 2, 3])[0])


def test_pedestrian_single_image_uses_a_drawn_silhouette():
    x = torch.full((1, 3, 128, 64), 128, dtype=torch.uint8)
    out, mask = occlude(x, "occlusion_pedestrian", 3, seed=4)
    assert mask.mean().item() == pytest.approx(0.3, abs=0.015)
    m = mask[0, 0].bool()
    px = out[0].permute(1, 2, 0)[m].float()
    assert px.std(0).max() > 10  # clothed, textured figure, not a flat copy of the input
    # a standing figure: touches the bottom edge and is taller than wide
    rows, cols = m.any(1).nonzero().flatten(), m.any(0).nonzero().flatten()
    assert rows.max() == 127 and (rows.max() - rows.min()) > (cols.max() - cols.min())


def _write_rgba_patch(path, size=(40, 30), colour=(10, 200, 30)):
    from PIL import Image
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    alpha = ((((yy - h / 2) / (h / 2)) ** 2 + ((xx - w / 2) / (w / 2)) ** 2) <= 1) * 255
    arr = np.zeros((h, w, 4), np.uint8)
    arr[..., :3] = colour
    arr[..., 3] = alpha
    Image.fromarray(arr, "RGBA").save(path)


def test_object_occluders_from_a_folder(tmp_path, batch):
    _write_rgba_patch(tmp_path / "blob.png")
    set_occluder_source(tmp_path)
    assert occ.occluder_source() == str(tmp_path)
    out, mask = occlude(batch, "occlusion_object", 3, seed=1)
    cov = mask.mean(dim=(1, 2, 3))
    assert (cov - 0.3).abs().max() <= 0.015
    px = out.permute(0, 2, 3, 1)[mask[:, 0].bool()].int()
    assert (px - torch.tensor([10, 200, 30])).abs().max() <= 1  # the patch's colour, nothing else
    set_occluder_source(None)
    assert occ.occluder_source() == "generated"


def test_bad_occluder_folder_messages(tmp_path):
    with pytest.raises(ValueError, match="not a folder"):
        set_occluder_source(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="no usable patches"):
        set_occluder_source(tmp_path)


def test_generated_objects_cover_every_kind():
    x = torch.full((40, 3, 128, 64), 128, dtype=torch.uint8)
    kinds = set()
    for s in range(40):
        k = torch.rand(1, generator=occ.image_generator(s), dtype=torch.float64)
        kinds.add(occ.OBJECT_KINDS[int(k[0] * len(occ.OBJECT_KINDS))])
    assert kinds == set(occ.OBJECT_KINDS)
    _, mask = occlude(x, "occlusion_object", 2, seed=list(range(40)))
    assert ((mask.mean(dim=(1, 2, 3)) - 0.2).abs() <= 0.015).all()


def test_occlude_argument_errors(batch):
    with pytest.raises(ValueError, match="unknown occlusion"):
        occlude(batch, "snow", 1)
    with pytest.raises(ValueError, match="severity"):
        occlude(batch, "occlusion_solid", 6)
    with pytest.raises(ValueError, match="uint8"):
        occlude(batch.float(), "occlusion_solid", 1)
    out, mask = occlude(batch[:0], "occlusion_noise", 1)
    assert out.shape[0] == 0 and mask.shape == (0, 1, 128, 64)
