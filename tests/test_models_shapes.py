"""Model shapes, input handling, heads and parameter groups (tiny widths, small inputs)."""

import math

import pytest
import torch
from torch import nn

from robustreid.config.loader import ConfigError, from_dict, to_dict
from robustreid.models import (
    BACKBONES,
    MODELS,
    BNNeck,
    GeM,
    ModelConfig,
    build_backbone,
    build_model,
    count_parameters,
)
from robustreid.models.backbones.resnet import IBN
from robustreid.models.backbones.vit import drop_path, grid_size, resize_pos_embed

H, W = 64, 32
TINY_VIT = dict(depth=1, embed_dim=32, num_heads=2)

CASES = [
    ("resnet18", {"width": 0.25}, 128),
    ("resnet34", {"width": 0.125}, 64),
    ("resnet50", {"width": 0.125}, 256),
    ("resnet101", {"width": 0.0625}, 128),
    ("resnet50_ibn_a", {"width": 0.125}, 256),
    ("vit_small_patch16", TINY_VIT, 32),
    ("vit_base_patch16", dict(TINY_VIT, patch_stride=12), 32),
]


def _cfg(backbone, kw, **over):
    over.setdefault("pooling", "cls" if backbone.startswith("vit") else "gap")
    return ModelConfig(backbone=backbone, backbone_kwargs=dict(kw), input_size=(H, W), **over)


def _images(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, H, W), dtype=torch.uint8, generator=g)


@pytest.mark.parametrize("backbone,kw,dim", CASES)
def test_train_dict_and_eval_embedding_shapes(backbone, kw, dim):
    torch.manual_seed(0)
    model = build_model(_cfg(backbone, kw), num_classes=7)
    x = _images()
    out = model.train()(x)
    assert {"logits", "feat", "feat_bn", "feat_map"} <= set(out)
    assert out["logits"].shape == (4, 7)
    assert out["feat"].shape == out["feat_bn"].shape == (4, dim)
    assert out["feat_map"].shape[:2] == (4, dim)
    assert model.feat_dim == dim and model.num_classes == 7 and model.input_size == (H, W)
    emb = model.eval()(x)
    assert emb.shape == (4, dim) and emb.dtype == torch.float32
    if backbone.startswith("vit"):
        stride = kw.get("patch_stride", 16)
        assert out["feat_map"].shape[2:] == grid_size((H, W), 16, stride)
        assert out["patch_tokens"].shape == (4, math.prod(grid_size((H, W), 16, stride)), dim)
        assert torch.equal(out["cls_token"], out["feat"])


def test_full_width_parameter_counts_match_torchvision_and_timm():
    # published totals minus the ImageNet classifier: torchvision resnet18 11,689,512 - (512*1000+1000),
    # resnet50 25,557,032 - (2048*1000+1000); timm vit_base_patch16_224 86,567,656 - (768*1000+1000)
    assert count_parameters(BACKBONES.build("resnet18")) == 11_689_512 - 513_000
    assert count_parameters(BACKBONES.build("resnet50")) == 25_557_032 - 2_049_000
    vit = BACKBONES.build("vit_base_patch16", input_size=(224, 224))
    assert count_parameters(vit) == 86_567_656 - 769_000
    assert vit.grid == (14, 14)


