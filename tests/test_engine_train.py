"""The trainer on a tiny on-disk dataset: files written, LR per iteration, exact resume mid-epoch, AMP (bf16 on CPU,
fp16 fallback)."""

import json

import pytest
import torch
from safetensors.torch import load_file

from engine_support import install_data_standins, make_dataset, tiny_config
from robustreid.engine.schedule import lr_factor_from_config
from robustreid.engine.trainer import Trainer, split_outputs, train


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("fake"))


@pytest.fixture(autouse=True)
def _standins(monkeypatch):
    install_data_standins(monkeypatch)


def test_train_writes_run_files_and_logs(dataset, tmp_path):
    cfg = tiny_config("train.eval_period=1")
    out = tmp_path / "run"
    result = train(cfg, out, dataset=dataset)
    for name in ("config.yaml", "model.safetensors", "best.safetensors", "state.pt", "metrics.jsonl", "train.log"):
        assert (out / name).is_file(), name
    recs = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    train_recs = [r for r in recs if r["type"] == "train"]
    evals = [r for r in recs if r["type"] == "eval"]
    assert len(evals) == 2 and {"R1", "mAP", "mINP"} <= set(evals[0])
    assert 0.0 <= result["final"]["mAP"] <= 1.0
    assert result["best"]["mAP"] == max(e["mAP"] for e in evals)
    ipe = len(train_recs) // 2
    assert result["steps"] == len(train_recs) == 2 * ipe and ipe >= 2
    # the logged learning rate is the schedule's, iteration by iteration (warm-up then the step at epoch 1)
    for r in train_recs:
        assert r["lr"] == pytest.approx(cfg.solver.lr * lr_factor_from_config(cfg.solver, r["epoch"], r["iter"], ipe))
        assert {"loss", "ce", "triplet", "img_s"} <= set(r)
    # the resolved config is saved and reloads to the same config
    from robustreid.engine.config import load_train_config

    assert load_train_config(str(out / "config.yaml")).to_dict() == cfg.to_dict()


class _Killed(Exception):
    pass


def _kill_at(epoch_it):
    def hook(trainer, epoch, it):
        if (epoch, it) == epoch_it:
            raise _Killed()
    return hook


def _weights(path):
    return load_file(str(path))


def test_resume_mid_epoch_equals_uninterrupted(dataset, tmp_path):
    # everything stateful at once: SGD momentum, center loss with its own optimiser, a batch augmentation,
    # hidden-layer noise annealed by progress, checkpoints every iteration
    cfg = tiny_config(
        "train.checkpoint_period=1", "data.p=2",
        "losses=[{name: ce, epsilon: 0.1}, {name: triplet, margin: 0.3}, {name: center, weight: 0.01}]",
        "data.augs=[{name: random_erasing, p: 0.5}]",
        "model.noise=[{layer: backbone.layer2, sigma: 0.2, schedule: linear}]",
    )
    full = tmp_path / "full"
    train(cfg, full, dataset=dataset)
    part = tmp_path / "part"
    with pytest.raises(_Killed):
        train(cfg, part, dataset=dataset, hooks=[_kill_at((0, 1))])  # dies after the 2nd iteration of epoch 0
    state = torch.load(part / "state.pt", weights_only=True)
    assert (state["epoch"], state["iteration"]) == (0, 2)
    train(cfg, part, dataset=dataset, resume=True)

    a, b = _weights(full / "model.safetensors"), _weights(part / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    sa = torch.load(full / "state.pt", weights_only=True)
    sb = torch.load(part / "state.pt", weights_only=True)
    assert torch.equal(sa["criterion"]["losses.2.centers"], sb["criterion"]["losses.2.centers"])
    assert sa["global_step"] == sb["global_step"]
    # metrics of the killed part were trimmed to the checkpoint and re-logged once
    steps = [json.loads(l)["step"] for l in (part / "metrics.jsonl").read_text().splitlines()
             if json.loads(l)["type"] == "train"]
    assert steps == sorted(steps) and len(steps) == len(set(steps)) == sa["global_step"]


def test_resume_keeps_the_occluder_pool(dataset, tmp_path):
    # random_patch pastes patches cut from earlier batches: a resumed run must continue with the pool the
    # interrupted one had gathered, else its next batches differ from the uninterrupted run's
    cfg = tiny_config("train.checkpoint_period=1", "data.p=2", "solver.epochs=1", "solver.warmup_epochs=0",
                      "data.augs=[{name: random_patch, p: 1.0, min_pool: 1, pool_size: 64}]")
    full = tmp_path / "full"
    train(cfg, full, dataset=dataset)
    part = tmp_path / "part"
    with pytest.raises(_Killed):
        train(cfg, part, dataset=dataset, hooks=[_kill_at((0, 1))])
    saved = torch.load(part / "state.pt", weights_only=True)["augment"]
    assert saved["augs"] == ["RandomPatch"] and len(saved["states"]["0"]["items"]) > 0
    train(cfg, part, dataset=dataset, resume=True)
    a, b = _weights(full / "model.safetensors"), _weights(part / "model.safetensors")
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # a resume whose augmentation list changed is refused, naming the field
    other = tiny_config("train.checkpoint_period=1", "data.p=2", "solver.epochs=2", "solver.warmup_epochs=0",
                        "data.augs=[{name: random_erasing, p: 0.5}]")
    from robustreid.engine.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="data.augs"):
        train(other, part, dataset=dataset, resume=True)


