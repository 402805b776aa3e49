"""FED: the OEM loss on NPO's stripe targets, the memory bank (init = identity means, the released momentum rule,
exact resume, identical on two Gloo ranks), the FDM's choice of other identities' centres, the eval graph without
FDM/bank, the inference feature, and a smoke training + `robustreid eval` on a tiny synthetic occluded set."""

import os

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file

from engine_support import free_port, install_data_standins, join_gloo_env, make_dataset, tiny_config
from robustreid.data.sample import ReidDataset
from robustreid.export import onnx_export
from robustreid.losses import build_losses
from robustreid.models import ModelConfig, build_model
from robustreid.models.fed import momentum_update, neighbour_indices
from robustreid.transforms.augment.npo import stripe_targets

SIZE = (64, 32)  # resnet18 with last stride 1: a 4×2 map, one row per stripe
FED_LOSSES = ("losses=[{name: fed_oem}, {name: fed_id}, {name: fed_fdm_id}, {name: fed_global_id}, "
              "{name: fed_bank}, {name: fed_fdm_bank, weight: 0.5}]")


def tiny_fed(num_classes=6, **method_kwargs):
    torch.manual_seed(0)
    kw = {"stripe_dim": 16, **method_kwargs}
    cfg = ModelConfig(name="fed", backbone="resnet18", backbone_kwargs={"width": 0.125}, input_size=SIZE,
                      method_kwargs=kw)
    return build_model(cfg, num_classes)


def fed_config(*overrides):
    return tiny_config("model.name=fed", f"model.input_size=[{SIZE[0]}, {SIZE[1]}]", "model.method_kwargs={stripe_dim: 16}",
                       "data.augs=[{name: npo, p: 1.0, source: batch}]", FED_LOSSES, *overrides)


def _cos(a, b):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return a @ b.T


@pytest.fixture(autouse=True)
def _standins(monkeypatch):
    install_data_standins(monkeypatch)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("fed"), train_ids=6, test_ids=2)


# ---------------------------------------------------------------- OEM loss and NPO's stripe targets


def test_oem_loss_is_mse_to_one_and_to_the_stripe_targets():
    clean = torch.rand(3, 4, generator=torch.Generator().manual_seed(1))
    occ = torch.rand(3, 4, generator=torch.Generator().manual_seed(2), requires_grad=True)
    x = torch.full((3, 3, 64, 32), 0.5)
    y = x.clone()
    y[0, :, 48:] = 0.0        # bottom quarter of sample 0 occluded -> stripe 3 is 0
    y[1, :, :, :8] = 1.0      # a full-height strip touches all 4 stripes -> all visible
    targets = stripe_targets(x, y)
    assert targets.tolist() == [[1, 1, 1, 0], [1, 1, 1, 1], [1, 1, 1, 1]]
    loss = build_losses([{"name": "fed_oem"}])
    total, parts = loss({"oem_scores": clean, "oem_scores_occ": occ}, {"stripe_targets": targets})
    expected = ((clean.numpy() - 1) ** 2).mean() + ((occ.detach().numpy() - targets.numpy()) ** 2).mean()
    assert float(total.detach()) == pytest.approx(expected, rel=1e-6)
    total.backward()
    # the occluded stripe's score is pushed towards 0 (gradient 2·s/12 > 0), visible ones towards 1
    assert occ.grad[0, 3] == pytest.approx(2 * float(occ[0, 3].detach()) / 12, rel=1e-5)
    assert occ.grad[0, 0] == pytest.approx(2 * (float(occ[0, 0].detach()) - 1) / 12, rel=1e-5)
    with pytest.raises(KeyError, match="npo"):
        loss({"oem_scores": clean, "oem_scores_occ": occ}, {"pids": torch.zeros(3)})


# ---------------------------------------------------------------- memory bank


def test_momentum_update_is_the_sequential_released_rule():
    g = torch.Generator().manual_seed(0)
    bank, feats = torch.randn(5, 8, generator=g), torch.randn(7, 8, generator=g)
    pids = torch.tensor([3, 1, 3, 0, 3, 1, 4])
    before = bank.clone()
    for m in (0.2, 0.0, 1.0):
        expected = bank.clone()
        for x, y in zip(feats, pids):  # c[y] <- m c[y] + (1 - m) x, one sample after the other
            expected[y] = m * expected[y] + (1 - m) * x
        out = momentum_update(bank, feats, pids, m)
        assert torch.allclose(out, expected, atol=1e-6), m
    assert torch.equal(momentum_update(bank, feats, pids, 1.0), bank)  # momentum 1 (occluded view): no change
    assert torch.equal(bank, before)  # the caller's bank is never modified in place


