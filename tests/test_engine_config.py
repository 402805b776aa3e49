"""Training config presets, validation messages and the learning-rate schedule against hand-computed values."""

import math

import pytest

from robustreid.config import ConfigError
from robustreid.engine.config import TrainConfig, load_train_config
from robustreid.engine.schedule import lr_factor, lr_factor_from_config


@pytest.mark.parametrize("preset", ["base", "bot_r50", "cpu_small", "demo"])
def test_presets_load_and_validate(preset):
    cfg = load_train_config(preset)
    assert isinstance(cfg, TrainConfig)
    assert len(cfg.model.input_size) == 2
    assert cfg.losses and all("name" in s for s in cfg.losses)
    # the resolved config round-trips through its dict form
    again = TrainConfig.from_dict(cfg.to_dict())
    assert again.to_dict() == cfg.to_dict()


def test_bot_r50_is_the_paper_recipe():
    cfg = load_train_config("bot_r50")
    assert (cfg.model.backbone, cfg.model.last_stride, cfg.model.neck) == ("resnet50", 1, "bnneck")
    assert tuple(cfg.model.input_size) == (256, 128)
    assert (cfg.data.p, cfg.data.k, cfg.data.pad, cfg.data.flip) == (16, 4, 10, 0.5)
    s = cfg.solver
    assert (s.optimizer, s.lr, s.warmup_epochs, s.steps, s.epochs) == ("adam", 3.5e-4, 10, [40, 70], 120)
    assert s.lr * s.warmup_factor == pytest.approx(3.5e-5)
    names = {l["name"]: l for l in cfg.losses}
    assert names["ce"]["epsilon"] == 0.1 and names["triplet"]["margin"] == 0.3 and names["center"]["weight"] == 5e-4
    assert any(a["name"] == "random_erasing" and a["p"] == 0.5 for a in cfg.data.augs)


def test_cpu_small_keeps_native_size():
    cfg = load_train_config("cpu_small")
    assert tuple(cfg.model.input_size) == (128, 64)


def test_overrides_and_bad_keys():
    cfg = load_train_config("base", ["solver.lr=0.01", "solver.steps=[3, 5]", "train.amp=bf16"])
    assert cfg.solver.lr == 0.01 and cfg.solver.steps == [3, 5] and cfg.train.amp == "bf16"
    with pytest.raises(ConfigError, match="did you mean 'lr'"):
        load_train_config("base", ["solver.lrr=0.01"])
    with pytest.raises(ConfigError, match="train.amp"):
        load_train_config("base", ["train.amp=fp8"])
    with pytest.raises(ConfigError, match="solver.warmup_epochs"):
        load_train_config("base", ["solver.epochs=5", "solver.warmup_epochs=10"])
    with pytest.raises(ConfigError, match="solver.steps"):
        load_train_config("base", ["solver.steps=[70, 40]"])
    with pytest.raises(ConfigError, match=r"losses\[0\]"):
        load_train_config("base", ["losses=[{weight: 1}]"])


def test_warmup_and_multistep_by_hand():
    kw = dict(epochs=120, schedule="multistep", warmup_epochs=10, warmup_factor=0.1, steps=[40, 70], gamma=0.1)
    # BoT: 3.5e-5 at the start, linear to 3.5e-4 over 10 epochs, per iteration (100 iterations per epoch)
    assert lr_factor(0, 0, 100, **kw) == pytest.approx(0.1)
    assert lr_factor(5, 0, 100, **kw) == pytest.approx(0.1 + 0.9 * 5 / 10)
    assert lr_factor(2, 50, 100, **kw) == pytest.approx(0.1 + 0.9 * 2.5 / 10)
    assert lr_factor(10, 0, 100, **kw) == pytest.approx(1.0)
    assert lr_factor(39, 99, 100, **kw) == pytest.approx(1.0)
    assert lr_factor(40, 0, 100, **kw) == pytest.approx(0.1)
    assert lr_factor(69, 5, 100, **kw) == pytest.approx(0.1)
    assert lr_factor(70, 0, 100, **kw) == pytest.approx(0.01)
    assert lr_factor(119, 99, 100, **kw) == pytest.approx(0.01)


def test_cosine_by_hand():
    kw = dict(epochs=120, schedule="cosine", warmup_epochs=5, warmup_factor=0.01)
    assert lr_factor(0, 0, 10, **kw) == pytest.approx(0.01)
    assert lr_factor(2, 5, 10, **kw) == pytest.approx(0.01 + 0.99 * 2.5 / 5)
    assert lr_factor(5, 0, 10, **kw) == pytest.approx(1.0)
    # half way through the cosine part: 0.5; a quarter: (1 + cos(pi/4)) / 2
    assert lr_factor(62, 5, 10, **kw) == pytest.approx(0.5)
    assert lr_factor(33, 3, 4, **kw) == pytest.approx((1 + math.cos(math.pi / 4)) / 2)
    assert lr_factor(119, 9, 10, **kw) == pytest.approx((1 + math.cos(math.pi * (119.9 - 5) / 115)) / 2)
    floor = dict(kw, min_lr_factor=0.1)
    assert lr_factor(62, 5, 10, **floor) == pytest.approx(0.1 + 0.9 * 0.5)
    no_warm = dict(epochs=10, schedule="cosine", warmup_epochs=0, warmup_factor=1.0)
    assert lr_factor(0, 0, 4, **no_warm) == pytest.approx(1.0)
    assert lr_factor(5, 0, 4, **no_warm) == pytest.approx(0.5)


def test_schedule_from_config_matches_function():
    cfg = load_train_config("bot_r50")
    assert lr_factor_from_config(cfg.solver, 45, 3, 200) == pytest.approx(0.1)
    assert lr_factor_from_config(cfg.solver, 1, 100, 200) == pytest.approx(0.1 + 0.9 * 1.5 / 10)
    with pytest.raises(ValueError):
        lr_factor(0, 0, 0, epochs=1)