def test_fp16_request_on_cpu_trains_in_float32(dataset, tmp_path):
    cfg = tiny_config("train.amp=fp16", "solver.epochs=1", "solver.warmup_epochs=0", "train.max_iters_per_epoch=1",
                      "solver.clip_grad=1e-3", "solver.optimizer=adamw")
    t = Trainer(cfg, tmp_path / "amp", dataset=dataset)
    try:
        res = t.train()
    finally:
        t.close()
    assert t.amp == "off" and res["steps"] == 1
    assert isinstance(t.optimizer, torch.optim.AdamW)
    assert all(p.dtype == torch.float32 for p in t.model.parameters())


def test_bf16_autocast_on_cpu(dataset, tmp_path):
    cfg = tiny_config("train.amp=bf16", "train.channels_last=true", "solver.epochs=1", "solver.warmup_epochs=0",
                      "train.max_iters_per_epoch=2")
    t = Trainer(cfg, tmp_path / "bf16", dataset=dataset)
    seen = []
    try:
        t.setup()
        t.model.backbone.conv1.register_forward_hook(lambda m, i, o: seen.append(o.dtype) if m.training else None)
        before = [p.detach().clone() for p in t.model.parameters()]
        res = t.train()
    finally:
        t.close()
    assert t.amp == "bf16" and res["steps"] == 2
    assert seen == [torch.bfloat16] * 2  # the training convolutions ran in bf16 (evaluation stays float32)
    assert all(p.dtype == torch.float32 for p in t.model.parameters())  # master weights stay float32
    assert any(not torch.equal(a, p) for a, p in zip(before, t.model.parameters()))


def test_channels_last_step_equals_the_nchw_step(dataset, tmp_path):
    # the accuracy side of the channels-last default (cpu_small): the memory format changes the order of float
    # sums, never the computation, so a training step (forward, losses, backward, SGD) ends at the same weights to
    # float32 rounding (measured: <= 1.3e-5 of each tensor's scale; 1e-4 after a second step, as rounding
    # differences grow in any two runs of differently ordered sums: run-to-run noise, not an accuracy loss)
    w = {}
    for cl in (False, True):
        cfg = tiny_config(f"train.channels_last={str(cl).lower()}", "solver.epochs=1", "solver.warmup_epochs=0",
                          "train.max_iters_per_epoch=1", "train.eval_period=0")
        train(cfg, tmp_path / f"cl_{cl}", dataset=dataset)
        w[cl] = _weights(tmp_path / f"cl_{cl}" / "model.safetensors")
    init = Trainer(tiny_config(), tmp_path / "init", dataset=dataset)
    try:
        init.setup()
        w0 = {k: v.detach().clone() for k, v in init.model.state_dict().items()}
    finally:
        init.close()
    moved = 0
    for k, a in w[False].items():
        if a.is_floating_point():
            scale = float(a.abs().max()) + 1e-12
            assert float((a - w[True][k]).abs().max()) <= 1e-4 * scale, k
            moved += int(not torch.allclose(a, w0[k]))
    assert moved > 10  # the steps did change the model (the comparison is not of two untouched copies)


def test_split_outputs_clean_and_views():
    out = {"logits": torch.arange(12.0).view(6, 2), "feat": torch.arange(6.0).view(6, 1), "scalar": torch.tensor(1.0)}
    s = split_outputs(out, [2, 2, 2])
    assert torch.equal(s["logits"], out["logits"][:2])
    assert [torch.equal(v["feat"], out["feat"][2 * i + 2:2 * i + 4]) for i, v in enumerate(s["views"])] == [True, True]
    assert torch.equal(s["scalar"], out["scalar"]) and "scalar" not in s["views"][0]