def test_train_forward_scores_old_bank_then_updates_it_fdm_first_then_fprime():
    model = tiny_fed().train()
    old = torch.randn(6, model.feat_dim, generator=torch.Generator().manual_seed(3))
    model.bank.copy_(old)
    g = torch.Generator().manual_seed(4)
    x, clean = torch.rand(4, 3, *SIZE, generator=g), torch.rand(4, 3, *SIZE, generator=g)
    pids = torch.tensor([0, 0, 2, 5])
    out = model(x, clean_images=clean, pids=pids)
    f, d = out["feat"].detach(), out["fdm_feat"].detach()
    # the logits saw the bank before this batch's update
    want = torch.from_numpy(_cos(f.numpy(), old.numpy()) / 0.05).float()
    assert torch.allclose(out["bank_logits"], want, atol=1e-4)
    expected = old.clone()
    for feats in (d, f):  # the released order: the FDM memory's update, then f′'s
        for xi, y in zip(feats, pids):
            expected[y] = 0.2 * expected[y] + 0.8 * xi
    assert torch.allclose(model.bank, expected, atol=1e-5)
    assert torch.equal(model.bank[[1, 3, 4]], old[[1, 3, 4]])  # identities not in the batch keep their centre


def test_bank_init_is_the_identity_mean_of_fprime(dataset, tmp_path):
    from robustreid.engine.trainer import Trainer
    from robustreid.transforms.functional import resize

    t = Trainer(fed_config(), tmp_path / "run", dataset=dataset, progress=False)
    try:
        t.setup()
        model = t.model.eval()
        sums, counts = {}, {}
        with torch.no_grad():
            for s in dataset.train:  # one image at a time, independently of the extraction code
                img = torch.from_numpy(np.asarray(Image.open(s.path).convert("RGB")).copy()).permute(2, 0, 1)
                f = model(resize(img.unsqueeze(0), SIZE))[0].numpy()
                sums[s.pid] = sums.get(s.pid, 0) + f
                counts[s.pid] = counts.get(s.pid, 0) + 1
        means = np.stack([sums[p] / counts[p] for p in range(len(sums))])
        assert np.allclose(t.model.bank.numpy(), means, atol=1e-4)
    finally:
        t.close()


def test_training_without_npo_is_refused_with_a_clear_message(dataset, tmp_path):
    from robustreid.config import ConfigError
    from robustreid.engine.trainer import train

    with pytest.raises(ConfigError, match="npo"):
        train(fed_config("data.augs=[]"), tmp_path / "run", dataset=dataset, progress=False)


def _occluder_folder(root):
    root.mkdir()
    Image.fromarray(np.full((10, 30, 3), (200, 30, 30), np.uint8)).save(root / "wide.png")
    Image.fromarray(np.full((40, 8, 3), (20, 200, 90), np.uint8)).save(root / "tall.png")
    return root


def test_resume_continues_the_bank_exactly(dataset, tmp_path):
    from robustreid.engine.trainer import train

    folder = _occluder_folder(tmp_path / "occluders")  # a fixed occluder pool: NPO's draws depend on the seed only
    cfg = fed_config("data.p=2", "train.checkpoint_period=1", "solver.epochs=2", "train.max_iters_per_epoch=2",
                     f"data.augs=[{{name: npo, source: folder, folder: {folder}}}]")
    train(cfg, tmp_path / "full", dataset=dataset, progress=False)

    class Killed(Exception):
        pass

    def kill(trainer, epoch, it):
        if (epoch, it) == (0, 1):
            raise Killed()

    with pytest.raises(Killed):
        train(cfg, tmp_path / "part", dataset=dataset, hooks=[kill], progress=False)
    half = load_file(str(tmp_path / "part" / "model.safetensors"))["bank"]
    train(cfg, tmp_path / "part", dataset=dataset, resume=True, progress=False)
    a = load_file(str(tmp_path / "full" / "model.safetensors"))
    b = load_file(str(tmp_path / "part" / "model.safetensors"))
    assert a.keys() == b.keys() and "bank" in a
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert not torch.equal(a["bank"], half)  # the resumed part moved the saved bank on (it was not re-initialised)


def _ddp_worker(rank, world, port, dataset, out, result_dir):
    join_gloo_env(rank, world, port)
    from robustreid.engine import distributed as D
    from robustreid.engine.trainer import train

    banks, pids = [], []

    def record(trainer, epoch, it):  # after every step: this rank's bank (DDP re-broadcasts buffers each forward)
        banks.append(trainer.model.bank.detach().clone())

    cfg = fed_config("solver.epochs=1", "solver.warmup_epochs=0", "train.max_iters_per_epoch=2",
                     "train.deterministic=false", "data.p=2")
    train(cfg, out, dataset=dataset, hooks=[record], progress=False)
    torch.save({"banks": torch.stack(banks)}, os.path.join(result_dir, f"rank{rank}.pt"))
    D.cleanup()


