"""Registry, config loading (bases, overrides, typed errors), atomic writes and seed derivation."""

from dataclasses import dataclass, field
from typing import List, Optional

import pytest

from robustreid.config import ConfigError, apply_overrides, from_dict, load_yaml
from robustreid.registry import Registry
from robustreid.utils import append_line_atomic, atomic_write_text, derive_seed


def test_registry_names_are_normalised_and_unknown_names_listed():
    r = Registry("thing")

    @r.register("Res-Net50")
    def f(x=1):
        return x * 2

    assert r.build("RES-NET50", x=3) == 6 and "res_net50" in r
    with pytest.raises(KeyError, match="unknown thing 'nope'.*res_net50"):
        r.get("nope")
    with pytest.raises(KeyError, match="already registered"):
        r.add("res_net50", lambda: 0)


@dataclass
class Solver:
    lr: float = 0.1
    steps: List[int] = field(default_factory=lambda: [40, 70])
    name: str = "sgd"


@dataclass
class Cfg:
    solver: Solver = field(default_factory=Solver)
    epochs: int = 10
    amp: bool = False
    pretrained: Optional[str] = None


def test_yaml_bases_merge_and_overrides(tmp_path):
    (tmp_path / "base.yaml").write_text("solver: {lr: 0.5, name: adam}\nepochs: 3\n")
    (tmp_path / "child.yaml").write_text("_base_: base.yaml\nsolver: {lr: 0.25}\n")
    data = load_yaml(tmp_path / "child.yaml")
    assert data == {"solver": {"lr": 0.25, "name": "adam"}, "epochs": 3}
    data = apply_overrides(data, ["solver.steps=[1,2]", "amp=true", "epochs=7"])
    cfg = from_dict(Cfg, data)
    assert cfg.solver == Solver(lr=0.25, steps=[1, 2], name="adam") and cfg.amp is True and cfg.epochs == 7


def test_config_errors_name_the_field(tmp_path):
    with pytest.raises(ConfigError, match=r"config.solver: unknown key 'lrr'; did you mean 'lr'"):
        from_dict(Cfg, {"solver": {"lrr": 1}})
    with pytest.raises(ConfigError, match=r"config.epochs: expected an integer, got 'ten'"):
        from_dict(Cfg, {"epochs": "ten"})
    with pytest.raises(ConfigError, match="expected true or false"):
        from_dict(Cfg, {"amp": "yes"})
    (tmp_path / "a.yaml").write_text("_base_: b.yaml\n")
    (tmp_path / "b.yaml").write_text("_base_: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_yaml(tmp_path / "a.yaml")
    with pytest.raises(ConfigError, match="expected key=value"):
        apply_overrides({}, ["novalue"])


def test_atomic_append_keeps_whole_lines(tmp_path):
    p = tmp_path / "r.csv"
    append_line_atomic(p, "1,2", header="a,b")
    append_line_atomic(p, "3,4", header="a,b")
    assert p.read_text() == "a,b\n1,2\n3,4\n"
    atomic_write_text(tmp_path / "x" / "y.txt", "hi")
    assert (tmp_path / "x" / "y.txt").read_text() == "hi"
    assert not [f for f in tmp_path.rglob("*.tmp*")]


def test_derive_seed_is_stable_and_discriminating():
    a = derive_seed("market", "q/1.jpg", "fog", 3, 0)
    assert a == derive_seed("market", "q/1.jpg", "fog", 3, 0)
    assert len({derive_seed("market", "q/1.jpg", "fog", s, 0) for s in range(1, 6)}) == 5
    assert 0 <= a < 2**63


def test_atomic_write_gives_umask_permissions(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "p.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "p.txt").stat().st_mode) == 0o644