def test_views_go_through_one_forward(dataset, tmp_path):
    """A batch augmentation adding views: the model sees clean + views at once, losses get outputs['views']."""
    from robustreid.losses import LOSSES

    seen = {}

    class ViewProbe(torch.nn.Module):
        def forward(self, outputs, batch):
            seen["n_clean"] = outputs["logits"].shape[0]
            seen["n_views"] = [v["logits"].shape[0] for v in outputs["views"]]
            return outputs["logits"].sum() * 0.0

    if "view_probe_test" not in LOSSES:
        LOSSES.add("view_probe_test", lambda: ViewProbe())
    cfg = tiny_config("data.augs=[{name: augmix}]", "losses=[{name: ce}, {name: view_probe_test}]",
                      "solver.epochs=1", "solver.warmup_epochs=0", "train.max_iters_per_epoch=1")
    t = Trainer(cfg, tmp_path / "views", dataset=dataset)
    try:
        t.setup()
        batch = next(iter(t.loader))
        t.train_step(batch, 0, 0)
    finally:
        t.close()
    assert seen == {"n_clean": 6, "n_views": [6, 6]}


def test_train_cli_and_resume_flag(dataset, tmp_path, monkeypatch):
    import yaml
    from click.testing import CliRunner

    import robustreid.data as data
    from robustreid.cli.main import cli

    monkeypatch.setattr(data, "load_dataset", lambda name, root, **kw: dataset, raising=False)
    cfg_file = tmp_path / "tiny.yaml"
    cfg_file.write_text(yaml.safe_dump(tiny_config().to_dict()))
    out = tmp_path / "run"
    run = CliRunner()
    r = run.invoke(cli, ["train", str(cfg_file), "solver.epochs=1", "solver.warmup_epochs=0", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "final: R1" in r.output and (out / "model.safetensors").is_file()
    # a second run into the same directory without --resume is refused; --resume continues (here: nothing left)
    r = run.invoke(cli, ["train", str(cfg_file), "--out", str(out)])
    assert r.exit_code != 0 and "--resume" in r.output
    r = run.invoke(cli, ["train", "solver.epochs=2", "--resume", "--out", str(out)])  # config from the run dir
    assert r.exit_code == 0, r.output
    state = torch.load(out / "state.pt", weights_only=True)
    assert state["epoch"] == 2
    r = run.invoke(cli, ["train", str(cfg_file), "solver.lrr=1", "--out", str(tmp_path / "x")])
    assert r.exit_code != 0 and "did you mean 'lr'" in r.output
    r = run.invoke(cli, ["train", "--resume", "--out", str(tmp_path / "nothing")])
    assert r.exit_code != 0 and "config" in r.output.lower()


def _first_step_grad_norm(dataset, out, *overrides) -> torch.Tensor:
    """The total gradient norm left by one training step of the tiny config."""
    t = Trainer(tiny_config("solver.epochs=1", "solver.warmup_epochs=0", *overrides), out, dataset=dataset)
    try:
        t.setup()
        t.train_step(next(iter(t.loader)), 0, 0)
        return torch.norm(torch.stack([p.grad.norm() for p in t.model.parameters() if p.grad is not None]))
    finally:
        t.close()


def test_gradient_clipping_bounds_the_norm(dataset, tmp_path):
    assert _first_step_grad_norm(dataset, tmp_path / "clip", "solver.clip_grad=1e-3") <= 1e-3 * (1 + 1e-4)
    # without clipping the same step's gradient is far larger (so the bound above is the clipping's doing)
    assert _first_step_grad_norm(dataset, tmp_path / "noclip") > 1e-2


def test_non_finite_loss_stops_with_a_message(dataset, tmp_path):
    from robustreid.losses import LOSSES

    class NaNLoss(torch.nn.Module):
        def forward(self, outputs, batch):
            return outputs["logits"].sum() * float("nan")

    if "nan_probe_test" not in LOSSES:
        LOSSES.add("nan_probe_test", lambda: NaNLoss())
    cfg = tiny_config("losses=[{name: nan_probe_test}]", "solver.epochs=1", "solver.warmup_epochs=0")
    with pytest.raises(FloatingPointError, match="non-finite loss at epoch 0 iteration 0"):
        train(cfg, tmp_path / "nan", dataset=dataset)
