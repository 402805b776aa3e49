"""PCB: stripe pooling, per-stripe heads, the concatenated test feature, the stripe loss. Tiny models."""

import math

import pytest
import torch
import torch.nn.functional as F

from robustreid.config.loader import ConfigError
from robustreid.losses import build_losses
from robustreid.models import ModelConfig, build_model
from robustreid.models.pcb import stripe_pool

H, W = 96, 32  # last stride 1: a 6×2 map, one row per stripe


def _cfg(**over):
    kw = dict(name="pcb", backbone="resnet18", backbone_kwargs={"width": 0.125}, input_size=(H, W), last_stride=1)
    kw.update(over)
    return ModelConfig(**kw)


def test_stripe_pool_is_the_mean_of_each_band_of_rows():
    rows = torch.arange(24, dtype=torch.float32).view(1, 1, 24, 1).expand(2, 3, 24, 5)
    s = stripe_pool(rows, 6)
    assert s.shape == (2, 3, 6, 1)
    assert torch.equal(s[0, 0, :, 0], torch.tensor([1.5, 5.5, 9.5, 13.5, 17.5, 21.5]))  # rows 4i..4i+3


def test_shapes_and_the_concatenated_normalised_test_feature():
    torch.manual_seed(0)
    model = build_model(_cfg(), num_classes=7)
    x = torch.rand(4, 3, H, W, generator=torch.Generator().manual_seed(0))
    out = model.train()(x)
    assert out["part_logits"].shape == (4, 6, 7) and out["part_feat"].shape == (4, 6, 256)
    assert out["feat"].shape == (4, 1536) and out["feat_map"].shape == (4, 64, 6, 2)
    model.eval()
    emb = model(x)
    assert emb.shape == (4, 1536) and model.feat_dim == 1536
    with torch.no_grad():
        parts = model.part_features(model.forward_features(x))
    assert torch.allclose(emb, torch.cat([F.normalize(parts[:, i], dim=1) for i in range(6)], dim=1), atol=1e-6)
    assert torch.allclose(emb.view(4, 6, 256).norm(dim=2), torch.ones(4, 6))


def test_each_stripe_sees_only_its_rows():
    torch.manual_seed(0)
    model = build_model(_cfg(), num_classes=3).eval()
    fmap = torch.rand(2, 64, 6, 2)
    changed = fmap.clone()
    changed[:, :, 5] += 1.0  # the bottom row = the last stripe
    with torch.no_grad():
        a, b = model.part_features(fmap), model.part_features(changed)
    assert torch.equal(a[:, :5], b[:, :5]) and not torch.equal(a[:, 5], b[:, 5])


def test_stripe_count_from_method_kwargs_and_bad_options():
    model = build_model(_cfg(method_kwargs={"parts": 3, "part_dim": 16}), num_classes=2)
    assert model.train()(torch.rand(2, 3, H, W))["part_logits"].shape == (2, 3, 2)
    assert model.feat_dim == 48
    with pytest.raises(ConfigError, match="unknown option"):
        build_model(_cfg(method_kwargs={"stripes": 6}), num_classes=2)
    with pytest.raises(ConfigError, match="positive integer"):
        build_model(_cfg(method_kwargs={"parts": 0}), num_classes=2)


def _ce_by_hand(logits, target, eps):
    logp = [z - math.log(sum(math.exp(v) for v in logits)) for z in logits]
    return (1 - eps) * -logp[target] + eps * sum(-v for v in logp) / len(logits)


def test_parts_ce_is_the_mean_of_the_stripe_losses():
    logits = [[[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]], [[-1.0, 0.5, 3.0], [1.0, 1.0, 1.0]]]  # 2 samples × 2 stripes
    pids = [0, 2]
    expected = sum(_ce_by_hand(logits[n][s], pids[n], 0.1) for n in range(2) for s in range(2)) / 4
    loss = build_losses([{"name": "parts_ce", "epsilon": 0.1}])
    total, parts = loss({"part_logits": torch.tensor(logits)}, {"pids": torch.tensor(pids)})
    assert float(total) == pytest.approx(expected, rel=1e-6) and set(parts) == {"parts_ce"}
    with pytest.raises(ValueError, match="N×parts×num_classes"):
        loss({"part_logits": torch.zeros(2, 3)}, {"pids": torch.tensor(pids)})


def test_pcb_trains_through_the_engine(tmp_path):
    from engine_support import make_dataset, tiny_config
    from robustreid.engine.trainer import train

    cfg = tiny_config("model.name=pcb", "losses=[{name: parts_ce, epsilon: 0.1}]", "solver.epochs=1",
                      "solver.warmup_epochs=0", "train.max_iters_per_epoch=2")
    result = train(cfg, tmp_path / "run", dataset=make_dataset(tmp_path / "data"))
    assert result["steps"] == 2 and 0.0 <= result["final"]["mAP"] <= 1.0
