"""Pretrained-weight mapping with fabricated torchvision / timm state dicts, and check_state_dict messages."""

import pytest
import torch
from safetensors.torch import save_file

from robustreid.models import (
    CheckpointMismatchError,
    ModelConfig,
    build_model,
    check_state_dict,
    load_pretrained,
    read_state_dict,
)


def _bn(sd, name, c, g):
    sd[f"{name}.weight"] = torch.rand(c, generator=g) + 0.5
    sd[f"{name}.bias"] = torch.randn(c, generator=g)
    sd[f"{name}.running_mean"] = torch.randn(c, generator=g)
    sd[f"{name}.running_var"] = torch.rand(c, generator=g) + 0.5


def torchvision_resnet_state_dict(arch="resnet18", width=0.25, num_fc=1000, seed=0):
    """The key names and shapes of a torchvision ResNet file, written from torchvision's layout (not from our
    module), with channels scaled by ``width``; random values. No num_batches_tracked (as in torchvision files)."""
    g = torch.Generator().manual_seed(seed)
    basic = arch in ("resnet18", "resnet34")
    layers = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3), "resnet50": (3, 4, 6, 3)}[arch]
    planes = [int(round(c * width)) for c in (64, 128, 256, 512)]
    exp = 1 if basic else 4
    sd = {"conv1.weight": torch.randn(planes[0], 3, 7, 7, generator=g)}
    _bn(sd, "bn1", planes[0], g)
    inp = planes[0]
    for li, (n, p) in enumerate(zip(layers, planes), start=1):
        for b in range(n):
            pre = f"layer{li}.{b}"
            stride_change = b == 0 and (li > 1 or inp != p * exp)
            if basic:
                sd[f"{pre}.conv1.weight"] = torch.randn(p, inp if b == 0 else p, 3, 3, generator=g)
                _bn(sd, f"{pre}.bn1", p, g)
                sd[f"{pre}.conv2.weight"] = torch.randn(p, p, 3, 3, generator=g)
                _bn(sd, f"{pre}.bn2", p, g)
            else:
                sd[f"{pre}.conv1.weight"] = torch.randn(p, inp if b == 0 else p * 4, 1, 1, generator=g)
                _bn(sd, f"{pre}.bn1", p, g)
                sd[f"{pre}.conv2.weight"] = torch.randn(p, p, 3, 3, generator=g)
                _bn(sd, f"{pre}.bn2", p, g)
                sd[f"{pre}.conv3.weight"] = torch.randn(p * 4, p, 1, 1, generator=g)
                _bn(sd, f"{pre}.bn3", p * 4, g)
            if stride_change:
                sd[f"{pre}.downsample.0.weight"] = torch.randn(p * exp, inp, 1, 1, generator=g)
                _bn(sd, f"{pre}.downsample.1", p * exp, g)
        inp = p * exp
    sd["fc.weight"] = torch.randn(num_fc, inp, generator=g)
    sd["fc.bias"] = torch.randn(num_fc, generator=g)
    return sd


def timm_vit_state_dict(dim=32, depth=2, grid=14, seed=0, pos=None):
    """Key names and shapes of a timm ``vit_*_patch16_224`` file (14×14 grid), random values."""
    g = torch.Generator().manual_seed(seed)
    sd = {
        "cls_token": torch.randn(1, 1, dim, generator=g),
        "pos_embed": pos if pos is not None else torch.randn(1, 1 + grid * grid, dim, generator=g),
        "patch_embed.proj.weight": torch.randn(dim, 3, 16, 16, generator=g),
        "patch_embed.proj.bias": torch.randn(dim, generator=g),
        "norm.weight": torch.randn(dim, generator=g),
        "norm.bias": torch.randn(dim, generator=g),
        "head.weight": torch.randn(1000, dim, generator=g),
        "head.bias": torch.randn(1000, generator=g),
    }
    for i in range(depth):
        b = f"blocks.{i}"
        for n in ("norm1", "norm2"):
            sd[f"{b}.{n}.weight"] = torch.randn(dim, generator=g)
            sd[f"{b}.{n}.bias"] = torch.randn(dim, generator=g)
        sd[f"{b}.attn.qkv.weight"] = torch.randn(3 * dim, dim, generator=g)
        sd[f"{b}.attn.qkv.bias"] = torch.randn(3 * dim, generator=g)
        sd[f"{b}.attn.proj.weight"] = torch.randn(dim, dim, generator=g)
        sd[f"{b}.attn.proj.bias"] = torch.randn(dim, generator=g)
        sd[f"{b}.mlp.fc1.weight"] = torch.randn(4 * dim, dim, generator=g)
        sd[f"{b}.mlp.fc1.bias"] = torch.randn(4 * dim, generator=g)
        sd[f"{b}.mlp.fc2.weight"] = torch.randn(dim, 4 * dim, generator=g)
        sd[f"{b}.mlp.fc2.bias"] = torch.randn(dim, generator=g)
    return sd