@pytest.mark.timeout(600)  # two processes; a few seconds on an idle 2-core machine
def test_bank_identical_on_two_gloo_ranks(dataset, tmp_path):
    train_only = ReidDataset("fake", dataset.train, [], [], dataset.root)  # no final evaluation (and its broadcast)
    res = tmp_path / "res"
    res.mkdir()
    mp.spawn(_ddp_worker, args=(2, free_port(), train_only, str(tmp_path / "run"), str(res)), nprocs=2, join=True)
    b0 = torch.load(res / "rank0.pt", weights_only=True)["banks"]
    b1 = torch.load(res / "rank1.pt", weights_only=True)["banks"]
    assert b0.shape[0] == 2 and torch.equal(b0, b1)  # ranks see disjoint identities, yet hold the same bank
    assert not torch.equal(b0[0], b0[-1])


# ---------------------------------------------------------------- FDM


def test_neighbour_indices_exclude_the_own_identity():
    g = torch.Generator().manual_seed(5)
    bank = torch.randn(10, 6, generator=g)
    pids = torch.tensor([2, 7, 7, 0])
    query = bank[pids] + 0.01 * torch.randn(4, 6, generator=g)  # the own centre is the most similar one
    idx = neighbour_indices(query, bank, 3, exclude=pids)
    sim = _cos(query.numpy(), bank.numpy())
    for i, p in enumerate(pids.tolist()):
        order = [j for j in np.argsort(-sim[i]) if j != p]
        assert idx[i].tolist() == order[:3]
    assert neighbour_indices(query, bank, 1)[:, 0].tolist() == pids.tolist()  # without exclusion: itself
    with pytest.raises(ValueError, match="neighbour"):
        neighbour_indices(query, bank, 10, exclude=pids)


def test_fdm_in_training_diffuses_with_other_identities_centres_only():
    model = tiny_fed(num_classes=12, neighbours=8).train()
    g = torch.Generator().manual_seed(6)
    x = torch.rand(6, 3, *SIZE, generator=g)
    pids = torch.tensor([1, 1, 4, 4, 9, 9])
    with torch.no_grad():  # centres = the samples' own features: each sample's own centre is its nearest
        model.bank.copy_(torch.randn(12, model.feat_dim, generator=g))
        model.bank[pids] = model.train()(x, clean_images=x, pids=pids)["feat"]
    old = model.bank.clone()
    out = model(x, clean_images=x, pids=pids)
    idx = out["fdm_neighbours"]
    assert idx.shape == (6, 8)
    sim = _cos(out["feat"].detach().numpy(), old.numpy())
    for i, p in enumerate(pids.tolist()):
        assert p not in idx[i].tolist()
        assert idx[i].tolist() == [j for j in np.argsort(-sim[i]) if j != p][:8]


# ---------------------------------------------------------------- eval graph and inference feature


def _called(module):
    calls = []
    for m in module.modules():
        m.register_forward_hook(lambda *a, c=calls: c.append(1))
    return calls


def test_eval_forward_never_runs_fdm_and_export_has_no_fdm_or_bank():
    import onnx
    from onnx import numpy_helper

    model = tiny_fed().eval()
    with torch.no_grad():  # distinct random values everywhere: no tensor can match another by accident
        for t in list(model.parameters()) + [model.bank]:
            t.normal_()
    calls = _called(model.fdm)
    x = torch.randint(0, 256, (2, 3, *SIZE), dtype=torch.uint8)
    model(x)
    assert calls == []

    def initializers(m):  # the package's own export path (the TorchScript exporter, as `robustreid export` uses)
        proto = onnx_export._trace(onnx_export.EmbeddingGraph(m), x, "torchscript", 17)
        return [numpy_helper.to_array(t) for t in proto.graph.initializer]

    def holds(inits, tensor):  # as stored, transposed (MatMul weights) or row-normalised (a folded cosine)
        t = tensor.detach()
        forms = [t] + ([t.t(), F.normalize(t, dim=1), F.normalize(t, dim=1).t()] if t.dim() == 2 else [])
        return any(a.shape == tuple(v.shape) and np.allclose(a, v.numpy(), atol=1e-6) for a in inits for v in forms)

    training_only = [p for p in model.fdm.parameters()] + [model.bank, model.classifier.weight,
                                                           model.fdm_classifier.weight]
    inits = initializers(model)
    assert not any(holds(inits, t) for t in training_only)
    # the check finds what the graph does use: the OEM's and the reduction's weights
    assert holds(inits, model.oem.heads[0][0].weight) and holds(inits, model.reduce[3].weight)


