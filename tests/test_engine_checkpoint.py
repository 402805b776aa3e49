"""Checkpoints: safetensors round trip with the config inside, wrong-architecture message, weights-only state."""

import random

import numpy as np
import pytest
import torch

from engine_support import INPUT, tiny_config
from robustreid.engine import checkpoint as ckpt
from robustreid.models import build_model


def _model(num_classes=5, width=0.125):
    cfg = tiny_config(f"model.backbone_kwargs={{width: {width}}}")
    torch.manual_seed(0)
    return cfg, build_model(cfg.model, num_classes)


def test_safetensors_round_trip_rebuilds_model_from_one_file(tmp_path):
    cfg, model = _model()
    model.train()
    model(torch.randint(0, 256, (4, 3) + INPUT, dtype=torch.uint8))  # move BN running stats off their init
    path = ckpt.save_weights(tmp_path / "m.safetensors", model, cfg.to_dict(), {"epoch": 3})
    loaded = ckpt.load_model(path)
    assert not loaded.training and loaded.num_classes == 5
    model.eval()
    x = torch.randint(0, 256, (3, 3) + INPUT, dtype=torch.uint8)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    # a run directory works too (best.safetensors preferred)
    run = tmp_path / "run"
    ckpt.save_weights(run / "model.safetensors", model, cfg.to_dict())
    assert ckpt.resolve_checkpoint(run).name == "model.safetensors"
    ckpt.save_weights(run / "best.safetensors", model, cfg.to_dict())
    assert ckpt.resolve_checkpoint(run).name == "best.safetensors"
    sd, meta = ckpt.read_weights(path)
    assert meta["epoch"] == "3" and meta["num_classes"] == "5"


def test_wrong_architecture_is_a_clear_message(tmp_path):
    cfg, model = _model(num_classes=5)
    path = ckpt.save_weights(tmp_path / "m.safetensors", model, cfg.to_dict())
    sd, _ = ckpt.read_weights(path)
    _, other = _model(num_classes=7)
    with pytest.raises(ckpt.CheckpointError, match=r"classifier"):
        ckpt.load_state_into(other, sd, "m.safetensors")
    _, wider = _model(num_classes=5, width=0.25)
    with pytest.raises(ckpt.CheckpointError, match=r"m.safetensors: does not fit the model"):
        ckpt.load_state_into(wider, sd, "m.safetensors")


def test_bad_files_are_clear_errors(tmp_path):
    with pytest.raises(ckpt.CheckpointError, match="does not exist"):
        ckpt.load_model(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(ckpt.CheckpointError, match="junk.safetensors: cannot read"):
        ckpt.load_model(junk)
    pickle_like = tmp_path / "model.pth"
    pickle_like.write_bytes(b"x")
    with pytest.raises(ckpt.CheckpointError, match="expected a robustreid .safetensors"):
        ckpt.load_model(pickle_like)
    with pytest.raises(ckpt.CheckpointError, match="run directory without"):
        ckpt.load_model(tmp_path)
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "noconf.safetensors"))
    with pytest.raises(ckpt.CheckpointError, match="no training config"):
        ckpt.load_model(tmp_path / "noconf.safetensors")


def test_state_is_weights_only_and_restores_rng(tmp_path):
    _, model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    model(torch.rand(4, 3, *INPUT))["logits"].sum().backward()
    opt.step()
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    state = {"optimizer": opt.state_dict(), "rng": ckpt.rng_state(), "epoch": 1, "iteration": 4}
    ckpt.save_state(tmp_path / "state.pt", state)
    expected = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])
    loaded = ckpt.load_state(tmp_path / "state.pt")  # weights_only=True inside
    ckpt.set_rng_state(loaded["rng"])
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1])
    assert [random.random() for _ in range(3)] == expected[2]
    opt2 = torch.optim.Adam(model.parameters(), lr=1e-3)
    opt2.load_state_dict(loaded["optimizer"])
    k = next(iter(opt.state))
    assert torch.equal(opt.state[k]["exp_avg"], opt2.state[k]["exp_avg"])
    # a pickle with arbitrary objects is refused
    import datetime

    torch.save({"x": datetime.date(2020, 1, 1)}, tmp_path / "evil.pt")
    with pytest.raises(ckpt.CheckpointError, match="weights-only"):
        ckpt.load_state(tmp_path / "evil.pt")
