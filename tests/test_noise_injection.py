"""Noise injection: off at inference (bit-identical), right std in training, annealing, placement, seeds; JSD."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from robustreid.losses import LOSSES, build_losses
from robustreid.losses.jsd import jsd_from_logits
from robustreid.models.noise import NoiseInjection, attach_noise, set_progress


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 32))
        self.head = nn.Linear(32, 3)

    def forward(self, x):
        return self.head(self.backbone(x))


def test_off_at_inference_bit_identical():
    torch.manual_seed(0)
    net = Net()
    x = torch.randn(8, 6)
    net.eval()
    ref = net(x)
    attach_noise(net, [{"layer": "backbone.1", "sigma": 1.0}, {"layer": "head", "sigma": 1.0, "where": "input"},
                       {"layer": "", "sigma": 1.0, "where": "input", "mode": "multiplicative"}])
    net.eval()
    state = torch.random.get_rng_state()
    assert torch.equal(net(x), ref)
    assert torch.equal(torch.random.get_rng_state(), state)  # no random numbers drawn at inference
    net.train()
    assert not torch.equal(net(x), ref)
    assert list(net.state_dict()) == list(Net().state_dict())  # checkpoints unchanged


@pytest.mark.parametrize("mode", ["additive", "multiplicative"])
def test_training_noise_has_the_right_std(mode):
    torch.manual_seed(1)
    inj = NoiseInjection(sigma=0.3, mode=mode).train()
    x = torch.full((200_000,), 2.0)
    d = inj(x) - x
    expected = 0.3 if mode == "additive" else 0.3 * 2.0
    assert abs(float(d.std()) - expected) < 0.01 * expected * 3
    assert abs(float(d.mean())) < 0.01
    assert inj.eval()(x) is x


def test_hook_on_layer_output_has_the_right_std():
    torch.manual_seed(2)
    lin = nn.Linear(4, 4)
    model = nn.Sequential(lin, nn.Identity())
    attach_noise(model, [{"layer": "0", "sigma": 0.5}])
    x = torch.randn(50_000, 4)
    with torch.no_grad():
        clean = x @ lin.weight.T + lin.bias
        model.train()
        d = model(x) - clean
    assert abs(float(d.std()) - 0.5) < 0.01
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), lin(x))


def test_annealing_schedules():
    lin = NoiseInjection(0.4, schedule="linear", sigma_end=0.0)
    cos = NoiseInjection(0.4, schedule="cosine")  # sigma_end defaults to 0 for an annealed schedule
    const = NoiseInjection(0.4)
    for p in [0.0, 0.25, 0.5, 1.0]:
        lin.set_progress(p)
        cos.set_progress(p)
        const.set_progress(p)
        assert lin.sigma == pytest.approx(0.4 * (1 - p))
        assert cos.sigma == pytest.approx(0.4 * (1 + math.cos(math.pi * p)) / 2)
        assert const.sigma == 0.4
    net = Net()
    attach_noise(net, [{"layer": "backbone", "sigma": 0.2, "schedule": "linear", "sigma_end": 0.6}])
    set_progress(net, 0.5)  # what the engine does every iteration
    assert net.noise_injections[0].sigma == pytest.approx(0.4)
    # and by handles (root nn.Sequential: not registered in the tree)
    seq = nn.Sequential(nn.Linear(2, 2))
    hs = attach_noise(seq, [{"layer": "0", "sigma": 1.0, "schedule": "cosine", "sigma_end": 0.0}])
    set_progress(hs, 1.0)
    assert hs[0].module.sigma == pytest.approx(0.0)


def test_seeded_determinism_and_remove():
    net = Net()
    hs = attach_noise(net, [{"layer": "backbone.0", "sigma": 0.3}])
    x = torch.randn(4, 6)
    torch.manual_seed(5)
    a = net(x)
    torch.manual_seed(5)
    b = net(x)
    torch.manual_seed(6)
    c = net(x)
    assert torch.equal(a, b) and not torch.equal(a, c)
    hs[0].remove()
    assert torch.equal(net(x), net(x)) and len(net.noise_injections) == 0


def test_clear_errors():
    with pytest.raises(ValueError, match="available: .*backbone.0"):
        attach_noise(Net(), [{"layer": "backbone.9", "sigma": 0.1}])
    with pytest.raises(ValueError, match="unknown key"):
        attach_noise(Net(), [{"layer": "head", "sigm": 0.1}])
    with pytest.raises(ValueError, match="mode"):
        attach_noise(Net(), [{"layer": "head", "mode": "salt"}])


# ---------------------------------------------------------------- JSD
def _jsd_ref(ps):
    ps = [np.asarray(p, dtype=np.float64) for p in ps]
    m = sum(ps) / len(ps)
    return sum(float(np.sum(p * np.log(p / m))) for p in ps) / len(ps)


def test_jsd_zero_for_identical_and_known_two_point_value():
    logits = torch.randn(5, 7)
    assert float(jsd_from_logits([logits, logits.clone(), logits + 3.0])) == pytest.approx(0.0, abs=1e-6)
    # two-point distributions (a, 1-a), (b, 1-b), (b, 1-b) from their logits
    a, b = 0.9, 0.2
    la = torch.tensor([[math.log(a), math.log(1 - a)]])
    lb = torch.tensor([[math.log(b), math.log(1 - b)]])
    got = float(jsd_from_logits([la, lb, lb]))
    assert got == pytest.approx(_jsd_ref([[a, 1 - a], [b, 1 - b], [b, 1 - b]]), rel=1e-5)
    # two views only: the ordinary JS divergence; maximal (log 2) for disjoint supports
    big = torch.tensor([[30.0, -30.0]])
    assert float(jsd_from_logits([big, -big])) == pytest.approx(math.log(2), rel=1e-4)


def test_jsd_loss_in_registry_with_views():
    assert "jsd" in LOSSES
    loss = build_losses([{"name": "jsd", "weight": 12}])
    clean = torch.randn(4, 5, requires_grad=True)
    outputs = {"logits": clean, "views": [{"logits": clean + 0.5 * torch.randn(4, 5)}, {"logits": torch.randn(4, 5)}]}
    total, logs = loss(outputs, {"pids": torch.arange(4)})
    assert float(total.detach()) == pytest.approx(12 * float(logs["jsd"]))
    assert float(logs["jsd"]) > 0
    total.backward()
    assert clean.grad is not None
    with pytest.raises(ValueError, match="views"):
        loss({"logits": clean}, {})