def _resnet_cfg(arch="resnet18", width=0.25, **kw):
    return ModelConfig(backbone=arch, backbone_kwargs={"width": width}, input_size=(64, 32), **kw)


@pytest.mark.parametrize("arch,width,suffix", [("resnet18", 0.25, ".pth"), ("resnet50", 0.125, ".safetensors")])
def test_torchvision_resnet_loads_every_key(tmp_path, arch, width, suffix):
    sd = torchvision_resnet_state_dict(arch, width)
    path = tmp_path / f"{arch}{suffix}"
    if suffix == ".pth":
        torch.save(sd, path)
    else:
        save_file(sd, str(path))
    model = build_model(_resnet_cfg(arch, width), 5)
    report = load_pretrained(model, path)
    assert report.format == "resnet"
    assert report.missing == [] and report.unexpected == [] and report.mismatched == []
    assert sorted(report.ignored) == ["fc.bias", "fc.weight"]
    assert len(report.loaded) == len(sd) - 2
    own = model.backbone.state_dict()
    for k, v in sd.items():
        if not k.startswith("fc."):
            assert torch.equal(own[k], v), k
    assert report.ok and "loaded" in report.summary()


def test_build_model_loads_pretrained_from_config_and_wrappers(tmp_path):
    sd = torchvision_resnet_state_dict("resnet18", 0.25, seed=3)
    path = tmp_path / "wrapped.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}, "epoch": 3}, path)
    assert set(read_state_dict(path)) == set(sd)
    model = build_model(_resnet_cfg(pretrained=str(path)), 4)
    assert torch.equal(model.backbone.layer4[1].conv2.weight, sd["layer4.1.conv2.weight"])
    assert model.pretrained_report.ignored == ["fc.weight", "fc.bias"]
    # load_weights=False skips the file (a checkpoint is loaded right after)
    (tmp_path / "wrapped.pt").unlink()
    assert build_model(_resnet_cfg(pretrained=str(path)), 4, load_weights=False).pretrained_report is None
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        build_model(_resnet_cfg(pretrained=str(path)), 4)


def test_ibn_model_from_plain_resnet_reports_missing_instance_norms(tmp_path):
    sd = torchvision_resnet_state_dict("resnet50", 0.125)
    path = tmp_path / "r50.pth"
    torch.save(sd, path)
    model = build_model(_resnet_cfg("resnet50_ibn_a", 0.125), 3)
    report = load_pretrained(model, path)
    assert report.missing and all(".bn1.IN." in k or ".bn1.BN." in k for k in report.missing)
    assert "layer1.0.bn1.weight" in report.unexpected
    with pytest.raises(CheckpointMismatchError, match="missing"):
        load_pretrained(model, path, strict=True)


def test_width_mismatch_is_reported_not_loaded(tmp_path):
    sd = torchvision_resnet_state_dict("resnet18", 0.5)
    path = tmp_path / "r18.pth"
    torch.save(sd, path)
    model = build_model(_resnet_cfg("resnet18", 0.25), 3)
    before = model.backbone.conv1.weight.clone()
    report = load_pretrained(model, path)
    assert ("conv1.weight", (32, 3, 7, 7), (16, 3, 7, 7)) in report.mismatched
    assert torch.equal(model.backbone.conv1.weight, before)
    with pytest.raises(CheckpointMismatchError, match="conv1.weight: checkpoint has 32×3×7×7, model has 16×3×7×7"):
        load_pretrained(model, path, strict=True)


def test_timm_vit_loads_and_resizes_pos_embed(tmp_path):
    dim = 32
    # a smooth position field: value = row index on channel 0, column index on channel 1, constant 0.7 elsewhere
    rows = torch.arange(14.0).view(14, 1).expand(14, 14)
    cols = torch.arange(14.0).view(1, 14).expand(14, 14)
    field = torch.full((14, 14, dim), 0.7)
    field[..., 0], field[..., 1] = rows, cols
    pos = torch.cat([torch.full((1, 1, dim), -3.0), field.reshape(1, 196, dim)], dim=1)
    sd = timm_vit_state_dict(dim=dim, depth=2, pos=pos)
    path = tmp_path / "vit.safetensors"
    save_file(sd, str(path))
    cfg = ModelConfig(backbone="vit_small_patch16", pooling="cls", input_size=(64, 32),
                      backbone_kwargs=dict(depth=2, embed_dim=dim, num_heads=2, num_cameras=2))
    model = build_model(cfg, 3)
    report = load_pretrained(model, path)
    assert report.format == "vit"
    assert sorted(report.ignored) == ["head.bias", "head.weight"]
    assert report.unexpected == [] and report.mismatched == []
    assert report.missing == ["cam_embed"]  # our option, not in timm files
    assert report.resized and "pos_embed" in report.resized[0]
    vit = model.backbone
    for k, v in sd.items():
        if k not in ("pos_embed",) and not k.startswith("head."):
            assert torch.equal(vit.state_dict()[k], v), k
    pe = vit.pos_embed.detach()
    assert pe.shape == (1, 1 + 4 * 2, dim)
    assert torch.all(pe[0, 0] == -3.0)  # the class token's position is not interpolated
    grid = pe[0, 1:].reshape(4, 2, dim)
    torch.testing.assert_close(grid[..., 2:], torch.full((4, 2, dim - 2), 0.7))
    # rows increase down, columns increase right, and both stay within the original range
    assert torch.all(grid[1:, :, 0] > grid[:-1, :, 0]) and torch.all(grid[:, 1:, 1] > grid[:, :-1, 1])
    assert grid[..., :2].min() >= 0 and grid[..., :2].max() <= 13
    assert model.eval()(torch.zeros(1, 3, 64, 32, dtype=torch.uint8)).shape == (1, dim)