def test_inference_feature_is_fprime_by_hand():
    model = tiny_fed().eval()
    with torch.no_grad():
        model.neck.running_mean.normal_()
        model.neck.running_var.uniform_(0.5, 2.0)
        model.bank.normal_()
    x = torch.randint(0, 256, (3, 3, *SIZE), dtype=torch.uint8)
    with torch.no_grad():
        fmap = model.backbone((x.float() / 255 - model.pixel_mean) / model.pixel_std)  # N×64×4×2
        feats = []
        for i in range(4):
            stripe = fmap[:, :, i].mean(dim=2)                                    # row i of the 4×2 map
            score = torch.sigmoid(model.oem.heads[i][2](F.layer_norm(
                model.oem.heads[i][0](stripe), (16,), model.oem.heads[i][1].weight, model.oem.heads[i][1].bias)))
            feats.append((stripe * score) @ model.reduce[i].weight.t())
        f = torch.cat(feats, dim=1)
        bn = model.neck
        want = (f - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
        got = model(x)
    assert got.shape == (3, 64) == (3, model.feat_dim)
    assert torch.allclose(got, want, atol=1e-5)
    # the FDM-output option: diffused with the 8 nearest centres (no identity to exclude at test time)
    with torch.no_grad(), model.using_eval_feature("fdm"):
        d = model(x)
        idx = neighbour_indices(want, model.bank, 6)
        r = model.fdm(want, model.bank[idx], model.occlusion_scores(x))
        d_want = (r - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
    assert torch.allclose(d, d_want, atol=1e-5) and not torch.allclose(d, got)
    assert model.eval_feature == "fprime"


def test_options_are_checked():
    from robustreid.config import ConfigError

    with pytest.raises(ConfigError, match="fdm=true needs bank"):
        tiny_fed(bank=False)
    with pytest.raises(ConfigError, match="unknown key"):
        tiny_fed(stripes=3)
    with pytest.raises(ConfigError, match="transformer"):
        tiny_fed(global_feature="cls")
    model = tiny_fed(bank=False, fdm=False)
    assert model.bank is None and model.fdm is None and "bank" not in model.state_dict()
    with pytest.raises(ValueError, match="fdm"):
        model.eval_feature = "fdm"


def test_vit_variant_class_token_or_first_patch_token():
    torch.manual_seed(0)
    cfg = dict(name="fed", backbone="vit_tiny_patch16", input_size=SIZE,
               backbone_kwargs={"depth": 1, "embed_dim": 32, "num_heads": 2})
    x = torch.rand(2, 3, *SIZE)
    for choice in ("cls", "first_patch"):
        model = build_model(ModelConfig(**cfg, method_kwargs={"global_feature": choice}), 4).train()
        out = model(x, clean_images=x, pids=torch.tensor([0, 1]))
        cls, patches = model.backbone.forward_tokens(model.normalize(x))
        want = cls if choice == "cls" else patches[:, 0]
        assert torch.allclose(out["global_feat"], want, atol=1e-6)
        assert out["feat"].shape == (2, 4 * 32)  # 4 stripes of the 4×2 token grid, 32-d each
        loss, _ = build_losses([{"name": "fed_id"}, {"name": "fed_bank"}, {"name": "fed_fdm_bank"}])(
            out, {"pids": torch.tensor([0, 1])})
        loss.backward()
        assert model.fdm.attn.q.weight.grad is not None


def test_presets_load_and_the_lite0_variant_trains_a_step():
    from robustreid.engine.config import load_train_config

    for preset in ("fed_vit_b", "fed_lite0", "fed_lite0_oem", "fed_lite0_npo"):
        cfg = load_train_config(preset)
        assert cfg.data.dataset == "occluded_duke" and any(a["name"] == "npo" for a in cfg.data.augs), preset
    cfg = load_train_config("fed_lite0", ["model.pretrained="])
    assert cfg.model.backbone == "efficientnet_lite0" and cfg.model.method_kwargs["stripe_dim"] == 256
    torch.manual_seed(0)
    model = build_model(cfg.model, 3).train()
    x = torch.rand(2, 3, *cfg.model.input_size)
    pids = torch.tensor([0, 2])
    out = model(x, clean_images=x.flip(-1), pids=pids)
    loss, parts = build_losses(cfg.losses)(out, {"pids": pids, "stripe_targets": torch.ones(2, 4)})
    loss.backward()
    assert set(parts) == {"fed_oem", "fed_id", "fed_fdm_id", "fed_global_id", "fed_bank", "fed_fdm_bank"}
    assert out["feat"].shape == (2, 4 * 256) and model.fdm.attn.kv.weight.grad is not None


# ---------------------------------------------------------------- smoke: train on a tiny synthetic occluded set


def test_smoke_train_on_synthetic_occluded_set_then_eval_without_flags(tmp_path):
    from click.testing import CliRunner

    from robustreid.cli.main import cli
    from robustreid.data.synthetic import generate
    from robustreid.engine.trainer import train

    root = tmp_path / "synth"
    generate(root, identities=8, cameras=2, images_per_id=4, seed=0, occluded=True, size=SIZE)
    cfg = fed_config("data.dataset=synthetic", f"data.root={root}", "data.p=2", "solver.epochs=1",
                     "solver.warmup_epochs=0", "train.max_iters_per_epoch=3")
    result = train(cfg, tmp_path / "run", progress=False)
    assert result["steps"] == 3 and 0.0 <= result["final"]["mAP"] <= 1.0
    r = CliRunner().invoke(cli, ["eval", "--checkpoint", str(tmp_path / "run"), "--dataset", "synthetic",
                                 "--root", str(root), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert f"{100 * result['final']['mAP']:.2f}" in r.output  # the same feature (f′) as the trainer's evaluation
    _check_feature_choice(cli, tmp_path / "run", root, tmp_path)


def _check_feature_choice(cli, run, root, tmp_path):
    """`eval --feature fdm` and `extract --feature fdm` give the FDM output, as the model does by hand; bad choices
    are refused with the names that exist."""
    from click.testing import CliRunner

    from robustreid.data import load_dataset
    from robustreid.engine.checkpoint import load_model
    from robustreid.engine.extract import extract_features
    from robustreid.eval import evaluate
    from robustreid.eval.features import load_features

    data = ["--dataset", "synthetic", "--root", str(root), "--device", "cpu"]
    model = load_model(run)
    ds = load_dataset("synthetic", str(root))
    with torch.no_grad(), model.using_eval_feature("fdm"):
        qf = extract_features(model, ds.query, batch_size=64, device="cpu", progress=False)
        gf = extract_features(model, ds.gallery, batch_size=64, device="cpu", progress=False)
    labels = [np.asarray([getattr(s, k) for s in split]) for k in ("pid", "camid") for split in (ds.query, ds.gallery)]
    want = evaluate(qf, gf, labels[0], labels[1], labels[2], labels[3])
    r = CliRunner().invoke(cli, ["eval", "--checkpoint", str(run), "--feature", "fdm", *data])
    assert r.exit_code == 0, r.output
    assert "(feature fdm)" in r.output and f"{100 * want.mAP:.2f}" in r.output
    out = tmp_path / "fdm.safetensors"
    r = CliRunner().invoke(cli, ["extract", "--checkpoint", str(run), "--feature", "fdm", "--out", str(out), *data])
    assert r.exit_code == 0, r.output
    fs = load_features(str(out))
    assert np.allclose(fs.select("query").features, np.asarray(qf), atol=1e-5) and fs.meta["feature"] == "fdm"
    with torch.no_grad():  # and not f′, which the same checkpoint gives without the option
        fprime = extract_features(model, ds.query, batch_size=64, device="cpu", progress=False)
    assert model.eval_feature == "fprime" and not np.allclose(np.asarray(fprime), np.asarray(qf), atol=1e-3)
    r = CliRunner().invoke(cli, ["eval", "--checkpoint", str(run), "--feature", "fmd", *data])
    assert r.exit_code != 0 and "unknown feature 'fmd'" in r.output and "fprime, fdm" in r.output
    r = CliRunner().invoke(cli, ["eval", "--features", str(out), "--feature", "fdm"])
    assert r.exit_code != 0 and "a feature file is fixed" in r.output


def test_feature_choice_is_refused_for_a_model_with_one_feature_and_for_fed_without_fdm():
    from robustreid.engine.checkpoint import select_feature

    bot = build_model(ModelConfig(backbone="resnet18", backbone_kwargs={"width": 0.125}, input_size=SIZE), 4)
    with pytest.raises(ValueError, match="BoT model has one inference feature"):
        select_feature(bot, "fdm", "runs/bot")
    no_fdm = tiny_fed(fdm=False)
    with pytest.raises(ValueError, match="needs a model built with the FDM"):
        select_feature(no_fdm, "fdm")
    assert select_feature(tiny_fed(), "fdm").eval_feature == "fdm"
