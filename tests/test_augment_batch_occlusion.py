"""The batch-occlusion baselines of the IGOAS comparison: batch random erasing, Slow-DropBlock (input) and Batch
DropBlock placed on a model's layer."""

import pytest
import torch

from robustreid.models import ModelConfig, build_model
from robustreid.transforms.augment import AugContext, build_batch_augment
from robustreid.transforms.augment.dropblock import SlowDropBlock, attach_dropblock

MEAN = (0.485, 0.456, 0.406)


def _batch(n=4, h=20, w=10, seed=0):
    return {"images": torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed)) * 0.2 + 0.8}


def _ctx(seed=0, iteration=0):
    return AugContext(generator=torch.Generator().manual_seed(seed), iteration=iteration, mean=MEAN)


def _rect(mask):
    rows = torch.nonzero(mask.any(dim=1)).flatten()
    cols = torch.nonzero(mask.any(dim=0)).flatten()
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


@pytest.mark.parametrize("seed", range(4))
def test_batch_random_erasing_one_mean_filled_rectangle_per_batch(seed):
    b = _batch(h=40, w=20)
    x0 = b["images"].clone()
    aug = build_batch_augment([{"name": "batch_random_erasing", "area": [0.25, 0.5], "aspect": [0.25, 4.0]}])
    out = aug(b, _ctx(seed))
    assert torch.equal(b["images"], x0)  # the input batch is not modified
    m = out["occ_mask"]
    assert torch.equal(m, m[:1].expand_as(m))  # the same rectangle for every image
    t, bo, l, r = _rect(m[0, 0] > 0)
    h, w = bo - t, r - l
    assert int(m[0, 0].sum()) == h * w  # a full rectangle
    assert 0.25 * 800 - 40 <= h * w <= 0.5 * 800 + 40  # area 25-50 % (rounding of the sides)
    inside = out["images"][:, :, t:bo, l:r]
    assert torch.allclose(inside, torch.tensor(MEAN).view(1, 3, 1, 1).expand_as(inside))
    assert torch.equal(out["images"] * (1 - m), x0 * (1 - m))  # nothing changed outside


def test_slow_dropblock_is_a_mean_filled_band_shared_by_the_batch():
    b = _batch()
    x0 = b["images"].clone()
    out = SlowDropBlock(h_ratio=0.3, w_ratio=1.0)(b, _ctx(1))
    assert torch.equal(b["images"], x0)
    m = out["occ_mask"]
    assert torch.equal(m, m[:1].expand_as(m))
    t, bo, l, r = _rect(m[0, 0] > 0)
    assert (bo - t, l, r) == (6, 0, 10)  # round(0.3 · 20) rows, the full width
    band = out["images"][:, :, t:bo]
    assert torch.allclose(band, torch.tensor(MEAN).view(1, 3, 1, 1).expand_as(band))  # 0 in normalised space
    assert torch.equal(out["images"] * (1 - m), x0 * (1 - m))


def test_slow_dropblock_moves_only_every_n_iterations_and_resumes_exactly():
    aug = SlowDropBlock(h_ratio=0.2, every=3, seed=5)
    tops = []
    for it in range(9):
        out = aug(_batch(), _ctx(seed=100 + it, iteration=it))  # the per-iteration generator does not matter
        tops.append(_rect(out["occ_mask"][0, 0] > 0)[0])
    assert tops[0] == tops[1] == tops[2] and tops[3] == tops[4] == tops[5] and tops[6] == tops[7] == tops[8]
    assert len({tops[0], tops[3], tops[6]}) > 1  # the block does move between periods
    again = SlowDropBlock(h_ratio=0.2, every=3, seed=5)(_batch(), _ctx(seed=0, iteration=7))
    assert _rect(again["occ_mask"][0, 0] > 0)[0] == tops[7]  # a fresh instance (resumed run) draws the same
    firsts = {_rect(SlowDropBlock(h_ratio=0.2)(_batch(), _ctx(s))["occ_mask"][0, 0] > 0)[0] for s in range(8)}
    assert len(firsts) > 1  # every = 1: a new position from each iteration's generator


def test_slow_dropblock_bad_arguments():
    with pytest.raises(ValueError, match="every"):
        build_batch_augment([{"name": "slow_dropblock", "every": 0}])
    with pytest.raises(ValueError, match="h_ratio"):
        build_batch_augment([{"name": "slow_dropblock", "h_ratio": 1.5}])


def test_batch_dropblock_on_a_model_layer_in_training_only():
    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone="resnet18", backbone_kwargs={"width": 0.125}, input_size=(160, 32)), 3)
    handles = attach_dropblock(model, [{"layer": "backbone", "h_ratio": 0.3}])
    x = torch.rand(3, 3, 160, 32, generator=torch.Generator().manual_seed(0))
    fmap = model.train()(x)["feat_map"]  # N×64×10×2
    dropped = (fmap == 0).all(dim=1)  # positions zero in every channel
    assert torch.equal(dropped, dropped[:1].expand_as(dropped))
    assert int(dropped[0].all(dim=1).sum()) == 3 and int(dropped[0].sum()) == 3 * 2  # a band of 3 of 10 rows
    model.eval()
    with torch.no_grad():
        assert not (model.forward_features(x) == 0).all(dim=1).any()
    handles[0].remove()
    with pytest.raises(ValueError, match="no module 'backbone.layer9'"):
        attach_dropblock(model, [{"layer": "backbone.layer9"}])
    with pytest.raises(ValueError, match="unknown key"):
        attach_dropblock(model, [{"layer": "backbone", "size": 3}])


def test_the_engine_places_model_dropblock_and_slow_dropblock(tmp_path):
    from engine_support import make_dataset, tiny_config
    from robustreid.engine.trainer import train

    cfg = tiny_config("model.dropblock=[{layer: backbone, h_ratio: 0.5}]", "data.augs=[{name: slow_dropblock}]",
                      "solver.epochs=1", "solver.warmup_epochs=0", "train.max_iters_per_epoch=1")
    result = train(cfg, tmp_path / "run", dataset=make_dataset(tmp_path / "data"))
    assert result["steps"] == 1 and 0.0 <= result["final"]["mAP"] <= 1.0
