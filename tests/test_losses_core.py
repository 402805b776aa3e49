"""Loss values on hand-made cases (CE with label smoothing, batch-hard triplet, soft margin, center)."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from robustreid.losses import LOSSES, CenterLoss, CrossEntropyLabelSmooth, TripletLoss, build_losses


def _softplus(x):
    return math.log1p(math.exp(x))


def test_ce_label_smoothing_by_hand():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    pids = torch.tensor([0, 1])
    eps = 0.1
    expected = 0.0
    for row, y in zip(logits.tolist(), pids.tolist()):
        lse = math.log(sum(math.exp(v) for v in row))
        nll = lse - row[y]
        uniform = sum(lse - v for v in row) / 3
        expected += ((1 - eps) * nll + eps * uniform) / 2
    loss = LOSSES.build("ce", epsilon=eps)({"logits": logits}, {"pids": pids})
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    plain = CrossEntropyLabelSmooth(0.0)({"logits": logits}, {"pids": pids})
    assert plain.item() == pytest.approx((math.log(math.exp(2) + 1 + math.exp(-1)) - 2
                                          + math.log(2 * math.exp(0.5) + math.exp(3)) - 0.5) / 2, rel=1e-6)
    # another output key
    alt = LOSSES.build("ce", logits_key="logits2")({"logits2": logits}, {"pids": pids})
    assert alt.item() == pytest.approx(expected, rel=1e-6)


def test_ce_errors_are_readable():
    ce = CrossEntropyLabelSmooth()
    with pytest.raises(ValueError, match="pids must be in"):
        ce({"logits": torch.zeros(2, 3)}, {"pids": torch.tensor([0, 3])})
    with pytest.raises(KeyError, match="no 'logits'"):
        ce({"feat": torch.zeros(2, 3)}, {"pids": torch.tensor([0, 1])})
    with pytest.raises(TypeError, match="eval mode"):
        ce(torch.zeros(2, 3), {"pids": torch.tensor([0, 1])})
    with pytest.raises(ValueError, match="epsilon"):
        CrossEntropyLabelSmooth(1.5)


def _feat(*xs):
    return torch.tensor([[x, 0.0] for x in xs], requires_grad=True)


def test_batch_hard_triplet_four_sample_hand_case():
    # 1-d positions 0, 2 (id 0) and 1.5, 5 (id 1)
    # anchor 0: d_ap 2, d_an 1.5 -> 0.8; anchor 2: d_ap 2, d_an 0.5 -> 1.8;
    # anchor 1.5: d_ap 3.5, d_an 0.5 -> 3.3; anchor 5: d_ap 3.5, d_an 3 -> 0.8
    feat = _feat(0.0, 2.0, 1.5, 5.0)
    batch = {"pids": torch.tensor([0, 0, 1, 1])}
    loss = LOSSES.build("triplet", margin=0.3)({"feat": feat}, batch)
    assert loss.item() == pytest.approx((0.8 + 1.8 + 3.3 + 0.8) / 4, rel=1e-5)
    loss.backward()
    assert torch.isfinite(feat.grad).all()
    soft = LOSSES.build("triplet", soft=True)({"feat": feat}, batch)
    expected = (_softplus(0.5) + _softplus(1.5) + _softplus(3.0) + _softplus(0.5)) / 4
    assert soft.item() == pytest.approx(expected, rel=1e-5)
    assert LOSSES.build("triplet", margin=0)({"feat": feat}, batch).item() == pytest.approx(expected, rel=1e-5)
    # well separated identities: every anchor satisfies the margin
    zero = LOSSES.build("triplet", margin=0.3)({"feat": _feat(0.0, 0.1, 5.0, 5.1)}, batch)
    assert zero.item() == 0.0


def test_triplet_skips_anchors_without_positive_or_negative():
    # id 1 has a single sample: it is not an anchor, but it is a negative for the others
    feat = _feat(0.0, 1.0, 0.5)
    loss = TripletLoss(0.3)({"feat": feat}, {"pids": torch.tensor([0, 0, 1])})
    # anchors 0 and 1: d_ap 1, d_an 0.5 -> 0.8 each
    assert loss.item() == pytest.approx(0.8, rel=1e-5)
    same = _feat(0.0, 1.0, 2.0)
    out = TripletLoss(0.3)({"feat": same}, {"pids": torch.tensor([4, 4, 4])})
    assert out.item() == 0.0
    out.backward()
    assert torch.equal(same.grad, torch.zeros_like(same))
    single = TripletLoss(0.3)({"feat": _feat(1.0, 2.0)}, {"pids": torch.tensor([0, 1])})
    assert single.item() == 0.0


def test_triplet_duplicate_features_have_finite_gradients_and_normalize_option():
    feat = torch.tensor([[1.0, 2.0], [1.0, 2.0], [3.0, 1.0], [3.0, 1.0]], requires_grad=True)
    loss = TripletLoss(0.3)({"feat": feat}, {"pids": torch.tensor([0, 0, 1, 1])})
    loss.backward()
    assert torch.isfinite(feat.grad).all()
    f = torch.randn(8, 5)
    pids = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    a = TripletLoss(0.3, normalize=True)({"feat": f}, {"pids": pids})
    b = TripletLoss(0.3, normalize=True)({"feat": f * 7.0}, {"pids": pids})
    assert a.item() == pytest.approx(b.item(), rel=1e-5)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-5, 5), min_size=12, max_size=12), st.permutations(list(range(6))),
       st.floats(-3, 3), st.booleans())
def test_triplet_properties(values, perm, shift, soft):
    feat = torch.tensor(values, dtype=torch.float64).view(6, 2).float()
    pids = torch.tensor([0, 0, 1, 1, 2, 2])
    loss = TripletLoss(0.3, soft=soft)
    base = loss({"feat": feat}, {"pids": pids})
    assert base.item() >= 0
    p = torch.tensor(perm)
    permuted = loss({"feat": feat[p]}, {"pids": pids[p]})
    shifted = loss({"feat": feat + shift}, {"pids": pids})
    assert permuted.item() == pytest.approx(base.item(), rel=1e-4, abs=1e-4)
    assert shifted.item() == pytest.approx(base.item(), rel=1e-3, abs=1e-3)
    # by the definition, with explicit loops
    d = torch.cdist(feat.double(), feat.double())
    terms = []
    for i in range(6):
        pos = [d[i, j] for j in range(6) if j != i and pids[j] == pids[i]]
        neg = [d[i, j] for j in range(6) if pids[j] != pids[i]]
        diff = float(max(pos) - min(neg))
        terms.append(_softplus(diff) if soft else max(0.0, diff + 0.3))
    assert base.item() == pytest.approx(sum(terms) / 6, rel=1e-3, abs=1e-3)


def test_center_loss_by_hand_and_gradient():
    loss = CenterLoss(num_classes=3, feat_dim=2)
    with torch.no_grad():
        loss.centers.copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0], [-2.0, 0.0]]))
    feat = torch.tensor([[1.0, 0.0], [1.0, 3.0], [0.0, 0.0]], requires_grad=True)
    pids = torch.tensor([0, 1, 2])
    value = loss({"feat": feat}, {"pids": pids})
    assert value.item() == pytest.approx((1.0 + 4.0 + 4.0) / 3)
    value.backward()
    # d/dc_y = -2 (f - c_y) / N
    torch.testing.assert_close(loss.centers.grad, torch.tensor([[-2 / 3, 0.0], [0.0, -4 / 3], [-4 / 3, 0.0]]))
    assert list(dict(loss.named_parameters())) == ["centers"]
    with pytest.raises(ValueError, match="N×2"):
        loss({"feat": torch.zeros(3, 4)}, {"pids": pids})


def test_build_losses_from_config_specs():
    specs = [{"name": "ce", "weight": 1.0, "epsilon": 0.1}, {"name": "triplet", "weight": 1.0, "margin": 0.3},
             {"name": "center", "weight": 5e-4, "num_classes": 4, "feat_dim": 3}]
    combined = build_losses(specs)
    torch.manual_seed(0)
    out = {"logits": torch.randn(8, 4), "feat": torch.randn(8, 3)}
    batch = {"pids": torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])}
    total, logs = combined(out, batch)
    assert set(logs) == {"ce", "triplet", "center"}
    assert total.item() == pytest.approx(logs["ce"].item() + logs["triplet"].item() + 5e-4 * logs["center"].item(),
                                         rel=1e-5)
    with pytest.raises(ValueError, match="num_classes and feat_dim"):
        build_losses([{"name": "center"}])
    with pytest.raises(ValueError, match="bad arguments"):
        build_losses([{"name": "triplet", "margn": 0.3}])
    # ce and triplet accept (and ignore) num_classes / feat_dim passed by the engine
    build_losses([{"name": "ce", "num_classes": 4, "feat_dim": 3}, {"name": "triplet", "num_classes": 4}])


def test_model_and_losses_train_together():
    from robustreid.models import ModelConfig, build_model

    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone="resnet18", backbone_kwargs={"width": 0.125}, input_size=(64, 32)), 4)
    crit = build_losses([{"name": "ce"}, {"name": "triplet"}])
    x = torch.randint(0, 256, (8, 3, 64, 32), dtype=torch.uint8)
    batch = {"pids": torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])}
    opt = torch.optim.Adam(model.param_groups(3e-3, 5e-4))
    model.train()
    first = None
    for _ in range(15):
        total, _ = crit(model(x), batch)
        first = total.item() if first is None else first
        opt.zero_grad()
        total.backward()
        opt.step()
    assert total.item() < 0.7 * first