@pytest.mark.parametrize("backbone", ["resnet18", "resnet50"])
def test_last_stride_sets_the_map_size(backbone):
    kw = {"width": 0.125}
    m1 = build_model(_cfg(backbone, kw, last_stride=1), 3).eval()
    m2 = build_model(_cfg(backbone, kw, last_stride=2), 3).eval()
    x = _images(2)
    assert m1.forward_features(x).shape[2:] == (H // 16, W // 16)
    assert m2.forward_features(x).shape[2:] == (H // 32, W // 32)


@pytest.mark.parametrize("backbone,kw,dim", [CASES[0], CASES[5]])
def test_uint8_and_float_inputs_agree_and_input_is_not_modified(backbone, kw, dim):
    model = build_model(_cfg(backbone, kw), 5).eval()
    x8 = _images()
    xf = x8.float() / 255.0
    x8_copy, xf_copy = x8.clone(), xf.clone()
    e8, ef = model(x8), model(xf)
    torch.testing.assert_close(e8, ef, rtol=1e-5, atol=1e-5)
    model.train()(xf)
    model.train()(x8)
    assert torch.equal(x8, x8_copy) and torch.equal(xf, xf_copy)


def test_normalisation_uses_config_mean_std():
    cfg = _cfg("resnet18", {"width": 0.125}, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    model = build_model(cfg, 2)
    x = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
    assert torch.allclose(model.normalize(x), torch.ones(1, 3, 2, 2))
    x0 = torch.zeros(1, 3, 2, 2)
    assert torch.allclose(model.normalize(x0), -torch.ones(1, 3, 2, 2))
    with pytest.raises(TypeError, match="uint8"):
        model.normalize(torch.zeros(1, 3, 2, 2, dtype=torch.int32))
    with pytest.raises(ValueError, match="N×3×H×W"):
        model.normalize(torch.zeros(3, 2, 2))


@pytest.mark.parametrize("backbone,width", [("resnet18", 0.25), ("resnet50_ibn_a", 0.125)])
def test_channels_last_gives_the_same_embedding(backbone, width):
    model = build_model(_cfg(backbone, {"width": width}), 3).eval()
    x = _images()
    ref = model(x)
    cl = model.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(ref, cl, rtol=1e-4, atol=1e-4)


def test_bnneck_bias_frozen_and_absent_from_param_groups():
    model = build_model(_cfg("resnet18", {"width": 0.125}), 4)
    assert isinstance(model.neck, BNNeck)
    assert not model.neck.bias.requires_grad and torch.count_nonzero(model.neck.bias) == 0
    assert model.classifier.bias is None
    groups = model.param_groups(0.1, 1e-2)
    assert all(p is not model.neck.bias for g in groups for p in g["params"])
    opt = torch.optim.SGD(groups, momentum=0.9)
    out = model.train()(_images())
    out["logits"].sum().backward()
    opt.step()
    assert torch.count_nonzero(model.neck.bias) == 0


def test_param_groups_cover_each_trainable_parameter_once_with_settings():
    model = build_model(_cfg("resnet18", {"width": 0.125}, pooling="gem", embed_dim=16), 4)
    groups = model.param_groups(base_lr=0.1, weight_decay=5e-4, bias_lr_factor=2.0, wd_norm=0.0)
    by_name = {g["name"]: g for g in groups}
    ids = [id(p) for g in groups for p in g["params"]]
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert len(ids) == len(set(ids)) == len(trainable)
    assert by_name["decay"]["lr"] == 0.1 and by_name["decay"]["weight_decay"] == 5e-4
    assert by_name["norm"]["lr"] == 0.1 and by_name["norm"]["weight_decay"] == 0.0
    assert by_name["bias"]["lr"] == pytest.approx(0.2) and by_name["bias"]["weight_decay"] == 0.0
    ids_of = {k: {id(p) for p in g["params"]} for k, g in by_name.items()}
    assert id(model.backbone.conv1.weight) in ids_of["decay"]
    assert id(model.classifier.weight) in ids_of["decay"]
    assert id(model.embed.weight) in ids_of["decay"]
    assert id(model.backbone.bn1.weight) in ids_of["norm"]
    assert id(model.neck.weight) in ids_of["norm"]
    assert id(model.pool.p) in ids_of["norm"]
    assert id(model.backbone.bn1.bias) in ids_of["bias"]
    g2 = {g["name"]: g for g in model.param_groups(0.1, 5e-4, wd_norm=1e-5)}
    assert g2["norm"]["weight_decay"] == 1e-5 and g2["bias"]["weight_decay"] == 1e-5


def test_vit_param_groups_put_tokens_in_norm_group():
    model = build_model(_cfg("vit_small_patch16", dict(TINY_VIT, num_cameras=3)), 4)
    ids = {g["name"]: {id(p) for p in g["params"]} for g in model.param_groups(0.1, 1e-4)}
    for p in (model.backbone.cls_token, model.backbone.pos_embed, model.backbone.cam_embed):
        assert id(p) in ids["norm"]
    assert id(model.backbone.blocks[0].attn.qkv.weight) in ids["decay"]


def test_gem_is_gap_at_p1_and_tends_to_gmp():
    torch.manual_seed(0)
    x = torch.rand(2, 5, 4, 3) + 0.1
    torch.testing.assert_close(GeM(p=1.0)(x), x.mean(dim=(2, 3)))
    gmp = x.amax(dim=(2, 3))
    errs = [(GeM(p=p)(x) - gmp).abs().max().item() for p in (3.0, 20.0, 200.0)]
    assert errs[0] > errs[1] > errs[2] and errs[2] < 0.02
    # GeM at p=3 by the definition
    torch.testing.assert_close(GeM(p=3.0)(x), (x.pow(3).mean(dim=(2, 3))).pow(1 / 3))
    g = GeM()
    g(x).sum().backward()
    assert g.p.grad is not None and torch.isfinite(g.p.grad)


def test_gem_p_driven_below_one_pools_as_the_average_not_as_eps():
    """The collapse seen on real data: on a sparse map a p pushed to <= 0 made every image's feature a function of
    eps; the floor p_min = 1 keeps it the average, and the gradient stops pushing p down."""
    x = torch.zeros(3, 4, 8, 4)
    x[0, :, 0, 0], x[1, :, 2, 1], x[2, :, 5, 3] = 6.0, 3.0, 1.5  # one active cell per image, as a ReLU6 head
    g = GeM()
    with torch.no_grad():
        g.p.fill_(-0.13)
    y = g(x)
    torch.testing.assert_close(y, x.clamp(min=1e-6).mean(dim=(2, 3)))
    assert y[:, 0].unique().numel() == 3  # three images, three features
    y.sum().backward()
    assert g.p.grad.item() == 0.0
    free = (x.clamp(min=1e-6).pow(-0.13).mean(dim=(2, 3))).pow(1 / -0.13)  # what an unclamped p gives
    assert free.max() < 1e-5  # every image's feature is of the order of eps: the collapse
    with pytest.raises(ValueError, match="p_min"):
        GeM(p=0.5)


def test_gmp_pooling_and_pooling_names():
    model = build_model(_cfg("resnet18", {"width": 0.125}, pooling="gmp"), 2).train()
    out = model(_images(2))
    torch.testing.assert_close(out["feat"], out["feat_map"].amax(dim=(2, 3)))
    model = build_model(_cfg("resnet18", {"width": 0.125}, pooling="gap"), 2).train()
    out = model(_images(2))
    torch.testing.assert_close(out["feat"], out["feat_map"].mean(dim=(2, 3)))


def test_inference_feature_choice_embedding_and_neck_none():
    cfg = _cfg("resnet18", {"width": 0.125}, feat_bn_for_inference=False, embed_dim=24)
    model = build_model(cfg, 3).eval()
    x = _images()
    emb = model(x)
    pooled = model.forward_features(x).mean(dim=(2, 3))
    torch.testing.assert_close(emb, model.embed(pooled))
    assert emb.shape == (4, 24) and model.feat_dim == 24
    model.config.feat_bn_for_inference = True
    torch.testing.assert_close(model(x), model.neck(model.embed(pooled)))
    plain = build_model(_cfg("resnet18", {"width": 0.125}, neck="none"), 3)
    assert isinstance(plain.neck, nn.Identity) and plain.classifier.bias is not None
    out = plain.train()(x)
    assert torch.equal(out["feat"], out["feat_bn"])


def test_classifier_init_reset_and_no_classifier():
    torch.manual_seed(0)
    model = build_model(_cfg("resnet50", {"width": 0.25}), 300)
    w = model.classifier.weight
    assert abs(w.std().item() - 0.001) < 0.0002 and abs(w.mean().item()) < 1e-4
    model.reset_classifier(11)
    assert model.classifier.weight.shape == (11, model.feat_dim) and model.num_classes == 11
    assert model.train()(_images(2))["logits"].shape == (2, 11)
    model.reset_classifier(0)
    assert "logits" not in model.train()(_images(2)) and model.classifier is None


def test_ibn_a_layout():
    bb = BACKBONES.build("resnet50_ibn_a", width=0.125)
    for stage in (bb.layer1, bb.layer2, bb.layer3):
        for blk in stage:
            assert isinstance(blk.bn1, IBN)
            planes = blk.conv1.out_channels
            assert blk.bn1.IN.num_features == planes // 2 and blk.bn1.BN.num_features == planes - planes // 2
            assert blk.bn1.IN.affine
    assert all(isinstance(blk.bn1, nn.BatchNorm2d) for blk in bb.layer4)
    # IBN: the first half of the channels is instance-normalised (per sample), the rest batch-normalised
    ibn = IBN(4).train()
    x = torch.randn(3, 4, 5, 5) * 3 + 1
    y = ibn(x)
    torch.testing.assert_close(y[:, :2].mean(dim=(2, 3)), torch.zeros(3, 2), atol=1e-5, rtol=0)
    torch.testing.assert_close(y[:, 2:].mean(dim=(0, 2, 3)), torch.zeros(2), atol=1e-5, rtol=0)


def test_vit_options_stride_cameras_resize_and_drop_path():
    assert grid_size((256, 128), 16, 16) == (16, 8)
    assert grid_size((256, 128), 16, 12) == (21, 10)  # TransReID's overlapping patches
    cfg = _cfg("vit_small_patch16", dict(TINY_VIT, num_cameras=4, camera_coef=3.0))
    model = build_model(cfg, 3).eval()
    x = _images(2)
    a = model(x, camids=torch.tensor([0, 0]))
    b = model(x, camids=torch.tensor([1, 1]))
    assert not torch.allclose(a, b)
    model.backbone.camera_coef = 0.0
    torch.testing.assert_close(model(x, camids=torch.tensor([0, 0])), model(x, camids=torch.tensor([3, 3])))
    with pytest.raises(ValueError, match="camids"):
        model(x, camids=torch.tensor([0, 9]))
    # another input size than the one built for: the position embedding is resized on the fly
    big = torch.randint(0, 256, (2, 3, 96, 48), dtype=torch.uint8)
    assert model(big).shape == (2, 32)
    # drop path: whole samples dropped, expectation kept, identity in eval
    torch.manual_seed(0)
    y = drop_path(torch.ones(4000, 3), 0.25, training=True)
    rows = y[:, 0]
    vals = torch.unique(rows)
    assert len(vals) == 2 and vals[0] == 0 and vals[1].item() == pytest.approx(1 / 0.75)
    assert torch.all(y == y[:, :1])
    assert abs(y.mean().item() - 1.0) < 0.05
    assert torch.equal(drop_path(torch.ones(3, 2), 0.5, training=False), torch.ones(3, 2))
    dp = build_model(_cfg("vit_small_patch16", dict(depth=3, embed_dim=32, num_heads=2, drop_path=0.2)), 2)
    assert [b.drop_path.p for b in dp.backbone.blocks] == pytest.approx([0.0, 0.1, 0.2])
    dp.eval()
    torch.testing.assert_close(dp(x), dp(x))


def test_resize_pos_embed_keeps_cls_and_constant_fields():
    pe = torch.cat([torch.full((1, 1, 8), 7.0), torch.full((1, 196, 8), 2.5)], dim=1)
    out = resize_pos_embed(pe, (16, 8))
    assert out.shape == (1, 1 + 128, 8)
    assert torch.equal(out[:, :1], pe[:, :1])
    torch.testing.assert_close(out[:, 1:], torch.full((1, 128, 8), 2.5))
    assert resize_pos_embed(pe, (14, 14)) is pe
    with pytest.raises(ValueError, match="square"):
        resize_pos_embed(pe[:, :-1], (4, 2))


def test_config_round_trip_and_build_errors():
    cfg = from_dict(ModelConfig, {"backbone": "resnet18", "input_size": [128, 64], "backbone_kwargs": {"width": 0.5},
                                  "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "pooling": "gem"})
    assert cfg.input_size == (128, 64) and cfg.mean == (0.5, 0.5, 0.5)
    again = from_dict(ModelConfig, to_dict(cfg))
    assert again == cfg
    with pytest.raises(ConfigError, match="input_size"):
        from_dict(ModelConfig, {"input_size": [128]})
    with pytest.raises(ConfigError, match="unknown backbone 'resnet5'.*resnet50"):
        build_model(ModelConfig(backbone="resnet5"), 3)
    with pytest.raises(ConfigError, match="backbone_kwargs.*widht"):
        build_model(ModelConfig(backbone="resnet18", backbone_kwargs={"widht": 0.5}), 3)
    with pytest.raises(ConfigError, match="pooling.*class token"):
        build_model(ModelConfig(backbone="resnet18", pooling="cls", backbone_kwargs={"width": 0.125}), 3)
    with pytest.raises(ConfigError, match="unknown pooling"):
        build_model(ModelConfig(backbone="resnet18", pooling="avg", backbone_kwargs={"width": 0.125}), 3)
    with pytest.raises(ConfigError, match="unknown model"):
        build_model(ModelConfig(name="nope"), 3)
    with pytest.raises(ConfigError, match="neck"):
        build_model(ModelConfig(backbone="resnet18", neck="bn", backbone_kwargs={"width": 0.125}), 3)
    # a mapping works as the config too
    m = build_model({"backbone": "resnet18", "backbone_kwargs": {"width": 0.125}, "input_size": [H, W]}, 2)
    assert m.config.backbone == "resnet18" and "bot" in MODELS


def test_build_backbone_passes_kwargs():
    bb = build_backbone(ModelConfig(backbone="resnet18", last_stride=2, backbone_kwargs={"width": 0.5}))
    assert bb.out_channels == 256 and bb.last_stride == 2


def test_a_new_method_is_one_registration():
    # CIL-like: the BoT model with GeM and mean/std 0.5, registered under a new name
    from dataclasses import replace

    from robustreid.models import BoT

    @MODELS.register("_test_cil_like", override=True)
    def build(cfg, num_classes):
        return BoT(replace(cfg, pooling="gem", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)), num_classes)

    model = build_model(ModelConfig(name="_test_cil_like", backbone="resnet18", backbone_kwargs={"width": 0.125},
                                    input_size=(H, W)), 3)
    assert isinstance(model.pool, GeM) and model.pool.p.item() == 3.0
    assert torch.allclose(model.pixel_mean, torch.full((1, 3, 1, 1), 0.5))
    assert model.train()(_images(2))["logits"].shape == (2, 3)