def test_wrong_family_and_unreadable_files(tmp_path):
    vit_path = tmp_path / "vit.pth"
    torch.save(timm_vit_state_dict(dim=32, depth=1), vit_path)
    with pytest.raises(CheckpointMismatchError, match="ViT checkpoint"):
        load_pretrained(build_model(_resnet_cfg(), 2), vit_path)
    junk = tmp_path / "junk.pth"
    torch.save({"foo.weight": torch.zeros(2)}, junk)
    with pytest.raises(ValueError, match="neither a torchvision ResNet"):
        load_pretrained(build_model(_resnet_cfg(), 2), junk)
    evil = tmp_path / "evil.pth"
    torch.save({"conv1.weight": torch.zeros(1), "obj": _Custom()}, evil)
    with pytest.raises(ValueError, match="weights_only"):
        read_state_dict(evil)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="safetensors"):
        read_state_dict(bad)


class _Custom:
    pass


def test_load_from_a_robustreid_model_checkpoint(tmp_path):
    src = build_model(_resnet_cfg(), 751)
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(path))
    dst = build_model(_resnet_cfg(), 702)
    report = load_pretrained(dst, path)
    assert report.format == "robustreid" and report.missing == [] and report.mismatched == []
    assert "classifier.weight" in report.ignored and "neck.weight" in report.ignored
    assert torch.equal(dst.backbone.conv1.weight, src.backbone.conv1.weight)


def test_check_state_dict_messages():
    model = build_model(_resnet_cfg(), 702)
    assert check_state_dict(model, model.state_dict()) is None
    other = build_model(_resnet_cfg(), 751)
    with pytest.raises(CheckpointMismatchError) as e:
        check_state_dict(model, other.state_dict())
    msg = str(e.value)
    assert "classifier.weight: checkpoint has 751×128, model has 702×128" in msg
    assert "reset_classifier" in msg
    sd = dict(model.state_dict())
    sd.pop("backbone.conv1.weight")
    sd["extra.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"(?s)missing from the checkpoint \(1\): backbone.conv1.weight.*"
                                         r"unexpected in the checkpoint \(1\): extra.weight"):
        check_state_dict(model, sd)
    ddp = {f"module.{k}": v for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointMismatchError, match="module"):
        check_state_dict(model, ddp)
    wider = build_model(_resnet_cfg(width=0.5), 702)
    with pytest.raises(CheckpointMismatchError, match="another architecture"):
        check_state_dict(model, wider.state_dict())


def test_vit_pos_embed_from_a_non_square_reid_grid(tmp_path):
    # a ViT trained at 256×128 (16×8 grid) loaded into a 384×128 model (24×8 grid): the grid is inferred from
    # the aspect ratio, columns are kept and rows interpolated
    dim = 16
    field = torch.arange(16.0).view(16, 1, 1).expand(16, 8, dim)
    pos = torch.cat([torch.zeros(1, 1, dim), field.reshape(1, 128, dim)], dim=1)
    path = tmp_path / "reid_vit.pth"
    torch.save(timm_vit_state_dict(dim=dim, depth=1, pos=pos), path)
    cfg = ModelConfig(backbone="vit_small_patch16", pooling="cls", input_size=(384, 128),
                      backbone_kwargs=dict(depth=1, embed_dim=dim, num_heads=2))
    model = build_model(cfg, 2)
    report = load_pretrained(model, path)
    assert report.mismatched == [] and report.resized
    grid = model.backbone.pos_embed.detach()[0, 1:].reshape(24, 8, dim)
    assert torch.allclose(grid[:, :1], grid)  # constant along each row: the column structure was kept
    assert torch.all(grid[1:, 0, 0] >= grid[:-1, 0, 0])
